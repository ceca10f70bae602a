"""Soak and churn of the live server: does it give back what its sessions took?

Two phases (``python -m bench.soak`` runs them; either can be left out):

* **soak**: ``sessions`` WebRTC clients (``measure.webrtc_client.Client``) at once for
  ``duration_s``, each sending the latency bench's speech bursts (``measure.program``: a
  60 s burst program per session, looped) and receiving the avatar's video. Every
  ``interval_s`` the server's resources are read (below) and, per session, the frames
  received since the last reading and the server's counters (``GET /api/sessions/{id}``:
  ``frames_sent``, ``frames_dropped``: frames it could not make in time). The **baseline** is
  the first reading ``warmup_s`` or more after the sessions started (caches, thread pools and
  the allocator's arenas have grown by then), the **end** the last one before they close;
  ``rss_growth_pct`` is the end's RSS over the baseline's. Idle readings before the sessions
  open and ``settle_s`` after they close are kept too.
* **churn**: ``churn`` short sessions one after the other: connect, receive video for
  ``hold_s`` (speech going out), ``DELETE /api/sessions/{id}``, close the peer connection.
  ``churn_warmup`` sessions first (not counted) so that the thread pools a first session
  starts do not read as growth; then a reading **before**, one **after** the last session
  closed and one **settled** (``settle_s`` later); readings every ``interval_s`` in between.

A resource reading (``Reading``) sums the server process and all its descendants (the render
worker processes of stream_server/render_pool.py and multiprocessing's resource tracker,
found by walking ``/proc/*/stat``'s parent ids): RSS (``VmRSS`` of ``/proc/PID/status``),
threads (``Threads``), open file descriptors (entries of ``/proc/PID/fd``) and processes;
the server process alone as well (``server_*``); and shared memory: the files in ``/dev/shm``
(``shm_files``, ``shm_mb``: the whole directory, any process's) and the distinct
``/dev/shm`` files the server's processes map (``shm_mapped``: including unlinked ones, which
a leak keeps alive).

Targets (issue 16), each printed as PASS/FAIL; the exit status does not depend on them:
RSS growth below ``RSS_GROWTH_MAX_PCT`` after warm-up (soak: baseline -> end; churn:
before -> settled), and threads, fds, processes and shared memory back to the churn's
``before`` once settled.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError

from measure.program import CHUNK, CHUNK_S, Program, ProgramTrack, audio_frame, burst_program
from measure.server import BenchError
from measure.webrtc_client import Client

if TYPE_CHECKING:
    import aiohttp

PROC = Path("/proc")
SHM = Path("/dev/shm")
RSS_GROWTH_MAX_PCT = 5.0
LOOP_S = 60.0  # each session's burst program, looped (an hour of samples is ~700 MB)
FIRST_FRAME_TIMEOUT_S = 30.0
FRAME_TICKS = 3600  # one 25 fps frame at the video's 90 kHz clock
MB = 1024 * 1024


# -- resource readings -------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """One process's (or a sum's) RSS, threads and open file descriptors."""

    rss_kb: int = 0
    threads: int = 0
    fds: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.rss_kb + other.rss_kb, self.threads + other.threads, self.fds + other.fds)


def process_usage(pid: int) -> Usage | None:
    """``pid``'s usage from /proc; None when it is gone (or not ours to read)."""
    try:
        status = (PROC / str(pid) / "status").read_text()
        fds = len(os.listdir(PROC / str(pid) / "fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = int(fields.get("VmRSS", "0 kB").split()[0])  # a zombie has none
    return Usage(rss_kb, int(fields.get("Threads", "0")), fds)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from the parent ids in ``/proc/*/stat``."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # after "(comm)": state, parent
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    return tree


def mapped_shm(pids: list[int]) -> int:
    """How many distinct /dev/shm files the processes map (unlinked ones included)."""
    names: set[str] = set()
    for pid in pids:
        try:
            maps = (PROC / str(pid) / "maps").read_text()
        except OSError:
            continue
        for line in maps.splitlines():
            if (at := line.find("/dev/shm/")) >= 0:
                names.add(line[at:])
    return len(names)


def shm_files() -> tuple[int, int]:
    """(files, bytes) in /dev/shm."""
    count = size = 0
    with os.scandir(SHM) as entries:
        for entry in entries:
            try:
                size += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
            count += 1
    return count, size


@dataclass
class Reading:
    """The server's resources at one moment (see the module docstring); the resource fields
    are None without a process id. ``sessions``: the soak's sessions at that moment."""

    t_s: float  # since the run started
    label: str  # soak-before, soak, soak-after, churn-warm, churn-before, churn, ...
    shm_files: int
    shm_mb: float
    rss_mb: float | None = None  # the server and its descendants, summed
    threads: int | None = None
    fds: int | None = None
    processes: int | None = None
    shm_mapped: int | None = None
    server_rss_mb: float | None = None  # the server process alone
    server_threads: int | None = None
    server_fds: int | None = None
    sessions: list[dict[str, Any]] = field(default_factory=list)
    churned: int | None = None  # churn sessions closed by then


def read_resources(pid: int | None, label: str, t_s: float) -> Reading:
    files, size = shm_files()
    reading = Reading(round(t_s, 2), label, files, round(size / MB, 2))
    if pid is None:
        return reading
    server = process_usage(pid)
    if server is None:
        raise BenchError(f"the server (pid {pid}) is gone")
    tree = process_tree(pid)
    total = sum((process_usage(p) or Usage() for p in tree[1:]), server)
    reading.rss_mb = round(total.rss_kb / 1024, 1)
    reading.threads, reading.fds, reading.processes = total.threads, total.fds, len(tree)
    reading.shm_mapped = mapped_shm(tree)
    reading.server_rss_mb = round(server.rss_kb / 1024, 1)
    reading.server_threads, reading.server_fds = server.threads, server.fds
    return reading


# -- sessions ------------------------------------------------------------------------------


class LoopingTrack(ProgramTrack):
    """A ``ProgramTrack`` that plays its program over and over (and keeps no send times)."""

    def __init__(self, program: Program) -> None:
        super().__init__(program)
        self.frames = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.start is None:
            self.start = time.monotonic()
        j = self.frames
        self.frames += 1
        await asyncio.sleep(max(0.0, self.start + j * CHUNK_S - time.monotonic()))
        k = j % (len(self.program.samples) // CHUNK)
        return audio_frame(self.program.samples[k * CHUNK : (k + 1) * CHUNK], j)


def speaking_client(url: str, program: Program) -> Client:
    client = Client(url, None)
    client.track = LoopingTrack(program)  # connect() sends the client's track
    return client


@dataclass
class Watched:
    """A soak session: its client and what has come back so far (the client's lists are
    emptied at each reading, so an hour's frames are counted, not kept)."""

    index: int
    client: Client
    frames: int = 0
    first_t: float | None = None
    last_t: float | None = None
    last_pts: int | None = None
    missing_pts: int = 0
    fps_intervals: list[float] = field(default_factory=list)
    sampled_at: float = 0.0
    server: dict[str, Any] | None = None  # the last GET /api/sessions/{id}

    def restart(self) -> None:
        """Count from now on (the first frames came while the other sessions opened)."""
        self.take_frames()
        self.frames, self.first_t = 0, self.last_t
        self.sampled_at = time.monotonic()

    def take_frames(self) -> int:
        """Count the frames received since the last call (and the pts gaps among them)."""
        got = self.client.received
        times, pts = list(got.video_t), list(got.video_pts)
        for kept in (got.video_t, got.video_pts, got.video_complete_t, got.video_complete_rtp):
            kept.clear()
        for kept in (got.audio_t, got.audio_pts, got.audio_rms):
            kept.clear()
        if not times:
            return 0
        if self.first_t is None:
            self.first_t = times[0]
        self.last_t = times[-1]
        stamps = np.asarray(pts if self.last_pts is None else [self.last_pts, *pts], np.int64)
        steps = (np.diff(stamps) % 2**32) / FRAME_TICKS
        self.missing_pts += int(np.clip(np.round(steps) - 1, 0, None).sum())
        self.last_pts = pts[-1]
        self.frames += len(times)
        return len(times)

    def sample(self) -> dict[str, Any]:
        """This session at a reading: frames so far, fps since the last, server counters."""
        now = time.monotonic()
        fps = round(self.take_frames() / max(now - self.sampled_at, 1e-3), 2)
        self.sampled_at = now
        self.fps_intervals.append(fps)
        server = self.server or {}
        return {
            "index": self.index,
            "frames_received": self.frames,
            "fps": fps,
            "frames_sent": server.get("frames_sent"),
            "frames_dropped": server.get("frames_dropped"),
            "missing_pts": self.missing_pts,
            "connection": self.client.pc.connectionState if self.client.pc else None,
        }

    def result(self) -> dict[str, Any]:
        server = self.server or {}
        sent, dropped = server.get("frames_sent"), server.get("frames_dropped")
        span = (self.last_t or 0.0) - (self.first_t or 0.0)
        made = (sent or 0) + (dropped or 0)
        return {
            "index": self.index,
            "session_id": self.client.session_id,
            "frames_received": self.frames,
            "fps": round(self.frames / span, 2) if span > 0 else 0.0,
            "fps_min": min(self.fps_intervals, default=None),  # the worst interval
            "frames_sent": sent,
            "frames_dropped": dropped,
            "dropped_pct": round(100 * (dropped or 0) / made, 2) if made else None,
            "missing_pts": self.missing_pts,
            "audio_inserted_samples": server.get("audio_inserted_samples"),
        }


async def server_stats(client: Client, http: aiohttp.ClientSession) -> dict[str, Any] | None:
    """``GET /api/sessions/{id}``; None when refused or unreachable."""
    import aiohttp

    try:
        return await client.stats(http)
    except (OSError, aiohttp.ClientError, ValueError):
        return None


async def close_client(client: Client, http: aiohttp.ClientSession) -> str | None:
    """DELETE the session and close the peer connection; what went wrong, if anything."""
    import aiohttp

    try:
        await client.close(http)
    except (OSError, aiohttp.ClientError) as exc:
        await client.close()
        return f"close: {exc or type(exc).__name__}"
    return None


async def open_session(url: str, client: Client, http: aiohttp.ClientSession) -> None:
    """Connect and wait for the first video frame (BenchError when either fails)."""
    import aiohttp

    try:
        await client.connect(http)
        await asyncio.wait_for(client.first_frame.wait(), FIRST_FRAME_TIMEOUT_S)
    except TimeoutError as exc:
        raise BenchError(f"no video within {FIRST_FRAME_TIMEOUT_S:.0f} s") from exc
    except (OSError, aiohttp.ClientError) as exc:
        raise BenchError(f"no session with {url}: {exc or type(exc).__name__}") from exc


# -- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    url: str
    pid: int | None  # the server's process id (None: no resource readings)
    sessions: int = 4  # soak sessions (0: no soak)
    duration_s: float = 3600.0
    warmup_s: float = 300.0
    churn: int = 200  # churn sessions (0: no churn)
    churn_warmup: int = 5
    hold_s: float = 1.5
    settle_s: float = 15.0
    interval_s: float = 10.0


class Run:
    """One run's clock, samples and HTTP session."""

    def __init__(self, config: Config, bursts: list[np.ndarray], http: aiohttp.ClientSession):
        self.config = config
        self.bursts = bursts
        self.http = http
        self.t0 = time.monotonic()
        self.samples: list[Reading] = []

    async def read(
        self, label: str, sessions: list[Watched] | None = None, churned: int | None = None
    ) -> Reading:
        """A reading (off the event loop: /proc is walked), kept in ``samples``."""
        if sessions:
            for w in sessions:
                w.server = await server_stats(w.client, self.http) or w.server
        elapsed = time.monotonic() - self.t0
        reading = await asyncio.to_thread(read_resources, self.config.pid, label, elapsed)
        if sessions:
            reading.sessions = [w.sample() for w in sessions]
        reading.churned = churned
        self.samples.append(reading)
        progress(reading)
        return reading

    def program(self, seed: int) -> Program:
        return burst_program(self.bursts, LOOP_S, seed=seed)


def progress(r: Reading) -> None:
    """One line per reading on stderr (an hour's run shows it is alive)."""
    fps = " ".join(f"{s['fps']:.1f}" for s in r.sessions)
    dropped = " ".join(str(s["frames_dropped"]) for s in r.sessions)
    line = f"[{r.t_s:7.1f} s] {r.label:<13} rss {r.rss_mb} MB, threads {r.threads}, "
    line += f"fds {r.fds}, shm {r.shm_files} files ({r.shm_mapped} mapped)"
    if r.sessions:
        line += f" | fps {fps} | dropped {dropped}"
    print(line, file=sys.stderr, flush=True)


async def soak(run: Run) -> dict[str, Any]:
    """The soak phase (module docstring); its readings' labels and the sessions' results."""
    c = run.config
    before = await run.read("soak-before")
    clients = [speaking_client(c.url, run.program(i)) for i in range(c.sessions)]
    opened = await asyncio.gather(
        *(open_session(c.url, client, run.http) for client in clients), return_exceptions=True
    )
    watched = [Watched(i, client) for i, client in enumerate(clients)]
    try:
        if failed := [o for o in opened if isinstance(o, BaseException)]:
            raise BenchError(f"a soak session did not start: {failed[0]}")
        start = time.monotonic() - run.t0
        for w in watched:
            w.restart()
        await every(c.interval_s, c.duration_s, lambda: run.read("soak", watched))
        for w in watched:
            w.server = await server_stats(w.client, run.http) or w.server
    finally:
        await asyncio.gather(*(close_client(w.client, run.http) for w in watched))
    await asyncio.sleep(c.settle_s)
    after = await run.read("soak-after")
    during = [r for r in run.samples if r.label == "soak"]
    baseline = next((r for r in during if r.t_s - start >= c.warmup_s), during[0])
    return {
        "started_s": round(start, 2),
        "before": asdict(before),
        "baseline": asdict(baseline),
        "end": asdict(during[-1]),
        "after": asdict(after),
        "rss_growth_pct": growth_pct(baseline.rss_mb, during[-1].rss_mb),
        "sessions": [w.result() for w in watched],
    }


async def every(
    interval_s: float, duration_s: float, action: Callable[[], Awaitable[object]]
) -> None:
    """``action`` every ``interval_s`` for ``duration_s`` (and at its end)."""
    start = time.monotonic()
    tick = 0.0
    while tick < duration_s:
        tick = min(tick + interval_s, duration_s)
        await asyncio.sleep(max(0.0, start + tick - time.monotonic()))
        await action()


async def churn_session(run: Run, index: int, program: Program) -> dict[str, Any]:
    """One short session: connect, receive for ``hold_s``, DELETE and close."""
    client = speaking_client(run.config.url, program)
    began = time.monotonic()
    result: dict[str, Any] = {"index": index, "ok": False, "error": None}
    try:
        await open_session(run.config.url, client, run.http)
        result["first_frame_ms"] = round((time.monotonic() - began) * 1000)
        await asyncio.sleep(run.config.hold_s)
        stats = await server_stats(client, run.http) or {}
        result["frames_received"] = len(client.received.video_t)
        result["frames_dropped"] = stats.get("frames_dropped")
        result["ok"] = True
    except BenchError as exc:
        result["error"] = str(exc)
    finally:
        if problem := await close_client(client, run.http):
            result["ok"], result["error"] = False, result["error"] or problem
    return result


async def churn(run: Run) -> dict[str, Any]:
    """The churn phase (module docstring)."""
    c = run.config
    program = run.program(seed=1000)
    for i in range(c.churn_warmup):
        await churn_session(run, -1 - i, program)
    await asyncio.sleep(c.settle_s)
    before = await run.read("churn-before", churned=0)
    results: list[dict[str, Any]] = []

    async def sessions() -> None:
        for i in range(c.churn):
            results.append(await churn_session(run, i, program))
            if not results[-1]["ok"]:
                await asyncio.sleep(1.0)  # refused (or broken): give the server a moment

    readings = asyncio.ensure_future(
        every(c.interval_s, 1e9, lambda: run.read("churn", churned=len(results)))
    )
    try:
        await sessions()
    finally:
        readings.cancel()
        await asyncio.gather(readings, return_exceptions=True)
    after = await run.read("churn-after", churned=len(results))
    await asyncio.sleep(c.settle_s)
    settled = await run.read("churn-settled", churned=len(results))
    return {
        "before": asdict(before),
        "after": asdict(after),
        "settled": asdict(settled),
        "rss_growth_pct": growth_pct(before.rss_mb, settled.rss_mb),
        "per_session": churn_trend([r for r in run.samples if r.churned is not None]),
        "sessions": results,
        **churn_summary(results),
    }


def churn_trend(readings: list[Reading]) -> dict[str, dict[str, float | None]]:
    """RSS (MB) and threads added per churn session over its first and its second half: a
    leak keeps adding, a pool or the allocator's arenas (engines.heap keeps freed memory)
    level off."""
    total = readings[-1].churned or 0
    middle = min(readings, key=lambda r: abs((r.churned or 0) - total / 2))
    return {
        key: {
            "first_half": _slope(readings[0], middle, key),
            "second_half": _slope(middle, readings[-1], key),
        }
        for key in ("rss_mb", "threads")
    }


def _slope(a: Reading, b: Reading, key: str) -> float | None:
    start, end = getattr(a, key), getattr(b, key)
    n = (b.churned or 0) - (a.churned or 0)
    if start is None or end is None or n <= 0:
        return None
    return round((end - start) / n, 3)


def churn_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in results if r["ok"]]
    first = [r["first_frame_ms"] for r in ok]
    frames = [r["frames_received"] for r in ok]
    return {
        "sessions_ok": len(ok),
        "sessions_failed": len(results) - len(ok),
        "first_frame_ms_p50": float(np.median(first)) if first else None,
        "first_frame_ms_max": max(first, default=None),
        "frames_received_p50": float(np.median(frames)) if frames else None,
        "frames_dropped": sum(r["frames_dropped"] or 0 for r in ok),
        "errors": sorted({r["error"] for r in results if r["error"]}),
    }


async def run_soak(config: Config, bursts: list[np.ndarray]) -> dict[str, Any]:
    """Both phases (those asked for) against ``config.url``: the report, every reading in
    ``samples``."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        run = Run(config, bursts, http)
        report: dict[str, Any] = {"url": config.url, "pid": config.pid, "config": asdict(config)}
        if config.sessions > 0 and config.duration_s > 0:
            report["soak"] = await soak(run)
        if config.churn > 0:
            report["churn"] = await churn(run)
    report["targets"] = [asdict(t) for t in targets(report)]
    report["samples"] = [asdict(r) for r in run.samples]
    return report


# -- targets and the report ------------------------------------------------------------------


def growth_pct(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before <= 0:
        return None
    return round(100 * (after - before) / before, 2)


@dataclass(frozen=True)
class Target:
    name: str
    passed: bool | None  # None: not measured (no process id)
    detail: str


BACK_TO_BASELINE = {
    "threads": "threads",
    "fds": "fds",
    "processes": "processes",
    "shm_mapped": "/dev/shm files the server maps",
    "shm_files": "/dev/shm files (the machine's: another program's count too)",
    "shm_mb": "/dev/shm MB (the machine's)",
}


def targets(report: dict[str, Any]) -> list[Target]:
    found: list[Target] = []
    if soak := report.get("soak"):
        found.append(rss_target("soak", soak["rss_growth_pct"], "baseline -> end"))
    if churn := report.get("churn"):
        found.append(rss_target("churn", churn["rss_growth_pct"], "before -> settled"))
        for key, name in BACK_TO_BASELINE.items():
            before, settled = churn["before"][key], churn["settled"][key]
            found.append(
                Target(
                    f"churn: {name} back to baseline",
                    None if before is None else settled == before,
                    f"{before} -> {churn['after'][key]} -> {settled} (before, after, settled)",
                )
            )
    return found


def rss_target(phase: str, growth: float | None, span: str) -> Target:
    return Target(
        f"{phase}: RSS growth < {RSS_GROWTH_MAX_PCT:.0f}%",
        None if growth is None else growth < RSS_GROWTH_MAX_PCT,
        f"{growth}% ({span})",
    )


TABLE_ROWS = (
    ("RSS MB (server + children)", "rss_mb"),
    ("RSS MB (server process)", "server_rss_mb"),
    ("threads", "threads"),
    ("threads (server process)", "server_threads"),
    ("fds", "fds"),
    ("fds (server process)", "server_fds"),
    ("processes", "processes"),
    ("/dev/shm files", "shm_files"),
    ("/dev/shm MB", "shm_mb"),
    ("/dev/shm mapped", "shm_mapped"),
)


def resource_table(columns: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Readings side by side: one column per (title, reading)."""
    lines = [f"{'':<28}" + "".join(f"{title:>14}" for title, _ in columns)]
    for name, key in TABLE_ROWS:
        values = "".join(f"{_cell(r[key]):>14}" for _, r in columns)
        lines.append(f"{name:<28}{values}")
    return lines


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def format_report(report: dict[str, Any]) -> str:
    lines = [f"server {report['url']} (pid {report['pid'] or 'unknown: no resource readings'})"]
    columns: list[tuple[str, dict[str, Any]]] = []
    if soak := report.get("soak"):
        base_t = soak["baseline"]["t_s"] - soak["started_s"]
        columns += [
            ("soak before", soak["before"]),
            (f"baseline@{base_t:.0f}s", soak["baseline"]),
            ("soak end", soak["end"]),
            ("soak closed", soak["after"]),
        ]
    if churn := report.get("churn"):
        columns += [
            ("churn before", churn["before"]),
            ("churn after", churn["after"]),
            ("churn settled", churn["settled"]),
        ]
    lines += resource_table(columns)
    if soak:
        lines += soak_lines(soak, report["config"])
    if churn:
        lines += churn_lines(churn)
    lines.append("targets (a measurement: the exit status does not depend on them)")
    for t in report["targets"]:
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[t["passed"]]
        lines.append(f"  {verdict}  {t['name']}: {t['detail']}")
    return "\n".join(lines)


def soak_lines(soak: dict[str, Any], config: dict[str, Any]) -> list[str]:
    lines = [
        f"soak: {len(soak['sessions'])} session(s) x {config['duration_s']:.0f} s, "
        f"RSS growth after warm-up {soak['rss_growth_pct']}%",
        "  session      fps  fps min   received       sent  dropped  dropped %  pts gaps",
    ]
    for s in soak["sessions"]:
        lines.append(
            f"  {s['index']:>7} {s['fps']:>8} {_cell(s['fps_min']):>8} {s['frames_received']:>10}"
            f" {_cell(s['frames_sent']):>10} {_cell(s['frames_dropped']):>8}"
            f" {_cell(s['dropped_pct']):>10} {s['missing_pts']:>9}"
        )
    return lines


def churn_lines(churn: dict[str, Any]) -> list[str]:
    n = churn["sessions_ok"] + churn["sessions_failed"]
    trend = churn["per_session"]
    lines = [
        f"churn: {n} session(s), {churn['sessions_ok']} ok, {churn['sessions_failed']} failed; "
        f"first frame p50 {churn['first_frame_ms_p50']} ms (max {churn['first_frame_ms_max']}),"
        f" frames received p50 {churn['frames_received_p50']}, dropped {churn['frames_dropped']}"
        f", RSS growth {churn['rss_growth_pct']}%",
        "  added per session (first half, second half of the churn): "
        + ", ".join(f"{k} {v['first_half']}, {v['second_half']}" for k, v in trend.items()),
    ]
    lines += [f"  error: {e}" for e in churn["errors"]]
    return lines
