"""Receiving an uploaded image: streamed to a temporary file within limits, and admitted.

``receive_image`` reads the ``image`` field of a ``multipart/form-data`` body into a file
(never into memory: at most one chunk of it is held), refuses a declared Content-Length over
the limit before reading anything, counts the bytes as they arrive (chunked or not, so a body
that lies about its length or declares none is cut off at the limit too) and gives up on a
body that stalls (``read_timeout_s`` without a byte) or drags on (``total_timeout_s``). The
file is removed when the ``async with`` block ends, whatever happened.

``UploadGate`` bounds what uploads cost together: at most ``decode_slots`` images are prepared
at once (decoding and FaceMesh take a core and hundreds of MB each), and at most
``max_waiting`` more uploads may be in progress (receiving or waiting for a slot); any more
are refused at once with 503 and Retry-After instead of queueing without end, each holding a
connection and up to 50 MB of temporary file.

Every failure is an ``UploadError`` with the status and the message for the JSON reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aiohttp import BodyPartReader, MultipartReader, web

from engines.avatar import MAX_FILE_BYTES

CHUNK_BYTES = 1 << 20  # written to the file in blocks of about this size
MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and small fields around the image
RETRY_AFTER_S = 5

_Progress = Callable[[], None]  # called on every chunk: the stall clock starts again


class UploadError(Exception):
    """A refused upload: ``status``, a message for the client, and reply headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = MAX_FILE_BYTES  # the image itself
    read_timeout_s: float = 10.0  # the longest pause between two chunks of the body
    total_timeout_s: float = 300.0  # the whole body (50 MB at 1.4 Mbit/s)

    @property
    def max_body_bytes(self) -> int:
        """The whole request body: the image plus the multipart framing around it."""
        return self.max_bytes + MULTIPART_OVERHEAD


@dataclass(frozen=True)
class ReceivedImage:
    path: Path  # the temporary file holding the image's bytes
    filename: str  # as the client named it ('' when it did not)

    @property
    def name(self) -> str:
        """A display name: the file name's stem, underscores as spaces, at most 60 chars."""
        stem = Path(self.filename.replace("\\", "/")).stem.replace("_", " ")
        return "".join(c for c in stem if c.isprintable()).strip()[:60] or "upload"


