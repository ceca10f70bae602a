"""End-to-end latency of the live server, measured from a WebRTC client on this machine.

Usage (``emote bench`` runs the same code):
    python -m bench.latency [--url URL] [--sessions N] [--duration S] [--audio WAV]
                            [--json OUT.json] [--plot OUT.png]

Without ``--url`` it starts its own server (``emote serve`` on a free loopback port, with
``--max-sessions N``) and stops it at the end. Each session is one aiortc client that sends
bursts of real speech (0.8-1.2 s pieces of ``--audio``, each starting at a loud open vowel and
ending at a low-energy point: see ``cut_bursts``) separated by 1.2-1.8 s of digital silence,
paced in real time as 20 ms frames, and receives the avatar's video and its own audio back.
All sessions run at once, in this one process (on a small machine the client's own decoding
competes with the server for the CPU).

What is measured (all times are this process's ``time.monotonic``):

* ``first_frame_ms``: the answer set (``setRemoteDescription`` done) -> the first video frame
  returned by the client's ``recv()``.
* ``latency_ms`` (glass to glass, per onset): a burst's first 20 ms frame (a loud open vowel
  starts in it) handed to aiortc (onset sent) -> the first video frame received after it
  whose mouth is open. The mouth is measured from the pixels after the call: FaceMesh
  (``bench.lipsync.FaceTracker``, static mode, plain mesh: see ``mouth_openings``), inner-
  lip gap (landmarks 13-14) over face height (10-152); "open" is above the session's closed
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
  open within 800 ms counts as missed.
* ``latency_xcorr_ms``: the delay at which the mouth opening (every measured frame, by
  arrival) best correlates with the level of the audio sent (by sending time): how far the
  face follows the speech, independent of thresholds and phonetics (``xcorr_lag``).
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
  program's level (bench.mouth_reference; the first 60 s of each program; the generator and
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

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError

from stream_server.jitter import release_immediately
from stream_server.loopback import is_loopback, use_loopback_only

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SPEECH = REPO / "assets" / "speech" / "librivox_ss01_0870.wav"

RATE = 48_000
CHUNK = RATE // 50  # 20 ms frames, as WebRTC packetizes Opus
CHUNK_S = CHUNK / RATE
VIDEO_CLOCK = 90_000
FRAME_S = 0.04  # 25 fps
VOWEL_DB = -8.0  # an open vowel: 550-1100 Hz level rising to 8 dB below its loud level ...
DIP_DB = -25.0  # ... from a dip to 25 dB below it
LEAD_SILENCE_S = 1.0
TAIL_S = 1.0  # no onset in the last second: its response must still arrive
RESPONSE_WINDOW_S = 1.0  # frames kept after each onset
OPENING_WITHIN_S = 0.8  # an onset's mouth opening (and returned sound) must come this soon
LEVEL_SAMPLE_EVERY = 5  # plus every 5th frame, for the session's closed and open levels
OPEN_FRACTION = 0.2
MIN_MOUTH_RANGE = 0.005  # of the face height; FaceMesh's noise on a shut mouth is ~0.001


class BenchError(RuntimeError):
    """The benchmark cannot run (no server, offer refused); the message is for the user."""


# -- the audio sent ------------------------------------------------------------------------


def load_speech(path: Path) -> np.ndarray:
    """``path`` as mono 48 kHz float32."""
    from engines.audio_io import iter_audio

    return np.concatenate([c.output for c in iter_audio(path)]).astype(np.float32)


def levels_db(audio: np.ndarray, rate: int, band: tuple[float, float] | None = None) -> np.ndarray:
    """Level (dB) per 10 ms, over a 25 ms Hann window; within ``band`` (Hz) if given."""
    hop, win = rate // 100, rate // 40
    n = max(0, (len(audio) - win) // hop + 1)
    index = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    spectrum = np.abs(np.fft.rfft(audio[index] * np.hanning(win), axis=1)) ** 2
    if band is not None:
        freqs = np.fft.rfftfreq(win, 1.0 / rate)
        spectrum = spectrum[:, (freqs >= band[0]) & (freqs < band[1])]
    return 10 * np.log10(spectrum.sum(1) + 1e-12)


def cut_bursts(
    audio: np.ndarray, min_s: float = 0.8, max_s: float = 1.2, rate: int = RATE
) -> list[np.ndarray]:
    """Cut speech into pieces that each start at a clear onset: a loud open vowel. A piece
    starts at the 10 ms where the level in 550-1100 Hz (the first formant of open vowels: the
    sound of an opening mouth) reaches ``VOWEL_DB`` below its loud level, coming from a dip
    (``DIP_DB`` below it, within the 80 ms before) and peaking at the loud level within
    100 ms; it ends at the quietest 10 ms (5 ms fade out) between ``min_s`` and ``max_s``
    later, and the next piece starts at the next such rise. Loud levels are 95th percentiles.

    Starting at the open vowel itself keeps the speech's own phonetics out of the onset
    latency: the soft start of a vowel, or a consonant before it, would add the time the
    sound takes to call for an open mouth (up to ~80 ms), which no server can remove."""
    hop = rate // 100
    vowel = levels_db(audio, rate, (550.0, 1100.0))
    vowel -= np.percentile(vowel, 95)
    overall = levels_db(audio, rate)
    dip, peak = 8, 10  # 80 ms, 100 ms
    rises = [
        j
        for j in range(dip, len(vowel) - peak)
        if vowel[j] >= VOWEL_DB
        and vowel[j - dip : j].min() <= DIP_DB
        and vowel[j : j + peak].max() >= 0.0
    ]
    fade_in = np.linspace(0.0, 1.0, rate // 400, dtype=np.float32)
    fade_out = np.linspace(1.0, 0.0, rate // 200, dtype=np.float32)
    bursts, j = [], 0
    for start in rises:
        if start < j:
            continue
        lo, hi = start + round(min_s * 100), start + round(max_s * 100)
        if hi > len(overall):
            break
        end = lo + int(np.argmin(overall[lo:hi]))
        burst = audio[start * hop : end * hop].copy()
        burst[: len(fade_in)] *= fade_in
        burst[-len(fade_out) :] *= fade_out
        bursts.append(burst)
        j = end + 1
    return bursts


@dataclass
class Program:
    """What one client sends: 48 kHz mono samples and the 20 ms frames where bursts start."""

    samples: np.ndarray
    onset_frames: list[int]
    onset_rms: list[float]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / RATE


def burst_program(
    bursts: list[np.ndarray],
    duration_s: float,
    seed: int = 0,
    lead_s: float = LEAD_SILENCE_S,
    gap_s: tuple[float, float] = (1.2, 1.8),
) -> Program:
    """Silence, then bursts (cycling through ``bursts``) separated by random silences; each
    burst starts on a 20 ms frame boundary, and none starts in the last ``TAIL_S``."""
    rng = random.Random(seed)
    total = int(duration_s * 50) * CHUNK
    samples = np.zeros(total, np.float32)
    onsets, levels = [], []
    pos = round(lead_s * 50) * CHUNK
    for i in range(10_000):
        burst = bursts[i % len(bursts)]
        if pos + len(burst) > total - TAIL_S * RATE:
            break
        samples[pos : pos + len(burst)] = burst
        onsets.append(pos // CHUNK)
        levels.append(float(np.sqrt((burst[:CHUNK] ** 2).mean())))
        pos += len(burst) + round(rng.uniform(*gap_s) * RATE)
        pos = -(-pos // CHUNK) * CHUNK
    return Program(samples, onsets, levels)


def speech_program(speech: np.ndarray, lead_s: float, tail_s: float) -> Program:
    """``speech`` once, between silences (for tests)."""
    lead = round(lead_s * 50) * CHUNK
    samples = np.concatenate(
        [np.zeros(lead, np.float32), speech, np.zeros(round(tail_s * RATE), np.float32)]
    )
    return Program(samples, [lead // CHUNK], [float(np.sqrt((speech[:CHUNK] ** 2).mean()))])


class ProgramTrack(MediaStreamTrack):
    """Sends a ``Program`` in real time as s16 48 kHz mono 20 ms frames, then silence;
    ``sent[j]`` is the monotonic time frame j was handed to aiortc."""

    kind = "audio"

    def __init__(self, program: Program) -> None:
        super().__init__()
        self.program = program
        self.sent: list[float] = []
        self.start: float | None = None

    def onset_times(self) -> list[tuple[int, float]]:
        """(burst number, time its onset frame was sent) for the onsets sent so far."""
        return [
            (i, self.sent[j]) for i, j in enumerate(self.program.onset_frames) if j < len(self.sent)
        ]

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        j = len(self.sent)
        if self.start is None:
            self.start = time.monotonic()
        await asyncio.sleep(max(0.0, self.start + j * CHUNK_S - time.monotonic()))
        chunk = self.program.samples[j * CHUNK : (j + 1) * CHUNK]
        pcm = np.zeros(CHUNK, np.int16)
        pcm[: len(chunk)] = np.clip(chunk * 32767, -32768, 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = j * CHUNK
        frame.time_base = fractions.Fraction(1, RATE)
        self.sent.append(time.monotonic())
        return frame


# -- one client ----------------------------------------------------------------------------


@dataclass
class Received:
    """Frames as they arrived: monotonic time and pts (as aiortc counts them)."""

    video_t: list[float] = field(default_factory=list)
    video_pts: list[int] = field(default_factory=list)
    video_complete_t: list[float] = field(default_factory=list)  # last packet in, before decoding
    video_complete_rtp: list[int] = field(default_factory=list)  # those frames' RTP timestamps
    video_size: tuple[int, int] | None = None
    kept: dict[int, np.ndarray] = field(default_factory=dict)  # frame number -> yuv420p
    audio_t: list[float] = field(default_factory=list)
    audio_pts: list[int] = field(default_factory=list)
    audio_rms: list[float] = field(default_factory=list)


class Client:
    """One WebRTC session with the server: our audio out, the avatar's video and our audio
    back. ``keep(n, t)`` says whether to keep video frame number n (arrived at t) as RGB."""

    def __init__(
        self,
        url: str,
        program: Program | None,
        keep: Callable[[int, float], bool] | None = None,
        avatar: str | None = None,
    ) -> None:
        use_loopback_only(is_loopback(urlparse(url).hostname or ""))
        self.url = url.rstrip("/")
        self.track = ProgramTrack(program) if program is not None else None
        self.keep = keep or (lambda n, t: False)
        self.avatar = avatar
        self.received = Received()
        self.session_id: str | None = None
        self.avatar_png: bytes | None = None  # the session's avatar, as the server framed it
        self.answer_set: float | None = None
        self.pc: RTCPeerConnection | None = None
        self._tasks: list[asyncio.Task] = []
        self.first_frame = asyncio.Event()

    async def connect(self, http) -> None:
        self.pc = pc = RTCPeerConnection()

        @pc.on("track")
        def on_track(track) -> None:
            reader = self._read_video if track.kind == "video" else self._read_audio
            self._tasks.append(asyncio.ensure_future(reader(track)))

        if self.track is not None:
            pc.addTrack(self.track)
        else:
            pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
        for transceiver in pc.getTransceivers():
            on_frame = self._video_complete if transceiver.kind == "video" else None
            release_immediately(transceiver.receiver, on_frame)
        await pc.setLocalDescription(await pc.createOffer())
        body = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
        if self.avatar:
            body["avatar"] = self.avatar
        async with http.post(f"{self.url}/offer", json=body) as response:
            text = await response.text()
        if response.status != 200:
            await pc.close()
            raise BenchError(f"the offer was refused: {response.status} {text[:300]}")
        answer = json.loads(text)
        self.session_id = answer["session_id"]
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        self.answer_set = time.monotonic()

    def _video_complete(self, frame: JitterFrame) -> None:
        self.received.video_complete_t.append(time.monotonic())
        self.received.video_complete_rtp.append(frame.timestamp)

    async def _read_video(self, track) -> None:
        got = self.received
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            t = time.monotonic()
            n = len(got.video_t)
            got.video_t.append(t)
            got.video_pts.append(int(frame.pts))
            got.video_size = (frame.width, frame.height)
            if self.keep(n, t):
                got.kept[n] = frame.to_ndarray(format="yuv420p")
            self.first_frame.set()

    async def _read_audio(self, track) -> None:
        got = self.received
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            t = time.monotonic()
            pcm = frame.to_ndarray().astype(np.float32) / 32768.0
            got.audio_t.append(t)
            got.audio_pts.append(int(frame.pts))
            got.audio_rms.append(float(np.sqrt((pcm**2).mean())))

    async def stats(self, http) -> dict | None:
        async with http.get(f"{self.url}/api/sessions/{self.session_id}") as response:
            return await response.json() if response.status == 200 else None

    async def fetch_avatar(self, http, avatar_id: str) -> None:
        """Keep the avatar's framed image (for the offline reference: bench.mouth_reference)."""
        async with http.get(f"{self.url}/api/avatars/{avatar_id}/image") as response:
            if response.status == 200:
                self.avatar_png = await response.read()

    async def close(self, http=None) -> None:
        """DELETE the session (when ``http`` is given), then close the peer connection."""
        if http is not None and self.session_id:
            async with http.delete(f"{self.url}/api/sessions/{self.session_id}"):
                pass
        if self.pc is not None:
            await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# -- the server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(
    max_sessions: int,
    cache_dir: Path | None = None,
    timeout_s: float = 120.0,
    margin_ms: float | None = None,
    options: tuple[str, ...] = (),
) -> Iterator[str]:
    """Run ``emote serve`` on a free loopback port until the block ends; yields its URL.
    ``margin_ms``: its ``--margin-ms`` (None: the server's default); ``options``: more of
    its command-line options (e.g. ``("--motion", "learned")``)."""
    import urllib.request

    port = free_port()
    with contextlib.ExitStack() as stack:
        if cache_dir is None:
            cache_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="emote-")))
        log = stack.enter_context(tempfile.TemporaryFile())
        command = [sys.executable, "-m", "stream_server.cli", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--max-sessions", str(max_sessions)]
        command += ["--cache-dir", str(cache_dir)]
        if margin_ms is not None:
            command += ["--margin-ms", str(margin_ms)]
        command += list(options)
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-2000:]
                    raise BenchError(f"the server did not start:\n{tail}")
                with (
                    contextlib.suppress(OSError, ValueError),
                    urllib.request.urlopen(f"{url}/healthz", timeout=1) as response,
                ):
                    if json.loads(response.read())["status"] == "ok":
                        break
                time.sleep(0.3)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- analysis --------------------------------------------------------------------------------


