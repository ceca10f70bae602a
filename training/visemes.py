"""Phones -> visemes -> ARKit mouth targets, through a coarticulation model.

The training corpus gets its mouth targets here from the exact phone timings of the TTS
engines, and evaluation gets them from the reference alignments of real speech, so both
read one model. Its parts:

* :data:`PHONE_TO_VISEME` folds the 39 ARPAbet phones (and SIL) into visually distinct
  classes (:data:`VISEME_NAMES`); diphthongs become a nucleus and an off-glide.
* Each class has a target mouth (a few ARKit blendshapes) and a *dominance*: how strongly it
  holds each group of mouth controls (jaw, rounding, spreading, lip seal) against its
  neighbours, and how far that hold reaches before (anticipation) and after (carry-over) the
  segment. A frame's mouth is the dominance-weighted mean of the nearby targets (Cohen and
  Massaro, 1993): a velar /k/ barely holds the lips, so "coo" is rounded through the /k/,
  while /p/ owns them.
* Bilabial (and, less strictly, labiodental) closures are then imposed on every frame that
  covers them: a blend can only approach a closure, and a mouth that does not close on
  /p b m/ is the most visible lip-sync error there is.

Timing: frame k covers audio samples [640k, 640(k+1)) at 16 kHz (25 fps); its mouth is the
mean of the model at four instants inside the frame, so a segment shorter than a frame still
counts in proportion to its share of it. Anticipation reaches at most 80 ms ahead, the audio
lookahead of the live model, so the targets never ask it to foresee what it cannot hear.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from contracts import motion_frame
from contracts.phones import ARPABET, Phone
from training import prosody

FPS = 25
FRAME_S = 1.0 / FPS
# Instants (fractions of a frame) at which the model is sampled and averaged per frame.
SUBFRAME_POSITIONS = np.array([0.125, 0.375, 0.625, 0.875])

VISEME_NAMES: tuple[str, ...] = (
    "sil",  # silence: relaxed, closed
    "PBM",  # bilabial closure
    "FV",  # lower lip to the upper teeth
    "TH",  # tongue between the teeth
    "DTNL",  # alveolar: tongue tip behind the teeth, lips neutral
    "KG",  # velar and glottal (k g ng hh): the lips take the neighbours' shape
    "SZ",  # alveolar fricative: teeth together, lips spread
    "SH",  # postalveolar (sh ch jh zh): lips protruded and flared
    "R",  # r: lips slightly rounded
    "W",  # w: tight rounding
    "AA",  # open vowels (aa ah, nucleus of ay aw)
    "AE",  # mid-open spread vowels (ae eh, nucleus of ey)
    "IY",  # close spread vowels and y (iy ih y, off-glide of ay ey oy)
    "AO",  # open rounded vowels (ao, nucleus of ow oy)
    "UW",  # close rounded vowels (uw uh, off-glide of ow aw)
    "ER",  # r-coloured vowel
)
VISEME_INDEX: dict[str, int] = {name: i for i, name in enumerate(VISEME_NAMES)}

PHONE_TO_VISEME: dict[str, str] = {
    "SIL": "sil",
    "P": "PBM", "B": "PBM", "M": "PBM",
    "F": "FV", "V": "FV",
    "TH": "TH", "DH": "TH",
    "T": "DTNL", "D": "DTNL", "N": "DTNL", "L": "DTNL",
    "K": "KG", "G": "KG", "NG": "KG", "HH": "KG",
    "S": "SZ", "Z": "SZ",
    "SH": "SH", "ZH": "SH", "CH": "SH", "JH": "SH",
    "R": "R",
    "W": "W",
    "Y": "IY",
    "AA": "AA", "AH": "AA", "AY": "AA", "AW": "AA",
    "AE": "AE", "EH": "AE", "EY": "AE",
    "IY": "IY", "IH": "IY",
    "AO": "AO", "OW": "AO", "OY": "AO",
    "UW": "UW", "UH": "UW",
    "ER": "ER",
}  # fmt: skip
assert set(PHONE_TO_VISEME) == set(ARPABET)
assert set(PHONE_TO_VISEME.values()) == set(VISEME_NAMES)

# Diphthongs glide from their nucleus (the class above) to this class over their last part.
OFFGLIDE: dict[str, str] = {"AY": "IY", "AW": "UW", "EY": "IY", "OY": "IY", "OW": "UW"}
OFFGLIDE_FRACTION = 0.4

# Phones that share a class but are visibly weaker than its target (reduced vowels).
PHONE_SCALE: dict[str, float] = {"AH": 0.75, "IH": 0.85, "UH": 0.8, "EH": 0.9, "HH": 0.6}

VOWELS = prosody.VOWELS  # undershoot applies to them

# --- mouth controls --------------------------------------------------------------------------

# The mouth blendshapes, grouped by what holds them: a phone can own the lip rounding while
# leaving the jaw to its neighbours (Cohen-Massaro dominance is per control).
_GROUPS: dict[str, tuple[str, ...]] = {
    "jaw": ("jawOpen", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
            "mouthUpperUpRight"),
    "round": ("mouthFunnel", "mouthPucker"),
    "spread": ("mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight"),
    "seal": ("mouthClose", "mouthPressLeft", "mouthPressRight", "mouthRollLower",
             "mouthRollUpper"),
}  # fmt: skip
GROUP_NAMES: tuple[str, ...] = tuple(_GROUPS)
MOUTH_FIELDS: tuple[str, ...] = tuple(name for names in _GROUPS.values() for name in names)
MOUTH_INDEX = np.array(motion_frame.indices(MOUTH_FIELDS))
_POS = {name: i for i, name in enumerate(MOUTH_FIELDS)}  # position within the mouth vector
_GROUP_OF = np.array([GROUP_NAMES.index(g) for g, names in _GROUPS.items() for _ in names])


def _pair(prefix: str, value: float) -> dict[str, float]:
    return {f"{prefix}Left": value, f"{prefix}Right": value}


@dataclass(frozen=True)
class VisemeSpec:
    """Target mouth and coarticulation strength of one viseme class."""

    shape: Mapping[str, float]  # blendshape -> weight; unnamed mouth controls are 0
    dominance: tuple[float, float, float, float]  # hold on jaw, round, spread, seal
    lead: float  # s: how far ahead of the segment its dominance reaches (anticipation)
    lag: float  # s: how far after it (carry-over)


# Renderer geometry behind the numbers (engines/rig.py): jawOpen drops the lower lip by 0.6
# mouth widths at 1.0 and mouthClose lifts it back by 0.57, so mouthClose == jawOpen seals
# the lips over a slightly lowered jaw; mouthLowerDown/UpperUp bare the teeth (0.16 / 0.13
# widths); mouthFunnel opens the lips into a ring, mouthPucker narrows them. Values stay
# well inside [0, 1]: the style scale (up to 1.2) and the warp must not overdrive them.
VISEMES: dict[str, VisemeSpec] = {
    # Rest is the neutral pose (lips together, no tension); weak, so a short pause inside a
    # phrase does not snap the mouth shut, but a long one relaxes it.
    "sil": VisemeSpec({}, (0.3, 0.3, 0.3, 0.3), lead=0.06, lag=0.06),
    # Lips sealed and slightly pressed over a nearly closed jaw; owns every lip control.
    "PBM": VisemeSpec(
        {"jawOpen": 0.08, "mouthClose": 0.08, **_pair("mouthPress", 0.4), "mouthRollLower": 0.15,
         "mouthRollUpper": 0.1},
        (0.9, 0.6, 0.6, 1.0), lead=0.06, lag=0.06,
    ),
    # Lower lip rolled in under the upper teeth, upper lip lifted a little to show them.
    "FV": VisemeSpec(
        {"jawOpen": 0.1, "mouthRollLower": 0.55, **_pair("mouthUpperUp", 0.2)},
        (0.9, 0.5, 0.5, 1.0), lead=0.06, lag=0.06,
    ),
    # A small gap with the teeth visible: the tongue tip sits between them.
    "TH": VisemeSpec(
        {"jawOpen": 0.15, **_pair("mouthLowerDown", 0.15), **_pair("mouthUpperUp", 0.12),
         **_pair("mouthStretch", 0.05)},
        (0.6, 0.3, 0.3, 0.5), lead=0.06, lag=0.08,
    ),
    # The tongue does the work; the jaw is fairly high, the lips follow the vowels.
    "DTNL": VisemeSpec(
        {"jawOpen": 0.16, **_pair("mouthLowerDown", 0.1), **_pair("mouthUpperUp", 0.05),
         **_pair("mouthStretch", 0.05)},
        (0.5, 0.15, 0.2, 0.3), lead=0.06, lag=0.08,
    ),
    # Back of the tongue: the jaw is half way and the lips are free (weakest class).
    "KG": VisemeSpec(
        {"jawOpen": 0.22, **_pair("mouthLowerDown", 0.08)},
        (0.4, 0.1, 0.15, 0.2), lead=0.06, lag=0.08,
    ),
    # Teeth together and bared, lips spread: a sibilant needs a narrow jaw.
    "SZ": VisemeSpec(
        {"jawOpen": 0.06, **_pair("mouthStretch", 0.25), **_pair("mouthSmile", 0.1),
         **_pair("mouthUpperUp", 0.15), **_pair("mouthLowerDown", 0.15)},
        (0.8, 0.4, 0.5, 0.4), lead=0.06, lag=0.08,
    ),
    # Lips pushed forward and flared (funnel), teeth close and visible.
    "SH": VisemeSpec(
        {"jawOpen": 0.08, "mouthFunnel": 0.45, "mouthPucker": 0.2, **_pair("mouthUpperUp", 0.2),
         **_pair("mouthLowerDown", 0.15)},
        (0.7, 0.9, 0.6, 0.6), lead=0.08, lag=0.08,
    ),
    "R": VisemeSpec(
        {"jawOpen": 0.12, "mouthFunnel": 0.25, "mouthPucker": 0.3},
        (0.5, 0.7, 0.5, 0.4), lead=0.08, lag=0.08,
    ),
    # The tightest rounding; anticipated as far as the lookahead allows.
    "W": VisemeSpec(
        {"jawOpen": 0.06, "mouthPucker": 0.7, "mouthFunnel": 0.25},
        (0.6, 1.0, 0.8, 0.6), lead=0.08, lag=0.1,
    ),
    # Jaw well down and the lower lip with it: the clearest open shape. The open vowels part
    # the lips as far as dsp's do (lowerDown 0.45-0.5, upperUp 0.22-0.25): with less, FaceMesh
    # read the rendered mouth at a third of dsp's opening (docs/benchmarks.md, "Motion v2").
    "AA": VisemeSpec(
        {"jawOpen": 0.6, **_pair("mouthLowerDown", 0.5), **_pair("mouthUpperUp", 0.22)},
        (1.0, 0.6, 0.6, 0.5), lead=0.06, lag=0.14,
    ),
    "AE": VisemeSpec(
        {"jawOpen": 0.42, **_pair("mouthLowerDown", 0.45), **_pair("mouthUpperUp", 0.25),
         **_pair("mouthStretch", 0.25), **_pair("mouthSmile", 0.1)},
        (0.9, 0.6, 0.7, 0.5), lead=0.06, lag=0.14,
    ),
    # Jaw nearly closed, corners drawn back: teeth show through spread lips.
    "IY": VisemeSpec(
        {"jawOpen": 0.15, **_pair("mouthStretch", 0.35), **_pair("mouthSmile", 0.2),
         **_pair("mouthUpperUp", 0.1), **_pair("mouthLowerDown", 0.15)},
        (0.8, 0.7, 0.9, 0.5), lead=0.06, lag=0.14,
    ),
    "AO": VisemeSpec(
        {"jawOpen": 0.45, "mouthFunnel": 0.5, "mouthPucker": 0.15, **_pair("mouthLowerDown", 0.3),
         **_pair("mouthUpperUp", 0.12)},
        (0.9, 0.9, 0.7, 0.5), lead=0.08, lag=0.14,
    ),
    "UW": VisemeSpec(
        {"jawOpen": 0.12, "mouthPucker": 0.65, "mouthFunnel": 0.35},
        (0.8, 1.0, 0.8, 0.5), lead=0.08, lag=0.14,
    ),
    "ER": VisemeSpec(
        {"jawOpen": 0.2, "mouthFunnel": 0.3, "mouthPucker": 0.25, **_pair("mouthUpperUp", 0.1)},
        (0.8, 0.8, 0.6, 0.5), lead=0.08, lag=0.14,
    ),
}  # fmt: skip
assert tuple(VISEMES) == VISEME_NAMES

# Lead and lag are measured from the segment's edges; the live model hears 80 ms ahead.
MAX_LEAD = 0.08
MAX_LAG = 0.15
assert all(v.lead <= MAX_LEAD and v.lag <= MAX_LAG for v in VISEMES.values())

# Dominance outside a segment: alpha * exp(-DECAY s) * (1 - s^2)^2 at s = distance / reach.
# Exponential as in Cohen-Massaro, tapered to exactly zero at the reach so anticipation is
# bounded; smooth (C1) at both ends, so no frame jumps where a segment comes into reach.
DECAY = 2.0

# Vowels shorter than this are not reached (undershoot): their target shrinks towards rest.
UNDERSHOOT_S = 0.1
UNDERSHOOT_FLOOR = 0.65

# Closures imposed after blending. A frame is sealed in proportion to how much of it the
# closure covers (full from SEAL_FULL_S on), and the frame covering most of the closure is
# always sealed fully: the renderer shows frames, so a closure must own at least one.
SEAL_FULL_S = 0.015
FV_SEAL_WEIGHT = 0.85  # the lip touches the teeth, not the other lip: a little play is fine
RELEASE_FRACTION = 0.25  # of a /p b/ label is the burst, after the lips have opened


def _targets() -> np.ndarray:
    """(classes, mouth controls) target matrix."""
    table = np.zeros((len(VISEME_NAMES), len(MOUTH_FIELDS)))
    for i, spec in enumerate(VISEMES.values()):
        for name, value in spec.shape.items():
            table[i, _POS[name]] = value
    return table


TARGETS = _targets()
_DOMINANCE = np.array([spec.dominance for spec in VISEMES.values()])[:, _GROUP_OF]
_LEAD = np.array([spec.lead for spec in VISEMES.values()])
_LAG = np.array([spec.lag for spec in VISEMES.values()])


def viseme_of(label: str) -> int:
    """Class index of an ARPAbet label (the nucleus, for diphthongs)."""
    return VISEME_INDEX[PHONE_TO_VISEME[label]]


# --- segments --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A stretch of time with one viseme class and its (possibly scaled) target."""

    viseme: int
    start: float
    end: float
    label: str  # the phone it came from ("SIL" for gaps)
    scale: float = 1.0  # target strength (reduced vowels, undershoot)


