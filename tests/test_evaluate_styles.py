"""The style readings of `emote eval` (training/evaluate_styles.py) on synthetic landmarks."""

from __future__ import annotations

import numpy as np

from measure.facemesh import FaceTrack
from training.evaluate_styles import EXPECTED, evaluate_styles, judge, style_readings


def _face(brow_up: float = 0.0, inner_up: float = 0.0, nose_down: float = 0.0) -> np.ndarray:
    lm = np.zeros((478, 2), np.float32)
    lm[10] = (256, 100)  # forehead
    lm[152] = (256, 400)  # chin: face height 300
    lm[159], lm[386] = (200, 200), (312, 200)  # upper lids
    lm[105], lm[334] = (200, 170 - brow_up), (312, 170 - brow_up)  # brow middles
    lm[107], lm[336] = (230, 175 - inner_up), (282, 175 - inner_up)  # inner brow ends
    lm[1] = (256, 280 + nose_down)  # nose tip
    return lm


def _track(n: int = 20, eyes: float = 0.3, width: float = 0.25, **face: float) -> FaceTrack:
    mouth = 0.02 + 0.02 * np.sin(np.arange(n))
    return FaceTrack(mouth, np.full(n, width), np.full(n, eyes), [_face(**face)] * n)


def test_readings_measure_what_they_name() -> None:
    plain = style_readings(_track())
    raised = style_readings(_track(brow_up=15.0))
    assert abs(plain["brow_height"] - 30 / 300) < 1e-6
    assert raised["brow_height"] > plain["brow_height"]
    assert style_readings(_track(inner_up=9.0))["inner_brow"] > plain["inner_brow"]
    assert style_readings(_track(nose_down=12.0))["nose_y"] > plain["nose_y"]
    assert plain["mouth_range"] > 0.03 and plain["head_px_std"] == 0.0


def test_a_style_reads_only_when_every_expected_reading_moves_its_way() -> None:
    tracks = {
        "neutral": _track(),
        "happy": _track(width=0.3, eyes=0.25),  # wider mouth, narrower eyes: reads
        "sad": _track(inner_up=9.0),  # inner brows up, but the head neither lowers nor calms
        "angry": _track(brow_up=-6.0, eyes=0.25),
        "surprised": _track(brow_up=6.0, eyes=0.29),  # eyes barely wider: under the margin
    }
    result = evaluate_styles(lambda style: style.name, lambda name: tracks[name])
    reads = {name: j["reads"] for name, j in result["judged"].items()}
    assert reads == {"happy": True, "sad": False, "angry": True, "surprised": False}
    assert result["reads"] == 0.5
    assert set(result["judged"]) == set(EXPECTED)
    assert judge({"neutral": result["readings"]["neutral"]}) == {}