def as_rgb(frame: np.ndarray) -> np.ndarray:
    """A kept frame (yuv420p planes, as decoded: 1.5 bytes a pixel) as RGB."""
    if frame.ndim == 3:
        return frame
    return av.VideoFrame.from_ndarray(frame, format="yuv420p").to_ndarray(format="rgb24")


def mouth_openings(frames: dict[int, np.ndarray]) -> dict[int, float]:
    """Inner-lip gap / face height per kept frame (frames without a face are left out).

    FaceMesh without its refined lip model (``refine_landmarks=False``): on rendered frames
    of known opening the refined lips read every jawOpen up to ~0.35 as shut and, at 0.45-0.55
    (a moderate vowel), anywhere from shut to open with the head's pose, so a visibly open
    mouth could go unseen; the plain mesh rises steadily with the opening at every pose
    (docs/benchmarks.md, tests/test_bench_instrument.py). Its reading of a shut mouth is
    noisier (up to ~0.009 of the face height), well under the open threshold."""
    from bench.lipsync import FaceTracker

    tracker = FaceTracker(static=True, refine=False)
    try:
        keys = sorted(frames)
        mouth = [tracker.track([as_rgb(frames[k])]).mouth[0] for k in keys]
    finally:
        tracker.close()
    return {k: float(m) for k, m in zip(keys, mouth, strict=True) if np.isfinite(m)}


