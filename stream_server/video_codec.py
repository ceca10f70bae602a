"""The server's VP8 encoding.

aiortc encodes a track's raw frames with libvpx at ``cpu-used -6`` in its thread pool, when
the track hands them over, and lets the receiver's bandwidth estimate raise the bitrate to
1.5 Mb/s. Two changes, both for a small CPU shared by several sessions:

* libvpx's fastest real-time setting (``cpu-used -16``) at up to 1 Mb/s, which encodes a
  rendered frame in about half the time (docs/benchmarks.md);
* frames are encoded ahead of their send time by the session's own thread (``Vp8Stream``),
  and its video track hands aiortc the encoded frame (``EncodedVideoFrame``) at the send
  time, which aiortc only packetizes. Encoded when it is sent, a frame leaves as late as its
  encoding took, and under load that varies by several milliseconds from frame to frame:
  jitter, and a video that lags its audio by the mean encoding time.

aiortc has no option for either; ``install()`` puts them in for this process's senders:
``FastVp8Encoder`` packetizes encoded frames (and encodes raw ones with the fast setting)
and hands the receiver's bitrate estimate on to the session's ``Vp8Stream``, and a
receiver's keyframe request (PLI/FIR) reaches the track's ``request_keyframe``.
"""

from __future__ import annotations

import fractions
import threading
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np
from aiortc import rtcrtpsender
from aiortc.codecs import vpx
from aiortc.codecs.base import Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av.packet import Packet
from av.video.codeccontext import VideoCodecContext

CPU_USED = "-16"  # libvpx real time: -16 (fastest) .. -1; aiortc uses -6
MAX_BITRATE = 1_000_000  # b/s; aiortc allows 1.5 Mb/s
START_BITRATE = vpx.DEFAULT_BITRATE  # until the receiver's first estimate (REMB)
VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)
PTS_PER_FRAME = 90_000 // 25


def open_vp8(width: int, height: int, bitrate: int) -> VideoCodecContext:
    """A libvpx encoder as aiortc opens it (constant bitrate, no lag), but ``CPU_USED``."""
    codec = av.CodecContext.create("libvpx", "w")
    assert isinstance(codec, VideoCodecContext)
    codec.width, codec.height = width, height
    codec.bit_rate = bitrate
    codec.pix_fmt = "yuv420p"
    codec.gop_size = 3000
    codec.qmin, codec.qmax = 2, 56
    codec.options = {  # aiortc's, but for cpu-used
        "bufsize": str(bitrate),
        "cpu-used": CPU_USED,
        "deadline": "realtime",
        "lag-in-frames": "0",
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "noise-sensitivity": "4",
        "overshoot-pct": "15",
        "partitions": "0",
        "static-thresh": "1",
        "undershoot-pct": "100",
    }
    codec.thread_count = 1
    return codec


def _needs_reopen(codec: VideoCodecContext | None, width: int, height: int, bitrate: int) -> bool:
    """aiortc's rule: a new codec when the size changes or the bitrate by more than 10%."""
    return (
        codec is None
        or (width, height) != (codec.width, codec.height)
        or not codec.bit_rate
        or abs(bitrate - codec.bit_rate) / codec.bit_rate > 0.1
    )


@dataclass(frozen=True)
class EncodedVideoFrame:
    """One encoded VP8 frame, as aiortc's sender takes a pre-encoded packet (``bytes()``,
    ``pts``, ``time_base``); ``stream`` is the encoder that made it, which the sender's
    ``FastVp8Encoder`` tells the receiver's bitrate estimate."""

    data: bytes
    pts: int
    keyframe: bool
    stream: Vp8Stream
    time_base: fractions.Fraction = VIDEO_TIME_BASE
    motion: np.ndarray | None = None  # the motion frame it shows (the motion data channel)

    def __bytes__(self) -> bytes:
        return self.data


