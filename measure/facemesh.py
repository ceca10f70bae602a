"""MediaPipe FaceMesh over RGB frames: the mouth opening (inner-lip gap, landmarks 13-14, over
the face height, 10-152), the mouth width (corners 61-291 over the face height) and the eye
opening (lid gap over eye width), frame by frame."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass
class FaceTrack:
    mouth: np.ndarray  # (n,) inner-lip gap / face height; nan where no face was found
    width: np.ndarray  # (n,) mouth-corner distance / face height
    eyes: np.ndarray  # (n,) mean eye opening / eye width
    landmarks: list[np.ndarray | None]


def face_measures(lm: np.ndarray) -> tuple[float, float, float]:
    """(mouth, width, eyes) of one frame's landmarks (x, y in pixels; extra columns such as
    ``landmarks_3d``'s z are ignored): the readings ``FaceTracker.track`` gives, by the same
    formulas (tests/test_render_sweep.py checks that they agree)."""
    xy = lm[:, :2]
    face_h = np.linalg.norm(xy[10] - xy[152])
    mouth = float(np.linalg.norm(xy[13] - xy[14]) / face_h)
    width = float(np.linalg.norm(xy[61] - xy[291]) / face_h)
    (right, _), (left, _) = eye_openings(lm)
    return mouth, width, float((right + left) / 2)


def eye_openings(lm: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """Per eye (the face's right, then its left): (lid gap over eye width, eye width in
    pixels) of one frame's landmarks; ``face_measures``' eyes are the two openings' mean."""
    xy = lm[:, :2]
    out = []
    for top, bottom, inner, outer in ((159, 145, 33, 133), (386, 374, 362, 263)):
        width = float(np.linalg.norm(xy[inner] - xy[outer]))
        out.append((float(np.linalg.norm(xy[top] - xy[bottom])) / width, width))
    return out[0], out[1]


class FaceTracker:
    """MediaPipe FaceMesh over a sequence of RGB frames (video mode: tracked, fast)."""

    def __init__(self, static: bool = False, refine: bool = True) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static,
            refine_landmarks=refine,
            max_num_faces=1,
            min_detection_confidence=0.3,
            min_tracking_confidence=0.3,
        )

    def close(self) -> None:
        self._mesh.close()

    def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        result = self._mesh.process(np.ascontiguousarray(rgb))
        if not result.multi_face_landmarks:
            return None
        h, w = rgb.shape[:2]
        pts = result.multi_face_landmarks[0].landmark
        return np.array([[p.x * w, p.y * h] for p in pts], np.float32)

    def landmarks_3d(self, rgb: np.ndarray) -> np.ndarray | None:
        """(n, 3) landmarks in pixels: x right, y down, and z (depth, away from the camera)
        scaled like x. MediaPipe's z is relative to the head's centre, smaller = nearer the
        camera, and "uses roughly the same scale as x", i.e. it is normalized by the image
        width, so ``z * width`` is in x's pixels. ``None`` where no face was found."""
        result = self._mesh.process(np.ascontiguousarray(rgb))
        if not result.multi_face_landmarks:
            return None
        h, w = rgb.shape[:2]
        pts = result.multi_face_landmarks[0].landmark
        return np.array([[p.x * w, p.y * h, p.z * w] for p in pts], np.float32)

    def track(self, frames: list[np.ndarray]) -> FaceTrack:
        mouth, width, eyes, all_lm = [], [], [], []
        for rgb in frames:
            lm = self.landmarks(rgb)
            all_lm.append(lm)
            if lm is None:
                mouth.append(np.nan)
                width.append(np.nan)
                eyes.append(np.nan)
                continue
            face_h = np.linalg.norm(lm[10] - lm[152])
            mouth.append(float(np.linalg.norm(lm[13] - lm[14]) / face_h))
            width.append(float(np.linalg.norm(lm[61] - lm[291]) / face_h))
            right = np.linalg.norm(lm[159] - lm[145]) / np.linalg.norm(lm[33] - lm[133])
            left = np.linalg.norm(lm[386] - lm[374]) / np.linalg.norm(lm[362] - lm[263])
            eyes.append(float((right + left) / 2))
        return FaceTrack(np.array(mouth), np.array(width), np.array(eyes), all_lm)
