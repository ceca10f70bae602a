"""What every integration draws with: the portrait, the motion generator and the renderer,
built into the push core (``engines.avatar_frames``) for one session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contracts.paths import DEFAULT_PORTRAIT
from contracts.style import NEUTRAL, Style
from engines.avatar import Avatar, AvatarError, avatar_id_of_file, load_cached, prepare_avatar
from engines.avatar_frames import AvatarFrames
from engines.frame_renderer import FrameRenderer
from engines.motion_generators import DEFAULT_LIVE_MOTION, make_generator
from engines.renderer_models import create_renderer
from engines.rig import rig_for_avatar


@dataclass(frozen=True)
class AvatarSettings:
    """What a worker draws: the portrait (file or prepared id), the motion generator, the
    speaking style, the renderer's backend, the avatar cache."""

    portrait: str = str(DEFAULT_PORTRAIT)
    motion: str = DEFAULT_LIVE_MOTION
    style: Style = NEUTRAL
    backend: str = "onnxruntime"
    device: str = "cpu"
    cache_dir: Path | None = None
    seed: int = 0


def load_avatar(portrait: str | Path, cache_dir: Path | None = None) -> Avatar:
    """The prepared avatar of ``portrait`` (a file, or a prepared avatar's id). Loading a
    prepared one needs no mediapipe; preparing a new one does (`emote prepare` in .venv)."""
    path = Path(portrait)
    if path.is_file():
        cached = load_cached(avatar_id_of_file(path), cache_dir)
        if cached is not None:
            return cached
        try:
            return prepare_avatar(path, cache_dir=cache_dir)
        except ImportError as e:  # .venv-integrations has no mediapipe
            raise AvatarError(
                f"{path} is not prepared yet: run `.venv/bin/emote prepare {path}` once "
                "(the same cache), then start the worker again"
            ) from e
    cached = load_cached(str(portrait), cache_dir)
    if cached is None:
        raise AvatarError(f"no portrait file and no prepared avatar named {portrait!r}")
    return cached


def make_core(settings: AvatarSettings, rate: int) -> tuple[AvatarFrames, int]:
    """A fresh push core for one session (its own motion state and timeline) with audio at
    ``rate``, and the frame size."""
    avatar = load_avatar(settings.portrait, settings.cache_dir)
    rig = rig_for_avatar(avatar.avatar_id, avatar.image, avatar.landmarks, settings.cache_dir)
    renderer = FrameRenderer(create_renderer(settings.backend, settings.device), rig)
    generator = make_generator(settings.motion, seed=settings.seed)
    generator.set_style(settings.style)
    return AvatarFrames(renderer.render, generator, rate=rate), int(avatar.image.shape[0])
