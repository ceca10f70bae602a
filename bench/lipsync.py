"""Lip sync measured on rendered frames: FaceMesh tracks the face in the output video and the
mouth opening is compared with the speech (envelope, reference phone alignments).

Usage (the numbers in docs/benchmarks.md come from this):
    python -m bench.lipsync [--image PORTRAIT] [--speech DIR] [--json OUT.json] [--sheet OUT.png]

Each clip with a reference alignment in ``--speech`` is rendered and measured by
``measure.lipsync.evaluate_clip`` (its conventions and metrics are there).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from contracts.paths import DEFAULT_PORTRAIT, speech_dir
from measure.lipsync import contact_sheet, evaluate_clip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_PORTRAIT)
    parser.add_argument("--speech", type=Path, default=speech_dir())
    parser.add_argument("--motion", default="dsp")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--sheet", type=Path, help="contact sheet PNG of the first clip")
    args = parser.parse_args(argv)
    reports = {}
    for phones_path in sorted(args.speech.glob("*.phones.json")):
        wav = phones_path.with_name(phones_path.name.removesuffix(".phones.json") + ".wav")
        report, frames, track = evaluate_clip(args.image, wav, phones_path, args.seed, args.motion)
        if args.sheet and not reports:
            contact_sheet(frames, track, args.sheet)
        reports[wav.stem] = asdict(report)
        print(
            f"{wav.stem}: corr {report.correlation:.2f} lag {report.lag_ms:+.0f} ms, "
            f"p/b/m closed {report.bilabial_closure:.0%} of {report.bilabials}, "
            f"vowel/pbm {report.vowel_to_bilabial:.1f}x, "
            f"silence std {report.silence_to_speech_std:.0%}, "
            f"blinks {report.blinks}"
        )
    closure = np.average(
        [r["bilabial_closure"] for r in reports.values()],
        weights=[r["bilabials"] for r in reports.values()],
    )
    vowel = np.mean([r["vowel_opening"] for r in reports.values()])
    bilabial = np.mean([r["bilabial_opening"] for r in reports.values()])
    lags = [r["lag_ms"] for r in reports.values()]
    silence = max(r["silence_to_speech_std"] for r in reports.values())
    print(
        f"overall: p/b/m closure {closure:.0%}, open vowel / p/b/m opening "
        f"{vowel / bilabial:.1f}x, lag {min(lags):+.0f}..{max(lags):+.0f} ms "
        f"(median {np.median(lags):+.0f}), silence std <= {silence:.0%} of speech"
    )
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
