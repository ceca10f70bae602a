"""Render worker processes shared by a server's sessions.

A render is ~30 numpy/OpenCV calls (engines.compose), each of which gives the GIL back and
must win it again. In one process, four sessions' workers, their motion generators and the
event loop (aiortc, Opus, VP8 packetization) contend for it, and a 6.5 ms render took
~20 ms of wall time under load (docs/benchmarks.md). Here each render runs in a worker
process with its own GIL; a session's thread sends the motion frame and gets the I420 frame
back (~0.4 MB through a pipe). The processes start with the server (each loads the engine
and the default avatar's rig), so a session's first frame is not delayed; other avatars'
rigs load from the disk cache on first use (~0.1 s). ``RenderSlots`` (one per process)
decides which frame goes next.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import queue
from collections import OrderedDict
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from stream_server.render_slots import RenderSlots

RIGS_PER_PROCESS = 4  # ~60 MB each
START_TIMEOUT_S = 120.0


class RenderError(RuntimeError):
    """A render worker failed; the message says why."""


class RenderPool:
    """``processes`` render workers; ``render`` blocks the calling thread, not the GIL."""

    def __init__(self, processes: int, cache_dir: Path, warm_avatar: str | None = None) -> None:
        if processes < 1:
            raise ValueError("at least one render process")
        self._context = mp.get_context("spawn")  # never fork a process with threads
        self._args = (str(cache_dir), warm_avatar)
        self.slots = RenderSlots(processes)
        self._idle: queue.Queue[tuple[mp.process.BaseProcess, Connection]] = queue.Queue()
        self._workers: list[tuple[mp.process.BaseProcess, Connection]] = []
        try:
            started = [self._start(f"emote-render-{i}") for i in range(processes)]
            for worker in started:
                self._ready(worker)
                self._idle.put(worker)
        except BaseException:
            self.close()
            raise

    def _start(self, name: str) -> tuple[mp.process.BaseProcess, Connection]:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(theirs, *self._args), name=name, daemon=True
        )
        process.start()
        theirs.close()
        self._workers.append((process, ours))
        return process, ours

    def _ready(self, worker: tuple[mp.process.BaseProcess, Connection]) -> None:
        if not worker[1].poll(START_TIMEOUT_S):
            raise RenderError("a render process did not start")
        ok, message = worker[1].recv()
        if not ok:
            raise RenderError(f"a render process failed to start: {message}")

    def render(self, avatar_id: str, motion: np.ndarray) -> np.ndarray:
        """One frame of ``avatar_id`` as I420 ((S * 3 / 2, S) uint8). Take a slot first
        (``self.slots``): then a process is always idle. A process that died (killed, out of
        memory) is replaced, and this frame fails."""
        worker = self._idle.get()
        try:
            worker[1].send((avatar_id, np.asarray(motion, np.float32)))
            ok, payload = worker[1].recv()
        except (EOFError, OSError) as exc:
            worker = self._replace(worker)
            raise RenderError(f"a render process died ({exc or type(exc).__name__})") from exc
        finally:
            self._idle.put(worker)
        if not ok:
            raise RenderError(payload)
        return payload

    def _replace(
        self, dead: tuple[mp.process.BaseProcess, Connection]
    ) -> tuple[mp.process.BaseProcess, Connection]:
        dead[1].close()
        dead[0].join(1.0)
        self._workers.remove(dead)
        worker = self._start(dead[0].name)
        self._ready(worker)
        return worker

    def close(self) -> None:
        for _, connection in self._workers:
            connection.close()  # the worker's recv ends: it exits
        for process, _ in self._workers:
            process.join(2.0)
            if process.is_alive():
                process.terminate()


def _serve(connection: Connection, cache_dir: str, warm_avatar: str | None) -> None:
    """A render process: answers (avatar_id, motion) with (True, I420) or (False, message)
    until the server closes its end."""
    try:
        import cv2

        from engines.offline import FrameRenderer
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
            answer = (True, cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420))
        except Exception as exc:  # one bad request must not end the process
            answer = (False, f"{type(exc).__name__}: {exc}")
        try:
            connection.send(answer)
        except (OSError, KeyboardInterrupt):
            return
