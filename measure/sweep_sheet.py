"""The renderer sweep's contact sheet: one labelled PNG of a portrait's sweep frames (face
crops), and the sweep's result it is drawn from. Every measured quantity is defined in
measure/render_sweep.py's docstring."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class SweepResult:
    """One portrait's sweep: the JSON-ready record and the frames for its contact sheet."""

    record: dict[str, Any]
    sheet_frames: dict[str, list[tuple[str, np.ndarray]]] = field(default_factory=dict)
    face_box: tuple[int, int, int, int] = (0, 0, 0, 0)


def contact_sheet(
    result: SweepResult, title: str, path: Path, thumb: int = 136, columns: int = 7
) -> None:
    """A labelled PNG of the sweep's frames (face crops): the head sweep's keyframes, the
    mouth, the other expressions, the blink at rest and shut at the head's extremes;
    palette PNG (256 colours) to keep it small."""
    from PIL import Image, ImageDraw

    x0, y0, x1, y1 = result.face_box
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    label_h, pad = 14, 2
    rows: list[tuple[str, list[tuple[str, np.ndarray]]]] = []
    for name in ("head", "mouth", "expressions", "blink", "blink_posed"):
        items = result.sheet_frames.get(name, [])
        for start in range(0, len(items), columns):
            rows.append((name, items[start : start + columns]))
    width = columns * (thumb + pad) + pad
    height = 18 + len(rows) * (thumb + label_h + pad) + pad
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 3), title, fill=(0, 0, 0))
    y = 18
    for _, items in rows:
        for i, (label, frame) in enumerate(items):
            size = frame.shape[0]
            half = side // 2
            left = int(np.clip(cx - half, 0, max(0, size - side)))
            top = int(np.clip(cy - half, 0, max(0, size - side)))
            crop = Image.fromarray(frame[top : top + side, left : left + side])
            x = pad + i * (thumb + pad)
            sheet.paste(crop.resize((thumb, thumb), Image.Resampling.LANCZOS), (x, y))
            draw.text((x + 2, y + thumb), label, fill=(0, 0, 0))
        y += thumb + label_h + pad
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
