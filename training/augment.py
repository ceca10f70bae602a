"""Audio augmentation of synthesized utterances, keeping the phone timings true.

TTS audio is clean, dry, full-band and level-normalized; the live model hears microphones in
rooms, through WebRTC's Opus. Each operation here takes an :class:`Utterance` and returns a
new one with the change applied and recorded in ``meta["augment"]`` (a dict: ``"chain"``
lists the operations in order, and each operation's parameters sit under its name), so
every corpus entry says what was done to it.

Timing is the point of the corpus, so every operation either leaves time untouched exactly
(filters are zero-phase, the reverb keeps its direct path at lag 0, the Opus round trip
removes the codec's pre-skip) or changes it on purpose and moves the phones with it (the
speed change). Parameters not given are drawn from the generator; the same generator state
gives the same result.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from fractions import Fraction

import av
import numpy as np
from scipy import signal

from contracts.phones import Phone
from training.utterance import SAMPLE_RATE, Utterance

PEAK = 0.99  # every operation leaves the audio below this (no clipping downstream)
NOISE_KINDS = ("white", "pink", "brown", "babble")
SNR_DB = (5.0, 40.0)
RT60_S = (0.1, 0.8)
DRR_DB = (0.0, 12.0)  # direct-to-reverberant ratio: near the mic .. across the room
GAIN_DB = (-20.0, 6.0)
SPEED = (0.9, 1.1)
OPUS_BITRATE = (12_000, 64_000)
OPUS_RATE = 48_000
OPUS_FRAME = 960  # 20 ms, what WebRTC sends


# --- bookkeeping ----------------------------------------------------------------------------


def _derive(
    utt: Utterance, audio: np.ndarray, op: str, params: dict, phones: list[Phone] | None = None
) -> Utterance:
    """A copy of ``utt`` with new audio (and phones), the operation appended to the record."""
    record = dict(utt.meta.get("augment") or {})
    chain = [*record.get("chain", []), op]
    key = op if op not in record else f"{op}{len(chain)}"
    record.update({"chain": chain, key: params})
    return dataclasses.replace(
        utt,
        audio=_protect(audio),
        phones=list(utt.phones) if phones is None else phones,
        meta={**utt.meta, "augment": record},
    )


def _protect(audio: np.ndarray) -> np.ndarray:
    """float32, scaled down (never clipped) if its peak exceeds PEAK."""
    audio = np.asarray(audio, np.float64)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > PEAK:
        audio = audio * (PEAK / peak)
    return audio.astype(np.float32)


def rms(x: np.ndarray) -> float:
    """Root mean square (0 for no samples)."""
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def speech_mask(utt: Utterance) -> np.ndarray:
    """Samples inside non-silence phones (all samples if there are none): the span over
    which speech level, and so SNR, is measured."""
    mask = np.zeros(len(utt.audio), bool)
    for p in utt.phones:
        if p.label != "SIL":
            mask[int(p.start * SAMPLE_RATE) : math.ceil(p.end * SAMPLE_RATE)] = True
    return mask if mask.any() else np.ones(len(utt.audio), bool)


# --- noise ----------------------------------------------------------------------------------


def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown), unit
    RMS. Shaped in the frequency domain; flat below 20 Hz so brown noise has no DC drift."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE), 20.0)
    noise = np.fft.irfft(spectrum * freqs ** (-exponent / 2.0), n)
    return noise / max(rms(noise), 1e-12)


def babble(rng: np.random.Generator, n: int, others: Sequence[np.ndarray]) -> np.ndarray:
    """Several talkers at once: randomly shifted, looped copies of other utterances, unit RMS."""
    out = np.zeros(n)
    for _ in range(int(rng.integers(3, 7))):
        source = np.asarray(others[int(rng.integers(len(others)))], np.float64)
        if rms(source) == 0.0:
            continue
        looped = np.resize(source, n + len(source))
        start = int(rng.integers(len(source)))
        out += looped[start : start + n] / rms(source) * rng.uniform(0.5, 1.0)
    return out / max(rms(out), 1e-12)


def add_noise(
    utt: Utterance,
    rng: np.random.Generator,
    snr_db: float | None = None,
    kind: str | None = None,
    others: Sequence[np.ndarray] = (),
) -> Utterance:
    """Add noise at ``snr_db`` (speech power over the speech-phone samples, see
    :func:`speech_mask`, over the noise power on the same samples). Babble needs ``others``
    (audio of other utterances); without them the kind is drawn from the coloured noises."""
    kinds = NOISE_KINDS if others else NOISE_KINDS[:3]
    kind = kind if kind is not None else kinds[int(rng.integers(len(kinds)))]
    if kind not in kinds:
        raise ValueError(f"noise kind {kind!r} needs one of {kinds}")
    snr_db = float(rng.uniform(*SNR_DB)) if snr_db is None else float(snr_db)
    clean = np.asarray(utt.audio, np.float64)
    n = len(clean)
    if kind == "babble":
        noise = babble(rng, n, others)
    else:
        noise = coloured_noise(rng, n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])
    mask = speech_mask(utt)
    speech_power = float(np.mean(clean[mask] ** 2))
    noise_power = float(np.mean(noise[mask] ** 2))
    if noise_power > 0.0:
        noise *= math.sqrt(speech_power / noise_power / 10.0 ** (snr_db / 10.0))
    return _derive(utt, clean + noise, "noise", {"kind": kind, "snr_db": round(snr_db, 2)})


# --- reverb ---------------------------------------------------------------------------------


def room_impulse_response(
    rng: np.random.Generator, rt60: float, drr_db: float, predelay: float
) -> np.ndarray:
    """Synthetic room response: a unit direct path at lag 0, then (after ``predelay`` s)
    exponentially decaying noise falling 60 dB in ``rt60`` s, scaled so the direct path is
    ``drr_db`` above the reverberant energy."""
    n = int(min(1.2 * rt60, 1.0) * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / rt60)
    onset = int(predelay * SAMPLE_RATE)
    tail[:onset] = 0.0
    ramp = min(16, n - onset)  # 1 ms fade-in: no click where the tail starts
    tail[onset : onset + ramp] *= np.linspace(0.0, 1.0, ramp, endpoint=False)
    tail *= math.sqrt(10.0 ** (-drr_db / 10.0) / max(np.sum(tail**2), 1e-12))
    tail[0] = 1.0  # the direct path: the sound still starts where the phones say
    return tail


def add_reverb(
    utt: Utterance,
    rng: np.random.Generator,
    rt60: float | None = None,
    drr_db: float | None = None,
) -> Utterance:
    """Convolve with a synthetic room (RT60 0.1-0.8 s). The direct path is at lag 0, so
    nothing moves in time; the level is brought back to the dry RMS."""
    rt60 = float(rng.uniform(*RT60_S)) if rt60 is None else float(rt60)
    drr_db = float(rng.uniform(*DRR_DB)) if drr_db is None else float(drr_db)
    predelay = float(rng.uniform(0.001, 0.008))
    ir = room_impulse_response(rng, rt60, drr_db, predelay)
    dry = np.asarray(utt.audio, np.float64)
    wet = signal.fftconvolve(dry, ir)[: len(dry)]
    wet *= rms(dry) / max(rms(wet), 1e-12)
    params = {
        "rt60_s": round(rt60, 3),
        "drr_db": round(drr_db, 2),
        "predelay_s": round(predelay, 4),
    }
    return _derive(utt, wet, "reverb", params)


# --- equalization ---------------------------------------------------------------------------


def biquad(kind: str, freq: float, gain_db: float, q: float = 0.707) -> np.ndarray:
    """One RBJ-cookbook biquad as a second-order section (shelves use slope S = 1)."""
    a_lin = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * freq / SAMPLE_RATE
    cos_w, sin_w = math.cos(w0), math.sin(w0)
    if kind == "peak":
        alpha = sin_w / (2.0 * q)
        b = [1 + alpha * a_lin, -2 * cos_w, 1 - alpha * a_lin]
        a = [1 + alpha / a_lin, -2 * cos_w, 1 - alpha / a_lin]
    else:
        alpha = sin_w / 2.0 * math.sqrt(2.0)
        root = 2.0 * math.sqrt(a_lin) * alpha
        sign = 1.0 if kind == "low" else -1.0
        b = [
            a_lin * ((a_lin + 1) - sign * (a_lin - 1) * cos_w + root),
            sign * 2 * a_lin * ((a_lin - 1) - sign * (a_lin + 1) * cos_w),
            a_lin * ((a_lin + 1) - sign * (a_lin - 1) * cos_w - root),
        ]
        a = [
            (a_lin + 1) + sign * (a_lin - 1) * cos_w + root,
            -sign * 2 * ((a_lin - 1) + sign * (a_lin + 1) * cos_w),
            (a_lin + 1) + sign * (a_lin - 1) * cos_w - root,
        ]
    return np.concatenate([np.array(b) / a[0], np.array(a) / a[0]])[None, :]


def random_eq(rng: np.random.Generator, strength: float = 1.0) -> list[dict]:
    """A random microphone/channel colouring: shelves, one or two peaks, sometimes a
    telephone band (300-3400 Hz)."""
    bands: list[dict] = [
        {"type": kind, "freq": float(rng.uniform(lo, hi)), "gain_db": float(rng.uniform(-12, 9))}
        for kind, lo, hi in (("low", 80.0, 400.0), ("high", 2000.0, 6000.0))
    ]
    for _ in range(int(rng.integers(1, 3))):
        bands.append(
            {
                "type": "peak",
                "freq": float(np.exp(rng.uniform(np.log(200), np.log(5000)))),
                "gain_db": float(rng.uniform(-9, 9)),
                "q": float(rng.uniform(0.7, 4.0)),
            }
        )
    for band in bands:
        band["gain_db"] *= strength
    if rng.random() < 0.2 * min(strength, 1.0):
        bands.append({"type": "telephone", "low": 300.0, "high": 3400.0})
    return bands


def equalize(
    utt: Utterance, rng: np.random.Generator, bands: list[dict] | None = None
) -> Utterance:
    """Filter through ``bands`` (see :func:`random_eq`, which draws them when not given).
    Zero-phase (forward-backward, each pass with half the gain in dB), so no band delays the
    sound; the level is brought back to the input RMS (loudness is :func:`change_gain`'s)."""
    bands = random_eq(rng) if bands is None else bands
    sections = []
    for band in bands:
        if band["type"] == "telephone":
            nyquist = SAMPLE_RATE / 2.0
            # Order 2 per pass: 24 dB/octave skirts after the two passes.
            edges = [band["low"] / nyquist, band["high"] / nyquist]
            sections.append(signal.butter(2, edges, "bandpass", output="sos"))
        else:
            gain = band["gain_db"] / 2.0
            sections.append(biquad(band["type"], band["freq"], gain, band.get("q", 0.707)))
    dry = np.asarray(utt.audio, np.float64)
    wet = dry.copy()
    if sections and len(dry) > 1:
        sos = np.concatenate(sections)
        # The default edge padding (3 taps per pole) is longer than a very short input.
        wet = signal.sosfiltfilt(sos, dry, padlen=min(3 * (2 * len(sos) + 1), len(dry) - 1))
    wet *= rms(dry) / max(rms(wet), 1e-12)
    rounded = [{k: round(v, 3) if isinstance(v, float) else v for k, v in b.items()} for b in bands]
    return _derive(utt, wet, "eq", {"bands": rounded})


# --- level ----------------------------------------------------------------------------------


def change_gain(
    utt: Utterance, rng: np.random.Generator, gain_db: float | None = None
) -> Utterance:
    """Scale by ``gain_db`` (-20..+6 dB), less if the peak would pass PEAK: the recorded
    ``applied_db`` is what was done."""
    gain_db = float(rng.uniform(*GAIN_DB)) if gain_db is None else float(gain_db)
    audio = np.asarray(utt.audio, np.float64)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    gain = 10.0 ** (gain_db / 20.0)
    if peak * gain > PEAK:
        gain = PEAK / peak
    params = {"gain_db": round(gain_db, 2), "applied_db": round(20.0 * math.log10(gain), 2)}
    return _derive(utt, audio * gain, "gain", params)


# --- time -----------------------------------------------------------------------------------


def change_speed(
    utt: Utterance, rng: np.random.Generator, factor: float | None = None
) -> Utterance:
    """Play faster (factor > 1) or slower, like a tape: tempo and pitch change together.

    Resampled by the rational ``up/down`` nearest to ``1/factor`` (polyphase, zero-phase),
    so the audio is exactly ``up/down`` times as long and every phone time scales by the
    same ratio.
    """
    factor = float(rng.uniform(*SPEED)) if factor is None else float(factor)
    ratio = Fraction(1.0 / factor).limit_denominator(200)
    up, down = ratio.numerator, ratio.denominator
    audio = signal.resample_poly(np.asarray(utt.audio, np.float64), up, down)
    scale = up / down
    phones = [Phone(p.label, p.start * scale, p.end * scale) for p in utt.phones]
    params = {"factor": down / up, "time_scale": scale, "up": up, "down": down}
    out = _derive(utt, audio, "speed", params, phones=phones)
    vocals = None
    if utt.vocals is not None:
        vocals = signal.resample_poly(np.asarray(utt.vocals, np.float64), up, down)
        vocals = vocals[: len(out.audio)].astype(np.float32)
    return dataclasses.replace(out, marks=utt.marks_scaled(scale), vocals=vocals)


# --- codec ----------------------------------------------------------------------------------


def opus_round_trip(
    utt: Utterance,
    rng: np.random.Generator,
    bitrate: int | None = None,
    application: str | None = None,
) -> Utterance:
    """Encode with libopus (48 kHz, 20 ms frames, as WebRTC does) and decode again.

    The decoder returns the encoder's look-ahead (the pre-skip in the Opus header) before
    the signal; it is cut off, and the 48 kHz <-> 16 kHz resampling is zero-phase, so the
    output lines up with the input sample for sample.
    """
    if bitrate is None:
        bitrate = int(rng.integers(OPUS_BITRATE[0], OPUS_BITRATE[1] + 1))
    if application is None:
        application = ("voip", "audio")[int(rng.integers(2))]
    audio = np.asarray(utt.audio, np.float64)
    factor = OPUS_RATE // SAMPLE_RATE
    decoded, pre_skip = _opus(signal.resample_poly(audio, factor, 1), bitrate, application)
    aligned = decoded[pre_skip : pre_skip + len(audio) * factor]
    out = signal.resample_poly(aligned, 1, factor)[: len(audio)]
    params = {"bitrate": bitrate, "application": application, "pre_skip": pre_skip}
    return _derive(utt, out, "opus", params)


def _opus(audio: np.ndarray, bitrate: int, application: str) -> tuple[np.ndarray, int]:
    """Round trip of 48 kHz mono through libopus; returns the decoded audio (pre-skip
    included) and the pre-skip in samples."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = OPUS_RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = bitrate
    encoder.time_base = Fraction(1, OPUS_RATE)
    encoder.options = {"application": application}
    encoder.open()
    # Opus header (RFC 7845): bytes 10-11 hold the pre-skip, little-endian.
    pre_skip = int.from_bytes(bytes(encoder.extradata)[10:12], "little")
    decoder = av.CodecContext.create("opus", "r")
    decoder.sample_rate = OPUS_RATE
    decoder.layout = "mono"
    # Pad so the last real sample is followed by the whole look-ahead and full frames.
    total = -(-(len(audio) + pre_skip) // OPUS_FRAME) * OPUS_FRAME
    padded = np.zeros(total)
    padded[: len(audio)] = audio
    pcm = np.clip(np.round(padded * 32767.0), -32768, 32767).astype(np.int16)
    packets = []
    for start in range(0, total, OPUS_FRAME):
        frame = av.AudioFrame.from_ndarray(
            pcm[None, start : start + OPUS_FRAME], format="s16", layout="mono"
        )
        frame.sample_rate = OPUS_RATE
        frame.pts = start
        packets.extend(encoder.encode(frame))
    packets.extend(encoder.encode(None))
    chunks = [_samples(f) for p in packets for f in decoder.decode(p)]
    decoded = np.concatenate(chunks) if chunks else np.zeros(0)
    needed = pre_skip + len(audio)
    if len(decoded) < needed:
        decoded = np.pad(decoded, (0, needed - len(decoded)))
    return decoded, pre_skip


def _samples(frame: av.AudioFrame) -> np.ndarray:
    """A decoded mono frame as float64 in [-1, 1], whatever sample format the decoder chose."""
    data = frame.to_ndarray().reshape(-1)
    if data.dtype.kind in "iu":
        return data.astype(np.float64) / float(np.iinfo(data.dtype).max + 1)
    return data.astype(np.float64)


# --- chains ---------------------------------------------------------------------------------


def augment(
    utt: Utterance,
    rng: np.random.Generator,
    strength: float = 1.0,
    others: Sequence[np.ndarray] = (),
) -> Utterance:
    """A random chain, in the order a real signal meets them: speaking rate, the microphone
    (EQ), the room (reverb), the background (noise), the input gain, the WebRTC codec.

    ``strength`` (0..1, more raises only the probabilities) scales how likely each step is
    and how far it goes; ``others`` (audio of other utterances) enables babble noise.
    """
    s = max(float(strength), 0.0)
    reach = min(s, 1.0)

    def own() -> np.random.Generator:
        # Each step draws its signals (noise, impulse responses) from a generator of its own:
        # how much of it a step uses depends on the audio's length, which must not change
        # the draws of the steps after it (or the motion style drawn after augmenting).
        return np.random.default_rng(int(rng.integers(2**63)))

    out = utt
    if rng.random() < min(0.4 * s, 1.0):
        out = change_speed(out, own(), float(1.0 + rng.uniform(-0.1, 0.1) * reach))
    if rng.random() < min(0.5 * s, 1.0):
        out = equalize(out, own(), random_eq(rng, reach))
    if rng.random() < min(0.35 * s, 1.0):
        rt60 = float(rng.uniform(RT60_S[0], RT60_S[0] + (RT60_S[1] - RT60_S[0]) * reach))
        out = add_reverb(out, own(), rt60=rt60)
    if rng.random() < min(0.6 * s, 1.0):
        snr = float(rng.uniform(SNR_DB[1] - (SNR_DB[1] - SNR_DB[0]) * reach, SNR_DB[1]))
        out = add_noise(out, own(), snr_db=snr, others=others)
    if rng.random() < min(0.7 * s, 1.0):
        out = change_gain(out, own())
    if rng.random() < min(0.4 * s, 1.0):
        low = int(OPUS_BITRATE[1] - (OPUS_BITRATE[1] - OPUS_BITRATE[0]) * reach)
        out = opus_round_trip(out, own(), bitrate=int(rng.integers(low, OPUS_BITRATE[1] + 1)))
    if out is utt:  # nothing drawn: still say so
        out = dataclasses.replace(utt, meta={**utt.meta, "augment": {"chain": []}})
    return out
