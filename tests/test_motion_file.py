"""Motion files: the format (contracts/motion_file.py), `emote motion` and `emote render
--motion-file`.

The parser is checked line by line on every kind of bad input (each error names its line);
`emote motion` must write exactly the motion `emote render` would render for the audio; a
rendered motion file must change the face at the commanded frame, last as long as the
motion, carry the given audio cut to that length, and a bad file must leave neither an
output nor an avatar cache entry.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
import numpy as np
import pytest

from contracts import motion_frame
from contracts.motion_file import (
    MotionFileError,
    parse_lines,
    read_motion_file,
    write_motion,
)
from contracts.paths import DEFAULT_PORTRAIT, DEFAULT_SPEECH
from emote.cli import main
from engines.dsp_motion import DspMotionGenerator
from engines.pipeline import motion_from_audio
from measure.clip import decode_video

JAW = motion_frame.INDEX["jawOpen"]
YAW = motion_frame.INDEX["headYaw"]


def _lines(*records: dict) -> list[str]:
    return [json.dumps(r) for r in records]


# --- the format ----------------------------------------------------------------------------


def test_frames_without_a_header_are_25_fps_and_unnamed_fields_neutral() -> None:
    track = parse_lines(
        _lines({"motion": {"jawOpen": 0.5}}, {"motion": {"jawOpen": 0.7, "headYaw": -0.2}})
    )
    assert track.frames.shape == (2, motion_frame.DIM)
    assert track.frames[:, JAW] == pytest.approx([0.5, 0.7])
    assert track.frames[1, YAW] == pytest.approx(-0.2)
    others = np.delete(track.frames, [JAW, YAW], axis=1)
    assert not others.any()


def test_other_rates_and_times_are_resampled_to_25_fps() -> None:
    # A 50 fps capture: jawOpen rises linearly from 0 to 1 over 1 s.
    lines = [json.dumps({"emote_motion": 1, "fps": 50, "device": "phone"})]
    lines += _lines(*({"frame": k, "motion": {"jawOpen": k / 50}} for k in range(51)))
    track = parse_lines(lines)
    assert len(track.frames) == 26 and track.seconds == pytest.approx(1.04)
    assert track.frames[:, JAW] == pytest.approx(np.arange(26) / 25, abs=1e-6)
    assert track.header["device"] == "phone"
    # Irregular times: values in between are interpolated, held before the first time.
    track = parse_lines(
        _lines({"t": 0.12, "motion": {"jawOpen": 0.2}}, {"t": 0.28, "motion": {"jawOpen": 0.6}})
    )
    expected = [0.2, 0.2, 0.2, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert track.frames[:, JAW] == pytest.approx(expected, abs=1e-6)


def test_arkit_blendshapes_the_frame_does_not_carry_are_listed_not_refused() -> None:
    track = parse_lines(_lines({"motion": {"tongueOut": 1.0, "cheekPuff": 0.5, "jawOpen": 0.3}}))
    assert track.ignored == ("cheekPuff", "tongueOut")
    assert track.frames[0, JAW] == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("second_line", "message"),
    [
        ('{"motion": {"jawOpn": 0.5}}', "line 2: unknown motion field 'jawOpn'"),
        ('{"motion": {"jawOpen": 1.5}}', "line 2: jawOpen = 1.5 is outside [0, 1]"),
        ('{"motion": {"headYaw": -0.7}}', "line 2: headYaw = -0.7 is outside [-0.6, 0.6]"),
        ('{"motion": {"jawOpen": NaN}}', "line 2: jawOpen = nan is outside"),
        ('{"motion": {"jawOpen": "0.5"}}', "line 2: jawOpen must be a number"),
        ('{"motion": {"jawOpen": true}}', "line 2: jawOpen must be a number"),
        ('{"motion": [0.5]}', 'line 2: "motion" must be an object'),
        ('{"motion": {}, "frame": 0}', "line 2: time 0.0000 s does not come after 0.0000 s"),
        ('{"motion": {}, "frame": -1}', 'line 2: "frame" must be a whole number >= 0'),
        ('{"motion": {}, "frame": 1.5}', 'line 2: "frame" must be a whole number >= 0'),
        ('{"motion": {}, "t": 1, "frame": 2}', 'line 2: give "frame" or "t", not both'),
        ('{"motion": {}, "t": -1}', 'line 2: "t" must be seconds >= 0'),
        ('{"motion": {}, "extra": 1}', "line 2: unknown key(s) ['extra']"),
        ('{"frame": 3}', 'line 2: a frame line needs "motion"'),
        ('{"motion": {}', "line 2: not JSON"),
        ("[1, 2]", "line 2: expected a JSON object"),
        ('{"emote_motion": 1}', "line 2: the header must be the first line"),
        ('{"motion": {}, "frame": 9000000}', "longer than this renderer takes"),
    ],
)
def test_bad_lines_name_the_line(second_line: str, message: str) -> None:
    with pytest.raises(MotionFileError) as error:
        parse_lines(['{"frame": 0, "motion": {"jawOpen": 0.1}}', second_line], "m.jsonl")
    assert str(error.value).startswith("m.jsonl, line 2") and message in str(error.value)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ('{"emote_motion": 2}', "format version 2"),
        ('{"emote_motion": 1, "fps": 0}', '"fps" must be between 1 and 240'),
        ('{"emote_motion": 1, "fps": "25"}', '"fps" must be a number'),
    ],
)
def test_bad_headers_are_refused(header: str, message: str) -> None:
    with pytest.raises(MotionFileError, match=message):
        parse_lines([header, '{"motion": {}}'])


def test_empty_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(MotionFileError, match="no motion frames"):
        parse_lines(["", '{"emote_motion": 1}', "  "])
    with pytest.raises(MotionFileError, match="motion file not found"):
        read_motion_file(tmp_path / "missing.jsonl")
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(MotionFileError, match="not UTF-8"):
        read_motion_file(binary)


def test_written_motion_reads_back_clipped_and_rounded() -> None:
    rng = np.random.default_rng(0)
    frames = rng.uniform(-1.2, 1.2, (30, motion_frame.DIM)).astype(np.float32)
    handle = io.StringIO()
    assert write_motion(handle, frames, source="test") == 30
    track = parse_lines(handle.getvalue().splitlines())
    assert track.header["source"] == "test"
    np.testing.assert_allclose(track.frames, motion_frame.clip(frames), atol=5e-6)


# --- the command line ----------------------------------------------------------------------


def test_emote_motion_writes_what_render_would_render(tmp_path: Path) -> None:
    out = tmp_path / "speech.jsonl"
    assert main(["motion", "--motion", "dsp", "--seed", "3", "--output", str(out)]) == 0
    header = json.loads(out.read_text().splitlines()[0])
    assert header["motion"] == "dsp" and header["seed"] == 3
    expected = np.stack(list(motion_from_audio(DEFAULT_SPEECH, DspMotionGenerator(seed=3))))
    frames = read_motion_file(out).frames
    assert frames.shape == expected.shape
    np.testing.assert_allclose(frames, motion_frame.clip(expected), atol=5e-6)


def test_emote_motion_bad_audio_writes_nothing(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    out = tmp_path / "m.jsonl"
    assert main(["motion", "--audio", str(bad), "--output", str(out)]) == 2
    assert "emote: error:" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [bad]


def _step_motion(path: Path, frames: int, step: int) -> Path:
    """jawOpen 0 before frame ``step``, 0.9 from it on (plus ignored ARKit names)."""
    records = [{"emote_motion": 1, "fps": 25}] + [
        {"frame": k, "motion": {"jawOpen": 0.9 if k >= step else 0.0, "cheekPuff": 0.2}}
        for k in range(frames)
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_render_a_motion_file_with_audio(session_cache: Path, tmp_path: Path, capsys) -> None:
    motion = _step_motion(tmp_path / "step.jsonl", frames=30, step=12)
    out = tmp_path / "step.mp4"
    argv = ["--cache-dir", str(session_cache), "render", "--motion-file", str(motion)]
    argv += ["--audio", str(DEFAULT_SPEECH), "--output", str(out), "--quiet"]
    assert main(argv) == 0
    assert "ignored 1 ARKit blendshape(s) the motion frame does not carry: cheekPuff" in (
        capsys.readouterr().err
    )
    frames = decode_video(out)
    assert len(frames) == 30
    # The face changes where the motion does: still from frame 0 to 11, a jump at frame 12.
    change = [float(np.abs(f.astype(int) - frames[0].astype(int)).mean()) for f in frames]
    assert max(change[:12]) < 0.5 and change[12] > 1.5  # (encoder drift vs the opening)
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        seconds = sum(f.samples for f in container.decode(audio)) / audio.rate
    assert seconds == pytest.approx(30 / 25, abs=0.03)  # the 7 s speech, cut to 1.2 s


def test_render_a_motion_file_without_audio_is_silent(session_cache: Path, tmp_path: Path) -> None:
    motion = _step_motion(tmp_path / "step.jsonl", frames=10, step=5)
    out = tmp_path / "silent.mp4"
    argv = ["--cache-dir", str(session_cache), "render", "--motion-file", str(motion)]
    assert main([*argv, "--output", str(out), "--quiet"]) == 0
    with av.open(str(out)) as container:
        samples = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    assert len(decode_video(out)) == 10
    assert np.abs(samples).max() < 1e-3


def test_a_bad_motion_file_changes_nothing(tmp_path: Path, capsys) -> None:
    motion = tmp_path / "bad.jsonl"
    motion.write_text('{"frame": 0, "motion": {"jawOpen": 0.2}}\n{"frame": 1, "motion": 7}\n')
    cache, out = tmp_path / "cache", tmp_path / "out.mp4"
    argv = ["--cache-dir", str(cache), "render", "--image", str(DEFAULT_PORTRAIT)]
    assert main([*argv, "--motion-file", str(motion), "--output", str(out)]) == 2
    assert "emote: error: bad.jsonl, line 2:" in capsys.readouterr().err
    assert not out.exists() and not cache.exists()
    # A generator's options with a motion file: one or the other.
    good = _step_motion(tmp_path / "good.jsonl", frames=3, step=1)
    assert main([*argv, "--motion-file", str(good), "--motion", "dsp", "--output", str(out)]) == 2
    assert "give one or the other" in capsys.readouterr().err
    assert not out.exists() and not cache.exists()
