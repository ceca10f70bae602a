"""End-to-end latency of the live server, measured from a WebRTC client on this machine.

Usage (``emote bench`` runs the same code):
    python -m bench.latency [--url URL] [--sessions N] [--duration S] [--audio WAV]
                            [--json OUT.json] [--plot OUT.png]

Without ``--url`` it starts its own server (``emote serve`` on a free loopback port, with
``--max-sessions N``) and stops it at the end. Each session is one aiortc client that sends
bursts of real speech (0.8-1.2 s pieces of ``--audio``, each starting at a loud open vowel and
ending at a low-energy point: see ``measure.program.cut_bursts``; each at a random point of a
20 ms frame, ``measure.program.burst_program``) separated by 1.2-1.8 s of digital silence,
paced in real time as 20 ms frames (``measure.webrtc_client.Client``), and
receives the avatar's video and its own audio back.
All sessions run at once, in this one process (on a small machine the client's own decoding
competes with the server for the CPU).

What is measured (all times are this process's ``time.monotonic``):

* ``first_frame_ms``: the answer set (``setRemoteDescription`` done) -> the first video frame
  returned by the client's ``recv()``.
* ``latency_ms`` (glass to glass, per onset): a burst's first 20 ms frame (a loud open vowel
  starts in it) handed to aiortc, plus how far into that frame the burst starts (onset sent:
  a microphone's frame leaves 20 ms after its first sample, so this is the onset + 20 ms)
  -> the first video frame received after it whose mouth is open. The mouth is measured
  from the pixels after the call: FaceMesh (``measure.facemesh.FaceTracker``, static mode,
  plain mesh: see
  ``measure.mouth.mouth_openings``), inner-lip gap (landmarks 13-14) over face height
  (10-152); "open" is above the session's closed
  level (5th percentile) + 20% of the way to its open level (99.5th percentile: the third-
  widest of a 60 s run's ~600 measured frames, and unlike a fixed rank it does not grow with
  the run's length): about jawOpen 0.35 on the rendered face, over twice FaceMesh's reading
  of a shut mouth, and reached by every open vowel (a moderate one opens the mouth to only
  25-30% of the widest). Frames are kept for 1 s after each onset plus every 5th frame, as
  decoded (yuv420p). Besides the server it includes the speech itself (the mouth takes a
  frame or two of the vowel to open past the threshold) and the client's receive side: VP8
  decoding, and its jitter buffer, which releases a frame when its last packet (the RTP
  marker bit) arrives, as a browser's does (aiortc's own holds every frame until the next
  one begins, ~40 ms more; see stream_server/jitter.py). An onset whose mouth is not seen
  open within 800 ms counts as missed; so does one whose mouth is already open in the first
  frame after it; ``onsets_open_before`` counts those whose first frame came within 100 ms
  (well inside the stream's latency, so it shows the pause before the burst): the mouth hung
  open in the pause, which is the generator's fault, not the stream's.
* ``latency_xcorr_ms``: the delay at which the mouth opening (every measured frame, by
  arrival) best correlates with the level of the audio sent (by sending time): how far the
  face follows the speech, independent of thresholds and phonetics
  (``measure.xcorr.xcorr_lag``).
* ``audio_latency_ms``: onset sent -> the first returned audio frame with the burst's energy
  (RMS over a quarter of the sent onset frame's). The client's audio receive buffer releases
  packets as they arrive (aiortc's default holds 4 packets and one more, ~80 ms), so this is
  when the server's audio arrives, not when a player would play it.
* ``av_offset_ms``: how far the video is ahead of the returned audio (+: the picture first),
  measured from the content: ``mouth_vs_sound_ms`` less ``generator_lead_ms``.
  ``mouth_vs_sound_ms`` is minus the delay at which the mouth (by arrival) best correlates
  with the level of the audio received back (by arrival, a 20 ms packet's level at its
  middle), refined between the 5 ms steps. It also holds the generator's own timing (dsp
  opens the lips ahead of the sound, as speakers do), so ``generator_lead_ms`` measures that
  alone: the session's program rendered offline by the server's generator for its avatar,
  each frame at the middle of its own audio, read and correlated the same way against the
  program's level (measure.mouth_reference; the first 60 s of each program; the generator and
  avatar as ``GET /api/sessions/{id}`` reports them, else none). A server whose returned
  audio is not delayed to match the video reads about -200 ms. ``mouth_vs_sound_onsets_ms``:
  per onset from the events above (returned audio onset arrival - mouth-opening frame
  arrival); it also carries the threshold and the vowel timing.
* ``av_drift_ms``: the streams' own timestamps: for each stream, arrival - pts time (video
  pts at 90 kHz, audio at 48 kHz, each counted by aiortc from its first packet); the lower
  envelope per second of (audio - video) is the A/V skew up to a constant (the two first
  packets' origins); its change from the first to the last third of the call is the drift.
  ``video_transit_ms`` / ``audio_transit_ms``: each stream's arrival - pts time over the call
  (p50, p95, relative to its minimum): arrival jitter against the server's own clock.
* ``fps``: frames received / time between the first and last (a frame the server could not
  make in time is not sent, so this counts new frames); ``jitter_ms_p95``: p95 of
  |inter-arrival - pts interval| (RFC 3550's transit-time difference; 40 ms between
  successive frames, 80 ms across a dropped one) for frames as ``recv()`` returns them,
  decoded: this process's own scheduling and VP8 decoding included, as a player's;
  ``delivery_jitter_ms_p95``: the same for the moments each frame's last packet arrived
  (before decoding: what the server and the network deliver); ``dropped``: frames missing
  from the received pts sequence (``missing_pts``: not sent, or lost on the way), at least
  the server's ``frames_dropped`` (``dropped_server``: frames it could not make in time,
  from ``GET /api/sessions/{id}`` before closing).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from measure.mouth import MIN_MOUTH_RANGE, mouth_levels, mouth_openings
from measure.program import CHUNK, CHUNK_S, RATE, Program, ProgramTrack, burst_program
from measure.server import BenchError
from measure.webrtc_client import Client, Received
from measure.xcorr import xcorr_lag

if TYPE_CHECKING:
    import aiohttp

VIDEO_CLOCK = 90_000
FRAME_S = 0.04  # 25 fps
RESPONSE_WINDOW_S = 1.0  # frames kept after each onset
OPENING_WITHIN_S = 0.8  # an onset's mouth opening (and returned sound) must come this soon
OPEN_BEFORE_WITHIN_S = 0.1  # a frame this soon after an onset still shows the pause before it
LEVEL_SAMPLE_EVERY = 5  # plus every 5th frame, for the session's closed and open levels


# -- the sessions ----------------------------------------------------------------------------


async def run_sessions(
    url: str, sessions: int, duration_s: float, bursts: list[np.ndarray]
) -> list[tuple[Client, dict | None]]:
    """``sessions`` clients at once against ``url``, each sending ``duration_s`` of a program
    of ``bursts`` (seeded by its index) and keeping every ``LEVEL_SAMPLE_EVERY``th frame and
    those in the ``RESPONSE_WINDOW_S`` after each onset; per session, the client and its
    server's ``GET /api/sessions/{id}`` before closing."""
    import aiohttp

    async def one(index: int, http: aiohttp.ClientSession) -> tuple[Client, dict | None]:
        program = burst_program(bursts, duration_s, seed=index)
        track: ProgramTrack  # the client's (it has a program)

        def keep(n: int, t: float) -> bool:
            if n % LEVEL_SAMPLE_EVERY == 0:
                return True
            return any(0 < t - sent <= RESPONSE_WINDOW_S for _, sent in track.onset_times())

        client = Client(url, program, keep)
        assert client.track is not None
        track = client.track
        await client.connect(http)
        try:
            await asyncio.wait_for(client.first_frame.wait(), 30)
            # the program starts when the audio track does; stop when it is over
            while track.start is None:
                await asyncio.sleep(0.05)
            await asyncio.sleep(max(0.0, track.start + duration_s - time.monotonic()))
            stats = await client.stats(http)
            if stats and isinstance(stats.get("avatar"), str):
                await client.fetch_avatar(http, stats["avatar"])
        finally:
            await client.close(http)
        return client, stats

    async with aiohttp.ClientSession() as http:
        try:
            return await asyncio.gather(*(one(i, http) for i in range(sessions)))
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            raise BenchError(f"no session with {url}: {exc or exc.__class__.__name__}") from exc


