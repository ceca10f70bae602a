"""The speech a live client sends: bursts of real speech, each starting at a loud open vowel,
between silences, paced in real time as 20 ms frames of 48 kHz mono (as WebRTC packetizes
Opus). See measure.latency for what is measured on it.
"""

from __future__ import annotations

import asyncio
import fractions
import random
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

RATE = 48_000
CHUNK = RATE // 50  # 20 ms frames, as WebRTC packetizes Opus
CHUNK_S = CHUNK / RATE
VOWEL_DB = -8.0  # an open vowel: 550-1100 Hz level rising to 8 dB below its loud level ...
DIP_DB = -25.0  # ... from a dip to 25 dB below it
LEAD_SILENCE_S = 1.0
TAIL_S = 1.0  # no onset in the last second: its response must still arrive


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
    """What one client sends: 48 kHz mono samples, the 20 ms frames where bursts start, and
    how far into that frame each starts (samples)."""

    samples: np.ndarray
    onset_frames: list[int]
    onset_rms: list[float]
    onset_offsets: list[int]

    def onset_s(self, burst: int) -> float:
        """Where burst ``burst`` starts in the program (s)."""
        return (self.onset_frames[burst] * CHUNK + self.onset_offsets[burst]) / RATE

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
    burst starts at a random point of a 20 ms frame (the server's frames are 40 ms, aligned
    to the packets: bursts all on the packets' boundaries would meet the frames at one or two
    phases only, a speaker's at any), and none starts in the last ``TAIL_S``."""
    rng = random.Random(seed)
    phases = random.Random(f"{seed}/phase")  # apart, so the silences drawn stay the same
    total = int(duration_s * 50) * CHUNK
    samples = np.zeros(total, np.float32)
    onsets, offsets, levels = [], [], []
    pos = round(lead_s * 50) * CHUNK
    for i in range(10_000):
        burst = bursts[i % len(bursts)]
        offset = phases.randrange(CHUNK)
        if pos + offset + len(burst) > total - TAIL_S * RATE:
            break
        samples[pos + offset : pos + offset + len(burst)] = burst
        onsets.append(pos // CHUNK)
        offsets.append(offset)
        levels.append(float(np.sqrt((samples[pos : pos + CHUNK] ** 2).mean())))  # as sent
        pos += offset + len(burst) + round(rng.uniform(*gap_s) * RATE)
        pos = -(-pos // CHUNK) * CHUNK
    return Program(samples, onsets, levels, offsets)


def speech_program(speech: np.ndarray, lead_s: float, tail_s: float) -> Program:
    """``speech`` once, between silences (for tests)."""
    lead = round(lead_s * 50) * CHUNK
    samples = np.concatenate(
        [np.zeros(lead, np.float32), speech, np.zeros(round(tail_s * RATE), np.float32)]
    )
    rms = float(np.sqrt((speech[:CHUNK] ** 2).mean()))
    return Program(samples, [lead // CHUNK], [rms], [0])


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
        """(burst number, its onset's time) for the onsets sent so far: the time its onset
        frame was sent, plus how far into the frame the burst starts (a microphone's frame
        leaves when its last sample is in, so this is 20 ms after the onset, whatever its
        place in the frame)."""
        program = self.program
        return [
            (i, self.sent[j] + program.onset_offsets[i] / RATE)
            for i, j in enumerate(program.onset_frames)
            if j < len(self.sent)
        ]

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        j = len(self.sent)
        if self.start is None:
            self.start = time.monotonic()
        await asyncio.sleep(max(0.0, self.start + j * CHUNK_S - time.monotonic()))
        frame = audio_frame(self.program.samples[j * CHUNK : (j + 1) * CHUNK], j)
        self.sent.append(time.monotonic())
        return frame


def audio_frame(chunk: np.ndarray, j: int) -> av.AudioFrame:
    """20 ms frame number ``j`` (s16 48 kHz mono) of float samples ``chunk`` (padded with
    silence to a whole frame)."""
    pcm = np.zeros(CHUNK, np.int16)
    pcm[: len(chunk)] = np.clip(chunk * 32767, -32768, 32767).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = RATE
    frame.pts = j * CHUNK
    frame.time_base = fractions.Fraction(1, RATE)
    return frame
