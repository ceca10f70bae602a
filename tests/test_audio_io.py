"""Audio input: any file PyAV reads -> mono 16 kHz session chunks + a 48 kHz output track.

Every input is made here from real speech (1.5 s of assets/speech/librivox_ss01_0870.wav),
encoded with PyAV's own encoders into the containers users send: WAV, MP3, FLAC, M4A (AAC),
Ogg/Opus, WebM/Opus, at 8 k .. 48 kHz, mono and stereo. The decoded session signal must be the
same speech: same duration (50 ms), the same waveform for lossless codecs, the same loudness
envelope and no time shift (encoder priming removed) for lossy ones.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from contracts.clock import SAMPLE_RATE
from contracts.paths import DEFAULT_SPEECH
from engines.audio_io import OUTPUT_RATE, AudioError, decode_audio, iter_audio

SPEECH = DEFAULT_SPEECH
CLIP_START, CLIP_SECONDS = 1.0, 1.5
ENVELOPE_HOP = SAMPLE_RATE // 100  # 10 ms
MAX_LAG = SAMPLE_RATE // 20  # alignment search range, 50 ms


def _has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:  # PyAV raises UnknownCodecError (a ValueError) or FFmpegError by version
        return False
    return True


MP3_ENCODER = "libmp3lame" if _has_encoder("libmp3lame") else "mp3"
needs_mp3 = pytest.mark.skipif(
    not _has_encoder(MP3_ENCODER), reason="this FFmpeg build has no MP3 encoder"
)


def _speech_int16() -> np.ndarray:
    with av.open(str(SPEECH)) as container:
        stream = container.streams.audio[0]
        assert stream.rate == SAMPLE_RATE and stream.codec_context.name == "pcm_s16le"
        data = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
    start = round(CLIP_START * SAMPLE_RATE)
    return data[start : start + round(CLIP_SECONDS * SAMPLE_RATE)].astype(np.int16)


CLIP_INT16 = _speech_int16()
CLIP = CLIP_INT16.astype(np.float32) / 32768.0


def resample(x: np.ndarray, rate: int, source_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 at ``source_rate`` -> ``rate`` (FFmpeg's resampler, flushed)."""
    if rate == source_rate:
        return x
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    frame = av.AudioFrame.from_ndarray(x.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = source_rate
    out = resampler.resample(frame) + resampler.resample(None)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in out]).astype(np.float32)


def encode(path: Path, codec: str, rate: int, channels: int, x: np.ndarray = CLIP) -> Path:
    """Write the 16 kHz mono ``x`` to ``path`` with ``codec`` at ``rate`` Hz, 1 or 2 channels.

    Stereo carries the speech on the left and a quieter copy on the right, so the downmix is
    still that speech. PyAV converts the frame to the encoder's sample format and frame size.
    """
    y = resample(x, rate)
    layout = "stereo" if channels == 2 else "mono"
    planes = np.stack([y, 0.5 * y]) if channels == 2 else y.reshape(1, -1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(planes, np.float32), format="fltp", layout=layout
        )
        frame.sample_rate = rate
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def envelope(x: np.ndarray) -> np.ndarray:
    n = len(x) // ENVELOPE_HOP
    frames = x[: n * ENVELOPE_HOP].reshape(n, ENVELOPE_HOP).astype(np.float64)
    return np.sqrt((frames**2).mean(axis=1))


