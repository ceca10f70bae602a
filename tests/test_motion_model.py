"""The learned motion model: features, samplers, training windows, a tiny teacher and student
trained on a toy corpus, export (TensorRT check, onnxruntime parity) and the generator."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from contracts import audio_features, motion_frame
from contracts import motion_spec as spec
from contracts.clock import SAMPLES_PER_FRAME
from engines.engine import EngineError
from engines.learned_motion import LearnedMotionGenerator
from engines.motion_buffer import MotionBuffer
from engines.motion_stream import MotionStream
from engines.sampler import (
    model_calls,
    sample_euler,
    sample_flow_map,
    sample_heun,
    schedule_shifted,
    schedule_uniform,
)
from export.torch_engines import motion_engines
from export.trt_compat import check_graph
from training.corpus_format import frames_for, write_manifest, write_shard
from training.dataset import (
    AugmentConfig,
    WindowSampler,
    history_of,
    load_utterances,
    motion_statistics,
    window,
)

SR = 16_000
JAW = motion_frame.INDEX["jawOpen"]
LEAD_SECONDS = 0.04  # the toy mouth opens 40 ms before the sound


# --- a toy corpus: harmonic bursts, jawOpen following their envelope a little early --------


def toy_utterance(rng: np.random.Generator, seconds: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    n = int(seconds * SR)
    envelope = np.zeros(n)
    pos = int(rng.uniform(0.1, 0.4) * SR)
    while pos < n - SR // 5:
        length = int(rng.uniform(0.12, 0.4) * SR)
        envelope[pos : pos + length] = rng.uniform(0.5, 1.0)
        pos += length + int(rng.uniform(0.1, 0.4) * SR)
    envelope = np.convolve(envelope, np.ones(320) / 320, mode="same")  # 20 ms ramps
    t = np.arange(n) / SR
    f0 = rng.uniform(100.0, 220.0)
    tone = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) / h for h in range(1, 9))
    audio = 0.15 * envelope * tone + 1e-3 * rng.standard_normal(n)
    frames = frames_for(n)
    centres = np.arange(frames) * SAMPLES_PER_FRAME + 320 + int(LEAD_SECONDS * SR)
    motion = 0.01 * np.abs(rng.standard_normal((frames, motion_frame.DIM)))
    motion[:, JAW] = 0.6 * envelope[centres.clip(0, n - 1)]
    return audio.astype(np.float32), motion_frame.clip(motion.astype(np.float32))


def write_toy_corpus(directory: Path, train: int = 24, val: int = 4, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    pairs = [toy_utterance(rng) for _ in range(train + val)]
    write_shard(
        directory / "shard-00000.npz",
        [a for a, _ in pairs],
        [m for _, m in pairs],
        [np.zeros(len(m), np.int8) for _, m in pairs],
    )
    utterances = [
        {
            "id": f"toy{i}",
            "shard": "shard-00000.npz",
            "index": i,
            "engine": "toy",
            "voice": f"toy/{i}",
            "split": "train" if i < train else "val",
            "text": "",
            "seconds": 3.0,
            "augment": {},
        }
        for i in range(train + val)
    ]
    write_manifest(directory, {"seed": seed, "utterances": utterances})
    return directory


@dataclass
class Trained:
    corpus: Path
    teacher: Path
    student: Path
    models: Path
    report: dict


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    from training.export_motion import pipeline

    root = tmp_path_factory.mktemp("motion")
    corpus = write_toy_corpus(root / "corpus")
    report = pipeline(corpus, root / "runs", root / "models", tiny=True)
    return Trained(
        corpus, root / "runs/teacher.pt", root / "runs/student.pt", root / "models", report
    )


def run_stream(generator, audio: np.ndarray, chunk: int = 320, hop: int = 2) -> np.ndarray:
    stream = MotionStream(generator, hop_frames=hop)
    frames = [f for s in range(0, len(audio), chunk) for _, f in stream.push(audio[s : s + chunk])]
    return np.stack(frames + [f for _, f in stream.flush()])


def held_out(seed: int = 99, count: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [toy_utterance(rng) for _ in range(count)]


def jaw_correlation(generator_factory) -> float:
    scores = []
    for audio, motion in held_out():
        frames = run_stream(generator_factory(), audio)
        scores.append(np.corrcoef(frames[:, JAW], motion[:, JAW])[0, 1])
    return float(np.mean(scores))


# --- features, samplers, windows (no training) --------------------------------------------


def test_log_mel_depends_only_on_the_window() -> None:
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(20_000)).astype(np.float32)
    whole = audio_features.log_mel(audio)
    part = audio_features.log_mel(audio[1600:10_000])  # starts on the 10 ms grid
    assert part.shape == (audio_features.num_frames(8400), audio_features.N_MELS)
    np.testing.assert_allclose(part, whole[10 : 10 + len(part)], atol=1e-5)
    silence = audio_features.log_mel(np.zeros(spec.WINDOW_SAMPLES, np.float32))
    assert silence.shape == (spec.MEL_FRAMES, spec.N_MELS)
    np.testing.assert_allclose(silence, audio_features.FLOOR, atol=1e-6)
    quiet = audio_features.log_mel(audio * 10 ** (-9 / 20))
    np.testing.assert_allclose(audio_features.attenuate(whole, -9.0), quiet, atol=1e-4)


def test_samplers_are_exact_on_a_straight_flow() -> None:
    # Data = a point c: the flow from any noise is a straight line, velocity (x - c) / t.
    c = np.array([0.3, -0.2])

    def velocity(x, t, s):
        return (x - c) / t

    x1 = np.array([1.5, 2.0])
    for sampler in (sample_euler, sample_heun, sample_flow_map):
        for ts in (schedule_uniform(1), schedule_uniform(5), schedule_shifted(4, 3.0)):
            np.testing.assert_allclose(sampler(velocity, x1, ts), c, atol=1e-12)
    assert model_calls("heun", schedule_uniform(24)) == 47
    assert model_calls("flow_map", schedule_uniform(3)) == 3
    with pytest.raises(ValueError):
        sample_euler(velocity, x1, np.array([0.0, 1.0]))


def test_the_mouth_can_be_guided_on_its_own() -> None:
    """A (DIM,) guidance scale guides each field as a scalar guidance would: the mouth's
    fields as at ``mouth_guidance``, the rest as at ``guidance``."""
    import torch

    from export.motion_model import MotionModel, MotionModelConfig
    from training.distill import guidance_scale, guided_velocity

    torch.manual_seed(0)
    model = MotionModel(MotionModelConfig()).eval()
    with torch.no_grad():  # its zero-initialised output layers made non-zero
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape))
    b = 3
    mel = torch.randn(b, spec.MEL_FRAMES, spec.N_MELS)
    history = torch.randn(b, spec.HISTORY_FRAMES, spec.DIM)
    style = torch.zeros(b, spec.STYLE_DIM)
    z = torch.randn(b, *model.denoiser.shape)
    assert guidance_scale(1.5, None) == 1.5 and guidance_scale(1.5, 1.5) == 1.5
    with torch.no_grad():
        cond = model.condition(mel, history, style)
        null = cond + 0.5 * torch.randn(cond.shape)  # a "no audio" that differs (untrained)
        both = guided_velocity(model, cond, null, guidance_scale(1.5, 2.5))(z, 0.5, 0.5)
        plain = guided_velocity(model, cond, null, 1.5)(z, 0.5, 0.5)
        mouthy = guided_velocity(model, cond, null, 2.5)(z, 0.5, 0.5)
    mouth = list(motion_frame.MOUTH_INDICES)
    rest = [i for i in range(spec.DIM) if i not in mouth]
    torch.testing.assert_close(both[..., mouth], mouthy[..., mouth])
    torch.testing.assert_close(both[..., rest], plain[..., rest])
    assert not torch.allclose(plain[..., mouth], mouthy[..., mouth])


def test_heun_beats_euler_on_a_curved_flow() -> None:
    def velocity(x, t, s):  # dx/dt = x: exact x(0) = x(1) / e
        return x

    x1 = np.array([1.0])
    exact = np.exp(-1.0)
    euler = sample_euler(velocity, x1, schedule_uniform(8))
    heun = sample_heun(velocity, x1, np.append(schedule_uniform(8)[:-1], 1e-9))
    assert abs(heun[0] - exact) < abs(euler[0] - exact) / 10


def test_training_windows_are_what_the_runtime_reads(tmp_path: Path) -> None:
    corpus = write_toy_corpus(tmp_path / "c", train=2, val=1)
    utterances = load_utterances(corpus, "train")
    utt = utterances[0]
    audio = utt.audio(0, len(utt.motion) * SAMPLES_PER_FRAME + spec.LOOKAHEAD_SAMPLES)
    for k in (0, 1, 5, utt.hops - 1):
        start = SAMPLES_PER_FRAME * k - spec.PAST_SAMPLES
        samples = np.zeros(spec.WINDOW_SAMPLES, np.float32)
        lo = max(0, start)
        piece = audio[lo : start + spec.WINDOW_SAMPLES]
        samples[lo - start : lo - start + len(piece)] = piece
        np.testing.assert_allclose(window(utt, k), audio_features.log_mel(samples), atol=1e-5)
        samples[-SAMPLES_PER_FRAME:] = 0.0  # the last frame's audio not yet arrived
        np.testing.assert_allclose(
            window(utt, k, partial=True), audio_features.log_mel(samples), atol=1e-5
        )
        buffer = MotionBuffer(50)
        for i in range(k):
            buffer.append(i, utt.motion[i])
        np.testing.assert_array_equal(history_of(utt.motion, k), buffer.last(spec.HISTORY_FRAMES))
    _, std = motion_statistics(utterances)
    a = WindowSampler(utterances, std, AugmentConfig(), seed=3).sample(8)
    b = WindowSampler(utterances, std, AugmentConfig(), seed=3).sample(8)
    np.testing.assert_array_equal(a.history, b.history)
    assert a.mel.shape == (8, spec.MEL_FRAMES, spec.N_MELS)
    assert a.target.shape == (8, spec.HOP_FRAMES, spec.DIM)
    assert np.all(motion_frame.clip(a.history) == a.history)


def test_missing_models_say_how_to_make_them(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="emote train"):
        LearnedMotionGenerator(models_dir=tmp_path)
    with pytest.raises(ValueError):
        LearnedMotionGenerator("student", steps=5, models_dir=tmp_path)


def test_lookahead_is_at_most_80_ms() -> None:
    assert LearnedMotionGenerator.lookahead_samples <= 1280
    assert audio_features.num_frames(spec.WINDOW_SAMPLES) == spec.MEL_FRAMES


# --- trained on the toy corpus ---------------------------------------------------------------


@pytest.mark.slow
def test_export_passes_tensorrt_check_and_parity(trained: Trained) -> None:
    for which in spec.WHICH:
        assert trained.report[which]["parity_max_rel"] < 1e-5
        for name in spec.graph_files(which):
            assert check_graph(trained.models / name) == []
    total = sum(p.stat().st_size for p in trained.models.glob("motion_*.onnx"))
    assert total <= 10e6


@pytest.mark.slow
def test_teacher_and_student_learn_the_bursts(trained: Trained) -> None:
    teacher = jaw_correlation(lambda: LearnedMotionGenerator("teacher", models_dir=trained.models))
    assert teacher > 0.6
    for steps in (1, 2, 3, 4):
        student = jaw_correlation(
            lambda steps=steps: LearnedMotionGenerator("student", steps, models_dir=trained.models)
        )
        assert student > 0.6, steps


@pytest.mark.slow
def test_stream_frames_are_in_limits_and_deterministic(trained: Trained) -> None:
    audio, _ = held_out(seed=5, count=1)[0]
    make = lambda seed: LearnedMotionGenerator(models_dir=trained.models, seed=seed)  # noqa: E731
    frames = run_stream(make(1), audio)
    assert frames.shape == (frames_for(len(audio)), motion_frame.DIM)
    np.testing.assert_array_equal(frames, motion_frame.clip(frames))
    np.testing.assert_array_equal(frames, run_stream(make(1), audio, chunk=320))
    assert not np.array_equal(frames, run_stream(make(2), audio))
    # Same hops, other chunk sizes: identical (the noise is a function of seed and frame).
    np.testing.assert_array_equal(
        run_stream(make(1), audio, chunk=640, hop=1), run_stream(make(1), audio, chunk=999, hop=1)
    )


@pytest.mark.slow
def test_torch_and_onnxruntime_generators_agree(trained: Trained) -> None:
    audio, _ = held_out(seed=6, count=1)[0]
    for which, checkpoint in (("teacher", trained.teacher), ("student", trained.student)):
        ort = run_stream(LearnedMotionGenerator(which, models_dir=trained.models), audio)
        ref = LearnedMotionGenerator(which, graphs=motion_engines(checkpoint, which))
        np.testing.assert_allclose(ort, run_stream(ref, audio), atol=2e-4)


@pytest.mark.slow
def test_audio_beyond_the_lookahead_changes_nothing(trained: Trained) -> None:
    audio, _ = held_out(seed=7, count=1)[0]
    cut = 40 * SAMPLES_PER_FRAME
    other = audio.copy()
    other[cut:] = np.random.default_rng(0).standard_normal(len(audio) - cut) * 0.2
    a = run_stream(LearnedMotionGenerator(models_dir=trained.models), audio, chunk=len(audio))
    b = run_stream(LearnedMotionGenerator(models_dir=trained.models), other, chunk=len(audio))
    # Hops of 2 frames from frame 0: the hop starting at k reads up to 640 (k + 2) + lookahead.
    unaffected = max(k for k in range(0, 80, 2) if 640 * (k + 2) + spec.LOOKAHEAD_SAMPLES <= cut)
    np.testing.assert_array_equal(a[: unaffected + 2], b[: unaffected + 2])
    assert not np.allclose(a[unaffected + 2 :], b[unaffected + 2 :])


@pytest.mark.slow
def test_generate_checks_its_window_and_handles_any_hop(trained: Trained) -> None:
    gen = LearnedMotionGenerator(models_dir=trained.models)
    history = np.zeros((gen.history_frames, motion_frame.DIM), np.float32)
    with pytest.raises(ValueError):
        gen.generate(np.zeros(100, np.float32), history, 0, 1)
    for n in (1, 2, 3, 5):
        samples = gen.past_samples + n * SAMPLES_PER_FRAME + gen.lookahead_samples
        out = gen.generate(np.zeros(samples, np.float32), history, 10, n)
        assert out.shape == (n, motion_frame.DIM)


@pytest.mark.slow
def test_reset_eases_back_to_idle(trained: Trained) -> None:
    audio, motion = held_out(seed=8, count=1)[0]
    # A frame in the middle of a burst, where the mouth is open.
    cut = int(np.argmax(motion[20:, JAW] > 0.4)) + 22
    gen = LearnedMotionGenerator(models_dir=trained.models)
    stream = MotionStream(gen, hop_frames=2)
    speech = audio[: cut * SAMPLES_PER_FRAME]
    frames = [f for s in range(0, len(speech), 320) for _, f in stream.push(speech[s : s + 320])]
    at = stream.next_frame
    gen.reset()
    frames += [f for _, f in stream.push(np.zeros(SR, np.float32))]
    frames = np.stack(frames)
    assert frames[at - 1, JAW] > 0.2, "the test needs an open mouth at the reset"
    # The toy's mouth snaps to the (now muted) audio; everything else must not jump.
    assert np.abs(frames[at, 16:] - frames[at - 1, 16:]).max() < 0.1
    assert frames[at + 5 : at + 10, JAW].max() < 0.1


def test_training_is_deterministic_given_the_seed(tmp_path: Path) -> None:
    import torch

    from training.train_teacher import TeacherConfig, train_teacher

    corpus = write_toy_corpus(tmp_path / "c", train=3, val=1)
    runs = []
    for name in ("a", "b"):
        config = TeacherConfig.tiny(corpus, tmp_path / f"{name}.pt", seed=4)
        config.steps = 8
        runs.append(train_teacher(config).model.state_dict())
    for key, value in runs[0].items():
        assert torch.equal(value, runs[1][key]), key
