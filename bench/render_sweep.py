"""The renderer sweep (issue 14): head sweep, expression sweep and blink on every portrait, read
back with FaceMesh and held to renderer v2's targets.

    python -m bench.render_sweep [--portraits P ...] [--json OUT] [--sheets DIR]

Default portraits: every image in contracts.paths.PORTRAIT_DIRS (the bundled one first, then
../shared/assets/portraits; a file with the same bytes as one already listed is skipped).
Renders on the CPU (onnxruntime, split graph, one thread), avatars and rigs cached in
``--cache`` (the emote cache by default). Every definition is in measure/render_sweep.py's
docstring; ``--sheets DIR`` writes one contact sheet per portrait, DIR/<name>.png.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

from contracts.paths import PORTRAIT_DIRS
from measure.render_sweep import TARGETS, run_sweep
from measure.sweep_sheet import contact_sheet

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def default_portraits() -> list[Path]:
    """Every portrait of ``PORTRAIT_DIRS``, the bundled ones first, duplicates (same bytes)
    left out."""
    seen: set[str] = set()
    out = []
    for folder in PORTRAIT_DIRS:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest not in seen:
                seen.add(digest)
                out.append(path)
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def print_table(name: str, record: dict[str, Any]) -> None:
    s, t, head = record["summary"], record["targets"], record["head_sweep"]

    def held(label: str, key: str, op: str) -> tuple[str, Any, str, Any]:
        """A row held to a target: its value, the target and the verdict."""
        return (label, s[key], f"{op} {TARGETS[key]}", t[key])

    rows = [
        held("face found (head sweep)", "face_found", ">="),
        held("yaw r (3D fit)", "yaw_r", ">="),
        ("yaw slope", s["yaw_slope"], "", None),
        ("pitch r / slope", f"{_fmt(s['pitch_r'])} / {_fmt(s['pitch_slope'])}", "", None),
        ("roll r", s["roll_r"], "", None),
        held("mouth excess at jawOpen 0", "mouth_excess", "<="),
        ("  FaceMesh's own, rotated rest", s["mouth_noise_rotated"], "", None),
        ("folded face pixels, max", s["fold_max"], "", None),
        ("  folds from |angle|", s["fold_from"], "", None),
        held("blink peak / open eye", "blink_peak_fraction", "<="),
        ("  the same, eyes erased", s["blink_erased_fraction"], "", None),
        ("  iris hidden at the peak", s["iris_hidden"], "", None),
        ("  shut, head at extremes, worst", s["blink_posed_worst"], "", None),
        ("eye SSIM, mouth expressions", s["eye_ssim_mouth"], "", None),
        ("eye SSIM, any expression", s["eye_ssim_min"], "", None),
        held("blendshapes seen by FaceMesh", "blendshapes_visible", ">="),
    ]
    print(f"\n{name}")
    for label, value, target, ok in rows:
        verdict = "" if ok is None else ("pass" if ok else "FAIL")
        print(f"  {label:30s} {_fmt(value):>15s}  {target:8s} {verdict}")
    print(f"  (worst mouth at yaw/pitch/roll {head['mouth_excess_at']})")
    print(f"  (shut eyes read most open at {s['blink_posed_worst_at']})")
    unseen = record["blendshapes"]["not_visible"]
    print(f"  (not seen: {', '.join(unseen) if unseen else 'none'})")


def compact_json(payload: Any) -> str:
    """Indented JSON with every innermost list on one line (the per-frame arrays)."""
    text = json.dumps(payload, indent=1)
    return re.sub(
        r"\[([^\[\]{}]*)\]",
        lambda m: "[" + re.sub(r"\s*\n\s*", " ", m.group(1)).strip() + "]",
        text,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portraits", type=Path, nargs="+")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--sheets", type=Path)
    parser.add_argument("--cache", type=Path, help="avatar and rig cache (default: emote's)")
    args = parser.parse_args(argv)

    from engines.avatar import default_cache_dir
    from measure.mouth import portrait_renderer

    cache = args.cache or default_cache_dir()
    portraits = args.portraits or default_portraits()
    results: dict[str, Any] = {}
    started = time.perf_counter()
    for path in portraits:
        t0 = time.perf_counter()
        result = run_sweep(portrait_renderer(path, cache))
        record = {"path": path.name, "seconds": round(time.perf_counter() - t0, 1)}
        record.update(result.record)
        results[path.stem] = record
        print_table(f"{path.stem} ({record['seconds']} s)", result.record)
        if args.sheets:
            contact_sheet(result, path.stem, args.sheets / f"{path.stem}.png")
    failing = {name: [k for k, ok in r["targets"].items() if not ok] for name, r in results.items()}
    print("\ntargets failed:", json.dumps(failing))
    if args.json:
        payload = {
            "command": "python -m bench.render_sweep " + " ".join(argv or sys.argv[1:]),
            "machine": f"{platform.machine()}, {platform.python_version()}",
            "seconds": round(time.perf_counter() - started, 1),
            "targets": TARGETS,
            "portraits": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(compact_json(payload) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
