"""The on-disk corpus: shards of utterances (audio + motion targets) and a manifest.

A corpus directory holds ``manifest.json`` and ``shard-NNNNN.npz`` files. Each shard stores
its utterances concatenated, with offsets:

* ``audio``: int16, 16 kHz mono; ``audio_offsets``: int64 (n + 1,)
* ``motion``: float32 (frames, motion_frame.DIM) at 25 fps, frame k covering audio samples
  [640k, 640(k+1)); ``motion_offsets``: int64 (n + 1,); utterance i has
  ceil(len(audio_i) / 640) frames.
* ``visemes``: int8 (frames,) the dominant viseme class per frame (for viseme accuracy).

``manifest.json``: {"seed", "created", "sample_rate", "fps", "motion_fields", "viseme_names",
"utterances": [{"id", "shard", "index", "engine", "voice", "split" ("train"|"val"), "text",
"seconds", "augment": {...}}], "stats": {...}}.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contracts import motion_frame
from contracts.style import Style

SAMPLES_PER_FRAME = 640
MANIFEST = "manifest.json"


@dataclass
class Example:
    """One utterance as training sees it."""

    audio: np.ndarray  # float32 16 kHz
    motion: np.ndarray  # (frames, DIM) float32
    visemes: np.ndarray  # (frames,) int8
    info: dict

    @property
    def style(self) -> Style:
        """The speaking style its targets were made in (neutral in corpora made before
        styles existed)."""
        return Style(self.info.get("style", "neutral"), self.info.get("intensity", 1.0))


def frames_for(samples: int) -> int:
    return -(-samples // SAMPLES_PER_FRAME)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npz"


def write_shard(
    path: Path, audios: Sequence[np.ndarray], motions: Sequence[np.ndarray],
    visemes: Sequence[np.ndarray],
) -> None:  # fmt: skip
    """Write utterances (float32 audio in [-1, 1], motion (frames, DIM), visemes (frames,))."""
    for audio, motion, vis in zip(audios, motions, visemes, strict=True):
        if motion.shape != (frames_for(len(audio)), motion_frame.DIM):
            raise ValueError(f"motion shape {motion.shape} does not match {len(audio)} samples")
        if vis.shape != (len(motion),):
            raise ValueError("visemes must have one entry per motion frame")
    pcm = [np.clip(np.round(a * 32767.0), -32768, 32767).astype(np.int16) for a in audios]
    np.savez(
        path,
        audio=np.concatenate(pcm) if pcm else np.zeros(0, np.int16),
        audio_offsets=np.cumsum([0] + [len(a) for a in pcm]).astype(np.int64),
        motion=np.concatenate(motions).astype(np.float32)
        if motions
        else np.zeros((0, motion_frame.DIM), np.float32),
        motion_offsets=np.cumsum([0] + [len(m) for m in motions]).astype(np.int64),
        visemes=np.concatenate(visemes).astype(np.int8) if visemes else np.zeros(0, np.int8),
    )


def write_manifest(directory: Path, manifest: dict) -> None:
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1))


def read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{directory} is not a corpus (no {MANIFEST}); run `emote train corpus`"
        )
    return json.loads(path.read_text())


def iter_examples(directory: Path, split: str | None = None) -> Iterator[Example]:
    """Every utterance of the corpus (optionally one split), shard by shard."""
    manifest = read_manifest(directory)
    by_shard: dict[str, list[dict]] = {}
    for info in manifest["utterances"]:
        if split is None or info["split"] == split:
            by_shard.setdefault(info["shard"], []).append(info)
    for shard, infos in sorted(by_shard.items()):
        with np.load(directory / shard) as data:
            ao, mo = data["audio_offsets"], data["motion_offsets"]
            audio, motion, visemes = data["audio"], data["motion"], data["visemes"]
            for info in infos:
                i = info["index"]
                yield Example(
                    audio=audio[ao[i] : ao[i + 1]].astype(np.float32) / 32767.0,
                    motion=motion[mo[i] : mo[i + 1]].copy(),
                    visemes=visemes[mo[i] : mo[i + 1]].copy(),
                    info=info,
                )
