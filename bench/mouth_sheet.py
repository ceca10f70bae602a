"""A close-up contact sheet of the mouth (issue 14, item 2): every portrait at rest, jawOpen
0.3 / 0.6 / 0.9, rounded, spread and pressed, the wide jaw turned, cropped to the mouth.

    python -m bench.mouth_sheet [--portraits P ...] [--output docs/mouth_sheet.jpg] [--cache DIR]

Renders on the CPU (onnxruntime, split graph, one thread) through the same ``FrameRenderer``
the server uses; the expressions are the renderer sweep's (measure/sweep_programs.py). The
crop is the portrait's mouth (its lip landmarks) widened to show the chin and the nose's base,
the same box in every column, so the jaw's drop shows as it is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.render_sweep import default_portraits
from contracts import motion_frame as mf
from measure.sweep_programs import EXPRESSIONS

COLUMNS: tuple[tuple[str, str, float], ...] = (
    ("rest", "neutral", 0.0),
    ("jaw 0.3", "jaw 0.3", 0.0),
    ("jaw 0.6", "jaw 0.6", 0.0),
    ("jaw 0.9", "jaw 0.9", 0.0),
    ("rounded", "rounded", 0.0),
    ("spread", "spread", 0.0),
    ("pressed", "pressed", 0.0),
    ("jaw 0.9 yaw .3", "jaw 0.9", 0.3),
)
LIPS = (61, 291, 0, 17, 13, 14, 78, 308)  # corners, outer and inner mid points


def mouth_box(landmarks: np.ndarray, size: int) -> tuple[int, int, int]:
    """(left, top, side) of a square around the lips, 1.9 mouth widths across, centred a
    little below the mouth (the jaw drops)."""
    lips = landmarks[list(LIPS), :2]
    width = float(np.linalg.norm(landmarks[291, :2] - landmarks[61, :2]))
    cx, cy = lips.mean(0)
    side = round(1.9 * width)
    left = int(np.clip(cx - side / 2, 0, size - side))
    top = int(np.clip(cy - 0.4 * side, 0, size - side))
    return left, top, side


def motion_for(expression: str, yaw: float) -> np.ndarray:
    frame = mf.from_dict(EXPRESSIONS[expression])
    frame[mf.INDEX["headYaw"]] = yaw
    return mf.clip(frame[None])


def main(argv: list[str] | None = None) -> int:
    from PIL import Image, ImageDraw

    from engines.avatar import default_cache_dir, prepare_avatar
    from measure.mouth import portrait_renderer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--portraits", nargs="*", type=Path)
    parser.add_argument("--output", type=Path, default=Path("docs/mouth_sheet.jpg"))
    parser.add_argument("--cache", type=Path, help="avatar and rig cache (default: emote's)")
    parser.add_argument("--thumb", type=int, default=150)
    args = parser.parse_args(argv)
    cache = args.cache or default_cache_dir()
    portraits = args.portraits or default_portraits()
    thumb, pad, label_h = args.thumb, 2, 14
    width = len(COLUMNS) * (thumb + pad) + pad + 110
    height = label_h + len(portraits) * (thumb + pad) + pad
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (label, _, _) in enumerate(COLUMNS):
        draw.text((110 + pad + i * (thumb + pad), 1), label, fill=(0, 0, 0))
    for row, path in enumerate(portraits):
        renderer = portrait_renderer(path, cache)
        size = renderer.inputs["image_quads"].shape[1]
        landmarks = prepare_avatar(path, cache_dir=cache).landmarks
        left, top, side = mouth_box(landmarks, size)
        y = label_h + row * (thumb + pad)
        draw.text((2, y + thumb // 2), path.stem[:17], fill=(0, 0, 0))
        for i, (_, expression, yaw) in enumerate(COLUMNS):
            frame = renderer.render(motion_for(expression, yaw))[0]
            crop = Image.fromarray(frame[top : top + side, left : left + side])
            x = 110 + pad + i * (thumb + pad)
            sheet.paste(crop.resize((thumb, thumb), Image.Resampling.LANCZOS), (x, y))
        print(f"{path.name}: mouth box {side}px at ({left}, {top})", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.output.suffix.lower() in (".jpg", ".jpeg"):
        sheet.save(args.output, quality=92)  # a palette PNG bands the close-ups
    else:
        sheet.save(args.output, optimize=True)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
