"""Fitting arriving audio to the session clock (stream_server.clock_fit), without aiortc,
threads or a session: each arrival's decision (silence before it, or its start cut) and the
counts the session reports."""

from __future__ import annotations

import pytest

from stream_server.clock_fit import (
    ALIGN_GUARD,
    JITTER_S,
    LATE_S,
    LATE_WINDOW,
    PACKET,
    STALL_FILL_S,
    ArrivalFitter,
    Fit,
    SessionClock,
)

T0 = 1000.0
CHUNK = 320  # 20 ms at 16 kHz, as WebRTC's packets bring it
EPS = 1e-6  # arrivals a hair after the sample boundary, so they land on it


def fitter() -> ArrivalFitter:
    return ArrivalFitter(SessionClock(0.1, t0=T0))


def at(s: float) -> float:
    """The time ``s`` seconds after the clock's t0."""
    return T0 + s + EPS


def test_the_clock_maps_samples_frames_and_returned_audio_to_time() -> None:
    clock = SessionClock(0.1, t0=T0)
    assert clock.samples_due(at(0.5)) == 8000
    assert clock.frame_due(25) == pytest.approx(T0 + 1.0 + 0.1)
    assert clock.next_frame(T0) == 0  # before the latency has passed: the first frame
    assert clock.next_frame(T0 + 0.1 + 0.03) == 1
    assert clock.audio_due(640 * 3 + 320) == pytest.approx(clock.frame_due(3))  # its middle


def test_the_first_chunk_lands_at_its_arrival() -> None:
    late = fitter()  # arriving 100 ms in: 80 ms of silence before it
    assert late.arrive(at(0.100), CHUNK) == Fit(insert=1280)
    assert (late.written, late.inserted, late.trimmed) == (1600, 1280, 0)

    on_time = fitter()
    assert on_time.arrive(at(0.020), CHUNK) == Fit()
    assert on_time.written == CHUNK

    early = fitter()  # arriving 10 ms in: only its last 10 ms fit before it
    assert early.arrive(at(0.010), CHUNK) == Fit(trim=160)
    assert (early.written, early.inserted, early.trimmed) == (160, 0, 160)


def test_jitter_is_left_alone_and_a_stall_becomes_silence_at_once() -> None:
    fit = fitter()
    fit.arrive(at(0.100), CHUNK)
    assert fit.arrive(at(0.120), CHUNK) == Fit()  # on time
    assert fit.arrive(at(0.140 + JITTER_S / 2), CHUNK) == Fit()  # a little late: jitter
    assert fit.written == 2240
    assert fit.arrive(at(0.180 + JITTER_S), CHUNK) == Fit(insert=960)  # a stall: 60 ms
    assert (fit.written, fit.inserted, fit.trimmed) == (3520, 1280 + 960, 0)
    # the chunk now ends at its arrival: the next one on the 20 ms beat is on time
    assert fit.arrive(at(0.240), CHUNK) == Fit()
    assert fit.arrive(at(0.260 - JITTER_S / 2), CHUNK) == Fit()  # a little early: jitter
    assert (fit.written, fit.inserted, fit.trimmed) == (4160, 1280 + 960, 0)


def test_audio_running_ahead_is_cut() -> None:
    fit = fitter()
    fit.arrive(at(0.100), CHUNK)  # written 1600
    # a 100 ms chunk 50 ms ahead of the clock (beyond the jitter tolerance): its first 50 ms
    # are cut
    assert fit.arrive(at((1600 + 1600 - 800) / 16000), 1600) == Fit(trim=800)
    assert (fit.written, fit.inserted, fit.trimmed) == (2400, 1280, 800)
    # a 20 ms chunk that far ahead is cut whole
    assert fit.arrive(at((2400 + CHUNK - 800) / 16000), CHUNK) == Fit(trim=CHUNK)
    assert (fit.written, fit.inserted, fit.trimmed) == (2400, 1280, 800 + CHUNK)


def test_a_steady_lag_is_absorbed_after_the_window() -> None:
    fit = fitter()
    fit.arrive(at(0.100), CHUNK)
    lag = 2 * int(LATE_S * 16000)  # 10 ms late: jitter-sized, but every time
    for j in range(1, LATE_WINDOW):
        assert fit.arrive(at(0.100 + 0.02 * j + lag / 16000), CHUNK) == Fit(), j
    # half a second of it: re-anchored by the smallest of the delays
    assert fit.arrive(at(0.100 + 0.02 * LATE_WINDOW + lag / 16000), CHUNK) == Fit(insert=lag)
    for j in range(LATE_WINDOW + 1, 3 * LATE_WINDOW):  # now on time: nothing more
        assert fit.arrive(at(0.100 + 0.02 * j + lag / 16000), CHUNK) == Fit(), j
    assert (fit.inserted, fit.trimmed) == (1280 + lag, 0)


