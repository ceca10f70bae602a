"""Every ``EMOTE_*`` environment variable, read and checked once per process.

| variable | default | what it sets |
|---|---|---|
| ``EMOTE_CACHE_DIR`` | ``~/.cache/emote`` | avatars, rigs, exported renderers (--cache-dir wins) |
| ``EMOTE_ORT_THREADS`` | 1 | onnxruntime intra-op threads per engine |
| ``EMOTE_ORT_OPT`` | ``all`` | onnxruntime graph optimization: disable, basic, extended, all |
| ``EMOTE_TRT_CACHE`` | ``~/.cache/emote/trt`` | built TensorRT engines |
| ``EMOTE_TRT_PRECISION`` | ``fp32`` | native TensorRT precision: fp32, fp16 |
| ``EMOTE_RENDER_WORKERS`` | cores + 1 | render threads of ``emote render`` |
| ``EMOTE_RENDER_BATCH`` | 1 | frames per engine call in ``emote render`` |
| ``EMOTE_TOKEN`` | (none) | the API's bearer token for ``emote serve`` (--token wins) |
| ``EMOTE_TURN_SECRET`` | (none) | coturn's static-auth-secret (``--turn-secret`` wins) |

The README's table is this one. ``current()`` parses the environment on its first call and
keeps the result for the process (render processes are spawned and read their own, inherited
copy); a malformed value raises ``SettingsError`` naming the variable. ``Settings.from_env``
parses any mapping (tests).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ORT_OPT_LEVELS = ("disable", "basic", "extended", "all")
TRT_PRECISIONS = ("fp32", "fp16")


class SettingsError(ValueError):
    """An ``EMOTE_*`` variable holds a value it cannot take."""


@dataclass(frozen=True)
class Settings:
    cache_dir: Path
    ort_threads: int
    ort_opt: str
    trt_cache: Path
    trt_precision: str
    render_workers: int
    render_batch: int
    token: str | None = None
    turn_secret: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        home = Path.home() / ".cache" / "emote"
        return cls(
            cache_dir=_path(env, "EMOTE_CACHE_DIR", home),
            ort_threads=_positive(env, "EMOTE_ORT_THREADS", 1),
            ort_opt=_choice(env, "EMOTE_ORT_OPT", "all", ORT_OPT_LEVELS),
            trt_cache=_path(env, "EMOTE_TRT_CACHE", home / "trt"),
            trt_precision=_choice(env, "EMOTE_TRT_PRECISION", "fp32", TRT_PRECISIONS),
            render_workers=_positive(env, "EMOTE_RENDER_WORKERS", (os.cpu_count() or 1) + 1),
            render_batch=_positive(env, "EMOTE_RENDER_BATCH", 1),
            token=_token(env, "EMOTE_TOKEN"),
            turn_secret=_read(env, "EMOTE_TURN_SECRET"),
        )


@functools.cache
def current() -> Settings:
    """This process's settings (``os.environ`` read on the first call)."""
    return Settings.from_env(os.environ)


def _read(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    value = _read(env, name)
    return Path(value).expanduser() if value else default


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = _read(env, name)
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise SettingsError(f"{name} must be a positive whole number, got {value!r}")
    return int(value)


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _read(env, name) or default
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _token(env: Mapping[str, str], name: str) -> str | None:
    value = _read(env, name)
    if value is not None and (len(value) < 16 or not value.isprintable() or " " in value):
        raise SettingsError(f"{name} must be at least 16 printable characters without spaces")
    return value
