"""A WHIP publisher on another WebRTC stack than aiortc: GStreamer's webrtcbin (libnice, its
own DTLS and SRTP), as GStreamer-based WHIP clients publish (tests/gst_whip_publish.py),
drives the avatar; an aiortc WHEP viewer watches it, and FaceMesh reads the mouth move with
the speech. In a lab namespace (tests/gst_whip_scenario.py says why)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.lab_runs import in_lab

pytestmark = pytest.mark.slow

SYSTEM_PYTHON = "/usr/bin/python3"


def gstreamer_webrtc() -> str | None:
    """Why GStreamer's webrtcbin cannot run from the system's Python (None: it can)."""
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstWebRTC', '1.0');"
        "gi.require_version('GstSdp', '1.0'); from gi.repository import Gst; Gst.init(None);"
        "assert all(Gst.ElementFactory.find(e) for e in "
        "('webrtcbin', 'nicesrc', 'opusenc', 'wavparse', 'rtpopuspay', 'dtlsenc'))"
    )
    try:
        subprocess.run([SYSTEM_PYTHON, "-c", probe], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "needs GStreamer's webrtcbin and python3-gi (./run.sh test installs them)"
    return None


def test_a_gstreamer_webrtcbin_publisher_drives_the_avatar(tmp_path: Path) -> None:
    seen = in_lab("gst_whip_scenario.py", tmp_path, gstreamer_webrtc(), needs_janus=False)
    assert seen["publisher_rc"] == 0, seen["publisher_err"]
    published = seen["published"]
    assert published["location"].startswith("/whip/") and published["delete"] == 200
    assert "connected_s" in published  # ICE and DTLS up (RSA DTLS: whip_whep.as_dtls_server)
    assert seen["audio_chunks_in"] > 200  # its speech reached the session
    assert seen["frames"] > 120  # ~25 fps to the WHEP viewer
    assert seen["quiet_n"] > 10 and seen["talking_n"] > 50, seen
    assert seen["talking_std"] > 3 * seen["quiet_std"], seen  # the mouth moves with speech
