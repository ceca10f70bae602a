"""Render worker processes shared by a server's sessions.

A render is ~30 numpy/OpenCV calls (engines.compose), each of which gives the GIL back and
must win it again. In one process, four sessions' workers, their motion generators and the
event loop (aiortc, Opus, VP8 packetization) contend for it, and a 6.5 ms render took
~20 ms of wall time under load (docs/benchmarks.md). Here each render runs in a worker
process with its own GIL; a session's thread sends the motion frame through a pipe and the
process writes the I420 frame (~0.4 MB at 512x512) into a shared-memory block of its own,
which the thread copies out: one copy each side, where a pickled frame through the pipe
costs several (and tens of 64 KB writes and reads); a frame too large for the block
(above 1024x1024) still goes through the pipe. The processes start with the server (each
loads the engine and the default avatar's rig), so a session's first frame is not delayed;
other avatars' rigs load from the disk cache on first use (~0.1 s). ``RenderSlots`` (one
per process) decides which frame goes next.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
from collections import OrderedDict
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np

from stream_server.render_slots import RenderSlots

RIGS_PER_PROCESS = 4  # ~60 MB each
START_TIMEOUT_S = 120.0
# Render processes yield the CPU to the server's process: its event loop sends every frame
# and audio packet on time, and a render that can no longer be on time is skipped anyway.
# At the same priority, four sessions on two cores had the loop wake 3-7 ms late on average
# (some frames 40-80 ms late); at +5 about half that, with lower jitter and p95 latency
# (docs/benchmarks.md).
RENDER_NICE = 5
FRAME_BYTES = 1024 * 1024 * 3 // 2  # a worker's shared block: I420 frames up to 1024x1024


@dataclass(frozen=True)
class _Worker:
    process: mp.process.BaseProcess
    connection: Connection
    frame: SharedMemory  # the worker writes each frame here


class RenderError(RuntimeError):
    """A render worker failed; the message says why."""


class RenderPool:
    """``processes`` render workers; ``render`` blocks the calling thread, not the GIL."""

    def __init__(
        self,
        processes: int,
        cache_dir: Path,
        warm_avatar: str | None = None,
        frame_bytes: int = FRAME_BYTES,
    ) -> None:
        if processes < 1:
            raise ValueError("at least one render process")
        self._context = mp.get_context("spawn")  # never fork a process with threads
        self._args = (str(cache_dir), warm_avatar)
        self._frame_bytes = frame_bytes
        self.slots = RenderSlots(processes)
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._workers: list[_Worker] = []
        try:
            started = [self._start(f"emote-render-{i}") for i in range(processes)]
            for worker in started:
                self._ready(worker)
                self._idle.put(worker)
        except BaseException:
            self.close()
            raise

    def _start(self, name: str) -> _Worker:
        frame = SharedMemory(create=True, size=self._frame_bytes)
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(theirs, frame.name, *self._args), name=name, daemon=True
        )
        process.start()
        theirs.close()
        worker = _Worker(process, ours, frame)
        self._workers.append(worker)
        return worker

    def _ready(self, worker: _Worker) -> None:
        if not worker.connection.poll(START_TIMEOUT_S):
            raise RenderError("a render process did not start")
        ok, message = worker.connection.recv()
        if not ok:
            raise RenderError(f"a render process failed to start: {message}")

    def render(self, avatar_id: str, motion: np.ndarray) -> np.ndarray:
        """One frame of ``avatar_id`` as I420 ((S * 3 / 2, S) uint8). Take a slot first
        (``self.slots``): then a process is always idle. A process that died (killed, out of
        memory) is replaced, and this frame fails."""
        worker = self._idle.get()
        try:
            worker.connection.send((avatar_id, np.asarray(motion, np.float32)))
            ok, payload = worker.connection.recv()
            if ok and isinstance(payload, tuple):  # a shape: the frame is in the worker's block
                size = int(np.prod(payload))
                block = worker.frame.buf
                assert block is not None  # a live worker's block is open
                payload = np.frombuffer(block, np.uint8, size).reshape(payload).copy()
        except (EOFError, OSError) as exc:
            worker = self._replace(worker)
            raise RenderError(f"a render process died ({exc or type(exc).__name__})") from exc
        finally:
            self._idle.put(worker)
        if not ok:
            raise RenderError(payload)
        return payload

    @property
    def pids(self) -> list[int]:
        """The render processes' ids (the server reads their CPU time: capacity.CpuMeter)."""
        return [w.process.pid for w in list(self._workers) if w.process.pid is not None]

    def _replace(self, dead: _Worker) -> _Worker:
        self._workers.remove(dead)
        _stop([dead])
        worker = self._start(dead.process.name)
        self._ready(worker)
        return worker

    def close(self) -> None:
        _stop(self._workers)
        self._workers = []


