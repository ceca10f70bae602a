"""Headless Chromium (Debian's) for the browser tests: its fake microphone, playing real
speech, and the flags they launch it with (tests/test_browser.py,
tests/janus_browser_scenario.py)."""

from __future__ import annotations

from pathlib import Path

import av

CHROMIUM = Path("/usr/bin/chromium")


def write_fake_microphone(speech: Path, path: Path) -> Path:
    """``speech`` as 48 kHz stereo 16-bit WAV, which Chromium's fake capture device plays."""
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=48_000)
    with av.open(str(speech)) as source, av.open(str(path), "w") as sink:
        stream = sink.add_stream("pcm_s16le", rate=48_000, layout="stereo")
        for frame in [*source.decode(audio=0), None]:
            for resampled in resampler.resample(frame):
                for packet in stream.encode(resampled):
                    sink.mux(packet)
        for packet in stream.encode(None):
            sink.mux(packet)
    return path


def chromium_args(fake_microphone: Path) -> list[str]:
    """Headless, a fake microphone playing ``fake_microphone``, permissions granted,
    autoplay allowed, nothing fetched from the network."""
    return [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_microphone}",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
