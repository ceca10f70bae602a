#!/usr/bin/env bash
# One entry point for a fresh Debian/Ubuntu machine with Python 3.11:
#   ./run.sh serve    set everything up, then start the server on the bundled portrait
#                     (http://127.0.0.1:8080; arguments go to `emote serve`)
#   ./run.sh demo     set everything up, then render the bundled portrait speaking to out/demo.mp4
#   ./run.sh test     set everything up (with headless Chromium for the browser test), then run
#                     the linters, the type checker and the whole test suite (arguments go to
#                     pytest: `./run.sh test -m "not slow"` is the fast lane)
#   ./run.sh train    set everything up (with the TTS engines), then rebuild the shipped
#                     learned motion model from a new synthetic corpus (`emote train all`)
#   ./run.sh setup    only set up (.venv with every extra but the GPU one)
#   ./run.sh setup-integrations
#                     set up .venv-integrations: the runtime plus livekit-agents and pipecat-ai (they need
#                     protobuf>=5, mediapipe 0.10.21 needs protobuf<5, so they cannot share .venv;
#                     docs/integrations/livekit.md). `test` sets it up too.
#   ./run.sh livekit-worker ARGS
#                     set up both, then run `emote livekit-worker` (docs/integrations/livekit.md)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=${VENV:-.venv}

log() { printf '\033[1m[run.sh]\033[0m %s\n' "$*" >&2; }

apt_install() {
  # Install Debian packages that are missing (needs root or sudo).
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

setup() {
  if ! "$PYTHON" -m venv --help >/dev/null 2>&1 || ! "$PYTHON" -c "import ensurepip" 2>/dev/null; then
    apt_install python3-venv
  fi
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  local stamp="$VENV/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    log "installing the project and its dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # torch==2.13.0 (the 'train' extra) resolves to the local CPU build here.
    "$VENV/bin/python" -m pip install -q -e ".[train,dev]"
    # mediapipe pulls the GUI build of OpenCV (needs libGL); swap in the headless one.
    "$VENV/bin/python" -m pip uninstall -q -y opencv-contrib-python opencv-python 2>/dev/null || true
    "$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "opencv-python-headless==4.11.0.86"
    "$VENV/bin/python" -c "import cv2, mediapipe, onnxruntime, av, torch" \
      || { log "installation check failed"; exit 1; }
    rm -f "$VENV"/.installed-*
    touch "$stamp"
  fi
}

INTEGRATIONS_VENV=${INTEGRATIONS_VENV:-.venv-integrations}

setup_integrations() {
  # The runtime without mediapipe (avatars are prepared in .venv: `emote prepare`; loading a
  # prepared one never imports mediapipe) plus the integrations' own libraries, pinned
  # (requirements/integrations.txt).
  [ -x "$INTEGRATIONS_VENV/bin/python" ] || "$PYTHON" -m venv "$INTEGRATIONS_VENV"
  local stamp="$INTEGRATIONS_VENV/.installed-$(cat pyproject.toml requirements/integrations.txt | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    log "installing the integrations (livekit-agents, pipecat-ai) into $INTEGRATIONS_VENV"
    "$INTEGRATIONS_VENV/bin/python" -m pip install -q --upgrade pip
    "$INTEGRATIONS_VENV/bin/python" -m pip install -q -r requirements/integrations.txt
    "$INTEGRATIONS_VENV/bin/python" -m pip install -q --no-deps -e .
    "$INTEGRATIONS_VENV/bin/python" -c "import cv2, onnxruntime, av, livekit.rtc, livekit.agents, pipecat, integrations.livekit_avatar, integrations.pipecat_avatar" \
      || { log "integrations installation check failed"; exit 1; }
    rm -f "$INTEGRATIONS_VENV"/.installed-*
    touch "$stamp"
  fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  setup)
    setup ;;
  setup-integrations)
    setup_integrations ;;
  livekit-worker)
    setup
    setup_integrations
    exec "$INTEGRATIONS_VENV/bin/emote" livekit-worker "$@" ;;
  demo)
    setup
    mkdir -p out
    "$VENV/bin/emote" render --output out/demo.mp4 "$@"
    log "open out/demo.mp4" ;;
  serve)
    setup
    exec "$VENV/bin/emote" serve "$@" ;;
  test)
    setup
    # The browser test drives Debian's Chromium (Playwright, no browser download).
    apt_install chromium chromium-driver
    # `emote live` is tested on a real PulseAudio server (null sinks) through PortAudio, and
    # its preview window (tkinter) on an Xvfb display.
    apt_install pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins xvfb python3-tk
    # Three nodes behind a real HAProxy (tests/test_balancer.py).
    apt_install haproxy
    # Five viewers watch one avatar through a real Janus VideoRoom, in a network namespace
    # (tests/test_janus_fanout.py).
    apt_install janus iproute2
    # A client that may only relay is served through a real coturn (tests/test_turn.py).
    apt_install coturn
    # A GStreamer webrtcbin WHIP publisher, from the system's Python (tests/test_gst_whip.py).
    apt_install python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 \
        gir1.2-gst-plugins-bad-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
        gstreamer1.0-plugins-bad gstreamer1.0-nice
    # The corpus tests and the tiny training pipeline synthesize speech with every TTS engine.
    bash scripts/install_tts.sh
    setup_integrations
    log "ruff"
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    log "mypy"
    "$VENV/bin/mypy"
    # again where livekit's own types are installed
    "$INTEGRATIONS_VENV/bin/mypy" integrations emote/livekit.py
    log "pytest"
    "$VENV/bin/python" -m pytest -q "$@" ;;
  train)
    setup
    bash scripts/install_tts.sh
    exec "$VENV/bin/emote" train all "$@" ;;
  *)
    echo "usage: ./run.sh {serve|demo|test|train|setup|setup-integrations|livekit-worker} [args...]" >&2
    exit 2 ;;
esac
