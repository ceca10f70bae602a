"""The whole learned-motion pipeline, tiny: corpus -> teacher -> student -> ONNX -> inference
-> evaluation -> render, through the `emote` command line, as CI runs it on every change.

The tiny corpus is a minute of speech from every installed TTS engine; the tiny training
runs learn little, so these tests check that each stage runs and hands the next one what
it needs, not quality (docs/benchmarks.md has the full run's numbers).
"""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from contracts import motion_frame
from contracts.paths import DEFAULT_SPEECH
from emote.cli import main as emote
from engines.motion_generators import make_generator
from engines.motion_stream import MotionStream
from export.trt_compat import check_graph
from training.corpus_format import iter_examples, read_manifest

SPEECH = DEFAULT_SPEECH

pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="TTS engines missing: run scripts/install_tts.sh"
)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train")
    paths = {"corpus": root / "corpus", "work": root / "work", "out": root / "models"}
    status = emote(
        ["train", "all", "--tiny", "--quiet"]
        + [arg for key, path in paths.items() for arg in (f"--{key}", str(path))]
    )
    assert status == 0
    return paths


@pytest.mark.slow
def test_corpus_has_every_engine_held_out_voices_and_aligned_targets(pipeline) -> None:
    manifest = read_manifest(pipeline["corpus"])
    engines = {u["engine"] for u in manifest["utterances"]}
    assert {"espeak-ng", "mbrola", "festival", "flite"} <= engines
    val = [u for u in manifest["utterances"] if u["split"] == "val"]
    train = [u for u in manifest["utterances"] if u["split"] == "train"]
    assert train, "no training utterances"
    # Whole voices are held out: no voice is in both splits.
    assert not {u["voice"] for u in val} & {u["voice"] for u in train}
    assert set(manifest["val_voices"]).isdisjoint({u["voice"] for u in train})
    for example in iter_examples(pipeline["corpus"]):
        assert example.motion.shape == (-(-len(example.audio) // 640), motion_frame.DIM)
        assert np.isfinite(example.motion).all()
        assert np.abs(example.audio).max() > 0.01


@pytest.mark.slow
def test_corpus_sings_raps_plays_music_and_has_styles(pipeline) -> None:
    utterances = read_manifest(pipeline["corpus"])["utterances"]
    assert {"song", "rap", "speech"} <= {u["delivery"] for u in utterances}
    assert {u["music"] for u in utterances} - {""}, "no utterance has a band under it"
    assert len({u["style"] for u in utterances}) >= 3
    examples = {e.info["id"]: e for e in iter_examples(pipeline["corpus"])}
    jaw = motion_frame.INDEX["jawOpen"]
    sung = [examples[u["id"]] for u in utterances if u["delivery"] == "song"]
    spoken = [examples[u["id"]] for u in utterances if u["delivery"] == "speech"]

    # Sung notes hold the jaw open longer than speech does.
    def open_share(es: list) -> float:
        return float(np.mean(np.concatenate([e.motion[:, jaw] for e in es]) > 0.3))

    assert open_share(sung) > open_share(spoken)

    # Some speech has a pause between phrases (the tiny corpus stretches inner silences),
    # and the jaw is shut in its middle.
    inner = [u for u in utterances if "inner_s" in (u.get("pauses") or {})]
    assert inner and all(u["delivery"] in ("speech", "held") for u in inner)
    for u in (u for u in inner if u["pauses"]["inner_s"] >= 0.5):
        pause = u["pauses"]
        # padded before it afterwards, then maybe sped up or slowed down by augmentation
        mid = pause.get("lead_s", 0.0) + pause["inner_at_s"] + pause["inner_s"] / 2
        mid *= u["augment"].get("speed", {}).get("time_scale", 1.0)
        assert examples[u["id"]].motion[int(mid * 25), jaw] < 0.1, u


@pytest.mark.slow
def test_corpus_is_reproducible_from_its_seed(pipeline, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert emote(["train", "corpus", "--tiny", "--quiet", "--corpus", str(again)]) == 0
    first = read_manifest(pipeline["corpus"])["utterances"]
    second = read_manifest(again)["utterances"]
    plan = ("voice", "split", "text", "rate", "pitch", "delivery", "music", "style", "augment")
    assert [[u[k] for k in plan] for u in first] == [[u[k] for k in plan] for u in second]
    # libespeak-ng keeps state between utterances in a process (which worker speaks which
    # sentence varies), so its durations can differ by a few per cent between runs; the
    # other engines are exact (docs/training.md).
    for a, b in zip(first, second, strict=True):
        tolerance = 0.06 * a["seconds"] if a["engine"] == "espeak-ng" else 0.002
        assert abs(a["seconds"] - b["seconds"]) <= tolerance, (a, b)


@pytest.mark.slow
def test_exported_graphs_are_tensorrt_compatible_and_small(pipeline) -> None:
    graphs = sorted(pipeline["out"].glob("motion_*.onnx"))
    names = {g.name for g in graphs}
    for which in ("teacher", "student"):
        assert f"motion_{which}_encoder.onnx" in names
        assert f"motion_{which}_denoiser.onnx" in names
    for graph in graphs:
        assert check_graph(graph) == [], graph.name
    assert sum(g.stat().st_size for g in graphs) < 20e6


@pytest.mark.slow
@pytest.mark.parametrize(("name", "steps"), [("learned", 1), ("learned", 4), ("teacher", 8)])
def test_learned_generators_stream_in_limits(pipeline, name: str, steps: int) -> None:
    generator = make_generator(name, seed=3, steps=steps, models_dir=pipeline["out"])
    example = next(iter_examples(pipeline["corpus"]))
    stream = MotionStream(generator)
    frames = [
        f
        for i in range(0, len(example.audio), 320)
        for _, f in stream.push(example.audio[i : i + 320])
    ]
    frames += [f for _, f in stream.flush()]
    motion = np.stack(frames)
    assert motion.shape == (-(-len(example.audio) // 640), motion_frame.DIM)
    np.testing.assert_array_equal(motion, motion_frame.clip(motion))


@pytest.mark.slow
def test_eval_compares_generators_on_held_out_voices(pipeline, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval.json"
    args = ["eval", "--motion", "dsp,learned", "--no-render", "--quiet", "--seeds", "2"]
    args += ["--corpus", str(pipeline["corpus"]), "--motion-models", str(pipeline["out"])]
    assert emote([*args, "--sample-seeds", "0"]) != 0
    assert "--sample-seeds must be at least 1" in capsys.readouterr().err
    assert emote([*args, "--sample-seeds", "2", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    for name in ("dsp", "learned"):
        motion = results[name]["real_speech_motion"]
        assert 0.0 <= motion["viseme_accuracy"] <= 1.0
        assert results[name]["heldout_voices"]["utterances"] >= 1
        assert results[name]["hop_smoothness"] > 0
        # The mean over the two seeds lies between their per-seed values.
        low, high = results[name]["spread"]["real_speech_motion"]["jaw_corr"]
        assert low <= motion["jaw_corr"] <= high
    assert "| viseme accuracy, motion (real speech) |" in capsys.readouterr().out


@pytest.mark.slow
def test_render_with_the_learned_motion(pipeline, tmp_path: Path, session_cache: Path) -> None:
    from engines.audio_io import decode_audio

    wav = tmp_path / "speech.wav"
    with wave.open(str(wav), "wb") as f:  # 2 s of real speech
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16_000)
        f.writeframes((decode_audio(SPEECH)[:32_000] * 32767).astype(np.int16).tobytes())
    out = tmp_path / "learned.mp4"
    args = ["--cache-dir", str(session_cache), "render", "--audio", str(wav)]
    args += ["--output", str(out), "--quiet"]
    args += ["--motion", "learned", "--steps", "2", "--motion-models", str(pipeline["out"])]
    assert emote(args) == 0
    assert out.stat().st_size > 10_000


def test_bad_steps_and_missing_models_are_clear_errors(tmp_path: Path, capsys) -> None:
    base = ["render", "--output", str(tmp_path / "x.mp4"), "--quiet", "--motion"]
    assert emote([*base, "learned", "--steps", "9"]) == 2
    assert "steps" in capsys.readouterr().err
    assert emote([*base, "learned", "--motion-models", str(tmp_path)]) == 2
    assert "emote train" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()
    # The server refuses to start rather than failing every session later.
    serve = ["serve", "--port", "0", "--motion", "learned", "--motion-models", str(tmp_path)]
    assert emote(serve) == 2
    assert "emote train" in capsys.readouterr().err
