"""The renderer sweep's blendshape audit: does every ARKit blendshape the motion frame carries
(and gaze) visibly do what its name says? Each shape is rendered alone (mouthClose over
jawOpen 0.3, which it closes) at ``AMOUNT``, read with FaceMesh (refined, static) and compared
with its baseline frame on the feature its name promises, on the named side.

Features (``features``), in units of the face height (forehead 10 to chin 152) unless said
otherwise, from the plain mesh's landmarks, as the sweep reads the mouth (the refined mesh's
lip model reads the Mona Lisa's open mouth at a fifth of the plain mesh's opening), except the
eyes and gaze, from the refined mesh's; R is the subject's right (image left):

* ``mouth_open`` inner lips 13-14; ``mouth_width`` corners 61-291;
* ``corner_up_R/L`` a mouth corner's height above the inner lips' middle (13, 14);
  ``corner_out_R/L`` its distance out from the philtrum's column (0);
* ``lips_R/L`` the lips' outer height on one side (upper 37 / 267 to lower 84 / 314);
  ``upper_lip`` 0-13 and ``lower_lip`` 14-17 the thickness of each lip at the middle;
* ``upper_R/L`` the upper lip below the nose (2 to 37 / 267); ``lower_R/L`` the lower lip
  below it (2 to 84 / 314);
* ``eye_R/L`` lid gap over eye width (159-145 over 33-133; 386-374 over 362-263);
* ``brow_inner_R/L`` the inner brow (107 / 336) above the inner eye corner (133 / 362),
  ``brow_inner`` their mean;
  ``brow_outer_R/L`` the outer brow (70 / 300) above the outer corner (33 / 263);
* ``gaze_x``, ``gaze_y`` both irises' centres (468, 473) from their eyes' centres, in eye
  widths (x to the image's right, y down).

A shape is **visible** when its feature, read by FaceMesh, moves the promised way by at least
``VISIBLE`` of its kind and by at least 3x FaceMesh's own noise on that feature (the same
neutral frame moved by one pixel, right and down: what FaceMesh reads that nothing in the face
did), and, for a one-sided shape, on its own side by more than on the other (``side_ratio`` >
1).

Beside FaceMesh's reading, two more of the same feature, to find out why a shape is not seen:
``commanded``, the rig's basis applied to the rest landmarks (what the shape asks for), and
``realized``, where the warp's skull-layer source map puts the neutral frame's landmarks
(what the warp did; CPU split graph only, and none for the features of the lower lip and jaw,
which the jaw layer moves). Both are None for what the renderer draws in the eye window
rather than by the warp (``EYE_WINDOW_SHAPES``: the blinks and the gaze).

FaceMesh itself under-reads some features: moving a rendered rest frame's brows up by a clean,
smooth bump of 2% of the face height reads as 0.9-1.3% (plain mesh, four portraits;
docs/benchmarks.md, "Blendshape audit"), so the brows' verdicts are a strict reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from contracts import motion_frame as mf
from measure.sweep_frames import Reader, Reading, nan_to_none
from measure.sweep_pose import content_points, source_maps, source_points
from measure.sweep_programs import render_frames

if TYPE_CHECKING:
    from engines.frame_renderer import FrameRenderer

AMOUNT = 0.8
# Drawn in the eye window, not by the warp: the basis and the source map do not see them.
EYE_WINDOW_SHAPES = frozenset({"eyeBlinkLeft", "eyeBlinkRight", "gazeX+", "gazeY+"})
# Features of points the jaw layer moves (the skull layer's source map does not see them).
JAW_FEATURES = frozenset({"mouth_open", "lower_lip", "lower_R", "lower_L", "lips_R", "lips_L"})
# The smallest change that counts as visible, by feature kind: 1% of the face height (~2.5
# px at 512 px), an eye's lid gap changing by 4% of the eye's width (~1.2 px), the irises
# moving 6% of an eye's width.
VISIBLE = {"length": 0.01, "eye": 0.04, "gaze": 0.06}


def _kind(feature: str) -> str:
    if feature.startswith("eye_"):
        return "eye"
    if feature.startswith("gaze"):
        return "gaze"
    return "length"


def features(plain: np.ndarray, refined: np.ndarray) -> dict[str, float]:
    """The audit's features of one frame's plain (468) and refined (478) landmarks (>= 2
    columns, pixels)."""
    xy = plain[:, :2].astype(np.float64)
    fh = float(np.linalg.norm(xy[10] - xy[152]))

    def dist(a: int, b: int) -> float:
        return float(np.linalg.norm(xy[a] - xy[b])) / fh

    def below(a: int, b: int) -> float:  # how far b lies below a
        return float(xy[b, 1] - xy[a, 1]) / fh

    mid_y = (xy[13, 1] + xy[14, 1]) / 2
    out: dict[str, float] = {
        "mouth_open": dist(13, 14),
        "mouth_width": dist(61, 291),
        "corner_up_R": float(mid_y - xy[61, 1]) / fh,
        "corner_up_L": float(mid_y - xy[291, 1]) / fh,
        "corner_out_R": float(xy[0, 0] - xy[61, 0]) / fh,
        "corner_out_L": float(xy[291, 0] - xy[0, 0]) / fh,
        "lips_R": below(37, 84),
        "lips_L": below(267, 314),
        "upper_lip": below(0, 13),
        "lower_lip": below(14, 17),
        "upper_R": below(2, 37),
        "upper_L": below(2, 267),
        "lower_R": below(2, 84),
        "lower_L": below(2, 314),
        "brow_inner_R": below(107, 133),
        "brow_inner_L": below(336, 362),
        "brow_outer_R": below(70, 33),
        "brow_outer_L": below(300, 263),
    }
    xy = refined[:, :2].astype(np.float64)
    width_r = float(np.linalg.norm(xy[33] - xy[133]))
    width_l = float(np.linalg.norm(xy[362] - xy[263]))
    out["brow_inner"] = (out["brow_inner_R"] + out["brow_inner_L"]) / 2
    out["eye_R"] = float(np.linalg.norm(xy[159] - xy[145])) / width_r
    out["eye_L"] = float(np.linalg.norm(xy[386] - xy[374])) / width_l
    centre_r = (xy[33] + xy[133] + xy[159] + xy[145]) / 4
    centre_l = (xy[362] + xy[263] + xy[386] + xy[374]) / 4
    gaze = ((xy[468] - centre_r) / width_r + (xy[473] - centre_l) / width_l) / 2
    out["gaze_x"], out["gaze_y"] = float(gaze[0]), float(gaze[1])
    return out


@dataclass(frozen=True)
class Check:
    """A shape, what it is rendered over, the feature its name promises and which way."""

    values: dict[str, float]
    baseline: dict[str, float]
    feature: str  # for a one-sided shape: the feature's stem; "_R" / "_L" appended
    sign: float  # +1: the feature grows
    side: str = ""  # "R" or "L" for one-sided shapes


def _sided(name: str, stem: str, sign: float, amount: float = AMOUNT) -> dict[str, Check]:
    return {
        f"{name}{side}": Check({f"{name}{side}": amount}, {}, stem, sign, side[0])
        for side in ("Right", "Left")
    }


CHECKS: dict[str, Check] = {
    "jawOpen": Check({"jawOpen": AMOUNT}, {}, "mouth_open", +1),
    "mouthClose": Check({"jawOpen": 0.3, "mouthClose": 0.3}, {"jawOpen": 0.3}, "mouth_open", -1),
    "mouthFunnel": Check({"mouthFunnel": AMOUNT}, {}, "mouth_width", -1),
    "mouthPucker": Check({"mouthPucker": AMOUNT}, {}, "mouth_width", -1),
    **_sided("mouthSmile", "corner_up", +1),
    **_sided("mouthStretch", "corner_out", +1),
    **_sided("mouthPress", "lips", -1),
    "mouthRollLower": Check({"mouthRollLower": AMOUNT}, {}, "lower_lip", -1),
    "mouthRollUpper": Check({"mouthRollUpper": AMOUNT}, {}, "upper_lip", -1),
    **_sided("mouthUpperUp", "upper", -1),
    **_sided("mouthLowerDown", "lower", +1),
    **_sided("eyeBlink", "eye", -1),
    **_sided("eyeWide", "eye", +1),
    **_sided("eyeSquint", "eye", -1),
    "browInnerUp": Check({"browInnerUp": AMOUNT}, {}, "brow_inner", +1),
    **_sided("browDown", "brow_inner", -1),
    **_sided("browOuterUp", "brow_outer", +1),
    "gazeX+": Check({"gazeX": AMOUNT}, {}, "gaze_x", +1),
    "gazeY+": Check({"gazeY": AMOUNT}, {}, "gaze_y", +1),
}


def _frame(values: dict[str, float]) -> np.ndarray:
    return mf.clip(mf.from_dict(values))


def _change(check: Check, feature: str, points: np.ndarray, before: np.ndarray) -> float:
    """The promised-way change of ``feature`` between two sets of landmark positions."""
    return check.sign * (features(points, points)[feature] - features(before, before)[feature])


def _features(reading: Reading) -> dict[str, float] | None:
    if reading.plain is None or reading.refined is None:
        return None
    return features(reading.plain, reading.refined)


def _commanded(renderer: FrameRenderer, points: np.ndarray, values: dict[str, float]) -> np.ndarray:
    """``points`` (the rest frame's landmarks, pixels) moved by the rig's basis."""
    from engines.rig_basis import BASIS_FIELDS

    basis = renderer.inputs["basis"][0]  # (K + 2, N, 3), normalized: pixels = 0.5 * size * v
    size = renderer.inputs["image_quads"].shape[1]
    moved = points[:, :2].astype(np.float64).copy()
    for name, value in values.items():
        moved += 0.5 * size * value * basis[BASIS_FIELDS.index(name)][: len(points), :2]
    return moved


def _realized(
    renderer: FrameRenderer, motions: np.ndarray, points: np.ndarray
) -> list[np.ndarray] | None:
    """Where each motion's skull-layer source map puts the content at ``points`` (the rest
    frame's landmarks); None for a whole-frame graph."""
    if "source_map" not in renderer.engine.output_names:
        return None
    source = source_points(renderer, points[:, :2])
    return [content_points(m, source) for m in source_maps(renderer, motions)]


def blendshape_readings(renderer: FrameRenderer, reader: Reader) -> dict[str, Any]:
    """Every check's reading: ``change`` (signed so that positive is the promised way),
    ``threshold`` (the larger of VISIBLE and 3x FaceMesh's noise on the feature),
    ``side_ratio`` (own side's change over the other side's, one-sided shapes), ``visible``,
    and ``commanded`` and ``realized`` (the same change by the rig's basis and by the warp);
    plus the share of shapes that are visible and the names of those that are not."""
    baselines = sorted({_key(c.baseline) for c in CHECKS.values()})
    motions = np.stack(
        [_frame(dict(b)) for b in baselines] + [_frame(c.values) for c in CHECKS.values()]
    )
    frames = list(render_frames(renderer, motions))
    neutral = frames[baselines.index(())]
    readings = [reader.read(f) for f in frames]
    rest = readings[baselines.index(())]
    reads = [_features(r) for r in readings]
    ref = reads[baselines.index(())]
    if ref is None or rest.refined is None:
        raise RuntimeError("FaceMesh found no face in the neutral frame")
    moved = _features(reader.read(np.roll(neutral, (1, 1), axis=(0, 1))))
    noise = {k: abs(v - ref[k]) for k, v in moved.items()} if moved is not None else {}
    realized = _realized(renderer, motions, rest.refined)
    shapes: dict[str, Any] = {}
    for k, (name, check) in enumerate(CHECKS.items()):
        b = baselines.index(_key(check.baseline))
        now, before = reads[len(baselines) + k], reads[b]
        if now is None or before is None:
            shapes[name] = {"feature": check.feature, "visible": False, "face": False}
            continue
        feature = f"{check.feature}_{check.side}" if check.side else check.feature
        change = check.sign * (now[feature] - before[feature])
        threshold = max(VISIBLE[_kind(feature)], 3.0 * noise.get(feature, 0.0))
        entry: dict[str, Any] = {
            "feature": feature,
            "change": round(change, 4),
            "threshold": round(threshold, 4),
            "commanded": None,
            "realized": None,
        }
        if name not in EYE_WINDOW_SHAPES:
            asked = [_commanded(renderer, rest.refined, v) for v in (check.values, check.baseline)]
            entry["commanded"] = round(_change(check, feature, *asked), 4)
            if realized is not None and feature not in JAW_FEATURES:
                done = realized[len(baselines) + k], realized[b]
                entry["realized"] = round(_change(check, feature, *done), 4)
        visible = change >= threshold
        if check.side:
            other = f"{check.feature}_{'L' if check.side == 'R' else 'R'}"
            other_change = check.sign * (now[other] - before[other])
            ratio = change / max(abs(other_change), 1e-4)
            entry["side_ratio"] = nan_to_none(round(ratio, 2))
            visible = visible and ratio > 1.0
        entry["visible"] = bool(visible)
        shapes[name] = entry
    return {
        "amount": AMOUNT,
        "noise": {k: round(v, 5) for k, v in noise.items()},
        "shapes": shapes,
        "visible_share": round(float(np.mean([s["visible"] for s in shapes.values()])), 4),
        "not_visible": [n for n, s in shapes.items() if not s["visible"]],
    }


def _key(values: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(values.items()))
