"""`emote live` against real audio devices: PulseAudio (Debian's, in user mode, no kernel
module) with two null sinks, reached through sounddevice -> PortAudio -> ALSA's pulse plugin.
Real speech is played into one sink, whose monitor is the microphone; the avatar's sound goes
to the other sink (--speaker), whose monitor is recorded; the MP4 (--output) is read back with
FaceMesh. Nothing about sounddevice is mocked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from contracts.paths import DEFAULT_SPEECH, REPO
from measure.facemesh import FaceTracker

pytestmark = pytest.mark.slow

MIC_SINK, OUT_SINK = "emote_mic", "emote_out"


@pytest.fixture(scope="module")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A PulseAudio server of this test's own, stopped by its PID at the end."""
    if not shutil.which("pulseaudio"):
        if os.environ.get("CI"):
            pytest.fail("pulseaudio missing: ./run.sh test installs it")
        pytest.skip("no pulseaudio (apt install pulseaudio pulseaudio-utils libportaudio2)")
    runtime = tmp_path_factory.mktemp("pulse-runtime")
    runtime.chmod(0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime)}
    proc = subprocess.Popen(
        [
            "pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "-n",
            "--load=module-native-protocol-unix",
            f"--load=module-null-sink sink_name={MIC_SINK}",
            f"--load=module-null-sink sink_name={OUT_SINK}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode:
            assert proc.poll() is None and time.monotonic() < deadline, "pulseaudio did not start"
            time.sleep(0.1)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_list_devices(pulse: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "emote", "live", "--list-devices"],
        env=pulse, capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "pulse" in out.stdout


def test_microphone_to_file_and_speaker(pulse: dict[str, str], tmp_path: Path) -> None:
    env = {**pulse, "PULSE_SOURCE": f"{MIC_SINK}.monitor", "PULSE_SINK": OUT_SINK}
    video, stats_path, heard = tmp_path / "live.mp4", tmp_path / "live.json", tmp_path / "out.wav"
    live = subprocess.Popen(
        [
            sys.executable, "-m", "emote", "--cache-dir", str(tmp_path / "cache"), "live",
            "--mic", "pulse", "--speaker", "pulse",
            "--output", str(video), "--seconds", "12", "--stats", str(stats_path),
        ],
        env=env, cwd=REPO, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    recorder = subprocess.Popen(
        ["parecord", f"--device={OUT_SINK}.monitor", "--file-format=wav", str(heard)], env=pulse
    )
    try:
        assert live.stderr is not None
        seen = []
        while not seen or "speak into the microphone" not in seen[-1]:  # the devices are open
            seen.append(live.stderr.readline())
            assert seen[-1], "".join(seen)
        time.sleep(3.0)  # silence first (the devices take ~1 s to deliver the first block)
        played_at = time.monotonic()
        subprocess.run(
            ["paplay", f"--device={MIC_SINK}", str(DEFAULT_SPEECH)], env=pulse, check=True,
            timeout=30,
        )  # fmt: skip
        assert live.wait(60) == 0, live.stderr.read()
    finally:
        if live.poll() is None:
            live.kill()
        recorder.terminate()
        recorder.wait(5)
    stats = json.loads(stats_path.read_text())
    assert stats["blocks_dropped"] == 0
    assert stats["frames_out"] >= 0.9 * stats["blocks_in"] / 2 - 10  # two 20 ms blocks a frame

    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(video)) as container:
        sound = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    mouth = FaceTracker().track(frames).mouth
    per_second = [float(np.nanmax(mouth[i : i + 25])) for i in range(0, len(mouth) - 24, 25)]
    loud = [
        float(np.sqrt((sound[i : i + 48_000] ** 2).mean())) for i in range(0, len(sound), 48_000)
    ]
    assert np.isfinite(mouth).mean() > 0.95
    assert per_second[0] < 0.006, per_second  # silence: shut
    assert max(per_second) > 0.025, per_second  # the clip opens it
    assert loud[0] < 0.005 and max(loud) > 0.03, loud  # the MP4 holds the microphone's speech
    # the speakers played the same speech (the other sink's monitor)
    with av.open(str(heard)) as container:
        out = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    out = out.astype(np.float32) / (32768.0 if out.dtype == np.int16 else 1.0)
    rate = 44_100
    out_loud = [float(np.sqrt((out[i : i + rate] ** 2).mean())) for i in range(0, len(out), rate)]
    assert max(out_loud) > 0.02, out_loud
    assert time.monotonic() - played_at < 60


def test_a_missing_device_is_a_clear_error(pulse: dict[str, str], tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "emote", "live", "--mic", "no-such-device", "--output",
         str(tmp_path / "x.mp4"), "--seconds", "1"],
        env=pulse, capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 2
    assert "cannot open the microphone 'no-such-device'" in out.stderr
    assert not (tmp_path / "x.mp4").exists()
    nowhere = subprocess.run(
        [sys.executable, "-m", "emote", "live", "--seconds", "1"],
        env=pulse, capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert nowhere.returncode == 2 and "--window, --virtual-camera" in nowhere.stderr


@pytest.fixture
def display(tmp_path: Path) -> Iterator[str]:
    """An X server of this test's own (Xvfb), stopped by its PID at the end."""
    if not shutil.which("Xvfb"):
        if os.environ.get("CI"):
            pytest.fail("Xvfb missing: ./run.sh test installs xvfb")
        pytest.skip("no Xvfb (apt install xvfb)")
    name = ":87"
    proc = subprocess.Popen(
        ["Xvfb", name, "-screen", "0", "640x640x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not Path(f"/tmp/.X11-unix/X{name[1:]}").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "Xvfb did not start"
            time.sleep(0.1)
        yield name
    finally:
        proc.terminate()
        proc.wait(5)


def test_window_shows_the_talking_avatar(
    pulse: dict[str, str], display: str, tmp_path: Path
) -> None:
    from PIL import ImageGrab

    env = {**pulse, "PULSE_SOURCE": f"{MIC_SINK}.monitor", "DISPLAY": display}
    live = subprocess.Popen(
        [sys.executable, "-m", "emote", "--cache-dir", str(tmp_path / "cache"), "live",
         "--mic", "pulse", "--window", "--seconds", "9"],
        env=env, cwd=REPO, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    shots = []
    try:
        assert live.stderr is not None
        seen = []
        while not seen or "speak into the microphone" not in seen[-1]:
            seen.append(live.stderr.readline())
            assert seen[-1], "".join(seen)
        deadline = time.monotonic() + 10.0  # the first frame needs the first blocks (~1 s)
        while time.monotonic() < deadline:
            time.sleep(0.2)
            shot = np.asarray(ImageGrab.grab(xdisplay=display).convert("RGB"))
            if shot.std() > 20:  # the window shows something: the idle face
                break
        time.sleep(0.5)
        shots.append(np.asarray(ImageGrab.grab(xdisplay=display).convert("RGB")))
        player = subprocess.Popen(
            ["paplay", f"--device={MIC_SINK}", str(DEFAULT_SPEECH)], env=pulse
        )
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            time.sleep(0.12)
            shots.append(np.asarray(ImageGrab.grab(xdisplay=display).convert("RGB")))
        player.terminate()
        assert live.wait(60) == 0, live.stderr.read()
    finally:
        if live.poll() is None:
            live.kill()
    # The window holds the portrait (a face FaceMesh finds), and its mouth moves with the
    # speech: the screen is read, not the program's own frames.
    tracker = FaceTracker(static=True)
    mouths = [tracker.track([shot]).mouth[0] for shot in shots]
    assert np.isfinite(mouths[0]) and mouths[0] < 0.006, mouths[0]  # idle: shut
    assert np.nanmax(mouths[1:]) > 0.02, mouths
