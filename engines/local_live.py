"""The avatar on this machine's own devices (`emote live`): the microphone in through
``sounddevice`` (PortAudio), the face out to a file, a window, a virtual camera and/or the
speakers, as fast as the microphone's audio lets the motion generator see ahead.

The microphone's 20 ms blocks go straight into the push core (``engines.avatar_frames``,
48 kHz), the same motion stream and renderer as `emote serve`. Each frame comes out with the
48 kHz audio it shows, and every sink gets the same frames. So a file, a window and the
speakers stay in step, one lookahead (67.5 ms, rounded up to whole frames) plus one block
behind the microphone. The block queue is bounded (``QUEUE_BLOCKS``). A machine that cannot
render as fast as the microphone speaks drops the oldest blocks and counts them, rather than
falling further behind.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from contracts.clock import FPS
from engines.audio_io import OUTPUT_RATE
from engines.avatar_frames import AvatarFrame, AvatarFrames

log = logging.getLogger(__name__)

BLOCK = OUTPUT_RATE // 50  # 20 ms at 48 kHz
QUEUE_BLOCKS = 50  # 1 s of microphone audio waiting; beyond it the oldest is dropped
SPEAKER_BUFFER_S = 0.08  # the speaker's sound runs this far behind its frames


class DeviceError(RuntimeError):
    """A device cannot be opened or used; the message is one line for the user."""


def sounddevice() -> Any:
    """The ``sounddevice`` module, or ``DeviceError`` saying why it cannot load."""
    try:
        import sounddevice as sd
    except OSError as e:  # no PortAudio library
        raise DeviceError(
            f"sounddevice cannot load PortAudio ({e}): apt install libportaudio2"
        ) from e
    return sd


def list_devices() -> str:
    """PortAudio's devices, as sounddevice prints them (input and output channels)."""
    return str(sounddevice().query_devices())


class Sink(Protocol):
    def show(self, frame: AvatarFrame) -> None: ...

    def close(self) -> None: ...


@dataclass
class LiveStats:
    blocks_in: int = 0
    blocks_dropped: int = 0  # the renderer fell behind: the oldest blocks went
    frames_out: int = 0
    first_frame_s: float | None = None
    frame_ms: list[float] = field(default_factory=list)  # push -> frames, per block

    def as_json(self) -> dict[str, object]:
        ms = np.array(self.frame_ms) if self.frame_ms else np.zeros(1)
        return {
            "blocks_in": self.blocks_in,
            "blocks_dropped": self.blocks_dropped,
            "frames_out": self.frames_out,
            "first_frame_s": self.first_frame_s,
            "block_ms_p50": round(float(np.percentile(ms, 50)), 2),
            "block_ms_p95": round(float(np.percentile(ms, 95)), 2),
        }


class Microphone:
    """A PortAudio input stream of mono 48 kHz float blocks into a bounded queue."""

    def __init__(self, device: int | str | None) -> None:
        sd = sounddevice()
        self.blocks: queue.Queue[np.ndarray] = queue.Queue(QUEUE_BLOCKS)
        self.dropped = 0
        try:
            self._stream = sd.InputStream(
                samplerate=OUTPUT_RATE,
                blocksize=BLOCK,
                channels=1,
                dtype="float32",
                device=device,
                callback=self._on_block,
            )
        except (ValueError, sd.PortAudioError) as e:
            raise DeviceError(f"cannot open the microphone {device!r}: {e}") from e

    def _on_block(self, data: np.ndarray, frames: int, when: object, status: object) -> None:
        block = data[:, 0].copy()
        try:
            self.blocks.put_nowait(block)
        except queue.Full:  # the consumer is behind: keep the newest
            self.dropped += 1
            with contextlib.suppress(queue.Empty):
                self.blocks.get_nowait()
            self.blocks.put_nowait(block)

    def start(self) -> None:
        self._stream.start()

    def close(self) -> None:
        self._stream.stop()
        self._stream.close()


def _sound(frame: AvatarFrame) -> np.ndarray:
    """A frame's 40 ms of int16 sound at 48 kHz: silence for an idle frame."""
    return frame.audio if frame.audio is not None else np.zeros(BLOCK * 2, np.int16)


class FileSink:
    """An H.264 + AAC MP4 of what was shown and heard."""

    def __init__(self, path: Path, size: int) -> None:
        from engines.mp4_writer import Mp4Writer

        self._writer = Mp4Writer(path, FPS, size, audio_rate=OUTPUT_RATE)

    def show(self, frame: AvatarFrame) -> None:
        self._writer.write_video(frame.rgb)
        self._writer.write_audio(_sound(frame).astype(np.float32) / 32768.0)

    def close(self) -> None:
        self._writer.close()