def mouth_levels(values: np.ndarray) -> tuple[float, float, float]:
    """(closed, open, threshold) of a session's mouth openings: the 5th percentile, the 99.5th
    (speech opens the mouth in few frames; a FaceMesh outlier or two does not count; a
    percentile rather than the n-th widest, so that a longer run is not judged against a
    wider opening), and ``OPEN_FRACTION`` of the way between them."""
    if len(values) < 3:
        return 0.0, 0.0, np.inf
    closed, opened = float(np.percentile(values, 5)), float(np.percentile(values, 99.5))
    return closed, opened, closed + OPEN_FRACTION * (opened - closed)


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


XCORR_LAGS_S = np.arange(-0.2, 0.8001, 0.005)


def xcorr_lag(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[float | None, float | None]:
    """(lag ms, correlation) maximizing the correlation of the mouth with the audio level
    ``lag`` earlier, pooled over ``parts`` of (frame times, openings, level times, levels).
    Positive: the mouth follows the audio."""
    parts = [p for p in parts if len(p[0]) >= 10 and len(p[2]) >= 10]
    if not parts:
        return None, None
    mouth = np.concatenate([p[1] for p in parts])
    if mouth.std() < 1e-9:
        return None, None
    corrs = []
    for lag in XCORR_LAGS_S:
        level = np.concatenate([np.interp(t - lag, te, e) for t, _, te, e in parts])
        corrs.append(np.corrcoef(mouth, level)[0, 1] if level.std() > 1e-9 else -1.0)
    best = int(np.nanargmax(corrs))
    lag = float(XCORR_LAGS_S[best])
    if 0 < best < len(corrs) - 1:  # between steps: the peak of a parabola through 3 points
        a, b, c = corrs[best - 1], corrs[best], corrs[best + 1]
        if a - 2 * b + c < 0:
            lag += 0.5 * (a - c) / (a - 2 * b + c) * float(XCORR_LAGS_S[1] - XCORR_LAGS_S[0])
    return round(lag * 1000, 1), round(float(corrs[best]), 3)


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
    onsets = []
    for burst, sent in client.track.onset_times():
        after = [n for n in range(len(vt)) if sent < vt[n] <= sent + OPENING_WITHIN_S]
        opening = next((n for n in after if mouth.get(n, -1.0) > threshold), None)
        if opening is not None and opening == after[0]:  # still open from before: not this one
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
    offline by the server's generator for its avatar (``bench.mouth_reference``), on the
    program's own time; None when the server did not say which generator or avatar."""
    from bench.mouth_reference import Generator, reference_mouth

    generator = Generator.from_stats(server_stats)
    if generator is None or client.avatar_png is None or client.track is None or lag_ms is None:
        return None
    program = client.track.program
    onsets = [j * CHUNK_S for j in program.onset_frames]
    times, mouth = reference_mouth(
        program.samples, onsets, client.avatar_png, generator, lag_ms / 1000
    )
    n = len(program.samples) // CHUNK
    return times, mouth, np.arange(n) * CHUNK_S + CHUNK_S / 2, program_levels(program, n)


def av_offset(
    av_lag: float | None, av_corr: float | None, lead_lag: float | None, lead_corr: float | None
) -> dict[str, float | None]:
    """The A/V offset: how far the mouth is ahead of the returned sound, less the
    generator's own lead measured the same way offline (bench.mouth_reference)."""
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
        "fps": round(float(np.mean([r["fps"] for r in reports])), 2),
        "fps_min": min(r["fps"] for r in reports),
        "jitter_ms_p95": _worst(reports, "jitter_ms_p95"),
        "delivery_jitter_ms_p95": _worst(reports, "delivery_jitter_ms_p95"),
        "dropped": sum(r["dropped"] for r in reports),
        "sessions": reports,
    }


