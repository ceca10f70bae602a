"""Speaking style: an emotion and its intensity, what it does to the face, and how a model
reads it.

A style is one of ``STYLES`` at an intensity in [0, 1] ("neutral" ignores the intensity).
It acts on motion frames in three ways, all scaled by the intensity:

* **expression**: blendshape and pose offsets held while the style lasts (``EXPRESSIONS``):
  happy smiles and narrows the eyes (the cheeks push up), sad lifts the inner brows, lowers
  the lids, the eyes and the head, angry lowers the brows and narrows the eyes, surprised
  raises every brow and widens the eyes with the jaw a little dropped. Lip offsets give way
  to the lips' own work: the smile fades where the lips round, the press where the jaw
  opens, so every p/b/m still seals and every vowel still opens;
* **head energy**: the head's motion around its rest is scaled (``HEAD_ENERGY``): livelier
  when happy, angry or surprised, stiller when sad;
* **articulation**: the mouth's shapes are scaled (``ARTICULATION``): bigger when angry or
  surprised, smaller when sad. Closures stay sealed (mouthClose scales with jawOpen).

``express`` applies all three; the training corpus applies it to its targets (so the
learned model learns each style from examples, with the style vector as an input), and the
dsp generator applies it to its output. ``Style.vector`` is the model's input: the weights
of the four non-neutral styles (neutral is all zeros).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contracts import motion_frame

STYLES: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "surprised")
STYLE_DIM = len(STYLES) - 1  # the model input: one weight per non-neutral style

EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {
        "mouthSmileLeft": 0.45, "mouthSmileRight": 0.45, "eyeSquintLeft": 0.3,
        "eyeSquintRight": 0.3, "browOuterUpLeft": 0.1, "browOuterUpRight": 0.1,
        "headPitch": -0.03,
    },
    "sad": {
        "browInnerUp": 0.6, "browDownLeft": 0.1, "browDownRight": 0.1, "eyeBlinkLeft": 0.2,
        "eyeBlinkRight": 0.2, "mouthPressLeft": 0.15, "mouthPressRight": 0.15,
        "gazeY": 0.15, "headPitch": 0.08,
    },
    "angry": {
        "browDownLeft": 0.7, "browDownRight": 0.7, "eyeSquintLeft": 0.25,
        "eyeSquintRight": 0.25, "mouthPressLeft": 0.2, "mouthPressRight": 0.2,
        "headPitch": 0.04,
    },
    "surprised": {
        "browInnerUp": 0.7, "browOuterUpLeft": 0.7, "browOuterUpRight": 0.7,
        "eyeWideLeft": 0.6, "eyeWideRight": 0.6, "jawOpen": 0.08, "headPitch": -0.05,
    },
}  # fmt: skip
HEAD_ENERGY: dict[str, float] = {
    "neutral": 1.0, "happy": 1.3, "sad": 0.6, "angry": 1.4, "surprised": 1.2,
}  # fmt: skip
ARTICULATION: dict[str, float] = {
    "neutral": 1.0, "happy": 1.05, "sad": 0.85, "angry": 1.15, "surprised": 1.1,
}  # fmt: skip
assert set(EXPRESSIONS) == set(HEAD_ENERGY) == set(ARTICULATION) == set(STYLES)

_I = motion_frame.INDEX
ROTATION = np.array([_I["headYaw"], _I["headPitch"], _I["headRoll"]])
_SMILES = np.array([_I["mouthSmileLeft"], _I["mouthSmileRight"]])
_PRESSES = np.array([_I["mouthPressLeft"], _I["mouthPressRight"]])


@dataclass(frozen=True)
class Style:
    name: str = "neutral"
    intensity: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in STYLES:
            raise ValueError(f"unknown style {self.name!r}; choose from {', '.join(STYLES)}")
        if not 0.0 <= float(self.intensity) <= 1.0:
            raise ValueError(f"style intensity must be in [0, 1], got {self.intensity}")

    @staticmethod
    def parse(text: str) -> Style:
        """``"happy"`` (intensity 1) or ``"happy:0.6"``."""
        name, _, level = text.strip().partition(":")
        if not level:
            return Style(name)
        try:
            intensity = float(level)
        except ValueError:
            raise ValueError(f"style intensity must be a number, got {level!r}") from None
        return Style(name, intensity)

    @property
    def weight(self) -> float:
        """How strongly the style acts: 0 for neutral, else the intensity."""
        return 0.0 if self.name == "neutral" else float(self.intensity)

    def vector(self) -> np.ndarray:
        """(STYLE_DIM,) float32: the model's style input."""
        out = np.zeros(STYLE_DIM, np.float32)
        if self.name != "neutral":
            out[STYLES.index(self.name) - 1] = self.intensity
        return out

    def to_dict(self) -> dict[str, object]:
        return {"style": self.name, "intensity": round(float(self.intensity), 4)}

    def __str__(self) -> str:
        return self.name if self.name == "neutral" else f"{self.name}:{self.intensity:g}"


NEUTRAL = Style()


def offsets(style: Style) -> np.ndarray:
    """(DIM,) the style's expression offsets at its intensity."""
    out = np.zeros(motion_frame.DIM, np.float32)
    for name, value in EXPRESSIONS[style.name].items():
        out[_I[name]] = value * style.weight
    return out


def head_energy(style: Style) -> float:
    return 1.0 + (HEAD_ENERGY[style.name] - 1.0) * style.weight


def articulation(style: Style) -> float:
    return 1.0 + (ARTICULATION[style.name] - 1.0) * style.weight


def express(frames: np.ndarray, style: Style) -> np.ndarray:
    """``frames`` (..., DIM) as spoken in ``style`` (module docstring); neutral returns them
    unchanged."""
    frames = np.asarray(frames, np.float32)
    if style.weight == 0.0:
        return frames
    out = np.array(frames, np.float32, copy=True)
    out[..., motion_frame.MOUTH_INDICES] *= articulation(style)
    out[..., ROTATION] *= head_energy(style)
    add = np.broadcast_to(offsets(style), out.shape).copy()
    rounding = np.clip(out[..., _I["mouthPucker"]] + out[..., _I["mouthFunnel"]], 0.0, 1.0)
    add[..., _SMILES] *= (1.0 - rounding)[..., None]
    jaw, close = out[..., _I["jawOpen"]], out[..., _I["mouthClose"]]
    opening = np.clip(jaw / 0.3, 0.0, 1.0)
    add[..., _PRESSES] *= (1.0 - opening)[..., None]
    # A dropped jaw keeps sealed lips sealed: mouthClose follows it where it held the seal.
    seal = np.clip(close / np.maximum(jaw, 1e-3), 0.0, 1.0)
    add[..., _I["mouthClose"]] += seal * add[..., _I["jawOpen"]]
    return motion_frame.clip(out + add)