def test_a_session_anchored_late_catches_up_with_its_audio() -> None:
    fit = fitter()
    fit.arrive(at(0.100), CHUNK)  # the first chunk came 10 ms late: anchored 10 ms late
    for j in range(1, LATE_WINDOW):  # every later chunk is 10 ms early: left alone...
        assert fit.arrive(at(0.100 + 0.02 * j - 0.01), CHUNK) == Fit(), j
    # ... until half a second of it: a steady lead, cut by the smallest lead
    assert fit.arrive(at(0.100 + 0.02 * LATE_WINDOW - 0.01), CHUNK) == Fit(trim=160)
    for j in range(LATE_WINDOW + 1, 3 * LATE_WINDOW):  # now on time: nothing more to cut
        assert fit.arrive(at(0.100 + 0.02 * j - 0.01), CHUNK) == Fit(), j
    assert (fit.inserted, fit.trimmed) == (1280, 160)


def test_a_single_late_chunk_does_not_count_as_a_steady_lag() -> None:
    fit = fitter()
    fit.arrive(at(0.100), CHUNK)
    for j in range(1, 3 * LATE_WINDOW):  # one chunk in every window is on time
        lag = 0 if j % LATE_WINDOW == 0 else 160
        assert fit.arrive(at(0.100 + 0.02 * j + lag / 16000), CHUNK) == Fit(), j
    assert (fit.inserted, fit.trimmed) == (1280, 0)


def test_without_audio_the_clock_goes_on_in_silence() -> None:
    fit = fitter()  # no audio at all yet (no microphone): silence up to the present
    assert fit.idle(at(0.050)) == 800
    assert fit.idle(at(0.060)) == 160
    assert fit.idle(at(0.060)) == 0
    assert (fit.written, fit.inserted) == (960, 960)


def test_silence_waits_for_late_audio_then_fills_up_to_now() -> None:
    fit = fitter()
    fit.arrive(at(0.100), CHUNK)
    last = 0.120 + JITTER_S  # 40 ms late: jitter, left alone (it ends 40 ms before then)
    assert fit.arrive(at(last), CHUNK) == Fit()
    assert fit.written == 1920
    # less than STALL_FILL_S since it came: the clock goes on to STALL_FILL_S before now
    # (150 ms of samples, 30 ms more than placed)
    assert fit.idle(at(last + STALL_FILL_S - 0.01)) == 480
    assert fit.written == 2400
    # after STALL_FILL_S without audio: up to the present (270 ms)
    now = last + STALL_FILL_S + 0.01
    assert fit.idle(at(now)) == 4320 - 2400
    assert (fit.written, fit.inserted) == (4320, 1280 + 480 + 1920)
    # the next audio lands at its arrival, even jitter-sized: 5 ms after the filled present
    # it is placed 5 ms later (silence), 15 ms after it its start overlaps the silence: cut
    assert fit.arrive(at(now + 0.025), CHUNK) == Fit(insert=80)
    stalled = fitter()
    stalled.arrive(at(0.100), CHUNK)
    stalled.idle(at(0.100 + STALL_FILL_S + 0.01))
    assert stalled.arrive(at(0.100 + STALL_FILL_S + 0.015), CHUNK) == Fit(trim=240)


def test_after_an_interrupt_the_next_chunk_is_reanchored_at_its_arrival() -> None:
    twins = fitter(), fitter()
    for fit in twins:
        fit.arrive(at(0.100), CHUNK)
        fit.arrive(at(0.120), CHUNK)
    interrupted, steady = twins
    interrupted.reanchor()
    # the same jitter-sized delay (10 ms): left alone, but re-anchored after the interrupt
    assert steady.arrive(at(0.150), CHUNK) == Fit()
    assert interrupted.arrive(at(0.150), CHUNK) == Fit(insert=160)
    # and once only: the next one is left alone again
    assert interrupted.arrive(at(0.180), CHUNK) == Fit()
    # a re-anchored chunk that would overlap what was placed before is cut
    early = fitter()
    early.arrive(at(0.100), CHUNK)
    early.reanchor()
    assert early.arrive(at(0.110), CHUNK) == Fit(trim=160)


