"""The latency bench's instrument: FaceMesh's reading of the mouth on rendered frames of known
opening must rise with the opening at every head pose, and a moderate vowel's opening must
pass the bench's open threshold (20% of the way from shut to wide open). The refined lip
model fails this (it reads jawOpen 0.5 as shut at some poses), which is why the bench uses
the plain mesh."""

from __future__ import annotations

import numpy as np
import pytest

from contracts.paths import DEFAULT_PORTRAIT
from engines.frame_renderer import FrameRenderer
from measure.mouth import OPEN_FRACTION, dsp_mouth, mouth_openings, portrait_renderer

JAWS = (0.0, 0.3, 0.5, 0.65, 0.8)
POSES = {"front": (0.0, 0.0, 0.0), "turned": (0.08, 0.0, 0.0), "nodding": (0.0, 0.08, 0.0)}


@pytest.fixture(scope="module")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> FrameRenderer:
    return portrait_renderer(DEFAULT_PORTRAIT, tmp_path_factory.mktemp("instrument-cache"))


@pytest.mark.parametrize("pose", POSES)
def test_the_mouth_reading_rises_with_the_opening(renderer: FrameRenderer, pose: str) -> None:
    frames = {i: renderer.render(dsp_mouth(jaw, *POSES[pose]))[0] for i, jaw in enumerate(JAWS)}
    readings = mouth_openings(frames)
    assert sorted(readings) == list(range(len(JAWS))), "a face is found in every frame"
    values = np.array([readings[i] for i in range(len(JAWS))])
    assert np.all(np.diff(values) > 0), dict(zip(JAWS, values.round(4), strict=True))
    threshold = values[0] + OPEN_FRACTION * (values[-1] - values[0])
    assert values[JAWS.index(0.5)] > threshold, (values.round(4), threshold)