def segments(phones: Sequence[Phone], duration: float) -> list[Segment]:
    """Tile [0, duration) with segments: phones in time order, gaps as silence, diphthongs
    split into nucleus and off-glide. A phone overlapping the one before it starts where
    that one ends; the part of a phone past ``duration`` is dropped."""
    sil = VISEME_INDEX["sil"]
    out: list[Segment] = []
    cursor = 0.0
    for phone in sorted(phones, key=lambda p: p.start):
        start, end = max(phone.start, cursor), min(phone.end, duration)
        if end <= start:
            continue
        if start > cursor:
            out.append(Segment(sil, cursor, start, "SIL"))
        out.extend(_phone_segments(phone.label, start, end))
        cursor = end
    if cursor < duration:
        out.append(Segment(sil, cursor, duration, "SIL"))
    return out


def _phone_segments(label: str, start: float, end: float) -> list[Segment]:
    scale = PHONE_SCALE.get(label, 1.0)
    if label in VOWELS:
        # Speed-dependent undershoot: a short vowel leaves the jaw short of its target.
        reach = min(1.0, (end - start) / UNDERSHOOT_S)
        scale *= UNDERSHOOT_FLOOR + (1.0 - UNDERSHOOT_FLOOR) * reach
    if label in OFFGLIDE:
        split = end - OFFGLIDE_FRACTION * (end - start)
        return [
            Segment(viseme_of(label), start, split, label, scale),
            Segment(VISEME_INDEX[OFFGLIDE[label]], split, end, label, scale),
        ]
    return [Segment(viseme_of(label), start, end, label, scale)]