# -- the plot --------------------------------------------------------------------------------


def plot(summary: dict, results: list[SessionResult], path: Path, duration_s: float) -> None:
    """Latency histogram on top, then one timeline per session (Pillow only)."""
    from PIL import Image, ImageDraw, ImageFont

    width, left, right = 1400, 70, 20
    hist_h, row_h = 260, 120
    image = Image.new("RGB", (width, hist_h + 40 + row_h * len(results) + 10), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    latencies = [
        o["latency_ms"] for r in results for o in r.report["onsets"] if o["latency_ms"] is not None
    ]
    top, bottom = 30, hist_h - 30
    span = max(400.0, max(latencies, default=0.0) + 40, (summary["latency_xcorr_ms"] or 0) + 40)
    x_of = lambda ms: left + (width - left - right) * ms / span  # noqa: E731
    draw.text(
        (left, 6),
        f"glass-to-glass latency (onset sent -> mouth seen open), "
        f"{len(latencies)} onsets, {len(results)} sessions",
        fill="black",
        font=font,
    )
    counts = np.histogram(latencies, bins=np.arange(0, span + 20, 20))[0] if latencies else []
    peak = max(1, max(counts, default=1))
    for i, c in enumerate(counts):
        x0, x1 = x_of(20 * i), x_of(20 * (i + 1))
        draw.rectangle([x0 + 1, bottom - (bottom - top) * c / peak, x1 - 1, bottom], fill="#4a78c2")
    draw.line([left, bottom, width - right, bottom], fill="black")
    for ms in range(0, int(span) + 1, 50):
        draw.line([x_of(ms), bottom, x_of(ms), bottom + 4], fill="black")
        draw.text((x_of(ms) - 8, bottom + 6), str(ms), fill="black", font=font)
    draw.text((width - right - 20, bottom + 6), "ms", fill="black", font=font)
    draw.text((8, top), f"max {peak}", fill="black", font=font)
    marks = [(f"p{p}", summary["latency_ms"][f"p{p}"], c) for p, c in ((50, "red"), (95, "orange"))]
    marks.append(("cross-corr.", summary["latency_xcorr_ms"], "green"))
    for i, (name, ms, colour) in enumerate(marks):
        if ms is not None:
            draw.line([x_of(ms), top, x_of(ms), bottom], fill=colour, width=2)
            draw.text((x_of(ms) + 3, top + 12 * i), f"{name} {ms:.0f}", fill=colour, font=font)

    y = hist_h + 10
    draw.text(
        (left, y),
        "timeline per session (s from answer): grey ticks frames received (red: pts gap), "
        "dots mouth opening, blue onset sent, red mouth open, green audio back",
        fill="black",
        font=font,
    )
    t_span = duration_s + 1.0
    tx = lambda t: left + (width - left - right) * t / t_span  # noqa: E731
    for r in results:
        y0 = y + 20
        y1 = y0 + row_h - 30
        line = r.timeline
        origin = line["origin"]
        draw.text((6, y0), f"session {r.index}", fill="black", font=font)
        draw.rectangle([left, y0, width - right, y1], outline="#bbbbbb")
        for t in line["frames"]:
            draw.line([tx(t - origin), y1 - 8, tx(t - origin), y1], fill="#999999")
        for t in line["gaps"]:
            draw.line([tx(t - origin), y1 - 16, tx(t - origin), y1], fill="#d62728", width=2)
        for t, m in line["mouth"]:
            yy = y1 - 12 - (y1 - y0 - 20) * float(np.clip(m, -0.1, 1.2)) / 1.2
            draw.ellipse(
                [tx(t - origin) - 1.5, yy - 1.5, tx(t - origin) + 1.5, yy + 1.5], fill="#333333"
            )
        for sent, opened, heard in line["onsets"]:
            draw.line([tx(sent - origin), y0, tx(sent - origin), y1], fill="#1f77b4", width=2)
            if opened is not None:
                draw.line([tx(opened - origin), y0, tx(opened - origin), y1], fill="#d62728")
            if heard is not None:
                x = tx(heard - origin)
                draw.line([x, y0, x, y0 + 14], fill="#2ca02c", width=2)
        for s in range(int(t_span) + 1):
            draw.text((tx(s) - 3, y1 + 2), str(s), fill="black", font=font)
        y += row_h
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


# -- running -------------------------------------------------------------------------------


async def run_sessions(
    url: str, sessions: int, duration_s: float, bursts: list[np.ndarray]
) -> list[tuple[Client, dict | None]]:
    import aiohttp

    async def one(index: int, http) -> tuple[Client, dict | None]:
        program = burst_program(bursts, duration_s, seed=index)
        client: Client

        def keep(n: int, t: float) -> bool:
            if n % LEVEL_SAMPLE_EVERY == 0:
                return True
            return any(0 < t - sent <= RESPONSE_WINDOW_S for _, sent in client.track.onset_times())

        client = Client(url, program, keep)
        await client.connect(http)
        try:
            await asyncio.wait_for(client.first_frame.wait(), 30)
            # the program starts when the audio track does; stop when it is over
            while client.track.start is None:
                await asyncio.sleep(0.05)
            await asyncio.sleep(max(0.0, client.track.start + duration_s - time.monotonic()))
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


def run_arguments(args: argparse.Namespace) -> dict:
    """:func:`run` with the parsed arguments of ``emote bench`` (or this module's own)."""
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    return run(
        args.url,
        args.sessions,
        args.duration,
        args.audio,
        args.json,
        args.plot,
        cache_dir,
        args.margin_ms,
    )


def run(
    url: str | None,
    sessions: int,
    duration_s: float,
    audio: Path,
    json_path: Path | None = None,
    plot_path: Path | None = None,
    cache_dir: Path | None = None,
    margin_ms: float | None = None,
) -> dict:
    bursts = cut_bursts(load_speech(audio))
    if not bursts:
        raise ValueError(f"no speech onsets found in {audio}")
    with contextlib.ExitStack() as stack:
        if url is None:
            print(f"starting a server for {sessions} session(s) ...", file=sys.stderr)
            url = stack.enter_context(serve(sessions, cache_dir, margin_ms=margin_ms))
        print(f"{sessions} session(s) x {duration_s:.0f} s against {url}", file=sys.stderr)
        clients = asyncio.run(run_sessions(url, sessions, duration_s, bursts))
    print("measuring mouth openings with FaceMesh (and the offline reference) ...", file=sys.stderr)
    results = [analyse(i, c, stats) for i, (c, stats) in enumerate(clients)]
    summary = {
        "url": url,
        "duration_s": duration_s,
        "audio": str(audio),
        "server_margin_ms": margin_ms,  # None: the server's default (or --url's server)
        **summarize(results),
    }
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(summary, indent=2))
    if plot_path:
        plot(summary, results, plot_path, duration_s)
    print(format_summary(summary))
    return summary


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
        f"{OPENING_WITHIN_S * 1000:.0f} ms",
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--cache-dir", type=Path, help="the spawned server's avatar cache")
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="a running server (default: start one on loopback)")
    parser.add_argument("--sessions", type=int, default=1, help="concurrent sessions")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per session")
    parser.add_argument("--audio", type=Path, default=DEFAULT_SPEECH, help="speech to cut")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="latency histogram and timelines (PNG)")
    parser.add_argument(
        "--margin-ms",
        type=float,
        help="the compute margin of the server the bench starts (emote serve --margin-ms)",
    )


def check_arguments(args: argparse.Namespace) -> str | None:
    """A user-facing problem with the arguments, or None."""
    if args.sessions < 1:
        return "--sessions must be at least 1"
    if args.duration < 5:
        return "--duration must be at least 5 s"
    if not Path(args.audio).is_file():
        return f"audio file not found: {args.audio}"
    if args.margin_ms is not None and args.url:
        return "--margin-ms sets the server the bench starts; without --url only"
    if args.margin_ms is not None and not 0.0 <= args.margin_ms <= 1000.0:
        return "--margin-ms must be between 0 and 1000"
    return None


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if problem := check_arguments(args):
        parser.error(problem)
    run_arguments(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
