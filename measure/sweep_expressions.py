"""The renderer sweep's expression and blink readings: each program rendered and read
(FaceMesh, eye-region SSIM, the iris hidden at the blink's peak) into its JSON record and
contact-sheet frames. Every measured quantity is defined in measure/render_sweep.py's
docstring."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from measure.facemesh import eye_openings
from measure.sweep_frames import (
    EYE_REGION,
    Reader,
    Reading,
    erased_eyes,
    iris_hidden,
    nan_to_none,
    r4,
    region_box,
    ssim,
)
from measure.sweep_programs import (
    BLINK_POSES,
    EXPRESSION_POSES,
    MOUTH_ONLY,
    MOUTH_SHEET,
    NEAR_EYE_YAW,
    blink,
    expression_sweep,
    posed_blink,
    render_frames,
)

if TYPE_CHECKING:
    from engines.frame_renderer import FrameRenderer


def expressions_readings(
    renderer: FrameRenderer, reader: Reader, eye_box: tuple[int, int, int, int], size: int
) -> tuple[dict[str, Any], dict[str, list[tuple[str, np.ndarray]]]]:
    """The expression sweep's readings; each pose's eye region is boxed on its own neutral
    frame's landmarks (the straight rest frame's box where FaceMesh finds no face there)."""
    motion, labels = expression_sweep()
    per_pose: dict[str, dict[str, dict[str, Any]]] = {}
    neutral: dict[str, np.ndarray] = {}
    boxes: dict[str, tuple[int, int, int, int]] = {}
    mouth_sheet: list[tuple[str, np.ndarray]] = []
    other_sheet: list[tuple[str, np.ndarray]] = []
    for (pose, name), frame in zip(labels, render_frames(renderer, motion), strict=True):
        r = reader.read(frame)
        if name == "neutral":
            neutral[pose] = frame
            boxes[pose] = (
                region_box(r.plain, EYE_REGION, 0.12, size) if r.plain is not None else eye_box
            )
        x0, y0, x1, y1 = boxes[pose]
        eye_ssim = ssim(frame[y0:y1, x0:x1], neutral[pose][y0:y1, x0:x1])
        per_pose.setdefault(pose, {})[name] = {
            "face": r.found,
            "mouth": nan_to_none(r.mouth),
            "eyes": nan_to_none(r.eyes),
            "eye_ssim": round(eye_ssim, 4),
        }
        if pose == "straight":
            if name in MOUTH_SHEET:
                mouth_sheet.append((name, frame))
            else:
                other_sheet.append((name, frame))
    ssims = [float(v["eye_ssim"]) for p in per_pose.values() for v in p.values()]
    mouth_ssims = [float(p[n]["eye_ssim"]) for p in per_pose.values() for n in MOUTH_ONLY]
    record: dict[str, Any] = {
        "eye_box": {k: list(v) for k, v in boxes.items()},
        "eye_ssim_mouth": round(min(mouth_ssims), 4),
        "eye_ssim_min": round(min(ssims), 4),
        "poses": {k: list(v) for k, v in EXPRESSION_POSES.items()},
        "by_pose": per_pose,
    }
    return record, {"mouth": mouth_sheet, "expressions": other_sheet}


def blink_readings(
    renderer: FrameRenderer,
    reader: Reader,
    rest: Reading,
    rest_frame: np.ndarray,
    eye_box: tuple[int, int, int, int],
) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    """The blink's readings; ``eye_ssim_after``: the eye region of the reopened eye (the
    program's last frame) against the rest frame's."""
    motion, values = blink()
    x0, y0, x1, y1 = eye_box
    last = rest_frame
    peak_frame: np.ndarray | None = None
    eyes, eyes_plain, sheet = [], [], []
    shown = {0.5: False, 1.0: False}
    for k, frame in enumerate(render_frames(renderer, motion)):
        r = reader.read(frame)
        eyes.append(r.eyes)
        eyes_plain.append(r.eyes_plain)
        v = round(float(values[k]), 3)
        if k == 0:
            sheet.append(("blink 0", frame))
        elif v in shown and not shown[v]:
            shown[v] = True
            sheet.append((f"blink {v:g}", frame))
        if k == len(motion) - 1:
            last = frame
        if values[k] >= 1.0 and peak_frame is None:
            peak_frame = frame
    eyes_a, plain_a = np.array(eyes), np.array(eyes_plain)
    held = values >= 1.0
    open_eye, open_plain = rest.eyes, rest.eyes_plain
    peak = float(np.nanmedian(eyes_a[held])) if np.isfinite(eyes_a[held]).any() else np.nan
    peak_plain = float(np.nanmedian(plain_a[held])) if np.isfinite(plain_a[held]).any() else np.nan
    record = {
        "commanded": r4(values),
        "eyes": r4(eyes_a),
        "eyes_plain": r4(plain_a),
        "open": nan_to_none(open_eye),
        "peak_fraction": nan_to_none(peak / open_eye),
        "peak_fraction_plain": nan_to_none(peak_plain / open_plain),
        "min_fraction": nan_to_none(float(np.nanmin(eyes_a)) / open_eye),
        "face_found": float(np.isfinite(eyes_a).mean()),
        "eye_ssim_after": round(ssim(last[y0:y1, x0:x1], rest_frame[y0:y1, x0:x1]), 4),
        "erased_fraction": (
            nan_to_none(reader.read(erased_eyes(rest_frame, rest.refined)).eyes / open_eye)
            if rest.refined is not None
            else None
        ),
        "iris_hidden": (
            nan_to_none(iris_hidden(rest_frame, peak_frame, rest.refined))
            if peak_frame is not None and rest.refined is not None
            else None
        ),
    }
    return record, sheet


def posed_blink_readings(
    renderer: FrameRenderer, reader: Reader, rest: Reading
) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    """Shut eyes at the head's extremes (``posed_blink``), FaceMesh's refined mesh on one
    open and one shut frame per pose (at a fixed pose every held frame is the same): per
    pose ``fraction``, the eyes' mean opening shut over open at the same pose (as the blink
    peak fraction), ``near_eye`` the same for the eye wider when open (facing the camera),
    ``of_rest`` the shut eyes over the rest frame's open eyes, and ``read``: ``near_eye`` at
    |yaw| >= ``NEAR_EYE_YAW`` (the far eye is then foreshortened to half its width or less,
    where FaceMesh's lid points are loose), else ``fraction``. ``worst_fraction`` is the
    largest ``read`` and ``worst_at`` its pose; ``found`` the share of poses read open and
    shut. A lid that does not close where the head is turned reads near 1; a shut one that
    FaceMesh fits an open eye to (painted lids, as at rest) reads high too: look at the
    sheet."""
    motion = posed_blink()
    frames = list(render_frames(renderer, motion))
    meshes = [reader.read(frame).refined for frame in frames]
    per_pose: dict[str, dict[str, float | None]] = {}
    sheet = []
    for i, (label, yaw, _, _) in enumerate(BLINK_POSES):
        opened, shut = meshes[2 * i], meshes[2 * i + 1]
        if opened is None or shut is None:
            per_pose[label] = dict.fromkeys(("fraction", "near_eye", "of_rest", "read"))
            sheet.append((f"{label}: -", frames[2 * i + 1]))
            continue
        eyes_open, eyes_shut = eye_openings(opened), eye_openings(shut)
        mean_open = (eyes_open[0][0] + eyes_open[1][0]) / 2
        mean_shut = (eyes_shut[0][0] + eyes_shut[1][0]) / 2
        near = 0 if eyes_open[0][1] >= eyes_open[1][1] else 1
        fraction = mean_shut / mean_open
        near_eye = eyes_shut[near][0] / eyes_open[near][0]
        read = near_eye if abs(yaw) >= NEAR_EYE_YAW else fraction
        per_pose[label] = {
            "fraction": nan_to_none(fraction),
            "near_eye": nan_to_none(near_eye),
            "of_rest": nan_to_none(mean_shut / rest.eyes),
            "read": nan_to_none(read),
        }
        sheet.append((f"{label}: {read:.2f}", frames[2 * i + 1]))
    got = {k: v["read"] for k, v in per_pose.items() if v["read"] is not None}
    worst = max(got, key=lambda k: got[k]) if got else None
    record = {
        "per_pose": per_pose,
        "found": round(len(got) / len(BLINK_POSES), 4),
        "worst_fraction": got[worst] if worst is not None else None,
        "worst_at": worst,
    }
    return record, sheet
