"""Where the project's files are: the bundled assets and the real-data assets beside the
checkout (../shared/assets, for evaluation and tests; absent on a plain clone).

The one place that knows the checkout's layout: every module that needs a default portrait,
the shipped models, real speech or real singing asks here.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "assets"
MODELS_DIR = ASSETS / "models"  # the shipped ONNX graphs (renderer and motion model)
DEFAULT_PORTRAIT = ASSETS / "portraits" / "mona_lisa.jpg"
DEFAULT_SPEECH = ASSETS / "speech" / "librivox_ss01_0870.wav"
WEB_CLIENT = REPO / "web_client"

# Real portraits, speech with phone alignments, singing and rap (provenance in SOURCES.md
# there); a checkout without ../shared still has the bundled portrait and clip.
SHARED_ASSETS = REPO.parent / "shared" / "assets"
SHARED_SPEECH = SHARED_ASSETS / "speech"
SHARED_PORTRAITS = SHARED_ASSETS / "portraits"
SHARED_SINGING = SHARED_ASSETS / "singing"  # sing_*.wav, rap_*.wav: no phone alignments
SPEECH_DIRS = (ASSETS / "speech", SHARED_SPEECH)  # bundled first
PORTRAIT_DIRS = (ASSETS / "portraits", SHARED_PORTRAITS)


def speech_dir() -> Path:
    """Real speech with reference alignments: ../shared's when present, else the bundled
    clip's folder."""
    return SHARED_SPEECH if SHARED_SPEECH.is_dir() else ASSETS / "speech"


def singing_dir() -> Path | None:
    """Real singing and rap clips (../shared/assets/singing), or None on a checkout
    without ../shared (nothing is bundled)."""
    return SHARED_SINGING if SHARED_SINGING.is_dir() else None
