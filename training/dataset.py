"""Training windows for the motion model, cut from the corpus exactly as the runtime sees them.

For an utterance and a hop start k (frames k .. k + H - 1, H = motion_spec.HOP_FRAMES):

* audio: samples [640 k - past, 640 (k + H) + lookahead), zeros outside the utterance (the
  runtime's audio ring reads zeros before the session start), as log-mel features. Each
  utterance's features are computed once on the 10 ms grid and windows are slices of them:
  a window's features depend only on its samples (contracts/audio_features.py), so they equal
  what the runtime computes from the same samples;
* history: frames k - K .. k - 1 as ``MotionBuffer.last(K)`` returns them in a session that
  started with the utterance: the oldest available frame repeated in front, neutral frames
  when k = 0;
* target: frames k .. k + H - 1;
* style: the utterance's speaking style (contracts/style.py), the same for all its windows.

Augmentations for autoregressive use: the runtime conditions on its own (imperfect) output,
so the history is noised (exposure bias), its mouth sometimes offset alike in every frame (a
jaw drifted open in a pause) and sometimes replaced by neutral frames (a session or a
barge-in starting mid-speech). A live stream usually asks for one frame at a time, so
the model often sees a hop whose last 40 ms are not there yet (zeros: "partial" windows).
Attenuation varies the input level (exact on log-mel features).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from tqdm import tqdm

from contracts import audio_features, motion_frame
from contracts import motion_spec as spec
from training.corpus_format import Example, iter_examples

FRAME = spec.SAMPLES_PER_FRAME
ROWS_PER_FRAME = FRAME // audio_features.HOP
# First analysis frame of the window that reaches into its last frame's 640 samples.
PARTIAL_FIRST_ROW = (spec.WINDOW_SAMPLES - FRAME - audio_features.WIN) // audio_features.HOP + 1
PCM_SCALE = 32767.0  # training.corpus_format stores int16 audio as round(x * 32767)
STD_FLOOR = 1e-3  # motion units: fields that never move are not blown up by normalisation


@dataclass(frozen=True)
class AugmentConfig:
    history_noise_prob: float = 0.5
    history_noise_max: float = 0.3  # in units of each field's standard deviation
    history_drop_prob: float = 0.1
    # The mouth's history off by the same amount in every frame: a jaw that drifted open, as
    # the model's own output can in a long pause; the target tells it to come back.
    history_drift_prob: float = 0.25
    history_drift_max: float = 0.6  # in units of each mouth field's standard deviation
    partial_prob: float = 0.5
    attenuate_prob: float = 0.3
    attenuate_max_db: float = 12.0

    @staticmethod
    def none() -> AugmentConfig:
        """Every augmentation off (each probability and size 0)."""
        return AugmentConfig(**{f.name: 0.0 for f in fields(AugmentConfig)})


@dataclass
class WindowBatch:
    mel: np.ndarray  # (B, MEL_FRAMES, N_MELS) float32
    history: np.ndarray  # (B, K, DIM) motion units
    target: np.ndarray  # (B, H, DIM) motion units
    style: np.ndarray  # (B, STYLE_DIM)


@dataclass
class Utterance:
    features: np.ndarray  # (rows, N_MELS): row m starts at sample 160 m - PAST_SAMPLES
    pcm: np.ndarray  # int16 as the corpus stores it, zero-padded: index 0 is -PAST_SAMPLES
    motion: np.ndarray  # (frames, DIM)
    style: np.ndarray  # (STYLE_DIM,) float32

    def audio(self, start: int, stop: int) -> np.ndarray:
        """Float samples [start, stop) (0 = the utterance's first sample), zeros outside,
        exactly as training.corpus_format reads them."""
        return self.pcm[start + spec.PAST_SAMPLES : stop + spec.PAST_SAMPLES] / np.float32(
            PCM_SCALE
        )

    @property
    def hops(self) -> int:
        """Hop starts with a full target inside the utterance."""
        return max(0, len(self.motion) - spec.HOP_FRAMES + 1)


def prepare(example: Example) -> Utterance:
    frames = len(example.motion)
    padded = np.zeros(spec.PAST_SAMPLES + frames * FRAME + spec.LOOKAHEAD_SAMPLES, np.float32)
    padded[spec.PAST_SAMPLES : spec.PAST_SAMPLES + len(example.audio)] = example.audio
    pcm = np.round(padded * PCM_SCALE).astype(np.int16)  # the corpus's own samples, exactly
    return Utterance(
        audio_features.log_mel(padded),
        pcm,
        example.motion.astype(np.float32),
        example.style.vector(),
    )


def load_utterances(corpus: Path, split: str | None, progress: bool = False) -> list[Utterance]:
    examples = iter_examples(Path(corpus), split)
    items = tqdm(examples, desc=f"features ({split or 'all'})", disable=not progress)
    utterances = [u for u in map(prepare, items) if u.hops > 0]
    if not utterances:
        raise ValueError(f"no utterances of split {split!r} in {corpus}")
    return utterances


def motion_statistics(utterances: list[Utterance]) -> tuple[np.ndarray, np.ndarray]:
    """Per-field mean and standard deviation (floored) over every frame."""
    motion = np.concatenate([u.motion for u in utterances]).astype(np.float64)
    std = np.maximum(motion.std(axis=0), STD_FLOOR)
    return motion.mean(axis=0).astype(np.float32), std.astype(np.float32)


def history_of(motion: np.ndarray, k: int) -> np.ndarray:
    """``MotionBuffer.last(K)`` for a session whose frame 0 is the utterance's frame 0."""
    if k == 0:
        return motion_frame.neutral(spec.HISTORY_FRAMES)
    have = motion[max(0, k - spec.HISTORY_FRAMES) : k]
    pad = np.repeat(have[:1], spec.HISTORY_FRAMES - len(have), axis=0)
    return np.concatenate([pad, have]).astype(np.float32)


def window(utterance: Utterance, k: int, partial: bool = False) -> np.ndarray:
    """Log-mel window of the hop starting at frame k; ``partial``: its last frame's audio
    has not arrived (zeros)."""
    rows = ROWS_PER_FRAME * k
    mel = utterance.features[rows : rows + spec.MEL_FRAMES]
    if partial:
        start = FRAME * k - spec.PAST_SAMPLES + PARTIAL_FIRST_ROW * audio_features.HOP
        stop = FRAME * k - spec.PAST_SAMPLES + spec.WINDOW_SAMPLES - FRAME
        tail = np.zeros(spec.WINDOW_SAMPLES - PARTIAL_FIRST_ROW * audio_features.HOP, np.float32)
        tail[: stop - start] = utterance.audio(start, stop)
        mel = mel.copy()
        mel[PARTIAL_FIRST_ROW:] = audio_features.log_mel(tail)
    return mel


class WindowSampler:
    """Random training windows (utterances weighted by their length), reproducible by seed."""

    def __init__(
        self,
        utterances: list[Utterance],
        std: np.ndarray,
        augment: AugmentConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.utterances = utterances
        self.std = std
        self.augment = augment or AugmentConfig()
        hops = np.array([u.hops for u in utterances], np.float64)
        self._weights = hops / hops.sum()
        self.rng = np.random.default_rng(seed)

    def sample(self, batch: int) -> WindowBatch:
        rng, aug = self.rng, self.augment
        which = rng.choice(len(self.utterances), size=batch, p=self._weights)
        mel = np.empty((batch, spec.MEL_FRAMES, spec.N_MELS), np.float32)
        history = np.empty((batch, spec.HISTORY_FRAMES, spec.DIM), np.float32)
        target = np.empty((batch, spec.HOP_FRAMES, spec.DIM), np.float32)
        style = np.empty((batch, spec.STYLE_DIM), np.float32)
        partial = rng.random(batch) < aug.partial_prob
        for b, u in enumerate(which.tolist()):
            utt = self.utterances[u]
            k = int(rng.integers(0, utt.hops))
            mel[b] = window(utt, k, bool(partial[b]))
            history[b] = history_of(utt.motion, k)
            target[b] = utt.motion[k : k + spec.HOP_FRAMES]
            style[b] = utt.style
        quieter = rng.random(batch) < aug.attenuate_prob
        if quieter.any():
            gain = -rng.uniform(0.0, aug.attenuate_max_db, int(quieter.sum()))
            mel[quieter] = audio_features.attenuate(mel[quieter], gain[:, None, None])
        noisy = rng.random(batch) < aug.history_noise_prob
        scale = rng.uniform(0.0, aug.history_noise_max, batch) * noisy
        history += scale[:, None, None] * self.std * rng.standard_normal(history.shape)
        drifted = rng.random(batch) < aug.history_drift_prob
        drift = np.zeros((batch, 1, spec.DIM), np.float32)
        mouth = motion_frame.MOUTH_INDICES
        drift[:, 0, mouth] = rng.uniform(-1.0, 1.0, (batch, len(mouth))) * self.std[mouth]
        drift *= (rng.uniform(0.0, aug.history_drift_max, batch) * drifted)[:, None, None]
        history += drift
        history = motion_frame.clip(history)
        history[rng.random(batch) < aug.history_drop_prob] = motion_frame.neutral()
        return WindowBatch(mel, history.astype(np.float32), target, style)


def hop_windows(utterance: Utterance, partial: bool = False) -> WindowBatch:
    """Every hop of an utterance (starts 0, H, 2H, ...) with the true history (evaluation)."""
    starts = range(0, utterance.hops, spec.HOP_FRAMES)
    return WindowBatch(
        np.stack([window(utterance, k, partial) for k in starts]),
        np.stack([history_of(utterance.motion, k) for k in starts]),
        np.stack([utterance.motion[k : k + spec.HOP_FRAMES] for k in starts]),
        np.repeat(utterance.style[None], len(starts), axis=0),
    )