# --- coarticulation -------------------------------------------------------------------------


def _falloff(s: np.ndarray) -> np.ndarray:
    """Dominance outside a segment at distance s (fraction of its reach, 0..1)."""
    s = np.clip(s, 0.0, 1.0)
    return np.exp(-DECAY * s) * (1.0 - s * s) ** 2


def blend(segs: Sequence[Segment], times: np.ndarray) -> np.ndarray:
    """Mouth controls (len(times), len(MOUTH_FIELDS)) at the given instants: the dominance-
    weighted mean of the targets of the segments in reach (the segments must tile time)."""
    num = np.zeros((len(times), len(MOUTH_FIELDS)))
    den = np.zeros((len(times), len(MOUTH_FIELDS)))
    for seg in segs:
        v = seg.viseme
        lo, hi = np.searchsorted(times, (seg.start - _LEAD[v], seg.end + _LAG[v]))
        t = times[lo:hi]
        before = (seg.start - t) / _LEAD[v]
        after = (t - seg.end) / _LAG[v]
        weight = np.where(before > 0, _falloff(before), np.where(after > 0, _falloff(after), 1.0))
        dom = weight[:, None] * _DOMINANCE[v][None, :]
        num[lo:hi] += dom * (seg.scale * TARGETS[v])[None, :]
        den[lo:hi] += dom
    return num / np.maximum(den, 1e-9)