class Vp8Stream:
    """One session's VP8 encoder, used by one thread. ``encode`` takes I420 frames in send
    order; every frame it returns must be sent, in that order (each is coded against the one
    before), unless the next one encoded is a keyframe: ``request_keyframe`` (any thread)
    makes it one."""

    def __init__(self) -> None:
        self._codec: VideoCodecContext | None = None
        self._keyframe = threading.Event()
        self._bitrate = START_BITRATE

    @property
    def target_bitrate(self) -> int:
        return self._bitrate

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        self._bitrate = max(vpx.MIN_BITRATE, min(int(bitrate), MAX_BITRATE))

    def request_keyframe(self) -> None:
        self._keyframe.set()

    def close(self) -> None:
        """Free the encoder now (~15 MB of libvpx state at 512x512). Left to the garbage
        collector, it lives as long as the cycles around a closed peer connection: a server
        measured +3.3 MB of RSS per short session until it did this."""
        self._codec = None

    def encode(
        self, i420: np.ndarray, index: int, motion: np.ndarray | None = None
    ) -> EncodedVideoFrame:
        """Frame ``index`` (25 fps) of a (height * 3 / 2, width) I420 image showing
        ``motion``."""
        pts = index * PTS_PER_FRAME
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        frame.pts, frame.time_base = pts, VIDEO_TIME_BASE  # the encoder rescales them
        codec = self._codec
        if codec is None or _needs_reopen(codec, frame.width, frame.height, self._bitrate):
            codec = self._codec = open_vp8(frame.width, frame.height, self._bitrate)
        if self._keyframe.is_set():
            self._keyframe.clear()
            frame.pict_type = av.video.frame.PictureType.I
        packets = codec.encode(frame)
        data = b"".join(bytes(p) for p in packets)
        keyframe = any(p.is_keyframe for p in packets)
        return EncodedVideoFrame(data, pts, keyframe, self, motion=motion)


class FastVp8Encoder(vpx.Vp8Encoder):
    """aiortc's VP8 encoder with the faster libvpx setting and a lower bitrate ceiling; for
    an ``EncodedVideoFrame`` it only packetizes and passes the receiver's estimate back."""

    @property
    def target_bitrate(self) -> int:
        return vpx.Vp8Encoder.target_bitrate.fget(self)  # type: ignore[attr-defined]

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        vpx.Vp8Encoder.target_bitrate.fset(self, min(bitrate, MAX_BITRATE))  # type: ignore[attr-defined]

    def encode(  # type: ignore[override]  # aiortc hands a video encoder video frames
        self, frame: av.VideoFrame, force_keyframe: bool = False
    ) -> tuple[list[bytes], int]:
        # Open the codec here with our options: aiortc's encode() keeps an open codec until
        # the frame size or the target bitrate (by > 10%) changes.
        if _needs_reopen(self.codec, frame.width, frame.height, self.target_bitrate):
            self.codec = open_vp8(frame.width, frame.height, self.target_bitrate)
        return super().encode(frame, force_keyframe)

    def pack(self, packet: Packet) -> tuple[list[bytes], int]:
        if isinstance(packet, EncodedVideoFrame):
            packet.stream.target_bitrate = self.target_bitrate
        return super().pack(packet)


_aiortc_get_encoder = rtcrtpsender.get_encoder
_aiortc_send_keyframe: Callable[[rtcrtpsender.RTCRtpSender], None] = (
    rtcrtpsender.RTCRtpSender._send_keyframe
)


def _get_encoder(codec: RTCRtpCodecParameters) -> Encoder:
    if codec.mimeType.lower() == "video/vp8":
        return FastVp8Encoder()
    return _aiortc_get_encoder(codec)


def _send_keyframe(sender: rtcrtpsender.RTCRtpSender) -> None:
    _aiortc_send_keyframe(sender)  # for a track of raw frames
    request = getattr(sender.track, "request_keyframe", None)
    if request is not None:  # a track of encoded frames
        request()


def vp8_only() -> list:
    """The codec preferences of a video sender whose track yields ``EncodedVideoFrame``."""
    codecs = rtcrtpsender.RTCRtpSender.getCapabilities("video").codecs
    return [c for c in codecs if c.mimeType.lower() in ("video/vp8", "video/rtx")]


def install() -> None:
    """Use ``FastVp8Encoder`` for every VP8 sender this process creates from now on, and
    pass keyframe requests to tracks that encode their own frames."""
    rtcrtpsender.get_encoder = _get_encoder
    rtcrtpsender.RTCRtpSender._send_keyframe = _send_keyframe  # type: ignore[method-assign, assignment]
