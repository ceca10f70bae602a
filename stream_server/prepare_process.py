"""Preparing an uploaded image (decode, FaceMesh, crop, rig) in a short-lived child process.

Why a process per upload, not a worker thread of the server:

* **Memory comes back.** The server process keeps freed memory for reuse
  (engines.heap.keep_freed_memory: blocks under 256 MB come from the heap, and up to 512 MB of
  free heap is not returned), which the per-frame work needs, but it meant that a decode's
  pixel copies stayed in the server's RSS: a 6300x6300 PNG (inside the 40 MP limit) left
  +268 MB after FaceMesh was loaded, +520 MB with it. A child gives all of it back when it
  exits, and mediapipe's FaceMesh (~100 MB) never enters the server either.
* **Hostile bytes are parsed elsewhere.** libjpeg, libpng, libwebp and libavif run on
  whatever a client sends; a crash or a hang there ends the child (killed after
  ``PREPARE_TIMEOUT_S``), not the server and its live sessions.

The alternative, refusing PNG and other lossless formats above a lower pixel limit, would
refuse ordinary 24 MP exports and still leave a smaller decode's copies in the server. The
child's own peak is bounded by the header checks done before it starts (50 MB, 40 MP) and by
decoding at reduced size (engines.avatar). It costs ~0.5 s of interpreter start and imports
per upload that is not already in the cache.

The child is ``python -m stream_server.prepare_process IMAGE CACHE_DIR SIZE``: it writes the
avatar and its rig into the cache and prints one JSON line, ``{"id", "warnings"}`` or
``{"error"}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from contracts.paths import REPO
from engines.avatar import AvatarError

log = logging.getLogger(__name__)

PREPARE_TIMEOUT_S = 60.0
_FAILED = "The image could not be prepared (the decoder failed on it)."


@dataclass(frozen=True)
class Prepared:
    avatar_id: str
    warnings: tuple[str, ...]


async def prepare_in_child(
    image: Path, cache_dir: Path, size: int = 512, timeout_s: float = PREPARE_TIMEOUT_S
) -> Prepared:
    """Prepare ``image`` into ``cache_dir`` (avatar and rig) in a child process. Raises
    AvatarError for a bad image, a child that failed or one that took over ``timeout_s``
    (killed then); a cancelled caller kills the child too."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        __name__,
        str(image),
        str(cache_dir),
        str(size),
        cwd=REPO,  # the child imports this checkout, whatever the server's working directory
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        raise AvatarError(f"Preparing the image took longer than {timeout_s:.0f} s.") from None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return _result(out, err, process.returncode)


def _result(out: bytes, err: bytes, returncode: int | None) -> Prepared:
    """The child's JSON line, or AvatarError (with the stderr tail logged for the operator
    when the child did not say why)."""
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        reply = json.loads(lines[-1]) if lines and returncode == 0 else None
    except json.JSONDecodeError:
        reply = None
    if isinstance(reply, dict) and isinstance(reply.get("error"), str):
        raise AvatarError(reply["error"])
    if isinstance(reply, dict) and isinstance(reply.get("id"), str):
        return Prepared(reply["id"], tuple(str(w) for w in reply.get("warnings", ())))
    tail = err.decode(errors="replace").strip()[-1500:]
    log.warning("avatar preparation failed (exit %s):\n%s", returncode, tail)
    raise AvatarError(_FAILED)


def main(argv: list[str]) -> int:
    """The child: prepare, build the rig, print the JSON line."""
    from engines.avatar import prepare_avatar
    from engines.rig import rig_for_avatar

    image, cache_dir, size = Path(argv[0]), Path(argv[1]), int(argv[2])
    try:
        avatar = prepare_avatar(image, size=size, cache_dir=cache_dir)
    except AvatarError as exc:
        print(json.dumps({"error": str(exc)}))
        return 0
    rig_for_avatar(avatar.avatar_id, avatar.image, avatar.landmarks, cache_dir)
    print(json.dumps({"id": avatar.avatar_id, "warnings": list(avatar.warnings)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