@contextlib.asynccontextmanager
async def receive_image(
    request: web.Request, tmp_dir: Path, limits: UploadLimits = UploadLimits()
) -> AsyncIterator[ReceivedImage]:
    """The upload's ``image`` field in a temporary file under ``tmp_dir`` for the block's
    duration. Raises UploadError: 400 (not multipart, malformed, no image field, the client
    went away), 408 (the body stalled or took too long), 413 (over the limit)."""
    if not request.content_type.startswith("multipart/"):
        raise UploadError(400, "send the image as multipart/form-data (field 'image')")
    declared = request.content_length
    if declared is not None and declared > limits.max_body_bytes:
        raise UploadError(413, _too_large(limits))  # refused before a byte of the body is read
    await asyncio.to_thread(tmp_dir.mkdir, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", dir=tmp_dir)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as file:
            filename = await _read_within(request, file, limits)
        yield ReceivedImage(path, filename)
    finally:
        path.unlink(missing_ok=True)


async def _read_within(request: web.Request, file: BinaryIO, limits: UploadLimits) -> str:
    """Stream the image field into ``file`` under the time limits; its file name."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.total_timeout_s
    try:
        async with asyncio.timeout(limits.read_timeout_s) as timer:

            def progress() -> None:  # a chunk arrived: the stall clock starts again
                timer.reschedule(min(loop.time() + limits.read_timeout_s, deadline))

            part = await _image_part(request, limits, progress)
            await _copy(part, request, file, limits, progress)
            return _filename(part)
    except TimeoutError:
        raise UploadError(
            408,
            f"the upload stalled (nothing for {limits.read_timeout_s:.0f} s) or took "
            f"longer than {limits.total_timeout_s:.0f} s",
        ) from None


async def _image_part(
    request: web.Request, limits: UploadLimits, progress: _Progress
) -> BodyPartReader:
    """The ``image`` part, other parts before it read and dropped within the byte limit."""
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            _check_total(request, limits)
            progress()
            if getattr(part, "name", None) == "image":
                if not isinstance(part, BodyPartReader):  # a nested multipart, not a file
                    raise UploadError(400, "the 'image' field must be a file")
                return part
            await _drain(part, request, limits, progress)
    except (UploadError, TimeoutError):
        raise
    except Exception as exc:  # aiohttp's parser raises many kinds on a garbled body
        raise _malformed(exc) from None
    raise UploadError(400, "no 'image' field in the upload")


async def _drain(
    part: BodyPartReader | MultipartReader,
    request: web.Request,
    limits: UploadLimits,
    progress: _Progress,
) -> None:
    """Read a field that is not the image and drop it, counting its bytes."""
    if isinstance(part, MultipartReader):
        while (inner := await part.next()) is not None:
            await _drain(inner, request, limits, progress)
        return
    while await part.read_chunk(CHUNK_BYTES):
        _check_total(request, limits)
        progress()


async def _copy(
    part: BodyPartReader,
    request: web.Request,
    file: BinaryIO,
    limits: UploadLimits,
    progress: _Progress,
) -> None:
    """The image part into ``file``, in blocks written off the event loop."""
    written, block = 0, bytearray()
    while True:
        try:
            chunk = await part.read_chunk(CHUNK_BYTES)
        except (UploadError, TimeoutError):
            raise
        except Exception as exc:
            raise _malformed(exc) from None
        progress()
        written += len(chunk)
        if written > limits.max_bytes:
            raise UploadError(413, _too_large(limits))
        _check_total(request, limits)
        block += chunk
        if block and (not chunk or len(block) >= CHUNK_BYTES):
            await asyncio.to_thread(file.write, bytes(block))
            block.clear()
        if not chunk:
            return


def _check_total(request: web.Request, limits: UploadLimits) -> None:
    """The whole body so far, framing and other fields included, within the limit."""
    if request.content.total_bytes > limits.max_body_bytes:
        raise UploadError(413, _too_large(limits))


def _filename(part: BodyPartReader) -> str:
    try:
        return part.filename or ""
    except Exception:  # a garbled Content-Disposition: the name is only for display
        return ""


def _too_large(limits: UploadLimits) -> str:
    return f"the image is over {limits.max_bytes / 2**20:.0f} MB, the limit"


def _malformed(exc: Exception) -> UploadError:
    if isinstance(exc, ConnectionError | asyncio.IncompleteReadError):
        return UploadError(400, "the upload ended before its body was complete")
    reason = str(exc).strip() or type(exc).__name__
    return UploadError(400, f"malformed multipart body: {reason[:200]}")


class UploadGate:
    """Admission for uploads and the slots for preparing them (see the module docstring)."""

    def __init__(self, decode_slots: int = 1, max_waiting: int = 8) -> None:
        self.decode_slots = decode_slots
        self.max_waiting = max_waiting
        self.in_progress = 0  # admitted uploads: receiving, waiting or preparing
        self._slots = asyncio.Semaphore(decode_slots)

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold one of ``decode_slots + max_waiting`` places for the block; UploadError 503
        (with Retry-After) when all are taken. Takes its place before any await, so that
        simultaneous requests cannot all pass the check."""
        if self.in_progress >= self.decode_slots + self.max_waiting:
            raise UploadError(
                503,
                f"too many uploads in progress ({self.in_progress}); try again shortly",
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        self.in_progress += 1
        try:
            yield
        finally:
            self.in_progress -= 1

    @contextlib.asynccontextmanager
    async def decode(self) -> AsyncIterator[None]:
        """One of the ``decode_slots`` for the block (waits for it)."""
        async with self._slots:
            yield
