"""The ``emote`` CLI end to end: render (portrait + audio file -> MP4) and prepare.

Renders are 2 s clips of real speech (assets/speech/librivox_ss01_0870.wav) at 512x512, driven
through ``emote.cli.main`` in-process, and once through the installed ``emote`` script
for the exit status and stderr a shell sees. Every output is decoded with PyAV and checked:
streams, frame count and rate, audio length, and A/V alignment on the decoded timeline (after
the MP4 edit list that hides the AAC encoder's priming). Bad inputs must end with status 2 and
one ``emote: error:`` line, and leave neither an output file nor an avatar cache entry.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from contracts.paths import DEFAULT_PORTRAIT, DEFAULT_SPEECH
from emote.cli import main

PORTRAIT = DEFAULT_PORTRAIT
SPEECH = DEFAULT_SPEECH
EMOTE = Path(sys.executable).parent / "emote"
CLIP_SECONDS = 2.0


# --- inputs --------------------------------------------------------------------------------


def _speech(seconds: float, start: float = 1.0) -> np.ndarray:
    """Mono 16 kHz float32 speech from the LibriVox recording."""
    with av.open(str(SPEECH)) as container:
        data = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    first = round(start * 16_000)
    return data[first : first + round(seconds * 16_000)].astype(np.float32) / 32768.0


def write_audio(
    path: Path, samples: np.ndarray, rate: int, codec: str = "pcm_s16le", channels: int = 1
) -> Path:
    """``samples`` (mono float32 already at ``rate``) -> ``path``; stereo repeats the signal."""
    layout = "stereo" if channels == 2 else "mono"
    planes = np.stack([samples, samples]) if channels == 2 else samples.reshape(1, -1)
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


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = 16_000
    out = resampler.resample(frame) + resampler.resample(None)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in out]).astype(np.float32)


def lag_seconds(signal: np.ndarray, reference: np.ndarray, rate: int) -> float:
    """How late ``signal`` is relative to ``reference`` (cross-correlation peak, +-50 ms)."""
    n = len(signal) + len(reference)
    corr = np.fft.irfft(np.fft.rfft(signal, n) * np.conj(np.fft.rfft(reference, n)), n)
    m = rate // 20
    lags = np.r_[0 : m + 1, -m:0]
    return float(lags[int(np.argmax(np.r_[corr[: m + 1], corr[-m:]]))]) / rate


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    write_audio(folder / "speech.wav", _speech(CLIP_SECONDS), 16_000)
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One avatar cache for the successful renders (the portrait is prepared once)."""
    return tmp_path_factory.mktemp("cache")


# --- outputs -------------------------------------------------------------------------------


class Decoded:
    """An MP4 decoded with PyAV: stream parameters, RGB frames and the audio timeline."""

    def __init__(self, path: Path) -> None:
        with av.open(str(path)) as container:
            assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
            video, audio = container.streams.video[0], container.streams.audio[0]
            self.video_codec = video.codec_context.name
            self.size = (video.codec_context.width, video.codec_context.height)
            self.pix_fmt = video.codec_context.pix_fmt
            self.fps = video.average_rate
            self.audio_codec = audio.codec_context.name
            self.audio_rate = audio.rate
            self.audio_channels = audio.channels
            frames, times = [], []
            for frame in container.decode(video):
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(float(frame.pts * frame.time_base))
            self.frames = np.stack(frames)
            self.frame_times = np.array(times)
        with av.open(str(path)) as container:
            chunks, starts = [], []
            for frame in container.decode(audio=0):
                chunks.append(frame.to_ndarray().mean(axis=0))  # planar float: mean of channels
                starts.append(float(frame.pts * frame.time_base))
            self.audio_chunks = chunks
            self.audio_starts = np.array(starts)

    @property
    def audio_seconds(self) -> float:
        return sum(len(c) for c in self.audio_chunks) / self.audio_rate

    @property
    def video_seconds(self) -> float:
        return len(self.frames) / float(self.fps)

    def loudest_time(self) -> float:
        """Time of the loudest audio sample, from the decoded frames' own timestamps."""
        peaks = [float(np.abs(c).max()) for c in self.audio_chunks]
        k = int(np.argmax(peaks))
        return self.audio_starts[k] + int(np.abs(self.audio_chunks[k]).argmax()) / self.audio_rate


def render(cache: Path, audio: Path, output: Path, *extra: str) -> int:
    return main(
        [
            "--cache-dir",
            str(cache),
            "render",
            "--image",
            str(PORTRAIT),
            "--audio",
            str(audio),
            "--output",
            str(output),
            "--size",
            "512",
            "--quiet",
            *extra,
        ]
    )


