"""The server's render processes, one frame at a time, as a session uses them.

    python -m bench.render_pool_speed [--frames N] [--json OUT.json]

A one-process ``RenderPool`` (stream_server/render_pool.py) warm with the bundled portrait
renders N frames of changing motion (jaw and blink) back to back, twice: frames returned
through the process's shared-memory block (the default) and through the pipe (a block too
small for a frame). Per frame: wall time (median and p90), CPU time of this process (the
server's side: send, receive, copy) and of the render process (from /proc), and the render
process's minor page faults.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from contracts.paths import DEFAULT_PORTRAIT as PORTRAIT


def _process_stat(pid: int) -> tuple[float, int]:
    """(CPU seconds, minor page faults) of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[7])


def measure(cache: Path, avatar_id: str, frames: int, frame_bytes: int) -> dict[str, float]:
    from contracts import motion_frame as mf
    from stream_server.render_pool import RenderPool

    pool = RenderPool(1, cache, warm_avatar=avatar_id, frame_bytes=frame_bytes)
    try:
        motion = mf.neutral().copy()

        def render(i: int) -> None:
            motion[mf.INDEX["jawOpen"]] = (i % 10) / 20
            motion[mf.INDEX["eyeBlinkLeft"]] = motion[mf.INDEX["eyeBlinkRight"]] = i % 7 == 0
            with pool.slots.slot(0.0):
                pool.render(avatar_id, motion)

        for i in range(20):
            render(i)
        pid = pool._workers[0].process.pid
        cpu0, faults0 = _process_stat(pid)
        own0 = time.process_time()
        walls = []
        for i in range(frames):
            start = time.perf_counter()
            render(i)
            walls.append((time.perf_counter() - start) * 1000)
        own = (time.process_time() - own0) * 1000 / frames
        cpu1, faults1 = _process_stat(pid)
    finally:
        pool.close()
    return {
        "wall_ms_p50": round(float(np.median(walls)), 2),
        "wall_ms_p90": round(float(np.percentile(walls, 90)), 2),
        "server_cpu_ms": round(own, 2),
        "render_process_cpu_ms": round((cpu1 - cpu0) * 1000 / frames, 2),
        "render_process_minor_faults": round((faults1 - faults0) / frames, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not Path("/proc/self/stat").exists():
        parser.error("reads /proc: Linux only")
    from engines.avatar import prepare_avatar
    from stream_server.render_pool import FRAME_BYTES

    with tempfile.TemporaryDirectory(prefix="emote-pool-") as tmp:
        cache = Path(tmp)
        avatar_id = prepare_avatar(PORTRAIT, cache_dir=cache).avatar_id
        result = {
            "frames": args.frames,
            "shared_memory": measure(cache, avatar_id, args.frames, FRAME_BYTES),
            "pipe": measure(cache, avatar_id, args.frames, 1),
        }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
