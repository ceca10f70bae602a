"""The server's render processes: the same frames as rendering in-process, a bad request
answered with an error, a killed process replaced."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.avatar import prepare_avatar
from engines.offline import FrameRenderer
from engines.renderer_models import create_renderer
from export import motion_frame
from stream_server.avatars import load_rig
from stream_server.render_pool import RenderError, RenderPool

PORTRAIT = Path(__file__).resolve().parents[1] / "assets" / "portraits" / "mona_lisa.jpg"


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


def test_a_bad_request_is_an_error_and_the_process_serves_on(
    pool: RenderPool, avatar: tuple[str, Path]
) -> None:
    with pytest.raises(RenderError, match="unknown avatar"):
        pool.render("0123456789abcdef", _talking())
    assert pool.render(avatar[0], _talking()).shape == (768, 512)


def test_a_killed_process_is_replaced(pool: RenderPool, avatar: tuple[str, Path]) -> None:
    process = pool._workers[0][0]
    process.kill()
    process.join(5.0)
    with pytest.raises(RenderError, match="died"):
        pool.render(avatar[0], _talking())
    assert pool.render(avatar[0], _talking()).shape == (768, 512)
    assert pool._workers[0][0] is not process
