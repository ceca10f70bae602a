"""The render slots shared by a server's sessions: a bounded number of renders at once, the
earliest deadline first."""

from __future__ import annotations

import threading
import time

import pytest

from stream_server.render_slots import RenderSlots, default_slots


def test_default_is_one_slot_per_core() -> None:
    assert default_slots(2) == 2
    assert default_slots(1) == 1
    assert default_slots(16) == 16


def test_refuses_zero_slots() -> None:
    with pytest.raises(ValueError):
        RenderSlots(0)


def _run(slots: RenderSlots, deadlines: list[float], hold_s: float) -> tuple[list[float], int]:
    """Threads queue for a slot while all are held; returns the order they got it in and the
    most slots ever held at once."""
    order: list[float] = []
    busy, peak = [0], [0]
    lock = threading.Lock()

    def render(deadline: float) -> None:
        with slots.slot(deadline):
            with lock:
                order.append(deadline)
                busy[0] += 1
                peak[0] = max(peak[0], busy[0])
            time.sleep(hold_s)
            with lock:
                busy[0] -= 1

    blocker = threading.Event()
    held = threading.Semaphore(0)

    def hold() -> None:
        with slots.slot(-1.0):
            held.release()
            blocker.wait(5.0)

    holders = [threading.Thread(target=hold) for _ in range(slots.slots)]
    for holder in holders:  # every slot busy: the renders below must queue
        holder.start()
        assert held.acquire(timeout=5.0)
    threads = []
    for deadline in deadlines:
        thread = threading.Thread(target=render, args=(deadline,))
        thread.start()
        threads.append(thread)
        deadline_s = time.monotonic() + 5.0
        while slots.waiting < len(threads):  # queued, in this arrival order
            assert time.monotonic() < deadline_s
            time.sleep(0.001)
    blocker.set()
    for thread in [*holders, *threads]:
        thread.join(5.0)
    return order, peak[0]


def test_the_earliest_deadline_renders_first() -> None:
    order, peak = _run(RenderSlots(1), [3.0, 1.0, 4.0, 2.0], hold_s=0.005)
    assert order == [1.0, 2.0, 3.0, 4.0]  # not the arrival order
    assert peak == 1


def test_never_more_renders_than_slots() -> None:
    order, peak = _run(RenderSlots(2), [5.0, 4.0, 3.0, 2.0, 1.0], hold_s=0.02)
    assert sorted(order) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert peak == 2


def test_a_session_that_fell_behind_goes_before_earlier_deadlines() -> None:
    """The share bias (DeadlineRenderer.share_bias): a frame of a session at 25 fps (bias
    0.125 s) waits behind one due 40 ms later from a session that rendered 5 frames (0.025)."""
    from stream_server.deadline_render import SHARE_BIAS_S

    slots = RenderSlots(1)
    order: list[str] = []
    held = threading.Event()

    def hold() -> None:
        with slots.slot(0.0):
            held.set()
            time.sleep(0.3)

    def render(name: str, deadline: float, frames: int) -> None:
        with slots.slot(deadline, SHARE_BIAS_S * frames):
            order.append(name)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    waiters = [
        threading.Thread(target=render, args=("at 25 fps", 1.00, 25)),
        threading.Thread(target=render, args=("behind", 1.04, 5)),
    ]
    for waiter in waiters:
        waiter.start()
        time.sleep(0.05)
    for thread in [holder, *waiters]:
        thread.join()
    assert order == ["behind", "at 25 fps"]
