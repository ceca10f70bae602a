"""Video encoded ahead of its send time: the session's VP8 stream, the queue to the video
track, the track's pacing and the interrupt's keyframe (stream_server.video_codec,
stream_server.encoded_frames, stream_server.session)."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest

from contracts.clock import FPS
from stream_server import video_codec
from stream_server.encoded_frames import EncodedFrames
from stream_server.video_codec import EncodedVideoFrame, FastVp8Encoder, Vp8Stream


def _frames(n: int, size: int = 256) -> list[np.ndarray]:
    """I420 frames of a moving, textured square (rgb -> yuv420p)."""
    out = []
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        rgb = np.zeros((size, size, 3), np.uint8)
        rgb[..., 0] = (xx * 255 // size).astype(np.uint8)
        rgb[..., 2] = (yy * 255 // size).astype(np.uint8)
        x0 = 40 + 6 * i
        rgb[80:170, x0 : x0 + 90] = (230, 200, 60)
        out.append(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420))
    return out


def _decode(encoded: list[EncodedVideoFrame]) -> list[np.ndarray]:
    decoder = av.CodecContext.create("libvpx", "r")
    out = []
    for frame in encoded:
        for picture in decoder.decode(av.Packet(bytes(frame))):
            out.append(picture.to_ndarray(format="yuv420p"))
    return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-9))


def test_the_stream_encodes_decodable_frames_stamped_by_index() -> None:
    stream, source = Vp8Stream(), _frames(6)
    encoded = [stream.encode(yuv, 10 + i) for i, yuv in enumerate(source)]
    assert [e.pts for e in encoded] == [(10 + i) * 3600 for i in range(6)]
    assert encoded[0].keyframe and not any(e.keyframe for e in encoded[1:])
    decoded = _decode(encoded)
    assert len(decoded) == 6
    assert min(_psnr(a, b) for a, b in zip(decoded, source, strict=True)) > 28


def test_a_requested_keyframe_restarts_decoding_after_dropped_frames() -> None:
    stream, source = Vp8Stream(), _frames(8)
    encoded = [stream.encode(yuv, i) for i, yuv in enumerate(source[:5])]
    stream.request_keyframe()  # frames 3 and 4 are dropped (an interrupt discarded them)
    encoded += [stream.encode(yuv, i) for i, yuv in enumerate(source[5:], start=5)]
    assert [e.keyframe for e in encoded] == [True, False, False, False, False, True, False, False]
    sent = encoded[:3] + encoded[5:]
    decoded = _decode(sent)
    assert len(decoded) == 6
    assert min(_psnr(a, source[i]) for a, i in zip(decoded[3:], (5, 6, 7), strict=True)) > 28


def test_the_senders_encoder_packs_encoded_frames_and_hands_on_the_bitrate() -> None:
    stream = Vp8Stream()
    assert stream.target_bitrate == video_codec.START_BITRATE
    frame = stream.encode(_frames(1)[0], 7)
    packer = FastVp8Encoder()
    packer.target_bitrate = 5_000_000  # the receiver's estimate (REMB), above our ceiling
    payloads, timestamp = packer.pack(frame)
    assert timestamp == 7 * 3600
    assert payloads and sum(map(len, payloads)) > len(frame.data)  # with VP8 descriptors
    assert stream.target_bitrate == video_codec.MAX_BITRATE


def test_a_keyframe_request_reaches_a_track_that_encodes_its_own_frames() -> None:
    asked: list[bool] = []
    sender = SimpleNamespace(track=SimpleNamespace(request_keyframe=lambda: asked.append(True)))
    video_codec._send_keyframe(sender)  # type: ignore[arg-type]
    assert asked == [True]
    raw = SimpleNamespace(track=object())  # a track of raw frames: aiortc's flag only
    video_codec._send_keyframe(raw)  # type: ignore[arg-type]
    assert asked == [True]


def test_vp8_only_keeps_vp8_and_its_retransmissions() -> None:
    assert {c.mimeType.lower() for c in video_codec.vp8_only()} == {"video/vp8", "video/rtx"}


# -- the queue ---------------------------------------------------------------------------------


def test_the_queue_hands_frames_in_order_and_only_when_due() -> None:
    frames: EncodedFrames[str] = EncodedFrames(capacity=3)
    frames.start(5)
    assert frames.start_index == 5 and frames.last_taken == 4
    assert frames.put(5, "a") and frames.put(7, "c")
    with pytest.raises(ValueError):
        frames.put(6, "b")  # not after the newest queued
    assert frames.pop_due(4) is None  # frame 5 is not due yet at 4
    assert frames.pop_due(5) == (5, "a")
    assert frames.peek_index() == 7
    assert frames.put(8, "d") and frames.put(9, "e")
    assert not frames.put(10, "f")  # full: the track stopped taking
    assert frames.discard_unsent() == 5 and len(frames) == 0
    with pytest.raises(ValueError):
        frames.put(5, "again")  # frame 5 was sent


def test_the_track_side_waits_for_a_frame_put_by_another_thread() -> None:
    frames: EncodedFrames[str] = EncodedFrames(capacity=4)

    async def scenario() -> float:
        start = time.monotonic()
        threading.Timer(0.15, frames.put, (0, "late")).start()
        await asyncio.wait_for(frames.wait(), 2.0)
        return time.monotonic() - start

    waited = asyncio.run(scenario())
    assert 0.1 < waited < 1.5
    assert frames.pop_due(0) == (0, "late")


# -- the session -------------------------------------------------------------------------------


def _session():
    from engines.dsp_motion import DspMotionGenerator
    from stream_server.metrics import Metrics
    from stream_server.session import Session

    face = _frames(1, 512)[0]
    return Session("s", "a", lambda motion: face, DspMotionGenerator(), Metrics())


def test_the_track_sends_each_frame_at_its_time_and_counts_the_ones_never_made() -> None:
    session = _session()
    clock = session.clock

    async def scenario() -> list[tuple[int, float]]:
        first = clock.next_frame(time.monotonic()) + 2
        session.encoded.start(first)
        stream = Vp8Stream()
        for k in (first, first + 1, first + 3):  # first + 2 could not be made in time
            session.encoded.put(k, stream.encode(_frames(1, 512)[0], k))
        out = []
        for _ in range(3):
            frame = await session.video.recv()
            out.append((frame.pts // 3600, time.monotonic() - clock.frame_due(frame.pts // 3600)))
        return out

    sent = asyncio.run(scenario())
    first = session.encoded.start_index
    assert [k for k, _ in sent] == [first, first + 1, first + 3]
    assert all(-0.001 <= late < 0.03 for _, late in sent), sent  # not before it is due
    assert session.stats.frames_dropped == 1 and session.stats.frames_sent == 3


def test_an_idle_session_makes_its_frames_in_time_without_any_audio() -> None:
    session = _session()
    session.start()
    try:
        time.sleep(0.3)
        clock = session.clock
        start = clock.next_frame(time.monotonic())
        session.encoded.start(start)
        queued = []
        for _ in range(25):  # one second, taking what is due as the track does
            time.sleep(1 / FPS)
            k = int((time.monotonic() - clock.t0 - clock.latency_s) * FPS)
            while (item := session.encoded.pop_due(k)) is not None:
                queued.append(item)
    finally:
        session.stop()
        session.join()
    # about 25 frames in the second, in order, from the first the track asked for (that one
    # may be due too soon), nearly none missing (without audio they were made too late to
    # send, or not at all)
    indices = [k for k, _ in queued]
    assert indices == sorted(indices) and start <= indices[0] <= start + 1
    assert len(indices) >= 20 and indices[-1] - indices[0] + 1 - len(indices) <= 3
    assert queued[0][1].keyframe


def test_an_interrupt_drops_the_queued_frames_and_restarts_from_a_keyframe() -> None:
    session = _session()
    session.start()
    try:
        time.sleep(0.3)
        clock = session.clock
        session.encoded.start(int(np.ceil((time.monotonic() - clock.t0) * FPS)))
        deadline = time.monotonic() + 3.0
        while len(session.encoded) < 3:  # frames queued ahead of their send time
            assert time.monotonic() < deadline
            time.sleep(0.01)
        taken = session.encoded.pop_due(10**9)
        assert taken is not None
        session.clear_buffer()
        deadline = time.monotonic() + 3.0
        while session.stats.interrupts and session.interrupt_pending:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.2)
        after = session.encoded.pop_due(10**9)
    finally:
        session.stop()
        session.join()
    assert after is not None
    assert after[0] > taken[0]  # the frames after the last one sent, re-made (closing)...
    assert after[1].keyframe  # ...from a keyframe: the frames they followed were dropped