def subframe_times(n_frames: int) -> np.ndarray:
    """(n_frames, len(SUBFRAME_POSITIONS)) instants (s) sampled inside each frame."""
    return (np.arange(n_frames)[:, None] + SUBFRAME_POSITIONS[None, :]) * FRAME_S


# --- closures -------------------------------------------------------------------------------


def _closure(seg: Segment) -> tuple[float, float] | None:
    """The interval in which a segment's lips must be shut (None if they need not be)."""
    if VISEME_NAMES[seg.viseme] == "PBM":
        # /p b/ end in a burst, after the lips part; /m/ is closed throughout.
        release = 0.0 if seg.label == "M" else RELEASE_FRACTION * (seg.end - seg.start)
        return seg.start, seg.end - release
    if VISEME_NAMES[seg.viseme] == "FV":
        return seg.start, seg.end
    return None


def _seal_gate(interval: tuple[float, float], n_frames: int) -> np.ndarray:
    """Per-frame closure weight of one closure interval: its overlap with each frame, full
    from SEAL_FULL_S, and full on the frame it overlaps most."""
    start, end = interval
    edges = np.arange(n_frames + 1) * FRAME_S
    overlap = np.clip(np.minimum(edges[1:], end) - np.maximum(edges[:-1], start), 0.0, None)
    gate = np.clip(overlap / SEAL_FULL_S, 0.0, 1.0)
    if overlap.max() > 0.0:
        gate[int(np.argmax(overlap))] = 1.0
    return gate


