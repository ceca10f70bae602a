"""Portrait file + audio file -> MP4 in one call: the offline pipeline's front.

Prepares (or loads from the cache) the avatar and its rig, loads the renderer graph for the
frame size, backend and device, and renders through engines.offline.render_to_mp4. What
`emote render` and the lip-sync measurements (measure/) call; the command line adds the
checks, messages and the on-demand export of renderer sizes other than the shipped one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from contracts.clock import FPS
from engines.avatar import Avatar, default_cache_dir, prepare_avatar
from engines.engine import Engine
from engines.motion_stream import MotionGenerator
from engines.offline import RenderResult, render_to_mp4
from engines.renderer_models import create_renderer, renderer_model_for_size
from engines.rig import rig_for_avatar


def render_file(
    image: Path,
    audio: Path,
    output: Path,
    generator: MotionGenerator,
    *,
    size: int = 512,
    fps: int = FPS,
    cache_dir: Path | None = None,
    backend: str = "onnxruntime",
    device: str = "cpu",
    engine: Engine | None = None,
    progress: Callable[[float], None] | None = None,
    on_avatar: Callable[[Avatar], None] | None = None,
) -> RenderResult:
    """Render ``audio`` spoken by the face in ``image`` into ``output`` (H.264 + AAC MP4).

    ``engine``: a renderer engine to use instead of loading ``backend``/``device``'s graph
    for ``size`` (e.g. the torch reference); ``on_avatar`` sees the prepared avatar (its
    warnings) before rendering starts.
    """
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    models_dir = renderer_model_for_size(size, cache) if engine is None else None  # first
    avatar = prepare_avatar(image, size=size, cache_dir=cache)
    if on_avatar is not None:
        on_avatar(avatar)
    rig = rig_for_avatar(avatar.avatar_id, avatar.image, avatar.landmarks, cache)
    if engine is None:
        engine = create_renderer(backend, device, models_dir=models_dir)
    return render_to_mp4(avatar, rig, audio, output, generator, engine, fps, progress)
