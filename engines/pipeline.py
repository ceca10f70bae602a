"""Portrait file + audio file (or motion frames) -> MP4 in one call: the offline pipeline's
front.

Prepares (or loads from the cache) the avatar and its rig, loads the renderer graph for the
frame size, backend and device, and renders through engines.offline (``render_file``: motion
from a generator driven by the audio; ``render_motion_file``: motion given, e.g. read from a
motion file). ``motion_from_audio`` is the generator's motion alone (`emote motion`). What
`emote render` and the lip-sync measurements (measure/) call; the command line adds the
checks, messages and the on-demand export of renderer sizes other than the shipped one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contracts.clock import FPS
from engines.audio_io import iter_audio
from engines.avatar import Avatar, default_cache_dir, prepare_avatar
from engines.engine import Engine
from engines.motion_stream import MotionGenerator, MotionStream
from engines.offline import RenderResult, render_motion_to_mp4, render_to_mp4
from engines.renderer_models import create_renderer, renderer_model_for_size
from engines.rig import Rig, rig_for_avatar


@dataclass(frozen=True)
class RenderOptions:
    """How to render: frame size and rate, where avatars are cached, and which renderer.

    ``engine``: a renderer engine to use instead of loading ``backend``/``device``'s graph
    for ``size`` (e.g. the torch reference); ``progress`` is called with the seconds of
    video done; ``on_avatar`` sees the prepared avatar (its warnings) before rendering starts.
    """

    size: int = 512
    fps: int = FPS
    cache_dir: Path | None = None
    backend: str = "onnxruntime"
    device: str = "cpu"
    engine: Engine | None = None
    progress: Callable[[float], None] | None = None
    on_avatar: Callable[[Avatar], None] | None = None


def render_file(
    image: Path,
    audio: Path,
    output: Path,
    generator: MotionGenerator,
    options: RenderOptions = RenderOptions(),
) -> RenderResult:
    """Render ``audio`` spoken by the face in ``image`` into ``output`` (H.264 + AAC MP4)."""
    avatar, rig, engine = _setup(image, options)
    return render_to_mp4(
        avatar, rig, audio, output, generator, engine, options.fps, options.progress
    )


def render_motion_file(
    image: Path,
    motion: np.ndarray,
    output: Path,
    audio: Path | None = None,
    options: RenderOptions = RenderOptions(),
) -> RenderResult:
    """Render given 25 fps motion frames ``(n, DIM)`` on the face in ``image`` into
    ``output``, with ``audio``'s sound (cut or padded to the motion's length) or silence."""
    avatar, rig, engine = _setup(image, options)
    return render_motion_to_mp4(
        avatar, rig, motion, output, engine, audio, options.fps, options.progress
    )


def motion_from_audio(audio: Path, generator: MotionGenerator) -> Iterator[np.ndarray]:
    """The motion frames ``generator`` makes for ``audio``, exactly as ``render_file`` renders
    them (the same 20 ms chunks into the same MotionStream)."""
    stream = MotionStream(generator)
    for chunk in iter_audio(audio):
        for _, frame in stream.push(chunk.session):
            yield frame
    for _, frame in stream.flush():
        yield frame


def _setup(image: Path, options: RenderOptions) -> tuple[Avatar, Rig, Engine]:
    """The avatar and rig (prepared or from the cache) and the renderer engine."""
    cache = options.cache_dir if options.cache_dir is not None else default_cache_dir()
    engine = options.engine
    models_dir = renderer_model_for_size(options.size, cache) if engine is None else None
    avatar = prepare_avatar(image, size=options.size, cache_dir=cache)
    if options.on_avatar is not None:
        options.on_avatar(avatar)
    rig = rig_for_avatar(avatar.avatar_id, avatar.image, avatar.landmarks, cache)
    if engine is None:
        engine = create_renderer(options.backend, options.device, models_dir=models_dir)
    return avatar, rig, engine
