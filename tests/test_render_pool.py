"""The server's render processes: the same frames as rendering in-process, a bad request
answered with an error, a killed process replaced."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from contracts import motion_frame
from contracts.paths import DEFAULT_PORTRAIT
from engines.avatar import prepare_avatar
from engines.frame_renderer import FrameRenderer
from engines.renderer_models import create_renderer
from stream_server.avatars import load_rig
from stream_server.render_pool import RenderError, RenderPool

PORTRAIT = DEFAULT_PORTRAIT


@pytest.fixture(scope="module")
def avatar(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    cache = tmp_path_factory.mktemp("pool-cache")
    return prepare_avatar(PORTRAIT, cache_dir=cache).avatar_id, cache


@pytest.fixture(scope="module")
def pool(avatar: tuple[str, Path]) -> Iterator[RenderPool]:
    pool = RenderPool(1, avatar[1], warm_avatar=avatar[0])
    yield pool
    pool.close()


def _talking() -> np.ndarray:
    motion = motion_frame.neutral().copy()
    motion[motion_frame.INDEX["jawOpen"]] = 0.5
    motion[motion_frame.INDEX["headYaw"]] = 0.05
    return motion


def test_frames_match_rendering_in_process(pool: RenderPool, avatar: tuple[str, Path]) -> None:
    local = FrameRenderer(create_renderer("onnxruntime", "cpu", 1), load_rig(*avatar))
    expected = cv2.cvtColor(local.render(_talking())[0], cv2.COLOR_RGB2YUV_I420)
    with pool.slots.slot(0.0):
        got = pool.render(avatar[0], _talking())
    np.testing.assert_array_equal(got, expected)


def test_a_frame_too_large_for_the_shared_block_comes_through_the_pipe(
    pool: RenderPool, avatar: tuple[str, Path]
) -> None:
    with pool.slots.slot(0.0):
        expected = pool.render(avatar[0], _talking())
    small = RenderPool(1, avatar[1], frame_bytes=4096)
    blocks = [Path("/dev/shm", worker.frame.name) for worker in small._workers]
    try:
        assert all(block.exists() for block in blocks)
        with small.slots.slot(0.0):
            np.testing.assert_array_equal(small.render(avatar[0], _talking()), expected)
    finally:
        small.close()
    assert not any(block.exists() for block in blocks)  # the shared blocks are freed


def test_a_bad_request_is_an_error_and_the_process_serves_on(
    pool: RenderPool, avatar: tuple[str, Path]
) -> None:
    with pytest.raises(RenderError, match="unknown avatar"):
        pool.render("0123456789abcdef", _talking())
    assert pool.render(avatar[0], _talking()).shape == (768, 512)


def test_a_killed_process_is_replaced(pool: RenderPool, avatar: tuple[str, Path]) -> None:
    process, block = pool._workers[0].process, Path("/dev/shm", pool._workers[0].frame.name)
    process.kill()
    process.join(5.0)
    with pytest.raises(RenderError, match="died"):
        pool.render(avatar[0], _talking())
    assert pool.render(avatar[0], _talking()).shape == (768, 512)
    assert pool._workers[0].process is not process
    assert not block.exists()  # the dead process's shared block is freed


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_render_process_reuses_its_memory(pool: RenderPool, avatar: tuple[str, Path]) -> None:
    """Without engines.heap's malloc thresholds a render process faulted in ~1600 fresh
    pages (6 MB) a frame, ~3 ms of its ~9 ms of CPU."""

    def minor_faults() -> int:
        stat = Path(f"/proc/{pool._workers[0].process.pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[7])

    motion = _talking()
    for _ in range(5):
        pool.render(avatar[0], motion)
    before = minor_faults()
    for i in range(20):
        motion[motion_frame.INDEX["jawOpen"]] = i / 40
        pool.render(avatar[0], motion)
    assert (minor_faults() - before) / 20 < 50


def test_render_processes_yield_the_cpu_to_the_server(pool: RenderPool) -> None:
    from stream_server.render_pool import RENDER_NICE

    worker = pool._workers[0].process.pid
    assert os.getpriority(os.PRIO_PROCESS, worker) == os.getpriority(os.PRIO_PROCESS, 0) + min(
        RENDER_NICE, 19 - os.getpriority(os.PRIO_PROCESS, 0)
    )
