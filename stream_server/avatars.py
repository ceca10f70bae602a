"""The server's avatars: the bundled default plus uploads, prepared off the server process,
kept in the disk cache under a size cap, and listed again after a restart.

The cache (``<cache_dir>/avatars/<id>/``: meta.json, landmarks.npy, crop.png and the rig,
~49 MB an avatar, nearly all rig) would grow by every distinct upload. ``evict`` keeps it
under a cap by deleting the least recently used avatars; "used" means uploaded or opened by
a session (``touch``), and the time is the folder's mtime, so that it survives a restart
without an index to keep consistent. The default avatar, the one just uploaded and those the
caller says are in use are never deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.avatar import (
    MAX_FILE_BYTES,
    Avatar,
    AvatarError,
    avatar_id_of_file,
    check_image_file,
    load_cached,
    prepare_avatar,
)
from engines.rig import Rig, rig_for_avatar, rig_path
from stream_server.prepare_process import prepare_in_child
from stream_server.uploads import UploadGate

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = MAX_FILE_BYTES
AVATAR_SIZE = 512  # the renderer's size: the only avatars the server lists and serves
DEFAULT_CACHE_MAX_MB = 2048.0


def _nothing_in_use() -> Collection[str]:
    return ()


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


@dataclass(frozen=True)
class CacheEntry:
    avatar_id: str
    bytes: int  # the folder's files, the rig included
    last_used: float  # the folder's mtime (epoch seconds)


class AvatarStore:
    def __init__(
        self, cache_dir: Path, default_image: Path, gate: UploadGate | None = None
    ) -> None:
        self.cache_dir = cache_dir
        self.default_image = default_image
        self.gate = gate if gate is not None else UploadGate()
        self._infos: dict[str, AvatarInfo] = {}
        self._lock = threading.Lock()
        self.default_id: str | None = None

    @property
    def avatars_dir(self) -> Path:
        return self.cache_dir / "avatars"

    def load_default(self) -> AvatarInfo:
        """Prepare the bundled default (blocking), then list the uploads kept in the cache
        from before a restart (:meth:`load_cached_uploads`)."""
        avatar = prepare_avatar(self.default_image, cache_dir=self.cache_dir)
        info = self._register(avatar, self.default_image.stem.replace("_", " "), default=True)
        self.default_id = info.avatar_id
        self.ensure_rig(info.avatar_id)
        self.load_cached_uploads()
        return info

    def load_cached_uploads(self) -> list[AvatarInfo]:
        """Register every prepared avatar of the server's size found in the cache (blocking:
        reads each meta.json, no pixels). Entries written before meta.json had a "name" are
        listed as "avatar <id>"."""
        found = []
        for folder in _id_folders(self.avatars_dir):
            meta = _read_meta(folder)
            if meta is None or meta.get("size") != AVATAR_SIZE:
                continue
            if not (folder / "crop.png").is_file() or folder.name == self.default_id:
                continue
            name = meta.get("name")
            warnings = meta.get("warnings")
            info = AvatarInfo(
                folder.name,
                name if isinstance(name, str) and name else f"avatar {folder.name[:6]}",
                tuple(str(w) for w in warnings) if isinstance(warnings, list) else (),
                default=False,
            )
            with self._lock:
                found.append(self._infos.setdefault(folder.name, info))
        if found:
            log.info("%d uploaded avatars found in %s", len(found), self.avatars_dir)
        return found

    def _register(self, avatar: Avatar, name: str, default: bool = False) -> AvatarInfo:
        info = AvatarInfo(avatar.avatar_id, name, avatar.warnings, default)
        with self._lock:
            return self._infos.setdefault(avatar.avatar_id, info)

    async def upload(
        self,
        image: Path,
        name: str,
        *,
        cache_max_bytes: int | None = None,
        in_use: Callable[[], Collection[str]] = _nothing_in_use,
    ) -> AvatarInfo:
        """Prepare the image file ``image`` as an avatar named ``name``; raises AvatarError.

        The header is checked here first (a bad or oversized image is refused without a
        process); the preparation itself waits for one of ``gate``'s decode slots and runs
        in a child process (stream_server.prepare_process). Then, with ``cache_max_bytes``,
        the cache is brought under that size, sparing the avatars ``in_use()`` names."""
        await asyncio.to_thread(check_image_file, image)
        async with self.gate.decode():
            info = await self._prepare(image, name)
            if cache_max_bytes is not None:
                keep = {info.avatar_id, *in_use()}
                await asyncio.to_thread(self.evict, cache_max_bytes, keep)
        return info

    async def _prepare(self, image: Path, name: str) -> AvatarInfo:
        avatar_id = await asyncio.to_thread(avatar_id_of_file, image, AVATAR_SIZE)
        warnings = await asyncio.to_thread(self._cached_warnings, avatar_id)
        if warnings is None:  # not in the cache (or half there): prepare it
            prepared = await prepare_in_child(image, self.cache_dir, AVATAR_SIZE)
            avatar_id, warnings = prepared.avatar_id, prepared.warnings
        with self._lock:
            info = self._infos.setdefault(avatar_id, AvatarInfo(avatar_id, name, warnings, False))
        await asyncio.to_thread(self._name_and_touch, avatar_id, name)
        return info

    def _cached_warnings(self, avatar_id: str) -> tuple[str, ...] | None:
        """The warnings of a complete cache entry (meta, crop and rig there), else None."""
        folder = self.avatars_dir / avatar_id
        meta = _read_meta(folder)
        if meta is None or not (folder / "crop.png").is_file():
            return None
        if not rig_path(avatar_id, self.cache_dir).is_file():
            return None
        warnings = meta.get("warnings")
        return tuple(str(w) for w in warnings) if isinstance(warnings, list) else ()

    def _name_and_touch(self, avatar_id: str, name: str) -> None:
        """Keep the first name an avatar was uploaded with in its meta.json (for the listing
        after a restart; replaced atomically), and mark it used now."""
        folder = self.avatars_dir / avatar_id
        meta = _read_meta(folder)
        if meta is not None and not meta.get("name"):
            tmp = folder / ".meta.json.tmp"
            try:
                tmp.write_text(json.dumps({**meta, "name": name}, indent=1))
                os.replace(tmp, folder / "meta.json")
            except OSError as exc:
                log.warning("could not name avatar %s: %s", avatar_id, exc)
        self.touch(avatar_id)

    def touch(self, avatar_id: str) -> None:
        """Mark a known avatar used now (its folder's mtime), so that the cache cap evicts it
        last. Call it when a session opens with the avatar; uploads do it themselves."""
        if avatar_id not in self._infos:
            return
        with contextlib.suppress(OSError):  # gone from the disk: nothing to keep fresh
            os.utime(self.avatars_dir / avatar_id)

    def cache_entries(self) -> list[CacheEntry]:
        """Every avatar folder in the cache with its size and last use (blocking)."""
        entries = []
        for folder in _id_folders(self.avatars_dir):
            try:
                size = sum(f.stat().st_size for f in os.scandir(folder) if f.is_file())
                entries.append(CacheEntry(folder.name, size, folder.stat().st_mtime))
            except OSError:  # removed meanwhile
                continue
        return entries

    def evict(self, max_bytes: int, keep: Collection[str] = ()) -> list[str]:
        """Delete least recently used avatars until the cache holds at most ``max_bytes``
        (blocking); never the default or one in ``keep``. The ids deleted, oldest first."""
        entries = self.cache_entries()
        total = sum(e.bytes for e in entries)
        spared = {*keep, self.default_id}
        evicted: list[str] = []
        for entry in sorted(entries, key=lambda e: e.last_used):
            if total <= max_bytes:
                break
            if entry.avatar_id in spared:
                continue
            with self._lock:
                self._infos.pop(entry.avatar_id, None)
            shutil.rmtree(self.avatars_dir / entry.avatar_id, ignore_errors=True)
            total -= entry.bytes
            evicted.append(entry.avatar_id)
        if evicted:
            log.info("avatar cache over %.0f MB: evicted %s", max_bytes / 2**20, evicted)
        if total > max_bytes:
            log.warning(
                "avatar cache holds %.0f MB, over its %.0f MB cap, all of it in use",
                total / 2**20,
                max_bytes / 2**20,
            )
        return evicted

    def list(self) -> list[AvatarInfo]:
        with self._lock:
            return sorted(self._infos.values(), key=lambda i: (not i.default, i.name))

    def get(self, avatar_id: str) -> AvatarInfo | None:
        return self._infos.get(avatar_id)

    def image_path(self, avatar_id: str) -> Path | None:
        if avatar_id not in self._infos:
            return None
        path = self.avatars_dir / avatar_id / "crop.png"
        return path if path.is_file() else None

    def ensure_rig(self, avatar_id: str) -> None:
        """Build the avatar's rig into the disk cache if it is not there yet (blocking: call
        from a worker thread). The render processes load it from there (stream_server.
        render_pool); this process does not keep rigs (~60 MB each)."""
        if not rig_path(avatar_id, self.cache_dir).is_file():
            load_rig(avatar_id, self.cache_dir)


def _id_folders(avatars_dir: Path) -> list[Path]:
    """The cache's avatar folders (16 hex digits), not the temporary ones being written."""
    try:
        children = list(avatars_dir.iterdir())
    except OSError:  # no cache yet
        return []
    return sorted(p for p in children if _is_avatar_id(p.name) and p.is_dir())


def _is_avatar_id(name: str) -> bool:
    return len(name) == 16 and all(c in "0123456789abcdef" for c in name)


def _read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def load_rig(avatar_id: str, cache_dir: Path) -> Rig:
    """A prepared avatar's rig from the disk cache (built and saved there if missing)."""
    avatar = load_cached(avatar_id, cache_dir)
    if avatar is None:
        raise AvatarError(f"unknown avatar {avatar_id}")
    return rig_for_avatar(avatar_id, avatar.image, avatar.landmarks, cache_dir)