def test_every_sample_is_counted_once() -> None:
    fit = fitter()
    arrivals = [0.1, 0.12, 0.17, 0.19, 0.2, 0.203, 0.5, 0.52, 0.52, 0.52, 0.52, 0.53]
    placed = 0
    for s in arrivals:
        decision = fit.arrive(at(s), CHUNK)
        assert not (decision.insert and decision.trim)
        placed += decision.insert + CHUNK - decision.trim
    placed += fit.idle(at(0.9))
    assert fit.written == placed == fit.inserted + len(arrivals) * CHUNK - fit.trimmed
    assert fit.inserted > 0 and fit.trimmed > 0


# -- aligned to the frames (clock_fit's "Aligned to the frames") ------------------------------

FRAME_END = 640 + 1080  # frame 0's completing sample with dsp's 67.5 ms lookahead


def aligned(fit: ArrivalFitter) -> bool:
    """Whether the audio placed so far ends ALIGN_GUARD samples after a frame's completing
    sample (mod the packet: frames are two packets long)."""
    return (fit.written - FRAME_END - ALIGN_GUARD) % PACKET == 0


@pytest.mark.parametrize("phase", [0, 40, 136, 150, 170, 200, 319])
def test_the_first_chunk_moves_the_clock_by_under_half_a_packet(phase: int) -> None:
    clock = SessionClock(0.1, t0=T0)
    fit = ArrivalFitter(clock, FRAME_END)
    first = at((1600 + phase) / 16000)  # 100 ms in, at every phase of the packet
    fit.arrive(first, CHUNK, movable=True)
    assert aligned(fit) and fit.delay == 0
    moved = round((clock.t0 - T0) * 16000)
    assert abs(moved) <= PACKET // 2
    # its end is its arrival on the moved clock (to the sample: time is a float)
    assert abs(fit.written - clock.samples_due(first)) <= 1
    # the packets that follow on the 20 ms beat fit as they come, and stay aligned
    for j in range(1, 3 * LATE_WINDOW):
        assert fit.arrive(first + 0.02 * j, CHUNK, movable=j < 3) == Fit(), j
        assert aligned(fit)
    assert clock.t0 == T0 + moved / 16000  # moved once


@pytest.mark.parametrize("phase", [0, 100, 200, 300])
def test_a_later_anchor_places_the_audio_up_to_a_packet_after_its_arrival(phase: int) -> None:
    clock = SessionClock(0.1, t0=T0)
    fit = ArrivalFitter(clock, FRAME_END)
    fit.arrive(at(0.100), CHUNK, movable=True)
    t0 = clock.t0
    fit.reanchor()  # an interrupt, at another phase; frames were made: the clock stays
    arrival = at(0.300 + phase / 16000)
    fit.arrive(arrival, CHUNK)
    assert clock.t0 == t0 and aligned(fit)
    assert 0 <= fit.written - clock.samples_due(arrival) < PACKET
    assert fit.delay == fit.written - clock.samples_due(arrival)
    # that delay is the alignment, not a lead to cut: the beat goes on untouched
    for j in range(1, 3 * LATE_WINDOW):
        assert fit.arrive(arrival + 0.02 * j, CHUNK) == Fit(), j
    assert aligned(fit)


def test_aligned_corrections_are_whole_packets() -> None:
    fit = ArrivalFitter(SessionClock(0.1, t0=T0), FRAME_END)
    first = at(0.100)
    fit.arrive(first, CHUNK, movable=True)
    lag = 0.01  # every packet 10 ms late from here: a steady lag, corrected by one packet
    decisions = [fit.arrive(first + 0.02 * j + lag, CHUNK) for j in range(1, LATE_WINDOW + 1)]
    assert decisions[-1] == Fit(insert=PACKET) and set(decisions[:-1]) == {Fit()}
    assert aligned(fit)
    # (the packet put in leaves every packet 10 ms early: less than one packet, not cut)
    # a 100 ms chunk 60 ms ahead of the beat, 70 ms ahead of where it goes: cut by whole
    # packets (60 ms), not by 70 ms; the 10 ms left is within the jitter
    due = first + 0.02 * (LATE_WINDOW + 5) + lag  # where it would end on the beat
    assert fit.arrive(due - 0.06, 5 * CHUNK) == Fit(trim=3 * PACKET)
    assert aligned(fit)
