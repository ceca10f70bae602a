"""What an offer's SDP may hold, checked before aiortc parses it.

A session uses one audio stream (the voice in, the avatar's voice out), one video stream (the
face out) and at most one data channel. aiortc parses, and answers, every media section it is
given: 650 m-lines in a 64 kB offer stalled the event loop 0.3-0.7 s and produced a 650 kB
answer. This check is one pass over the lines (well under a millisecond for the largest
offer the body limit lets in), so it runs on the event loop; an offer it lets through is small
for aiortc too.
"""

from __future__ import annotations

MAX_SDP_LINES = 1000  # a browser's audio + video offer is ~150 lines; candidates add a few
MAX_LINE_CHARS = 4096
MEDIA_LIMITS = {"audio": 1, "video": 1, "application": 1}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


class SdpError(ValueError):
    """The offer's SDP is outside what a session can use; the message says how."""


def check_offer_sdp(sdp: str, receives_video: bool = True) -> None:
    """Raise SdpError unless ``sdp`` has at most one audio, exactly one video (that the
    client receives: ``recvonly`` or ``sendrecv``) and at most one data-channel section, with
    bounded line count and length. ``receives_video=False`` (a WHIP publisher): the video
    section may be absent or send-only."""
    lines = sdp.splitlines()
    if len(lines) > MAX_SDP_LINES:
        raise SdpError(f"the offer has {len(lines)} lines; at most {MAX_SDP_LINES}")
    counts = dict.fromkeys(MEDIA_LIMITS, 0)
    video_direction: str | None = None
    section: str | None = None
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_CHARS:
            raise SdpError(f"line {number} of the offer is over {MAX_LINE_CHARS} characters")
        if line.startswith("m="):
            section = line[2:].split(" ", 1)[0]
            if section not in MEDIA_LIMITS:
                raise SdpError(f"line {number}: media {section!r} is not audio, video or data")
            counts[section] += 1
            if counts[section] > MEDIA_LIMITS[section]:
                raise SdpError(
                    f"the offer has more than {MEDIA_LIMITS[section]} {section} section(s); "
                    "a session uses one audio, one video and at most one data channel"
                )
            if section == "video":
                video_direction = "sendrecv"  # the default when no direction is given
        elif section == "video" and line[2:] in DIRECTIONS and line.startswith("a="):
            video_direction = line[2:]
    if not receives_video:
        return
    if counts["video"] == 0:
        raise SdpError("the offer must receive video (add a recvonly video transceiver)")
    if video_direction not in ("recvonly", "sendrecv"):
        raise SdpError(
            f"the offer's video is {video_direction}: it must receive the avatar's video "
            "(recvonly or sendrecv)"
        )
