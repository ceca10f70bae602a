"""Offline render speed: whole-process real-time factor and per-stage cost per frame.

    python -m bench.render_speed [--runs 3] [--json OUT.json]

Whole process: `emote render` as a subprocess (start-up, imports, cached avatar, model
load, decode, motion, render, encode, mux), timed end to end, on the bundled 7.1 s clip and on
a 30 s clip made of the real speech in ../shared/assets/speech. Stages: each stage alone on
one core, on the bundled clip's real motion; the render with the CPU path (split graph +
engines.compose) and with the whole-frame graph; the live server's I420 conversion and VP8
encoding of those frames.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from contracts.paths import DEFAULT_PORTRAIT as PORTRAIT
from contracts.paths import DEFAULT_SPEECH as CLIP
from contracts.paths import SHARED_SPEECH


def long_clip(path: Path, seconds: float = 30.0) -> Path:
    """Concatenate real speech clips into one WAV of about ``seconds``."""
    from engines.audio_io import decode_audio
    from measure.clip import write_wav

    sources = sorted(SHARED_SPEECH.glob("*.wav")) or [CLIP]
    pieces, total = [], 0
    while total < seconds * 16000:
        for wav in sources:
            pieces.append(decode_audio(wav))
            total += len(pieces[-1])
    write_wav(path, np.concatenate(pieces)[: int(seconds * 16000)])
    return path


def whole_process(audio: Path, out: Path, cache: Path, runs: int) -> dict[str, float]:
    command = [
        sys.executable,
        "-m",
        "emote",
        "--cache-dir",
        str(cache),
        "render",
        "--image",
        str(PORTRAIT),
        "--audio",
        str(audio),
        "--output",
        str(out),
        "--quiet",
    ]
    subprocess.run(command, check=True, capture_output=True)  # warm the avatar cache
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
    from engines.audio_io import decode_audio

    seconds = len(decode_audio(audio)) / 16000
    wall = statistics.median(walls)
    return {"audio_s": round(seconds, 2), "wall_s": round(wall, 2), "rtf": round(wall / seconds, 3)}


def stages(cache: Path) -> dict[str, float]:
    """Milliseconds per 25 fps frame for each stage alone (one thread each)."""
    import engines.dsp_motion as dsp
    from engines.audio_io import iter_audio
    from engines.avatar import prepare_avatar
    from engines.backends import create_engine
    from engines.frame_renderer import FrameRenderer
    from engines.motion_stream import MotionStream
    from engines.mp4_writer import Mp4Writer
    from engines.renderer_models import create_renderer
    from engines.rig import rig_for_avatar

    t0 = time.perf_counter()
    chunks = list(iter_audio(CLIP))
    decode_ms = (time.perf_counter() - t0) * 1000

    feature_ms = 0.0
    analyse = dsp.analyse

    def timed_analyse(*args, **kwargs):
        nonlocal feature_ms
        t = time.perf_counter()
        result = analyse(*args, **kwargs)
        feature_ms += (time.perf_counter() - t) * 1000
        return result

    dsp.analyse = timed_analyse
    try:
        stream = MotionStream(dsp.DspMotionGenerator(seed=0))
        t0 = time.perf_counter()
        frames = [f for c in chunks for _, f in stream.push(c.session)] + [
            f for _, f in stream.flush()
        ]
        motion_total_ms = (time.perf_counter() - t0) * 1000
    finally:
        dsp.analyse = analyse
    n = len(frames)

    avatar = prepare_avatar(PORTRAIT, cache_dir=cache)
    rig = rig_for_avatar(avatar.avatar_id, avatar.image, avatar.landmarks, cache)
    renderer = FrameRenderer(create_renderer(threads=1), rig)
    renderer.render(frames[0])
    renders, rgb = [], []
    for f in frames:
        t = time.perf_counter()
        rgb.append(renderer.render(f)[0])
        renders.append((time.perf_counter() - t) * 1000)
    whole = FrameRenderer(create_engine("renderer", threads=1), rig)  # GPUs' graph, on the CPU
    whole.render(frames[0])
    whole_renders = []
    for f in frames:
        t = time.perf_counter()
        whole.render(f)
        whole_renders.append((time.perf_counter() - t) * 1000)
    batched = []
    for i in range(0, n - 1, 2):
        t = time.perf_counter()
        renderer.render(np.stack(frames[i : i + 2]))
        batched.append((time.perf_counter() - t) * 1000 / 2)

    with tempfile.TemporaryDirectory() as tmp:
        writer = Mp4Writer(Path(tmp) / "x.mp4", 25, rgb[0].shape[0])
        t0 = time.perf_counter()
        for image in rgb:
            writer.write_video(image)
        writer.close()
        encode_ms = (time.perf_counter() - t0) * 1000
    return {
        "frames": n,
        "decode_ms": round(decode_ms / n, 3),
        "features_ms": round(feature_ms / n, 3),
        "motion_ms": round((motion_total_ms - feature_ms) / n, 3),
        "render_ms_p50": round(float(np.median(renders)), 2),
        "render_ms_p90": round(float(np.percentile(renders, 90)), 2),
        "render_batch2_ms_per_frame": round(float(np.median(batched)), 2),
        "render_whole_frame_graph_ms_p50": round(float(np.median(whole_renders)), 2),
        "encode_ms": round(encode_ms / n, 2),
        **live_encode(rgb),
    }


def live_encode(rgb: list[np.ndarray]) -> dict[str, float]:
    """The live server's per-frame video costs on rendered frames (median ms, one thread):
    RGB -> I420 by OpenCV (the server) and by swscale (what aiortc does with RGB frames), and
    VP8 by aiortc's encoder and by the server's (stream_server/video_codec.py) at aiortc's
    starting bitrate and at its ceiling."""
    import fractions

    import av
    import cv2
    from aiortc.codecs.vpx import Vp8Encoder

    from stream_server.video_codec import FastVp8Encoder

    def median_ms(fn, items) -> float:
        times = []
        for item in items:
            t = time.perf_counter()
            fn(item)
            times.append((time.perf_counter() - t) * 1000)
        return round(float(np.median(times[5:])), 2)

    i420 = [cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420) for image in rgb]
    result = {
        "i420_opencv_ms": median_ms(lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2YUV_I420), rgb),
        "i420_swscale_ms": median_ms(
            lambda x: av.VideoFrame.from_ndarray(x, format="rgb24").reformat(format="yuv420p"),
            rgb,
        ),
    }
    for name, factory in (("aiortc", Vp8Encoder), ("server", FastVp8Encoder)):
        for bitrate in (500_000, 1_500_000):
            encoder = factory()
            encoder.target_bitrate = bitrate
            frames = []
            for k, planes in enumerate(i420):
                frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
                frame.pts, frame.time_base = k * 3600, fractions.Fraction(1, 90_000)
                frames.append(frame)
            result[f"vp8_{name}_{bitrate // 1000}kbps_ms"] = median_ms(encoder.encode, frames)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("GLOG_minloglevel", "2")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = {
            "machine": f"{os.cpu_count()} cores, {os.uname().machine}",
            "clip_7s": whole_process(CLIP, work / "a.mp4", work / "cache", args.runs),
            "clip_30s": whole_process(
                long_clip(work / "long.wav"), work / "b.mp4", work / "cache", args.runs
            ),
            "stages_per_frame": stages(work / "cache"),
        }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
