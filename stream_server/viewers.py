"""Watch-only viewers of a session (WHEP): each gets the session's own encoded frames, as the
session's video track sends them, and its returned audio, on the same clock. Frames are
encoded once per session, whatever the number of viewers.

``ViewerVideoTrack`` is fed by the session video track's listeners (``AvatarVideoTrack``)
through a small bounded queue. A viewer that cannot keep up loses its oldest frames, and it
asks the session for a keyframe. ``pump`` drives a session's video track when no peer does
(a WHIP publisher only sends audio), so that frames are still made, timed and handed on.
Runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from stream_server.session import Session
from stream_server.tracks import DelayedAudioTrack
from stream_server.video_codec import EncodedVideoFrame

VIEWER_QUEUE = 4  # frames waiting for a viewer's sender (160 ms) before the oldest goes


class ViewerVideoTrack(MediaStreamTrack):
    """A session's encoded frames for one more peer connection."""

    kind = "video"

    def __init__(self, session: Session) -> None:
        super().__init__()
        self._session = session
        self._queue: asyncio.Queue[EncodedVideoFrame] = asyncio.Queue(VIEWER_QUEUE)
        self.dropped = 0
        self._started = False
        session.video.frame_listeners.append(self._on_frame)

    def _on_frame(self, k: int, encoded: EncodedVideoFrame) -> None:
        if not self._started:
            if not encoded.keyframe:  # a decoder starts at a keyframe: ask for one
                self._session.encoder.request_keyframe()
                return
            self._started = True
        if self._queue.full():
            self.dropped += 1
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
            self._session.encoder.request_keyframe()  # what follows needs its references
        self._queue.put_nowait(encoded)

    def request_keyframe(self) -> None:
        """The viewer lost a frame (PLI/FIR): the session's next frame is a keyframe."""
        self._session.encoder.request_keyframe()

    async def recv(self) -> EncodedVideoFrame:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        return await self._queue.get()

    def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self._session.video.frame_listeners.remove(self._on_frame)
        super().stop()


def viewer_audio(session: Session) -> DelayedAudioTrack:
    """The session's returned audio for one more peer connection (its own reader of the
    same samples, on the same clock as the video)."""
    return DelayedAudioTrack(session.output_audio_buffer, session.clock, session.metrics)


async def pump(session: Session) -> None:
    """Take the session's frames at their send times when no peer connection does, so that
    listeners (viewers, the motion channel) get them."""
    with contextlib.suppress(MediaStreamError):
        while True:
            await session.video.recv()
