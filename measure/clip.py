"""A clip rendered offline and read back: speech written as 16 kHz WAV, the portrait rendered
speaking it (``engines.pipeline.render_file``, as ``emote render`` does), the MP4's frames
decoded as RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contracts.clock import SAMPLE_RATE


def decode_video(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def render_clip(image: Path, audio: Path, out: Path, seed: int = 0, motion: str = "dsp") -> None:
    """Render ``image`` speaking ``audio`` into the MP4 ``out`` with the ``motion`` generator
    (``emote render``'s defaults: 512 px, 25 fps, onnxruntime on the CPU, the default avatar
    cache)."""
    from engines.motion_generators import make_generator
    from engines.pipeline import render_file

    render_file(image, audio, out, make_generator(motion, seed=seed))


def write_wav(path: Path, audio: np.ndarray) -> None:
    import wave

    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes())
