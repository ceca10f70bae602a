"""Text input for a live session (`POST /api/sessions/{id}/say`): text becomes speech with the
offline TTS engines (engines/tts.py), sentence by sentence, and the speech is pushed into the
session at the pace of a microphone. Speech that arrives faster is trimmed by the session's
``ArrivalFitter``, which is why the pushes are paced. So the mouth starts one sentence's
synthesis (20-50 ms) plus the session's latency after the request.

Requests queue in order (at most ``MAX_QUEUED``). While the avatar speaks text, the
client's microphone is not heard (``Session.mic_muted``). An interrupt (barge-in) drops the
queue and the sentence being spoken. Runs on the event loop; synthesis runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Generator

from engines import tts
from engines.audio_io import AudioChunk
from stream_server.session import Session

log = logging.getLogger(__name__)

MAX_QUEUED = 8  # requests waiting; one more is refused (429)
CHUNK_S = 0.02  # engines.audio_io's chunks
LEAD_S = 0.02  # pushed this far ahead of real time (within the fitter's 40 ms tolerance)


class QueueFull(RuntimeError):
    pass


class Speaker:
    """One session's text-to-speech queue and the task that speaks it."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._queue: deque[tuple[str, str]] = deque()
        self._wake = asyncio.Event()
        self._generation = 0  # bumped by interrupt: the utterance in progress stops
        self.task: asyncio.Task[None] | None = None
        self.spoken = 0
        self.speaking = False
        self._closed = False

    def say(self, text: str, voice: str) -> int:
        """Queue checked text (``tts.check``); the number of requests now waiting or
        speaking."""
        if len(self._queue) >= MAX_QUEUED:
            raise QueueFull(f"{MAX_QUEUED} requests are already waiting")
        self._queue.append((text, voice))
        self._wake.set()
        if self.task is None:
            self.task = asyncio.ensure_future(self._run())
        return len(self._queue) + int(self.speaking)

    def interrupt(self) -> None:
        """Barge-in: drop what is queued and stop what is being said."""
        self._queue.clear()
        self._generation += 1

    def close(self) -> None:
        self._closed = True
        self.interrupt()
        self._wake.set()

    async def _run(self) -> None:
        while not self._closed:
            if not self._queue or not self.session.alive:  # nothing to say, or not started
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.1)
                continue
            text, voice = self._queue.popleft()
            self.speaking = True
            self.session.mic_muted = True
            try:
                await self._speak(text, voice, self._generation)
                self.spoken += 1
            except tts.TtsError as e:
                log.warning("session %s…: %s", self.session.id[:8], e)
            finally:
                self.speaking = False
                self.session.mic_muted = bool(self._queue)

    async def _speak(self, text: str, voice: str, generation: int) -> None:
        chunks: Generator[AudioChunk] = tts.speak(text, voice)
        start = time.monotonic()
        sent = 0
        try:
            while generation == self._generation and self.session.alive:
                chunk = await asyncio.to_thread(next, chunks, None)
                if chunk is None or generation != self._generation:
                    return
                due = start + sent * CHUNK_S - LEAD_S
                now = time.monotonic()
                if now > due + 0.1:  # synthesis fell behind: restart the pace from here
                    start, sent = now, 0
                else:
                    await asyncio.sleep(max(0.0, due - now))
                if generation != self._generation:
                    return
                self.session.push_audio(chunk.session, chunk.output)
                sent += 1
        finally:
            await asyncio.to_thread(chunks.close)
