"""The browser client in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
Playwright, talking WebRTC to the server started here as a subprocess. The fake microphone
plays the bundled LibriVox speech, so the portrait must talk.

Needs the Debian packages chromium (and chromium-driver) and the pip package playwright; the
tests skip without them. No browser is downloaded (Playwright drives the system Chromium)."""

from __future__ import annotations

import contextlib
import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contracts.paths import DEFAULT_SPEECH
from measure.browser import CHROMIUM, chromium_args, write_fake_microphone
from measure.server import BenchError, serve

SERVER_START_TIMEOUT_S = 60.0

# The bundled portrait's mouth in the 512x512 frame (FaceMesh landmarks 61, 291, 13, 14 lie at
# x 196..266, y 329..336), with room for the jaw to open.
MOUTH_BOX = (176, 296, 288, 392)  # x0, y0, x1, y1

try:
    from playwright.sync_api import sync_playwright
except ImportError:
    sync_playwright = None

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.is_file(), reason="needs Chromium at /usr/bin/chromium (apt: chromium)"
    ),
    pytest.mark.skipif(
        sync_playwright is None, reason="needs Playwright for Python (pip: playwright)"
    ),
]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server on a free loopback port, one session at a time; its base URL."""
    cache = tmp_path_factory.mktemp("browser-server") / "cache"
    with contextlib.ExitStack() as stack:
        try:
            base = stack.enter_context(serve(1, cache, timeout_s=SERVER_START_TIMEOUT_S))
        except BenchError as exc:
            pytest.fail(str(exc))
        yield base


@pytest.fixture(scope="module")
def fake_microphone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The speech as 48 kHz stereo 16-bit WAV, which Chromium's fake capture device plays."""
    path = tmp_path_factory.mktemp("fake-mic") / "speech48k.wav"
    return write_fake_microphone(DEFAULT_SPEECH, path)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, fake_microphone: Path):
    """Headless Chromium with a fake microphone, permissions granted and autoplay allowed."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    args = chromium_args(fake_microphone)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),  # a fresh --user-data-dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=args,
            viewport={"width": 1280, "height": 800},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser, server: str):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server)
    page.wait_for_selector(".thumb img")  # the avatar list has loaded
    yield page
    page.close()
    assert not errors, f"uncaught errors in the page: {errors}"


# Draws the <video> into a canvas twice, a second apart; for each box, the mean absolute
# difference of its pixels between the two (0..255), and the first frame's mean brightness.
MOTION_JS = """
async (boxes) => {
  const video = document.querySelector('#remote-video');
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const grab = () => {
    ctx.drawImage(video, 0, 0);
    return boxes.map(([x0, y0, x1, y1]) => ctx.getImageData(x0, y0, x1 - x0, y1 - y0).data);
  };
  const first = grab();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const second = grab();
  return first.map((a, i) => {
    const b = second[i];
    let diff = 0;
    let sum = 0;
    for (let j = 0; j < a.length; j += 4) {
      for (let c = 0; c < 3; c += 1) {
        diff += Math.abs(a[j + c] - b[j + c]);
        sum += a[j + c];
      }
    }
    const n = (3 * a.length) / 4;
    return { diff: diff / n, mean: sum / n };
  });
}
"""
BACKGROUND_BOX = (0, 0, 64, 64)  # the painting's sky, pinned by the renderer


def test_microphone_call_streams_a_talking_portrait(page, server: str, tmp_path: Path) -> None:
    page.check("#source-mic")
    page.select_option("#style", "happy")  # sent with the offer
    page.click("#start")

    page.wait_for_function("window.emoteStats.framesDecoded > 50", timeout=30_000)
    stats = page.evaluate("({...window.emoteStats})")
    assert stats["connectionState"] == "connected"
    assert stats["sessionId"]
    assert stats["width"] == 512 and stats["height"] == 512
    page.wait_for_function("window.emoteStats.serverLatencyMs > 0", timeout=5_000)

    # The avatar's video and audio play from one stream, each asked for the least buffering.
    kinds = page.evaluate(
        "[...document.querySelector('#remote-video').srcObject.getTracks()].map((t) => t.kind)"
    )
    assert sorted(kinds) == ["audio", "video"]
    assert stats["receiverBufferTargets"] == [0, 0]

    # Frames move, and it is the mouth that moves: the mouth region differs between two
    # frames a second apart, far more than the pinned background does. Speech has pauses, so
    # a few tries.
    for _ in range(4):
        mouth, background = page.evaluate(MOTION_JS, [MOUTH_BOX, BACKGROUND_BOX])
        if mouth["diff"] > 3.0:
            break
    assert mouth["mean"] > 20, f"the video is black: {mouth}"
    assert mouth["diff"] > 3.0, f"the mouth did not move: {mouth}"
    assert background["diff"] < mouth["diff"] / 2, f"the whole frame changes: {background}"

    # The page as a person sees it: not a blank or uniform image.
    shot = tmp_path / "live.png"
    page.screenshot(path=str(shot))
    pixels = np.asarray(Image.open(shot).convert("L"), np.float32)
    assert pixels.std() > 20, f"the screenshot is nearly uniform (std {pixels.std():.1f})"
    video_pixels = np.asarray(
        Image.open(io.BytesIO(page.locator("#remote-video").screenshot())).convert("L"),
        np.float32,
    )
    assert video_pixels.std() > 20, "the video element shows a uniform image"

    # The motion data channel: a message per frame, shown in the page.
    page.wait_for_function("window.emoteStats.motionMessages > 25", timeout=5_000)
    first = page.evaluate("window.emoteStats.motionFrame")
    page.wait_for_function(f"window.emoteStats.motionFrame > {first}", timeout=2_000)
    assert page.inner_text("#stat-motion-head").count("°") == 3
    assert page.inner_text("#stat-motion-jaw") != "–"

    # The watch-only link (WHEP): another page watches the same session.
    link = page.get_attribute("#watch-link", "href")
    assert link and "watch.html?session=" in link
    watcher = page.context.new_page()
    try:
        watcher.goto(server + link)
        watcher.wait_for_function("window.emoteWatch.framesDecoded > 20", timeout=15_000)
        assert watcher.evaluate("window.emoteWatch.resource").startswith("/whep/")
    finally:
        watcher.close()

    # The stats panel shows the numbers, not dashes.
    assert page.inner_text("#stat-fps") != "–"
    assert page.inner_text("#stat-server-latency").endswith("ms")

    # The speaking style: chosen before the call, changed during it.
    session_url = f"{server}/api/sessions/{stats['sessionId']}"
    assert _get_json(session_url)["style"] == "happy"
    page.select_option("#style", "sad")
    page.fill("#intensity", "0.5")
    page.dispatch_event("#intensity", "input")

    def style() -> tuple[str, float]:
        answer = _get_json(session_url)
        return answer["style"], answer["intensity"]

    deadline = time.monotonic() + 5  # the slider's value is sent 150 ms after it stops
    while style() != ("sad", 0.5) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert style() == ("sad", 0.5)

    page.click("#interrupt")
    page.wait_for_selector("#message:has-text('Interrupted')")

    session_id = stats["sessionId"]
    page.click("#stop")
    page.wait_for_function("window.emoteStats.connectionState === 'closed'", timeout=5_000)
    deadline = time.monotonic() + 5
    while _get_json(server + "/healthz")["sessions"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _get_json(server + "/healthz")["sessions"] == 0
    with pytest.raises(urllib.error.HTTPError) as gone:
        _get_json(f"{server}/api/sessions/{session_id}")
    assert gone.value.code == 404
    assert page.is_enabled("#start")


def test_uploading_a_non_image_shows_the_servers_message(page) -> None:
    page.set_input_files(
        "#avatar-file",
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a portrait\n"}],
    )
    error = page.locator("#upload-error")
    error.wait_for(state="visible", timeout=15_000)
    assert "not an image" in error.inner_text()
    assert page.locator(".thumb").count() == 1  # nothing was added to the gallery


def test_a_busy_server_is_retried_with_a_countdown(browser, page, server: str) -> None:
    page.click("#start")  # takes the only session
    page.wait_for_function("window.emoteStats.phase === 'live'", timeout=30_000)
    second = browser.new_page()
    try:
        second.goto(server)
        second.wait_for_selector(".thumb img")
        second.click("#start")
        message = second.locator("#message")
        message.wait_for(state="visible", timeout=15_000)
        second.wait_for_function(
            "document.querySelector('#message').textContent.includes('retrying in')",
            timeout=15_000,
        )
        assert "Server busy, retrying in" in message.inner_text()
        second.click("#stop")  # "Cancel" while waiting
        second.wait_for_function("window.emoteStats.phase === 'idle'", timeout=5_000)
    finally:
        second.close()
    page.click("#stop")
    page.wait_for_function("window.emoteStats.connectionState === 'closed'", timeout=5_000)


def test_a_server_with_a_token_asks_for_it_once_and_then_works(
    browser, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`emote serve --token`: the page asks for the token, keeps it for the tab, and every API
    call (images included: an <img> cannot send it) carries it."""
    token = "browser-token-0123456789"
    cache = tmp_path_factory.mktemp("browser-token") / "cache"
    with serve(1, cache, timeout_s=SERVER_START_TIMEOUT_S, options=("--token", token)) as url:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.goto(url)
            page.locator("#token-form").wait_for(state="visible", timeout=15_000)
            page.fill("#token-input", "wrong-token-0123456789")
            page.click("#token-form button[type=submit]")
            page.wait_for_function(
                "document.querySelector('#token-error').textContent.includes('not accepted')",
                timeout=15_000,
            )
            page.fill("#token-input", token)
            page.click("#token-form button[type=submit]")
            page.wait_for_function(
                "[...document.querySelectorAll('.thumb img')].some((i) => i.naturalWidth > 0)",
                timeout=15_000,
            )
            assert page.locator("#token-form").is_hidden()
            page.reload()  # kept for the tab: no second prompt
            page.wait_for_selector(".thumb img")
            assert page.locator("#token-form").is_hidden()
            page.click("#start")
            page.wait_for_function("window.emoteStats.phase === 'live'", timeout=30_000)
            page.click("#stop")
            page.wait_for_function("window.emoteStats.connectionState === 'closed'", timeout=5_000)
        finally:
            page.close()
        assert not errors, f"uncaught errors in the page: {errors}"
