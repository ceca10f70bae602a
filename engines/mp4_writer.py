"""H.264 + AAC MP4 output with audio and video on one timeline."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AAC_FRAME = 1024


class Mp4Writer:
    """Writes RGB frames at ``fps`` and mono float audio at ``audio_rate`` to an MP4.

    Both tracks start at t = 0. The AAC encoder's priming samples (1024 at the start of every
    AAC stream) are declared by FFmpeg as the stream's initial padding; the MP4 muxer writes
    them into an edit list, so players skip them and the audio lines up with the video.
    tests/test_render_cli.py checks this on the decoded file (a click stays at 1.000 s).
    """

    def __init__(
        self,
        path: str | Path,
        fps: int,
        size: int,
        audio_rate: int = 48_000,
        crf: int = 20,
        preset: str = "superfast",
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.path), mode="w", format="mp4")
        self.video = self.container.add_stream("libx264", rate=fps)
        self.video.width = size
        self.video.height = size
        self.video.pix_fmt = "yuv420p"
        self.video.codec_context.time_base = Fraction(1, fps)
        # One encoder thread: the renderer keeps the other core busy (x264 defaults to 1.5x cores).
        self.video.codec_context.options = {"crf": str(crf), "preset": preset, "threads": "1"}
        self.audio = self.container.add_stream("aac", rate=audio_rate)
        self.audio.layout = "mono"
        self.audio.codec_context.time_base = Fraction(1, audio_rate)
        self.audio_rate = audio_rate
        self._audio_pending = np.zeros(0, np.float32)
        self._audio_pts = 0
        self._video_pts = 0

    def write_video(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self._video_pts
        frame.time_base = self.video.codec_context.time_base
        self._video_pts += 1
        self.container.mux(self.video.encode(frame))

    def write_audio(self, samples: np.ndarray) -> None:
        self._audio_pending = np.concatenate([self._audio_pending, samples.astype(np.float32)])
        while len(self._audio_pending) >= AAC_FRAME:
            self._encode_audio(self._audio_pending[:AAC_FRAME])
            self._audio_pending = self._audio_pending[AAC_FRAME:]

    def _encode_audio(self, block: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate = self.audio_rate
        frame.pts = self._audio_pts
        frame.time_base = self.audio.codec_context.time_base
        self._audio_pts += len(block)
        self.container.mux(self.audio.encode(frame))

    def close(self) -> None:
        if len(self._audio_pending):
            self._encode_audio(self._audio_pending)
            self._audio_pending = np.zeros(0, np.float32)
        self.container.mux(self.audio.encode(None))
        self.container.mux(self.video.encode(None))
        self.container.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
