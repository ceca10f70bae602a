"""The browser's side of fan-out, run inside measure.janus_lab's network namespace by
tests/test_janus_fanout.py: Janus, `emote serve --publish-to` it, and headless Chromium.

A page starts a call with the fake microphone; once the server has published the session,
the page shows its "Audience link"; a second page opens it and watches the avatar from
Janus (web_client/janus.js), with no token of the avatar server. Writes what it saw as JSON
to the path given."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from contracts.paths import DEFAULT_SPEECH
from measure.browser import CHROMIUM, chromium_args, write_fake_microphone
from measure.janus_lab import Janus
from measure.server import serve

# The <video>'s current frame drawn into a canvas: its size, mean and standard deviation
# of brightness (0..255). (A headless element screenshot of this page's video reads black
# while the canvas gets the frame, so the canvas is what is read.)
CANVAS_JS = """
() => {
  const video = document.querySelector('#watch-video');
  const canvas = Object.assign(document.createElement('canvas'),
    { width: video.videoWidth, height: video.videoHeight });
  const ctx = canvas.getContext('2d');
  ctx.drawImage(video, 0, 0);
  const a = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0, sq = 0;
  for (let i = 0; i < a.length; i += 4) {
    const y = (a[i] + a[i + 1] + a[i + 2]) / 3;
    sum += y; sq += y * y;
  }
  const n = a.length / 4, mean = sum / n;
  return { width: canvas.width, height: canvas.height, mean, std: Math.sqrt(sq / n - mean * mean),
           paused: video.paused, readyState: video.readyState };
}
"""


def main(out: Path) -> None:
    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="emote-janus-browser-") as tmp:
        folder = Path(tmp)
        microphone = write_fake_microphone(DEFAULT_SPEECH, folder / "speech48k.wav")
        with (
            Janus(folder / "janus") as janus,
            serve(1, folder / "cache", options=("--publish-to", janus.url)) as url,
            sync_playwright() as playwright,
        ):
            context = playwright.chromium.launch_persistent_context(
                str(folder / "profile"),
                executable_path=str(CHROMIUM),
                headless=True,
                args=chromium_args(microphone),
                viewport={"width": 1280, "height": 800},
            )
            errors: list[str] = []
            try:
                page = context.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(url)
                page.wait_for_selector(".thumb img")
                page.check("#source-mic")
                page.click("#start")
                page.wait_for_function("window.emoteStats.framesDecoded > 25", timeout=30_000)
                page.wait_for_selector("#audience-link:not([hidden])", timeout=20_000)
                link = page.get_attribute("#audience-link", "href") or ""
                result["link"] = link
                audience = context.new_page()
                audience.on("pageerror", lambda exc: errors.append(str(exc)))
                audience.goto(url + link)
                audience.wait_for_function(
                    "window.emoteWatch.framesDecoded > 40 || window.emoteWatch.phase === 'failed'",
                    timeout=30_000,
                )
                result["watch"] = audience.evaluate("({...window.emoteWatch})")
                result["message"] = audience.inner_text("#watch-message")
                result["canvas"] = audience.evaluate(CANVAS_JS)
                result["tracks"] = audience.evaluate(
                    "[...document.querySelector('#watch-video').srcObject.getTracks()]"
                    ".map((t) => t.kind).sort()"
                )
                audience.close()
                page.click("#stop")
            finally:
                result["errors"] = errors
                result["janus_log"] = janus.tail(1500)
                context.close()
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