def _stop(workers: list[_Worker]) -> None:
    """End the workers (closing our end of the pipe ends a worker's ``recv``) and free their
    shared blocks."""
    for worker in workers:
        worker.connection.close()
    for worker in workers:
        worker.process.join(2.0)
        if worker.process.is_alive():
            worker.process.terminate()
            worker.process.join(1.0)
        worker.frame.close()
        with contextlib.suppress(FileNotFoundError):
            worker.frame.unlink()


def _serve(
    connection: Connection, frame_block: str, cache_dir: str, warm_avatar: str | None
) -> None:
    """A render process: answers (avatar_id, motion) with (True, shape), the I420 frame
    written to the shared block ``frame_block`` (or (True, frame) when it does not fit), or
    (False, message), until the server closes its end."""
    try:
        import cv2

        from engines.blas_threads import single_threaded_blas
        from engines.heap import keep_freed_memory

        keep_freed_memory()  # ~3 ms of page faults a frame less (engines.heap)
        single_threaded_blas()  # no spinning BLAS threads (engines.blas_threads)
        os.nice(RENDER_NICE)  # the event loop's pacing first (see RENDER_NICE)
        # The server's block. Attaching registers it again with the server's resource tracker
        # (shared with spawned children; a set, so a no-op); the server unlinks it.
        block = SharedMemory(name=frame_block)

        from engines.frame_renderer import FrameRenderer
        from engines.renderer_models import create_renderer
        from stream_server.avatars import load_rig

        engine = create_renderer("onnxruntime", "cpu", 1)
        renderers: OrderedDict[str, FrameRenderer] = OrderedDict()

        def renderer(avatar_id: str) -> FrameRenderer:
            if avatar_id not in renderers:
                renderers[avatar_id] = FrameRenderer(engine, load_rig(avatar_id, Path(cache_dir)))
                while len(renderers) > RIGS_PER_PROCESS:
                    renderers.popitem(last=False)
            renderers.move_to_end(avatar_id)
            return renderers[avatar_id]

        if warm_avatar is not None:
            renderer(warm_avatar)
        connection.send((True, "ready"))
    except Exception as exc:  # reported to the server, which refuses to start
        with contextlib.suppress(OSError):
            connection.send((False, f"{type(exc).__name__}: {exc}"))
        return
    while True:
        try:
            avatar_id, motion = connection.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            rgb = renderer(avatar_id).render(motion)[0]
            shape = (rgb.shape[0] * 3 // 2, rgb.shape[1])
            if shape[0] * shape[1] <= block.size:
                cv2.cvtColor(
                    rgb, cv2.COLOR_RGB2YUV_I420, dst=np.ndarray(shape, np.uint8, block.buf)
                )
                answer: tuple[bool, object] = (True, shape)
            else:
                answer = (True, cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420))
        except Exception as exc:  # one bad request must not end the process
            answer = (False, f"{type(exc).__name__}: {exc}")
        try:
            connection.send(answer)
        except (OSError, KeyboardInterrupt):
            return