def _sealed(mouth: np.ndarray, kind: str) -> np.ndarray:
    """The mouth with its lips closed (PBM) or the lower lip on the teeth (FV), keeping what
    a closure leaves free: rounding (an /m/ before /uw/ is rounded) and some spread."""
    m = mouth.copy()
    p = _POS
    jaw = np.minimum(m[:, p["jawOpen"]], TARGETS[VISEME_INDEX[kind], p["jawOpen"]] + 0.02)
    m[:, p["jawOpen"]] = jaw
    for name in ("mouthLowerDownLeft", "mouthLowerDownRight", "mouthFunnel"):
        m[:, p[name]] = 0.0
    spread = [p[f"mouth{s}{side}"] for s in ("Smile", "Stretch") for side in ("Left", "Right")]
    m[:, spread] *= 0.5
    if kind == "PBM":
        m[:, p["mouthClose"]] = jaw  # cancels the jaw on the lips: they meet
        for side in ("Left", "Right"):
            m[:, p[f"mouthUpperUp{side}"]] = 0.0
            m[:, p[f"mouthPress{side}"]] = np.maximum(m[:, p[f"mouthPress{side}"]], 0.4)
        m[:, p["mouthRollLower"]] = np.maximum(m[:, p["mouthRollLower"]], 0.15)
        m[:, p["mouthRollUpper"]] = np.maximum(m[:, p["mouthRollUpper"]], 0.1)
    else:
        m[:, p["mouthClose"]] = 0.0
        for side in ("Left", "Right"):  # the upper lip bares the teeth no more than /f/ does
            up = p[f"mouthUpperUp{side}"]
            m[:, up] = np.minimum(m[:, up], TARGETS[VISEME_INDEX[kind], up])
        m[:, p["mouthRollLower"]] = np.maximum(m[:, p["mouthRollLower"]], 0.5)
        m[:, p["mouthPucker"]] *= 0.5
    return m


def impose_closures(mouth: np.ndarray, segs: Sequence[Segment]) -> np.ndarray:
    """Seal the lips on every frame covering a /p b m/ closure (and /f v/, a little less)."""
    n = len(mouth)
    gates = {"PBM": np.zeros(n), "FV": np.zeros(n)}
    for seg in segs:
        interval = _closure(seg)
        if interval is not None:
            kind = VISEME_NAMES[seg.viseme]
            gates[kind] = np.maximum(gates[kind], _seal_gate(interval, n))
    gates["FV"] *= FV_SEAL_WEIGHT
    # A bilabial wins over a labiodental in the same frame.
    gates["FV"] *= 1.0 - gates["PBM"]
    out = mouth
    for kind, gate in gates.items():
        if gate.any():
            out = out + gate[:, None] * (_sealed(mouth, kind) - out)
    return out


