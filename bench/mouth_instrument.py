"""FaceMesh's mouth reading on rendered frames of known opening: refined lips vs plain mesh.

    python -m bench.mouth_instrument [--json OUT.json]

The bundled portrait rendered with the dsp generator's mouth (jawOpen j, lips j / 0.8:
mouthLowerDown 0.5 and mouthUpperUp 0.3 of the lips) at jawOpen 0-0.8 and six head poses,
each frame read by FaceMesh (static mode) with and without ``refine_landmarks``: inner-lip
gap (landmarks 13-14) over face height (10-152). Why the live bench reads the mouth with
the plain mesh (measure.mouth; tests/test_bench_instrument.py asserts the plain mesh's
response).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from contracts.paths import DEFAULT_PORTRAIT
from measure.facemesh import FaceTracker
from measure.mouth import dsp_mouth, portrait_renderer

JAWS = (0.0, 0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8)
POSES = {  # (yaw, pitch, roll), radians
    "front": (0.0, 0.0, 0.0),
    "left": (0.08, 0.0, 0.0),
    "right": (-0.08, 0.0, 0.0),
    "down": (0.0, 0.08, 0.0),
    "up": (0.0, -0.08, 0.0),
    "tilted": (0.0, 0.0, 0.06),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="emote-mouth-") as tmp:
        renderer = portrait_renderer(DEFAULT_PORTRAIT, Path(tmp))
        frames = {
            (jaw, pose): renderer.render(dsp_mouth(jaw, *POSES[pose]))[0]
            for jaw in JAWS
            for pose in POSES
        }
    result: dict[str, dict[str, list[float | None]]] = {}
    for name, refine in (("refined", True), ("plain", False)):
        tracker = FaceTracker(static=True, refine=refine)
        try:
            result[name] = {
                pose: [
                    None
                    if not np.isfinite(m := float(tracker.track([frames[jaw, pose]]).mouth[0]))
                    else round(m, 4)
                    for jaw in JAWS
                ]
                for pose in POSES
            }
        finally:
            tracker.close()
    for name, table in result.items():
        print(f"{name}: inner-lip gap / face height at jawOpen {', '.join(map(str, JAWS))}")
        for pose, values in table.items():
            print(f"  {pose:7s} " + " ".join("  -   " if v is None else f"{v:.4f}" for v in values))
    if args.json:
        args.json.write_text(json.dumps({"jaw_open": JAWS, **result}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