def avatar_entries(cache: Path) -> list[Path]:
    return sorted((cache / "avatars").glob("*")) if (cache / "avatars").is_dir() else []


# --- render --------------------------------------------------------------------------------


def test_render_writes_an_h264_aac_mp4(
    inputs: Path, cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.mp4"
    assert render(cache, inputs / "speech.wav", out) == 0
    stdout = capsys.readouterr().out
    assert "real-time factor" in stdout and str(out) in stdout
    assert "50 frames" in stdout

    mp4 = Decoded(out)
    assert mp4.video_codec == "h264"
    assert mp4.size == (512, 512)
    assert mp4.pix_fmt == "yuv420p"
    assert mp4.fps == 25
    assert abs(len(mp4.frames) - math.ceil(CLIP_SECONDS * 25)) <= 1
    # Frames sit on the 25 fps grid from t = 0.
    np.testing.assert_allclose(mp4.frame_times, np.arange(len(mp4.frames)) / 25, atol=1e-6)
    assert mp4.audio_codec == "aac" and mp4.audio_rate == 48_000 and mp4.audio_channels == 1
    assert abs(mp4.audio_seconds - CLIP_SECONDS) <= 0.04
    assert abs(mp4.audio_seconds - mp4.video_seconds) <= 0.04
    assert abs(mp4.audio_starts[0]) <= 1e-3  # the audio track starts with the video
    # It is a talking portrait, not a still: the frames move.
    assert np.abs(mp4.frames[1:].astype(np.int16) - mp4.frames[:-1]).max() > 10
    # The speech is in the audio track (AAC keeps its loudness).
    audio = np.concatenate(mp4.audio_chunks)
    speech = _speech(CLIP_SECONDS)
    assert 0.8 < np.abs(audio).max() / np.abs(speech).max() < 1.25
    assert abs(lag_seconds(audio, resample(speech, 48_000), 48_000)) <= 0.002


@pytest.mark.parametrize("rate", [16_000, 44_100])
def test_click_at_one_second_stays_at_one_second(
    cache: Path, tmp_path: Path, rate: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A/V alignment through resampling and AAC priming, on the decoded timeline.

    The input is silence with one loud click at exactly 1.000 s. The AAC encoder delays its
    output by 1024 priming samples (21 ms at 48 kHz); the MP4 must declare them (edit list)
    so that a decoder puts the click back at 1.000 s, where video frame 25 is shown.
    """
    samples = np.zeros(2 * rate, np.float32)
    samples[rate] = 0.9
    samples[rate + 1] = -0.9
    audio = write_audio(tmp_path / f"click_{rate}.wav", samples, rate)
    out = tmp_path / "click.mp4"
    assert render(cache, audio, out) == 0
    capsys.readouterr()
    mp4 = Decoded(out)
    click = mp4.loudest_time()
    assert abs(click - 1.0) <= 0.010, f"the click is at {click * 1000:.1f} ms"
    assert abs(mp4.audio_starts[0]) <= 1e-3
    assert mp4.frame_times[25] == pytest.approx(1.0, abs=1e-6)
    assert abs(mp4.audio_seconds - 2.0) <= 0.04


def test_fps_30(inputs: Path, cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "fps30.mp4"
    assert render(cache, inputs / "speech.wav", out, "--fps", "30") == 0
    mp4 = Decoded(out)
    assert mp4.fps == 30
    assert abs(len(mp4.frames) - math.ceil(CLIP_SECONDS * 30)) <= 1
    np.testing.assert_allclose(mp4.frame_times, np.arange(len(mp4.frames)) / 30, atol=1e-6)
    assert abs(mp4.audio_seconds - mp4.video_seconds) <= 0.04


def test_another_size_is_exported_by_the_command_line_on_first_use(
    inputs: Path, tmp_path: Path
) -> None:
    """The runtime never exports: it names the missing graphs; `emote render --size`
    exports them into the cache (torch) and renders at that size."""
    from engines.renderer_models import RendererNotExported, renderer_model_for_size

    cache = tmp_path / "cache"
    with pytest.raises(RendererNotExported) as missing:
        renderer_model_for_size(256, cache)
    assert missing.value.folder == cache / "models" / "256"
    assert not missing.value.folder.exists()  # the runtime wrote nothing

    out = tmp_path / "small.mp4"
    assert render(cache, inputs / "speech.wav", out, "--size", "256", "--motion", "dsp") == 0
    assert sorted(p.name for p in missing.value.folder.iterdir()) == [
        "renderer.onnx",
        "renderer_split.onnx",
    ]
    assert renderer_model_for_size(256, cache) == missing.value.folder
    assert Decoded(out).size == (256, 256)


def test_torch_backend_renders_the_reference(inputs: Path, cache: Path, tmp_path: Path) -> None:
    ort_out, torch_out = tmp_path / "ort.mp4", tmp_path / "torch.mp4"
    assert render(cache, inputs / "speech.wav", ort_out, "--motion", "dsp") == 0
    assert (
        render(cache, inputs / "speech.wav", torch_out, "--motion", "dsp", "--backend", "torch")
        == 0
    )
    a, b = Decoded(ort_out), Decoded(torch_out)
    assert len(a.frames) == len(b.frames)
    # The same motion through the CPU path and the torch module: equal up to H.264's losses.
    diff = np.abs(a.frames[len(a.frames) // 2].astype(int) - b.frames[len(b.frames) // 2])
    assert diff.mean() < 2.0


@pytest.mark.slow
def test_seed_changes_head_motion_and_reproduces_it(
    inputs: Path, cache: Path, tmp_path: Path
) -> None:
    decoded = {}
    for name, seed in [("a", "0"), ("b", "0"), ("c", "7")]:
        out = tmp_path / f"seed_{name}.mp4"
        assert render(cache, inputs / "speech.wav", out, "--seed", seed) == 0
        decoded[name] = Decoded(out).frames.astype(np.int16)
    a, b, c = decoded["a"], decoded["b"], decoded["c"]
    assert a.shape == b.shape == c.shape
    picks = [0, len(a) // 3, 2 * len(a) // 3, len(a) - 1]
    # Same seed: the same frames (the renderer, the DSP motion and x264 are deterministic).
    assert max(int(np.abs(a[i] - b[i]).max()) for i in picks) <= 2
    # Another seed: other head motion, so the frames differ clearly somewhere.
    assert max(int(np.abs(a[i] - c[i]).max()) for i in picks) > 10
    assert np.abs(a - c).mean() > 1.0


@pytest.mark.parametrize(
    ("name", "codec", "rate", "channels"),
    [
        ("speech.mp3", "libmp3lame", 44_100, 2),
        ("speech.m4a", "aac", 44_100, 2),
        ("speech.ogg", "libopus", 48_000, 1),
    ],
)
def test_compressed_and_stereo_inputs_render(
    cache: Path, tmp_path: Path, name: str, codec: str, rate: int, channels: int
) -> None:
    try:
        av.codec.Codec(codec, "w")
    except Exception:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    speech = _speech(CLIP_SECONDS)
    audio = write_audio(tmp_path / name, resample(speech, rate), rate, codec, channels)
    out = tmp_path / "out.mp4"
    assert render(cache, audio, out) == 0
    mp4 = Decoded(out)
    assert abs(len(mp4.frames) - math.ceil(CLIP_SECONDS * 25)) <= 2  # AAC input pads its end
    assert abs(mp4.audio_seconds - mp4.video_seconds) <= 0.04
    # The speech came through: as loud as the input (a stereo downmix must not add 3 dB),
    # and on time (the input codec's priming removed as well as the output's).
    track = np.concatenate(mp4.audio_chunks)
    assert 0.8 < np.abs(track).max() / np.abs(speech).max() < 1.25
    reference = resample(speech, mp4.audio_rate)
    lag = lag_seconds(track, reference, mp4.audio_rate) + mp4.audio_starts[0]
    assert abs(lag) <= 0.010, f"the speech is {lag * 1000:.1f} ms late"


# --- bad inputs ----------------------------------------------------------------------------


def _gradient_png(path: Path) -> Path:
    ramp = np.linspace(0, 255, 256, dtype=np.uint8)
    grid = np.tile(ramp, (256, 1))
    Image.fromarray(np.stack([grid, grid.T, 255 - grid], axis=-1)).save(path)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# name -> (files made in tmp_path -> extra render arguments)
BAD_RENDERS = {
    "image is text": lambda d: ["--image", str(_bytes(d / "x.jpg", b"not an image\n" * 10))],
    "truncated JPEG": lambda d: [
        "--image",
        str(_bytes(d / "cut.jpg", PORTRAIT.read_bytes()[: PORTRAIT.stat().st_size // 3])),
    ],
    "no face": lambda d: ["--image", str(_gradient_png(d / "gradient.png"))],
    "missing image": lambda d: ["--image", str(d / "nope.jpg")],
    "missing audio": lambda d: ["--audio", str(d / "nope.wav")],
    "broken audio": lambda d: [
        "--audio",
        str(_bytes(d / "noise.wav", np.random.default_rng(1).bytes(8000))),
    ],
    "fps 0": lambda d: ["--fps", "0"],
    "fps 1000": lambda d: ["--fps", "1000"],
    "size 100": lambda d: ["--size", "100"],
}


def _bad_render(tmp_path: Path, kind: str) -> tuple[list[str], Path, Path]:
    cache, out = tmp_path / "cache", tmp_path / "out" / "bad.mp4"
    good_audio = write_audio(tmp_path / "ok.wav", _speech(0.5), 16_000)
    argv = ["--cache-dir", str(cache), "render", "--image", str(PORTRAIT)]
    argv += ["--audio", str(good_audio), "--output", str(out), "--quiet"]
    return argv + BAD_RENDERS[kind](tmp_path), cache, out


def _check_refusal(rc: int, stdout: str, stderr: str) -> None:
    assert rc == 2
    errors = [line for line in stderr.splitlines() if line.startswith("emote: error:")]
    assert len(errors) == 1, stderr
    assert len(errors[0]) > len("emote: error: ") + 5
    assert "Traceback" not in stderr and "Traceback" not in stdout
    assert "real-time factor" not in stdout


@pytest.mark.parametrize("kind", list(BAD_RENDERS))
def test_bad_render_inputs_are_refused_cleanly(
    tmp_path: Path, kind: str, capfd: pytest.CaptureFixture[str]
) -> None:
    argv, cache, out = _bad_render(tmp_path, kind)
    rc = main(argv)
    captured = capfd.readouterr()  # file descriptors: native (mediapipe) output included
    _check_refusal(rc, captured.out, captured.err)
    assert not out.exists()
    assert avatar_entries(cache) == []


def test_bad_input_through_the_installed_script(tmp_path: Path) -> None:
    """The shell's view: exit status 2, one error line, no traceback (native logs allowed)."""
    argv, cache, out = _bad_render(tmp_path, "no face")
    proc = subprocess.run(
        [str(EMOTE), *argv], capture_output=True, text=True, timeout=120, check=False
    )
    _check_refusal(proc.returncode, proc.stdout, proc.stderr)
    assert "No face" in proc.stderr
    assert not out.exists() and avatar_entries(cache) == []


@pytest.mark.slow
def test_render_through_the_installed_script(inputs: Path, cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "script.mp4"
    argv = ["--cache-dir", str(cache), "render", "--audio", str(inputs / "speech.wav")]
    argv += ["--output", str(out), "--quiet"]
    proc = subprocess.run(
        [str(EMOTE), *argv], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "real-time factor" in proc.stdout
    assert "Traceback" not in proc.stderr and "error" not in proc.stderr
    assert abs(len(Decoded(out).frames) - 50) <= 1


# --- prepare -------------------------------------------------------------------------------


def test_prepare_caches_the_avatar_and_hits_the_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    argv = ["--cache-dir", str(cache), "prepare", str(PORTRAIT)]
    t0 = time.perf_counter()
    assert main(argv) == 0
    first = time.perf_counter() - t0
    stdout = capsys.readouterr().out
    (entry,) = avatar_entries(cache)
    assert entry.name in stdout and "478 landmarks" in stdout
    names = {p.name for p in entry.iterdir()}
    assert {"crop.png", "landmarks.npy", "meta.json"} <= names
    assert any(n.startswith("rig_v") and n.endswith(".npz") for n in names), names
    assert not any(".tmp" in n for n in names)
    with Image.open(entry / "crop.png") as crop:
        assert crop.size == (512, 512)
    assert np.load(entry / "landmarks.npy").shape == (478, 3)
    stamps = {p.name: p.stat().st_mtime_ns for p in entry.iterdir()}

    # Second run: a cache hit. Face detection must not run, and nothing is rewritten.
    import engines.avatar

    def no_detection(*args: object) -> None:
        raise AssertionError("face detection ran on a cached avatar")

    monkeypatch.setattr(engines.avatar, "_detect_faces", no_detection)
    t0 = time.perf_counter()
    assert main(argv) == 0
    second = time.perf_counter() - t0
    assert entry.name in capsys.readouterr().out
    assert avatar_entries(cache) == [entry]
    assert {p.name: p.stat().st_mtime_ns for p in entry.iterdir()} == stamps
    print(f"emote prepare: first run {first:.2f} s, cached run {second:.2f} s")


def test_prepare_refuses_a_non_image(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    bad = _bytes(tmp_path / "x.png", os.urandom(2048))
    rc = main(["--cache-dir", str(cache), "prepare", str(bad)])
    captured = capfd.readouterr()
    _check_refusal(rc, captured.out, captured.err)
    assert avatar_entries(cache) == []
