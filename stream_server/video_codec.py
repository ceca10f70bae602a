"""The server's VP8 encoder settings.

aiortc encodes VP8 with libvpx at ``cpu-used -6`` and lets the receiver's bandwidth estimate
raise the bitrate to 1.5 Mb/s. For a 512x512 talking head on a small CPU that makes the
encoder one of the largest costs of a session; libvpx's fastest real-time setting
(``cpu-used -16``) at up to 1 Mb/s encodes a rendered frame in about half the time
(docs/benchmarks.md). ``install()`` makes this process's aiortc senders use this encoder for
VP8 (aiortc has no option for it); everything else is aiortc's.
"""

from __future__ import annotations

from aiortc import rtcrtpsender
from aiortc.codecs import vpx

CPU_USED = "-16"  # libvpx real time: -16 (fastest) .. -1; aiortc uses -6
MAX_BITRATE = 1_000_000  # b/s; aiortc allows 1.5 Mb/s

_aiortc_get_encoder = rtcrtpsender.get_encoder


class FastVp8Encoder(vpx.Vp8Encoder):
    """aiortc's VP8 encoder with a faster libvpx setting and a lower bitrate ceiling."""

    @property
    def target_bitrate(self) -> int:
        return vpx.Vp8Encoder.target_bitrate.fget(self)  # type: ignore[attr-defined]

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        vpx.Vp8Encoder.target_bitrate.fset(self, min(bitrate, MAX_BITRATE))  # type: ignore[attr-defined]

    def encode(self, frame, force_keyframe: bool = False):
        # Open the codec here with our options: aiortc's encode() keeps an open codec until
        # the frame size or the target bitrate (by > 10%) changes.
        codec = self.codec
        if (
            codec is None
            or (frame.width, frame.height) != (codec.width, codec.height)
            or abs(self.target_bitrate - codec.bit_rate) / codec.bit_rate > 0.1
        ):
            self.codec = self._open(frame.width, frame.height)
        return super().encode(frame, force_keyframe)

    def _open(self, width: int, height: int):
        import av

        bitrate = self.target_bitrate
        codec = av.CodecContext.create("libvpx", "w")
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


def _get_encoder(codec):
    if codec.mimeType.lower() == "video/vp8":
        return FastVp8Encoder()
    return _aiortc_get_encoder(codec)


def install() -> None:
    """Use ``FastVp8Encoder`` for every VP8 sender this process creates from now on."""
    rtcrtpsender.get_encoder = _get_encoder
