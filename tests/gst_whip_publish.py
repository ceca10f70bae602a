"""A WHIP publisher on GStreamer's webrtcbin (libnice, GStreamer's DTLS and SRTP: another
WebRTC stack than aiortc), as GStreamer-based WHIP clients publish: a WAV file, paced in
real time, as Opus, offered with every candidate in the SDP (no trickle), POSTed as
``application/sdp``; the answer from the ``201``, ``DELETE`` on the ``Location`` at the end.

Runs with the system's Python and its GStreamer bindings (Debian: python3-gi,
gir1.2-gst-plugins-bad-1.0, gstreamer1.0-nice, -plugins-good, -plugins-bad), not the
project's venv: ``/usr/bin/python3 tests/gst_whip_publish.py URL WAV SECONDS``. Prints a
JSON line with the Location as soon as the answer is in, and one at the end: the Location
and the DELETE's status.

(Debian 12's own GStreamer WHIP client, simple-whip-client, does not start there: it links
libsoup 2 and GStreamer's webrtc plugins libsoup 3. libnice pairs none of its addresses with
a server that offers 127.0.0.1 alone, so the test runs it in a lab namespace:
tests/gst_whip_scenario.py.)
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

PIPELINE = (
    "webrtcbin name=send bundle-policy=max-bundle "
    "filesrc location={wav} ! wavparse ! audioconvert ! audioresample ! "
    "audio/x-raw,rate=48000,channels=1 ! identity sync=true ! opusenc ! "
    "rtpopuspay pt=111 ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! send."
)


def main(url: str, wav: str, seconds: float) -> None:
    Gst.init(None)
    pipeline = Gst.parse_launch(PIPELINE.format(wav=wav))
    send = pipeline.get_by_name("send")
    loop = GLib.MainLoop()
    result: dict[str, object] = {}
    offered = threading.Event()

    def on_offer(promise: Gst.Promise, _data: object) -> None:
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply is not None else None
        if offer is None:
            result["error"] = f"no offer: {reply.to_string() if reply else None}"
            loop.quit()
            return
        send.emit("set-local-description", offer, Gst.Promise.new())

    def on_negotiation_needed(element: Gst.Element) -> None:
        element.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer, None))

    def on_gathering(element: Gst.Element, _pspec: object) -> None:
        if (
            element.get_property("ice-gathering-state")
            != GstWebRTC.WebRTCICEGatheringState.COMPLETE
        ):
            return
        if offered.is_set():
            return
        offered.set()
        sdp = element.get_property("local-description").sdp.as_text()
        request = urllib.request.Request(
            url, data=sdp.encode(), method="POST", headers={"Content-Type": "application/sdp"}
        )
        result["posted"] = time.monotonic()
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201, response.status
            result["location"] = response.headers["Location"]
            answer_text = response.read().decode()
        print(json.dumps({"location": result["location"]}), flush=True)  # for a viewer
        _, message = GstSdp.SDPMessage.new_from_text(answer_text)
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        element.emit("set-remote-description", answer, Gst.Promise.new())

    def on_ice_state(element: Gst.Element, _pspec: object) -> None:
        state = element.get_property("ice-connection-state")
        connected = (
            GstWebRTC.WebRTCICEConnectionState.CONNECTED,
            GstWebRTC.WebRTCICEConnectionState.COMPLETED,
        )
        if state in connected and "connected_s" not in result:
            result["connected_s"] = round(time.monotonic() - float(result["posted"]), 3)

    send.connect("on-negotiation-needed", on_negotiation_needed)
    send.connect("notify::ice-gathering-state", on_gathering)
    send.connect("notify::ice-connection-state", on_ice_state)
    pipeline.set_state(Gst.State.PLAYING)
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    loop.run()
    base = url.split("/whip", 1)[0]
    if "location" in result:
        request = urllib.request.Request(base + str(result["location"]), method="DELETE")
        with urllib.request.urlopen(request, timeout=10) as response:
            result["delete"] = response.status
    pipeline.set_state(Gst.State.NULL)
    result.pop("posted", None)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
