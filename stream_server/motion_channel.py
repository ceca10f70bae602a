"""A session's ``motion`` data channel (contracts/motion_channel.py; docs/api.md, "Motion
channel"). Out: each video frame's motion, under ARKit names, sent as the frame is handed to
the video track, so that a 3D avatar can be driven in sync. In: puppeteering messages,
checked, then handed to the session (``Session.set_puppet``).

Bounded both ways. A frame message is dropped, and counted, while the channel holds more
than ``MAX_BUFFERED`` bytes unsent (a receiver that stopped reading). Client messages beyond
``MAX_MESSAGES_PER_S`` are dropped, with one error message a second. A bad message gets an
error message back and changes nothing. Runs on the event loop.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from aiortc import RTCDataChannel

from contracts.motion_channel import MotionMessageError, Puppet, frame_message, parse_message
from stream_server.video_codec import EncodedVideoFrame

log = logging.getLogger(__name__)

MAX_BUFFERED = 256 * 1024  # bytes queued in the channel before frame messages are dropped
MAX_MESSAGES_PER_S = 100  # client messages a second (4 per video frame)


class MotionChannel:
    """Serves one ``motion`` data channel for one session."""

    def __init__(self, channel: RTCDataChannel, puppet: Callable[[Puppet], None]) -> None:
        self.channel = channel
        self._puppet = puppet
        self.sent = 0
        self.dropped = 0  # frame messages not sent (the channel's buffer was full)
        self.received = 0
        self.refused = 0  # client messages refused (bad, or over the rate)
        self._window_start = time.monotonic()
        self._window_count = 0
        self._rate_warned = 0.0
        channel.on("message", self._on_message)

    def frame_sent(self, k: int, encoded: EncodedVideoFrame) -> None:
        """The video track handed frame ``k`` to aiortc: send its motion."""
        if encoded.motion is None or self.channel.readyState != "open":
            return
        if self.channel.bufferedAmount > MAX_BUFFERED:
            self.dropped += 1
            return
        self.channel.send(frame_message(k, encoded.motion))
        self.sent += 1

    def _on_message(self, message: str | bytes) -> None:
        self.received += 1
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        if self._window_count > MAX_MESSAGES_PER_S:
            self.refused += 1
            if now - self._rate_warned >= 1.0:
                self._rate_warned = now
                self._error(f"more than {MAX_MESSAGES_PER_S} messages a second: dropped")
            return
        try:
            puppet = parse_message(message)
        except MotionMessageError as e:
            self.refused += 1
            self._error(str(e))
            return
        self._puppet(puppet)

    def _error(self, text: str) -> None:
        if self.channel.readyState == "open":
            self.channel.send(json.dumps({"type": "error", "message": text}))