# --- style ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArticulationStyle:
    """Per-utterance speaking style, so the corpus does not teach one fixed amplitude."""

    strength: float = 1.0  # scales every mouth shape away from rest (0.8 mumbles, 1.2 mouths)
    smile: float = 0.0  # constant smile bias
    smile_asymmetry: float = 0.0  # left minus right smile bias
    head: float = 1.0  # head-motion amplitude (handed to prosody)

    @classmethod
    def draw(cls, rng: np.random.Generator) -> ArticulationStyle:
        return cls(
            strength=float(rng.uniform(0.8, 1.2)),
            smile=float(rng.uniform(0.0, 0.12)) if rng.random() < 0.6 else 0.0,
            smile_asymmetry=float(rng.uniform(-0.03, 0.03)),
            head=float(rng.uniform(0.6, 1.4)),
        )

    def apply(self, mouth: np.ndarray) -> np.ndarray:
        """Scale the shapes; add the smile where the lips are not rounded (they conflict)."""
        out = mouth * self.strength
        rounding = np.clip(out[:, _POS["mouthPucker"]] + out[:, _POS["mouthFunnel"]], 0.0, 1.0)
        bias = self.smile * (1.0 - rounding)
        half = 0.5 * self.smile_asymmetry * (1.0 - rounding)
        out[:, _POS["mouthSmileLeft"]] += bias + half
        out[:, _POS["mouthSmileRight"]] += bias - half
        return np.clip(out, 0.0, 1.0)


# --- public API -----------------------------------------------------------------------------


def mouth_motion(
    phones: Sequence[Phone], n_frames: int, style: ArticulationStyle | None = None
) -> np.ndarray:
    """Mouth controls (n_frames, len(MOUTH_FIELDS)): blended, styled, closures imposed."""
    style = style or ArticulationStyle()
    segs = segments(phones, n_frames * FRAME_S)
    times = subframe_times(n_frames)
    mouth = blend(segs, times.ravel()).reshape(*times.shape, len(MOUTH_FIELDS)).mean(axis=1)
    return impose_closures(style.apply(mouth), segs)


def phones_to_motion(
    phones: list[Phone],
    n_frames: int,
    rng: np.random.Generator | None = None,
    audio: np.ndarray | None = None,
    beats: Sequence[float] = (),
) -> np.ndarray:
    """Motion frames (n_frames, motion_frame.DIM) float32 for an utterance.

    The mouth comes from the phones. With ``audio`` (16 kHz float), head, brows, blinks and
    gaze come from its prosody (see :mod:`training.prosody`); without it they stay neutral,
    which is what evaluation against reference alignments wants. With ``rng`` the utterance
    gets a random style (articulation strength, smile, head-motion amplitude) and random
    prosodic motion; without it the style is neutral and prosody uses a fixed seed.
    """
    style = ArticulationStyle.draw(rng) if rng is not None else ArticulationStyle()
    out = motion_frame.neutral(n_frames).astype(np.float64)
    out[:, MOUTH_INDEX] = mouth_motion(phones, n_frames, style)
    if audio is not None:
        prosody_rng = rng if rng is not None else np.random.default_rng(0)
        upper = prosody.prosody_motion(
            audio, phones, n_frames, prosody_rng, head=style.head, beats=beats
        )
        out[:, prosody.FIELDS] = upper[:, prosody.FIELDS]
    return motion_frame.clip(out)


def dominant_visemes(phones: list[Phone], n_frames: int) -> np.ndarray:
    """Class index (int8, (n_frames,)) of the segment covering each frame's centre: the
    phone's class, or its off-glide's in the last part of a diphthong; sil in gaps."""
    segs = segments(phones, n_frames * FRAME_S)
    out = np.full(n_frames, VISEME_INDEX["sil"], np.int8)
    if not segs:
        return out
    centres = (np.arange(n_frames) + 0.5) * FRAME_S
    starts = np.array([s.start for s in segs])
    which = np.clip(np.searchsorted(starts, centres, side="right") - 1, 0, len(segs) - 1)
    classes = np.array([s.viseme for s in segs], np.int8)
    return classes[which]
