"""Receive-side jitter buffer that releases media as soon as it is complete.

aiortc's buffer releases a frame only when the next frame's first packet arrives: audio waits
one packet (20 ms) beyond its 4-packet prefetch, video one frame (40 ms at 25 fps). On a
live call that is pure latency. Here an audio packet (one Opus frame) is released when it
is in order, and a video frame when its last packet (the RTP marker bit) completes an
unbroken run, as browsers do; a frame whose marker was lost is still released when the next
frame begins (aiortc's rule). Used by the server for the microphone audio and by the
benchmark's client for what it receives.
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"  # aiortc has no option for this


class ImmediateJitterBuffer(JitterBuffer):
    def __init__(
        self,
        capacity: int,
        is_video: bool = False,
        on_frame: Callable[[JitterFrame], None] | None = None,
        decode: bool = True,
    ) -> None:
        super().__init__(capacity, is_video=is_video)
        self._on_frame = on_frame  # called with each frame as it is released (before decoding)
        self._decode = decode  # False: frames stop here (a bench viewer that only counts)

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli, frame = super().add(packet)
        if frame is not None and self._on_frame is not None:
            self._on_frame(frame)
        return pli, frame if self._decode else None

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        packets = []
        timestamp = None
        origin = self._origin
        assert origin is not None  # set by add() before this is called
        for count in range(self.capacity):
            packet = self._packets[(origin + count) % self.capacity]
            if packet is None:
                return None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:  # the previous frame ended without a marker
                self.remove(count)
                return _frame(packets, timestamp)
            packets.append(packet)
            if packet.marker or not self._is_video:
                self.remove(count + 1)
                return _frame(packets, timestamp)
        return None


def _frame(packets: list, timestamp: int) -> JitterFrame:
    return JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)


def release_immediately(
    receiver: RTCRtpReceiver,
    on_frame: Callable[[JitterFrame], None] | None = None,
    decode: bool = True,
) -> None:
    """Give an aiortc RTCRtpReceiver the immediate jitter buffer, keeping its kind's
    capacity (before any packet arrives); ``on_frame`` sees each frame as it is released;
    ``decode=False`` keeps frames from the decoder (nothing reaches the track)."""
    current = getattr(receiver, _ATTRIBUTE, None)
    if isinstance(current, JitterBuffer):
        setattr(
            receiver,
            _ATTRIBUTE,
            ImmediateJitterBuffer(current.capacity, current._is_video, on_frame, decode),
        )