# -- analysis --------------------------------------------------------------------------------


def program_levels(program: Program, n: int) -> np.ndarray:
    """The level of the program's first ``n`` 20 ms frames: RMS, smoothed over 3 frames."""
    samples = np.zeros(n * CHUNK, np.float32)
    head = program.samples[: n * CHUNK]
    samples[: len(head)] = head
    return _smooth(np.sqrt((samples.reshape(n, CHUNK) ** 2).mean(1)))


def sent_envelope(track: ProgramTrack) -> tuple[np.ndarray, np.ndarray]:
    """(time, level) of the audio sent: each 20 ms frame's level at the middle of its content
    (it starts when the frame is handed to aiortc)."""
    return np.asarray(track.sent) + CHUNK_S / 2, program_levels(track.program, len(track.sent))


def returned_envelope(got: Received) -> tuple[np.ndarray, np.ndarray]:
    """The same for the audio received back (a frame's content starts when it arrives)."""
    return np.asarray(got.audio_t) + CHUNK_S / 2, _smooth(np.asarray(got.audio_rms))


def _smooth(x: np.ndarray) -> np.ndarray:
    return np.convolve(np.pad(x, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")


def _jitter_p95(times: list[float] | np.ndarray, stamps: list[int] | np.ndarray) -> float | None:
    """p95 of |arrival interval - timestamp interval| between successive frames (times in
    s, 90 kHz RTP timestamps or pts), in ms: RFC 3550's transit-time difference. A frame the
    server did not send is a drop, not jitter: the next one is due 80 ms later."""
    if len(times) < 2:
        return None
    intervals = np.diff(np.asarray(times, np.float64)) * 1000
    steps = (np.diff(np.asarray(stamps, np.int64)) % 2**32) / (VIDEO_CLOCK / 1000)
    return round(float(np.percentile(np.abs(intervals - steps), 95)), 1)


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None, "n": 0}
    a = np.asarray(values)
    return {
        "p50": round(float(np.percentile(a, 50)), 1),
        "p95": round(float(np.percentile(a, 95)), 1),
        "max": round(float(a.max()), 1),
        "n": len(a),
    }


def _lower_envelope(t: np.ndarray, residual: np.ndarray, t0: float, bins: int) -> np.ndarray:
    out = np.full(bins, np.nan)
    index = ((t - t0) // 1.0).astype(int)
    for b in range(bins):
        inside = residual[index == b]
        if len(inside):
            out[b] = inside.min()
    return out


def pts_timing(got: Received) -> dict[str, object]:
    """Arrival against the streams' own timestamps (see the module docstring)."""
    if len(got.video_t) < 50 or len(got.audio_t) < 100:
        return {}
    vt, at = np.asarray(got.video_t), np.asarray(got.audio_t)
    v_res = vt - np.asarray(got.video_pts) / VIDEO_CLOCK
    a_res = at - np.asarray(got.audio_pts) / RATE
    t0, t1 = max(vt[0], at[0]), min(vt[-1], at[-1])
    bins = int(t1 - t0)
    skew = (_lower_envelope(at, a_res, t0, bins) - _lower_envelope(vt, v_res, t0, bins)) * 1000
    skew = skew[np.isfinite(skew)]
    third = max(1, len(skew) // 3)
    drift = float(np.median(skew[-third:]) - np.median(skew[:third])) if len(skew) >= 3 else None
    return {
        "video_transit_ms": _stats(list((v_res - v_res.min()) * 1000)),
        "audio_transit_ms": _stats(list((a_res - a_res.min()) * 1000)),
        "av_skew_ms_relative": [round(float(s - skew[0]), 1) for s in skew],
        "av_drift_ms": None if drift is None else round(drift, 1),
    }


class Onset(TypedDict):
    """One onset of a session, as ``analyse`` reports it (``_t`` is for the plot only)."""

    sent_s: float
    latency_ms: float | None
    audio_latency_ms: float | None
    mouth_vs_sound_ms: float | None
    open_before: bool  # the mouth already open when the burst was sent: a missed onset's cause
    mouth_rise: list[tuple[int, int]]
    _t: tuple[float, float | None, float | None]


@dataclass
class SessionResult:
    index: int
    report: dict
    timeline: dict  # for the plot
    follows: tuple  # (frame times, openings, sent level times, levels) for the pooled lag
    against_returned: tuple  # the same against the returned audio
    reference: tuple | None  # the same rendered offline from the program (mouth_reference)


def analyse(index: int, client: Client, server_stats: dict | None) -> SessionResult:
    got = client.received
    assert client.track is not None and client.answer_set is not None
    vt = np.asarray(got.video_t)
    at = np.asarray(got.audio_t)
    arms = np.asarray(got.audio_rms)
    mouth = mouth_openings(got.kept)
    closed, opened, threshold = mouth_levels(np.asarray(list(mouth.values())))
    if opened - closed < MIN_MOUTH_RANGE:  # the mouth never opened: nothing to time
        threshold = np.inf
    # each measured frame's opening as a fraction of the way from closed to open
    fraction = {n: (m - closed) / max(opened - closed, 1e-6) for n, m in mouth.items()}
    onsets: list[Onset] = []
    for burst, sent in client.track.onset_times():
        after = [n for n in range(len(vt)) if sent < vt[n] <= sent + OPENING_WITHIN_S]
        opening = next((n for n in after if mouth.get(n, -1.0) > threshold), None)
        still_open = opening is not None and opening == after[0]
        # ... and that frame came soon enough (the stream's latency is longer) to show the
        # pause before the burst, not a stalled stream's first frame of the burst itself
        open_before = bool(still_open and vt[after[0]] - sent <= OPEN_BEFORE_WITHIN_S)
        if still_open:  # still open from before: not this one
            opening = None
        level = client.track.program.onset_rms[burst]
        heard = np.flatnonzero(
            (at > sent) & (at <= sent + OPENING_WITHIN_S) & (arms > 0.25 * level)
        )
        audio_at = float(at[heard[0]]) if len(heard) else None
        onsets.append(
            {
                "sent_s": round(sent - client.answer_set, 3),
                "latency_ms": None if opening is None else round((vt[opening] - sent) * 1000, 1),
                "audio_latency_ms": None
                if audio_at is None
                else round((audio_at - sent) * 1000, 1),
                "mouth_vs_sound_ms": None
                if audio_at is None or opening is None
                else round((audio_at - vt[opening]) * 1000, 1),
                # the mouth was already open when the burst was sent (in the pause before it)
                "open_before": open_before,
                # (ms after the onset, % of the way from closed to open) of the frames
                # received in the first 300 ms: how the mouth rose, to see why one is late
                "mouth_rise": [
                    (round((vt[n] - sent) * 1000), round(100 * fraction[n]))
                    for n in after
                    if n in fraction and vt[n] <= sent + 0.3
                ],
                "_t": (sent, None if opening is None else vt[opening], audio_at),
            }
        )
    frames = sorted(fraction)
    track = (vt[frames], np.asarray([fraction[n] for n in frames]))
    follows = (*track, *sent_envelope(client.track))
    against_returned = (*track, *returned_envelope(got))
    lag, corr = xcorr_lag([follows])
    av_lag, av_corr = xcorr_lag([against_returned])
    reference = reference_track(client, server_stats, lag)
    lead_lag, lead_corr = xcorr_lag([reference]) if reference is not None else (None, None)
    pts_steps = np.diff(np.asarray(got.video_pts)) / (VIDEO_CLOCK * FRAME_S)
    gaps = int(np.clip(np.round(pts_steps) - 1, 0, None).sum()) if len(pts_steps) else 0
    server_dropped = int(server_stats["frames_dropped"]) if server_stats else 0
    latencies = [o["latency_ms"] for o in onsets if o["latency_ms"] is not None]
    report = {
        "session_id": client.session_id,
        "first_frame_ms": round((vt[0] - client.answer_set) * 1000, 1) if len(vt) else None,
        "latency_ms": _stats(latencies),
        "latency_xcorr_ms": lag,
        "latency_xcorr_corr": corr,
        "audio_latency_ms": _stats(
            [o["audio_latency_ms"] for o in onsets if o["audio_latency_ms"] is not None]
        ),
        **av_offset(av_lag, av_corr, lead_lag, lead_corr),
        "mouth_vs_sound_onsets_ms": _stats(
            [o["mouth_vs_sound_ms"] for o in onsets if o["mouth_vs_sound_ms"] is not None]
        ),
        "onsets_sent": len(onsets),
        "onsets_missed": len(onsets) - len(latencies),
        "onsets_open_before": sum(bool(o["open_before"]) for o in onsets),
        "frames_received": len(vt),
        "frame_size": got.video_size,
        "fps": round(len(vt) / (vt[-1] - vt[0]), 2) if len(vt) > 1 else 0.0,
        "jitter_ms_p95": _jitter_p95(vt, got.video_pts),
        "delivery_jitter_ms_p95": _jitter_p95(got.video_complete_t, got.video_complete_rtp),
        "dropped": max(server_dropped, gaps),
        "dropped_server": server_dropped,
        "missing_pts": gaps,
        "server": server_stats,
        "mouth_levels": {
            "closed": round(closed, 4),
            "open": round(opened, 4),
            "threshold": round(float(threshold), 4) if np.isfinite(threshold) else None,
            "frames_measured": len(mouth),
        },
        **pts_timing(got),
        "onsets": [{k: v for k, v in o.items() if k != "_t"} for o in onsets],
    }
    timeline = {
        "origin": client.answer_set,
        "frames": list(vt),
        "gaps": [vt[i + 1] for i, s in enumerate(pts_steps) if s > 1.5],
        "onsets": [o["_t"] for o in onsets],
        "mouth": list(zip(*track, strict=True)),
    }
    return SessionResult(index, report, timeline, follows, against_returned, reference)


def reference_track(
    client: Client, server_stats: dict | None, lag_ms: float | None
) -> tuple | None:
    """(frame times, openings, level times, levels) of the session's program rendered
    offline by the server's generator for its avatar (``measure.mouth_reference``), on the
    program's own time; None when the server did not say which generator or avatar."""
    from measure.mouth_reference import Generator, reference_mouth

    generator = Generator.from_stats(server_stats)
    if generator is None or client.avatar_png is None or client.track is None or lag_ms is None:
        return None
    program = client.track.program
    onsets = [program.onset_s(i) for i in range(len(program.onset_frames))]
    times, mouth = reference_mouth(
        program.samples, onsets, client.avatar_png, generator, lag_ms / 1000
    )
    n = len(program.samples) // CHUNK
    return times, mouth, np.arange(n) * CHUNK_S + CHUNK_S / 2, program_levels(program, n)


def av_offset(
    av_lag: float | None, av_corr: float | None, lead_lag: float | None, lead_corr: float | None
) -> dict[str, float | None]:
    """The A/V offset: how far the mouth is ahead of the returned sound, less the
    generator's own lead measured the same way offline (measure.mouth_reference)."""
    mouth_vs_sound = None if av_lag is None else -av_lag
    lead = None if lead_lag is None else -lead_lag
    offset = None if mouth_vs_sound is None or lead is None else round(mouth_vs_sound - lead, 1)
    return {
        "av_offset_ms": offset,
        "mouth_vs_sound_ms": mouth_vs_sound,
        "mouth_vs_sound_corr": av_corr,
        "generator_lead_ms": lead,
        "generator_lead_corr": lead_corr,
    }


def _worst(reports: list[dict], key: str) -> float | None:
    """The largest of the sessions' ``key`` (sessions without one left out)."""
    return max((r[key] for r in reports if r[key] is not None), default=None)


def summarize(results: list[SessionResult]) -> dict:
    reports = [r.report for r in results]
    onsets = [o for r in reports for o in r["onsets"]]
    latencies = [o["latency_ms"] for o in onsets if o["latency_ms"] is not None]
    offsets = [o["mouth_vs_sound_ms"] for o in onsets if o["mouth_vs_sound_ms"] is not None]
    first = [r["first_frame_ms"] for r in reports if r["first_frame_ms"] is not None]
    drifts = [r["av_drift_ms"] for r in reports if r.get("av_drift_ms") is not None]
    lag, corr = xcorr_lag([r.follows for r in results])
    av_lag, av_corr = xcorr_lag([r.against_returned for r in results])
    references = [r.reference for r in results if r.reference is not None]
    lead_lag, lead_corr = xcorr_lag(references) if references else (None, None)
    return {
        "sessions_run": len(reports),
        "first_frame_ms": round(float(np.median(first)), 1) if first else None,
        "first_frame_ms_max": max(first) if first else None,
        "latency_ms": _stats(latencies),
        "latency_xcorr_ms": lag,
        "latency_xcorr_corr": corr,
        "audio_latency_ms": _stats(
            [o["audio_latency_ms"] for o in onsets if o["audio_latency_ms"] is not None]
        ),
        **av_offset(av_lag, av_corr, lead_lag, lead_corr),
        "mouth_vs_sound_onsets_ms": _stats(offsets),
        "av_drift_ms_max_abs": max((abs(d) for d in drifts), default=None),
        "onsets_sent": len(onsets),
        "onsets_missed": len(onsets) - len(latencies),
        "onsets_open_before": sum(r["onsets_open_before"] for r in reports),
        "fps": round(float(np.mean([r["fps"] for r in reports])), 2),
        "fps_min": min(r["fps"] for r in reports),
        "jitter_ms_p95": _worst(reports, "jitter_ms_p95"),
        "delivery_jitter_ms_p95": _worst(reports, "delivery_jitter_ms_p95"),
        "dropped": sum(r["dropped"] for r in reports),
        "sessions": reports,
    }


def format_summary(s: dict) -> str:
    def stats(d: dict) -> str:
        if not d.get("n"):
            return "n/a"
        return f"p50 {d['p50']:.0f} / p95 {d['p95']:.0f} / max {d['max']:.0f} ms (n={d['n']})"

    lines = [
        f"sessions          {s['sessions_run']} x {s['duration_s']:.0f} s",
        f"first frame       {s['first_frame_ms']} ms (median; max {s['first_frame_ms_max']})",
        f"glass to glass    {stats(s['latency_ms'])}, {s['onsets_missed']} of "
        f"{s['onsets_sent']} onsets without a visible opening within "
        f"{OPENING_WITHIN_S * 1000:.0f} ms ({s.get('onsets_open_before', 0)} of them with the "
        "mouth already open when the burst was sent)",
        f"  (cross-corr.)   mouth follows the sent speech by {s['latency_xcorr_ms']} ms "
        f"(r={s['latency_xcorr_corr']})",
        f"audio back        {stats(s['audio_latency_ms'])}",
        f"A/V offset        {s['av_offset_ms']} ms (video ahead of audio: the mouth ahead of the "
        f"returned sound by {s['mouth_vs_sound_ms']} ms, cross-corr. r={s['mouth_vs_sound_corr']}"
        f", per onset {stats(s['mouth_vs_sound_onsets_ms'])}; less the generator's own lead, "
        f"{s['generator_lead_ms']} ms offline, r={s['generator_lead_corr']})",
        f"A/V drift         <= {s['av_drift_ms_max_abs']} ms over the call (pts vs arrival)",
        f"video             {s['fps']:.2f} fps mean (min {s['fps_min']:.2f}), "
        f"jitter p95 {s['jitter_ms_p95']} ms (as delivered, before decoding: "
        f"{s['delivery_jitter_ms_p95']} ms), dropped {s['dropped']}",
    ]
    for i, r in enumerate(s["sessions"]):
        lines.append(
            f"  session {i}: first frame {r['first_frame_ms']} ms, latency "
            f"{stats(r['latency_ms'])}, xcorr {r['latency_xcorr_ms']} ms, "
            f"A/V {r['av_offset_ms']} ms (mouth vs sound {r['mouth_vs_sound_ms']}), "
            f"{r['fps']:.2f} fps, dropped {r['dropped']} "
            f"({r['dropped_server']} not sent by the server, {r['missing_pts']} pts gaps), "
            f"drift {r.get('av_drift_ms')} ms"
        )
    return "\n".join(lines)