class SpeakerSink:
    """The avatar's sound on an output device, each frame's audio as its frame is shown."""

    def __init__(self, device: int | str | None) -> None:
        sd = sounddevice()
        try:
            self._stream = sd.OutputStream(
                samplerate=OUTPUT_RATE,
                channels=1,
                dtype="int16",
                device=device,
                latency=SPEAKER_BUFFER_S,
            )
        except (ValueError, sd.PortAudioError) as e:
            raise DeviceError(f"cannot open the speaker {device!r}: {e}") from e
        self._stream.start()
        # Frames come one every 40 ms give or take the renderer's jitter: a little silence
        # ahead keeps the device from running dry between them.
        self._stream.write(np.zeros((int(SPEAKER_BUFFER_S * OUTPUT_RATE), 1), np.int16))

        self.dropped = 0  # frames whose sound did not fit (the loop was catching up)

    def show(self, frame: AvatarFrame) -> None:
        """Never waits for the device (the microphone paces the loop): sound that does not
        fit in the device's buffer is dropped and counted."""
        audio = _sound(frame)
        if self._stream.write_available < len(audio):
            self.dropped += 1
            return
        self._stream.write(audio.reshape(-1, 1))

    def close(self) -> None:
        self._stream.stop()
        self._stream.close()


class WindowSink:
    """A preview window (tkinter, from the standard library: it needs a display)."""

    def __init__(self, size: int, title: str = "emote live") -> None:
        try:
            import tkinter
        except ImportError as e:
            raise DeviceError("--window needs tkinter (apt install python3-tk)") from e
        try:
            self._root = tkinter.Tk()
        except tkinter.TclError as e:
            raise DeviceError(f"--window needs a display ({e})") from e
        self._root.title(title)
        self._photo = tkinter.PhotoImage(width=size, height=size)
        tkinter.Label(self._root, image=self._photo).pack()
        self.closed = False
        self._root.protocol("WM_DELETE_WINDOW", self._on_close)

    def _on_close(self) -> None:
        self.closed = True

    def show(self, frame: AvatarFrame) -> None:
        h, w = frame.rgb.shape[:2]
        ppm = f"P6 {w} {h} 255 ".encode() + frame.rgb.tobytes()
        self._photo.configure(data=ppm, format="PPM")
        self._root.update()

    def close(self) -> None:
        self._root.destroy()


class VirtualCameraSink:
    """A virtual camera (pyvirtualcam: v4l2loopback on Linux, OBS's camera elsewhere)."""

    def __init__(self, size: int) -> None:
        try:
            import pyvirtualcam
        except ImportError as e:
            raise DeviceError(
                "--virtual-camera needs pyvirtualcam (pip install pyvirtualcam)"
            ) from e
        try:
            self._cam = pyvirtualcam.Camera(width=size, height=size, fps=FPS)
        except RuntimeError as e:
            raise DeviceError(f"no virtual camera device: {e}") from e

    def show(self, frame: AvatarFrame) -> None:
        self._cam.send(frame.rgb)

    def close(self) -> None:
        self._cam.close()


def run(
    core: AvatarFrames,
    mic: Microphone,
    sinks: Sequence[Sink],
    seconds: float | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> LiveStats:
    """Microphone -> core -> every sink until ``seconds`` have passed or ``stop()``."""
    if core.rate != OUTPUT_RATE:
        raise ValueError(f"the core must take {OUTPUT_RATE} Hz audio")
    stats = LiveStats()
    start = time.monotonic()
    mic.start()
    try:
        while seconds is None or time.monotonic() - start < seconds:
            if stop():
                break
            try:
                block = mic.blocks.get(timeout=0.5)
            except queue.Empty:
                continue  # a stalled device: keep waiting (seconds still ends it)
            stats.blocks_in += 1
            t0 = time.perf_counter()
            frames = core.push_audio(block)
            stats.frame_ms.append((time.perf_counter() - t0) * 1000)
            if len(stats.frame_ms) > 10_000:
                del stats.frame_ms[:5_000]
            for frame in frames:
                if stats.first_frame_s is None:
                    stats.first_frame_s = time.monotonic() - start
                for sink in sinks:
                    sink.show(frame)
                stats.frames_out += 1
    finally:
        mic.close()
        stats.blocks_dropped = mic.dropped
        for sink in sinks:
            sink.close()
    return stats