def best_lag(decoded: np.ndarray, reference: np.ndarray) -> int:
    """Samples by which ``decoded`` is late relative to ``reference`` (|lag| <= MAX_LAG)."""
    n = min(len(decoded), len(reference)) - MAX_LAG
    ref = reference[MAX_LAG // 2 : MAX_LAG // 2 + n - MAX_LAG].astype(np.float64)
    scores = [
        float(np.dot(decoded[MAX_LAG // 2 + lag : MAX_LAG // 2 + lag + len(ref)], ref))
        for lag in range(-MAX_LAG // 2, MAX_LAG // 2 + 1)
    ]
    return int(np.argmax(scores)) - MAX_LAG // 2


def aligned_envelope_correlation(decoded: np.ndarray, reference: np.ndarray, lag: int) -> float:
    shifted = decoded[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag, np.float32), decoded])
    n = min(len(shifted), len(reference))
    return float(np.corrcoef(envelope(shifted[:n]), envelope(reference[:n]))[0, 1])


# (file name, encoder, sample rate, channels)
LOSSY = [
    pytest.param("speech.mp3", MP3_ENCODER, 44_100, 2, marks=needs_mp3, id="mp3-44k-stereo"),
    pytest.param("speech.mp3", MP3_ENCODER, 22_050, 1, marks=needs_mp3, id="mp3-22k-mono"),
    pytest.param("speech.mp3", MP3_ENCODER, 8_000, 1, marks=needs_mp3, id="mp3-8k-mono"),
    pytest.param("speech.m4a", "aac", 44_100, 2, id="m4a-aac-44k-stereo"),
    pytest.param("speech.m4a", "aac", 22_050, 1, id="m4a-aac-22k-mono"),
    pytest.param("speech.ogg", "libopus", 48_000, 2, id="ogg-opus-48k-stereo"),
    pytest.param("speech.ogg", "libopus", 8_000, 1, id="ogg-opus-8k-mono"),
    pytest.param("speech.webm", "libopus", 48_000, 2, id="webm-opus-48k-stereo"),
    pytest.param("speech.webm", "libopus", 16_000, 1, id="webm-opus-16k-mono"),
]
RESAMPLED_LOSSLESS = [
    pytest.param("speech.wav", "pcm_s16le", 44_100, 2, id="wav-44k-stereo"),
    pytest.param("speech.wav", "pcm_s16le", 8_000, 1, id="wav-8k-mono"),
    pytest.param("speech.wav", "pcm_s16le", 22_050, 2, id="wav-22k-stereo"),
    pytest.param("speech.flac", "flac", 48_000, 2, id="flac-48k-stereo"),
]


@pytest.mark.parametrize(("name", "codec"), [("speech.wav", "pcm_s16le"), ("speech.flac", "flac")])
def test_lossless_16k_mono_decodes_bit_exact(tmp_path: Path, name: str, codec: str) -> None:
    path = encode(tmp_path / name, codec, SAMPLE_RATE, 1)
    decoded = decode_audio(path)
    assert decoded.dtype == np.float32
    assert len(decoded) == len(CLIP)
    np.testing.assert_array_equal(decoded, CLIP_INT16.astype(np.float32) / 32768.0)


@pytest.mark.parametrize(("name", "codec", "rate", "channels"), RESAMPLED_LOSSLESS)
def test_resampled_lossless_inputs_keep_the_waveform(
    tmp_path: Path, name: str, codec: str, rate: int, channels: int
) -> None:
    decoded = decode_audio(encode(tmp_path / name, codec, rate, channels))
    assert abs(len(decoded) - len(CLIP)) / SAMPLE_RATE <= 0.05
    lag = best_lag(decoded, CLIP)
    assert abs(lag) <= 2, f"resampling shifted the audio by {lag} samples"
    n = min(len(decoded), len(CLIP))
    # 8 kHz loses everything above 4 kHz, so compare waveforms band-limited the same way.
    band_rate = min(rate, SAMPLE_RATE)
    reference = resample(resample(CLIP, band_rate), SAMPLE_RATE, band_rate)[:n]
    assert np.corrcoef(decoded[:n], reference)[0, 1] > 0.99


@pytest.mark.parametrize(("name", "codec", "rate", "channels"), LOSSY)
def test_lossy_inputs_decode_to_the_same_speech(
    tmp_path: Path, name: str, codec: str, rate: int, channels: int
) -> None:
    path = encode(tmp_path / name, codec, rate, channels)
    with av.open(str(path)) as container:  # the file really is what the case says
        assert container.streams.audio[0].channels == channels
    decoded = decode_audio(path)
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert abs(len(decoded) - len(CLIP)) / SAMPLE_RATE <= 0.05, len(decoded) / SAMPLE_RATE
    lag = best_lag(decoded, CLIP)
    # Encoder priming (MP3 delay, AAC 1024 samples, Opus pre-skip) must be removed by the
    # container's gapless info; left in, the speech would be 20-65 ms late.
    assert abs(lag) <= 0.005 * SAMPLE_RATE, f"decoded speech is {lag / 16:.1f} ms late"
    assert aligned_envelope_correlation(decoded, CLIP, lag) > 0.9
    assert np.abs(decoded).max() > 0.5 * np.abs(CLIP).max()  # not attenuated to nothing


@pytest.mark.parametrize(
    ("name", "codec", "rate", "channels"),
    [
        ("speech.wav", "pcm_s16le", 16_000, 1),
        ("speech.wav", "pcm_s16le", 44_100, 2),
        ("speech.flac", "flac", 8_000, 1),
        ("speech.m4a", "aac", 22_050, 1),
        ("speech.ogg", "libopus", 48_000, 2),
        pytest.param("speech.mp3", MP3_ENCODER, 44_100, 1, marks=needs_mp3),
    ],
)
def test_chunks_are_20_ms_and_the_output_track_is_48_khz(
    tmp_path: Path, name: str, codec: str, rate: int, channels: int
) -> None:
    chunks = list(iter_audio(encode(tmp_path / name, codec, rate, channels)))
    assert len(chunks) >= CLIP_SECONDS / 0.02 - 1
    for chunk in chunks[:-1]:
        assert len(chunk.session) == SAMPLE_RATE // 50  # 320 samples, the WebRTC Opus frame
    assert 0 < len(chunks[-1].session) <= SAMPLE_RATE // 50
    for chunk in chunks:
        assert chunk.session.dtype == np.float32 and chunk.output.dtype == np.float32
        assert chunk.session.ndim == 1 and chunk.output.ndim == 1
    session = np.concatenate([c.session for c in chunks])
    output = np.concatenate([c.output for c in chunks])
    # Over the file the output track is exactly 3x the session signal (up to rounding of the
    # source rate), so the MP4's audio has the length of the input.
    assert abs(len(output) - len(session) * OUTPUT_RATE // SAMPLE_RATE) <= 3
    # ... and it is the same audio: its 16 kHz version lines up with the session signal.
    back = resample(output, SAMPLE_RATE, OUTPUT_RATE)
    n = min(len(back), len(session))
    assert abs(best_lag(back, session)) <= 1
    assert np.corrcoef(back[:n], session[:n])[0, 1] > 0.98


def test_a_16k_file_ending_on_a_chunk_boundary_keeps_its_output_tail(tmp_path: Path) -> None:
    """1.5 s at 16 kHz is exactly 75 chunks; the 48 kHz resampler's tail must not be lost."""
    assert len(CLIP) % (SAMPLE_RATE // 50) == 0
    chunks = list(iter_audio(encode(tmp_path / "exact.wav", "pcm_s16le", SAMPLE_RATE, 1)))
    assert sum(len(c.session) for c in chunks) == len(CLIP)
    assert sum(len(c.output) for c in chunks) == 3 * len(CLIP)


def test_chunk_seconds_sets_the_chunk_size(tmp_path: Path) -> None:
    chunks = list(iter_audio(encode(tmp_path / "s.wav", "pcm_s16le", 44_100, 1), 0.04))
    assert {len(c.session) for c in chunks[:-1]} == {640}
    assert {len(c.output) for c in chunks[1:-1]} == {1920}


@pytest.mark.parametrize(("layout", "channels"), [("stereo", 2), ("5.1", 6)])
def test_downmix_keeps_the_level_of_correlated_channels(
    tmp_path: Path, layout: str, channels: int
) -> None:
    """A 0.9-peak tone on every channel stays 0.9 in mono; FFmpeg's default stereo matrix
    (L + R at -3 dB) would make it 1.27, over full scale in the output track."""
    tone = 0.9 * np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=SAMPLE_RATE)
        stream.layout = layout
        planes = np.repeat(tone[None].astype(np.float32), channels, axis=0)
        frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
        frame.sample_rate = SAMPLE_RATE
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    chunks = list(iter_audio(path))
    session = np.concatenate([c.session for c in chunks])
    output = np.concatenate([c.output for c in chunks])
    assert np.abs(session).max() == pytest.approx(0.9, abs=0.01)
    assert np.abs(output).max() == pytest.approx(0.9, abs=0.01)


def test_one_sided_stereo_is_half_as_loud(tmp_path: Path) -> None:
    """Speech on the left only: the mono mix is (L + R) / 2."""
    path = tmp_path / "left.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=SAMPLE_RATE)
        stream.layout = "stereo"
        planes = np.stack([CLIP, np.zeros_like(CLIP)])
        frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout="stereo")
        frame.sample_rate = SAMPLE_RATE
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    np.testing.assert_allclose(decode_audio(path), CLIP / 2, atol=1 / 32768)


# --- bad inputs ----------------------------------------------------------------------------


def _video_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 40 * i, np.uint8), "rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


BAD_INPUTS = {
    "missing": lambda d: d / "missing.wav",
    "directory": lambda d: d,
    "text renamed .wav": lambda d: _write(d / "notes.wav", b"this is not audio\n" * 20),
    "random bytes": lambda d: _write(d / "noise.wav", np.random.default_rng(0).bytes(4096)),
    "empty": lambda d: _write(d / "empty.wav", b""),
    "WAV header only": lambda d: _write(
        d / "header.wav",
        encode(d / "full.wav", "pcm_s16le", SAMPLE_RATE, 1).read_bytes()[:44],
    ),
    "video only": lambda d: _video_only(d / "video.mp4"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
@pytest.mark.parametrize(
    "reader", [decode_audio, lambda p: next(iter_audio(p))], ids=["decode_audio", "iter_audio"]
)
def test_bad_inputs_raise_a_one_line_audio_error(tmp_path: Path, kind: str, reader) -> None:
    path = BAD_INPUTS[kind](tmp_path)
    with pytest.raises(AudioError) as info:
        reader(path)
    message = str(info.value)
    assert message and "\n" not in message
    assert path.name in message  # the user learns which file
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("keep", [0.5, 0.1, 0.02])
@pytest.mark.parametrize(
    ("name", "codec", "rate"),
    [
        ("speech.wav", "pcm_s16le", 16_000),
        ("speech.wav", "pcm_s16le", 44_100),
        ("speech.flac", "flac", 48_000),
        ("speech.m4a", "aac", 44_100),
        ("speech.ogg", "libopus", 48_000),
        pytest.param("speech.mp3", MP3_ENCODER, 44_100, marks=needs_mp3),
    ],
)
def test_truncated_files_decode_what_is_there_or_raise_audio_error(
    tmp_path: Path, name: str, codec: str, rate: int, keep: float
) -> None:
    data = encode(tmp_path / name, codec, rate, 1).read_bytes()
    cut = _write(tmp_path / f"cut_{name}", data[: max(1, int(len(data) * keep))])
    try:
        decoded = decode_audio(cut)
    except AudioError as exc:
        assert "\n" not in str(exc)
        return
    # Whatever decoded is audio from the start of the file, no longer than the whole clip.
    assert decoded.dtype == np.float32 and np.isfinite(decoded).all()
    assert len(decoded) <= len(CLIP) + 0.05 * SAMPLE_RATE
    if name == "speech.wav" and rate == SAMPLE_RATE:
        # An uncompressed 16 kHz WAV cut in the middle: every complete sample survives.
        header = len(data) - 2 * len(CLIP)
        assert len(decoded) >= (len(cut.read_bytes()) - header) // 2 - 1024
        np.testing.assert_array_equal(decoded, CLIP[: len(decoded)])
