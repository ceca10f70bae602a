"""The server's avatars: the bundled default plus uploads, prepared off the event loop."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path

from engines.avatar import Avatar, AvatarError, load_cached, prepare_avatar, prepare_avatar_bytes
from engines.rig import Rig, rig_for_avatar, rig_path

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class AvatarInfo:
    avatar_id: str
    name: str
    warnings: tuple[str, ...]
    default: bool

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.avatar_id,
            "name": self.name,
            "warnings": list(self.warnings),
            "default": self.default,
            "image": f"/api/avatars/{self.avatar_id}/image",
        }


class AvatarStore:
    def __init__(self, cache_dir: Path, default_image: Path) -> None:
        self.cache_dir = cache_dir
        self.default_image = default_image
        self._infos: dict[str, AvatarInfo] = {}
        self._lock = threading.Lock()
        self.default_id: str | None = None

    def load_default(self) -> AvatarInfo:
        avatar = prepare_avatar(self.default_image, cache_dir=self.cache_dir)
        info = self._register(avatar, self.default_image.stem.replace("_", " "), default=True)
        self.default_id = info.avatar_id
        self.ensure_rig(info.avatar_id)
        return info

    def _register(self, avatar: Avatar, name: str, default: bool = False) -> AvatarInfo:
        info = AvatarInfo(avatar.avatar_id, name, avatar.warnings, default)
        with self._lock:
            self._infos.setdefault(avatar.avatar_id, info)
        return self._infos[avatar.avatar_id]

    async def upload(self, data: bytes, name: str) -> AvatarInfo:
        """Prepare an uploaded image in a worker thread; raises AvatarError."""
        if len(data) > MAX_UPLOAD_BYTES:
            raise AvatarError("image over 50 MB")
        avatar = await asyncio.to_thread(prepare_avatar_bytes, data, 512, self.cache_dir)
        info = self._register(avatar, name)
        await asyncio.to_thread(self.ensure_rig, info.avatar_id)
        return info

    def list(self) -> list[AvatarInfo]:
        with self._lock:
            return sorted(self._infos.values(), key=lambda i: (not i.default, i.name))

    def get(self, avatar_id: str) -> AvatarInfo | None:
        return self._infos.get(avatar_id)

    def image_path(self, avatar_id: str) -> Path | None:
        if avatar_id not in self._infos:
            return None
        path = self.cache_dir / "avatars" / avatar_id / "crop.png"
        return path if path.is_file() else None

    def ensure_rig(self, avatar_id: str) -> None:
        """Build the avatar's rig into the disk cache if it is not there yet (blocking: call
        from a worker thread). The render processes load it from there (stream_server.
        render_pool); this process does not keep rigs (~60 MB each)."""
        if not rig_path(avatar_id, self.cache_dir).is_file():
            load_rig(avatar_id, self.cache_dir)


def load_rig(avatar_id: str, cache_dir: Path) -> Rig:
    """A prepared avatar's rig from the disk cache (built and saved there if missing)."""
    avatar = load_cached(avatar_id, cache_dir)
    if avatar is None:
        raise AvatarError(f"unknown avatar {avatar_id}")
    return rig_for_avatar(avatar_id, avatar.image, avatar.landmarks, cache_dir)
