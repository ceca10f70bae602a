"""The jaw the learned model remembers: its motion against a corpus's targets, and its jaw on
real songs, with the history's jawOpen compressed above each knee (or not at all).

    python -m emote train corpus --corpus /tmp/corpus_s7 --hours 0.4 --seed 7
    python -m bench.jaw_memory --corpus /tmp/corpus_s7 [--songs ../shared/assets/singing]
        [--knees none,0.5] [--json OUT.json]

Motion space only (no rendering): fast, and what the knee changes. Per knee:

* **corpus**: every utterance of the corpus streamed through the student (20 ms chunks, as
  live), by delivery (speech, song, held, rap): the correlation of its jawOpen with the
  target's, the mean absolute error, and on the frames where the target opens past 0.4 the
  mean signed error (negative: it opens less than the target). A corpus of a seed the model
  was not trained on (the shipped one: seed 0) is new sentences, melodies and renditions.
* **songs**: each ``sing_*`` / ``rap_*`` clip, three sampling seeds, jawOpen as the mouth:
  its range, correlation with the voice-band envelope, syllables met by a peak, and for
  songs the held-note readings (training.evaluate_songs' definitions).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from contracts import motion_frame as mf
from contracts.paths import SHARED_SINGING
from engines.learned_motion import LearnedMotionGenerator
from training.evaluate import run_generator

JAW = mf.INDEX["jawOpen"]
OPEN = 0.4  # a target frame this open counts as "open"


def corpus_readings(corpus: Path, knee: float | None) -> dict[str, float]:
    from training.corpus_format import iter_examples

    found: defaultdict[str, list[float]] = defaultdict(list)
    for example in iter_examples(corpus):
        jaw = run_generator(LearnedMotionGenerator(seed=0, history_jaw_knee=knee), example.audio)[
            :, JAW
        ]
        n = min(len(jaw), len(example.motion))
        made, target = jaw[:n], example.motion[:n, JAW]
        kind = str(example.info["delivery"])
        if made.std() > 1e-6 and target.std() > 1e-6:
            found[f"{kind}_corr"].append(float(np.corrcoef(made, target)[0, 1]))
        found[f"{kind}_mae"].append(float(np.abs(made - target).mean()))
        opened = target > OPEN
        if opened.sum() > 10:
            found[f"{kind}_open_error"].append(float((made[opened] - target[opened]).mean()))
        found[f"{kind}_utterances"].append(1.0)
    return {
        k: (float(sum(v)) if k.endswith("_utterances") else round(float(np.mean(v)), 4))
        for k, v in sorted(found.items())
    }


def song_readings(songs: Path, knee: float | None) -> dict[str, dict[str, float]]:
    from training import evaluate_songs as es

    out: dict[str, dict[str, float]] = {}
    for clip in es.song_clips(songs):
        audio = clip.audio
        per_seed = []
        for seed in (0, 1, 2):
            generator = LearnedMotionGenerator(seed=seed, history_jaw_knee=knee)
            jaw = run_generator(generator, audio)[:, JAW]
            envelope = es.voice_envelope_db(audio, len(jaw))
            corr, _ = es.envelope_follow(jaw, envelope)
            row = {
                "range": es.mouth_range(jaw),
                "envelope_corr": corr,
                "syllable_peaks": es.syllable_peaks(jaw, es.syllable_nuclei(envelope)),
            }
            if clip.kind == "sing":
                notes = es.held_notes(envelope, es.voiced_frames(audio, len(jaw)))
                row |= es.held_note_metrics(jaw, notes)
            per_seed.append(row)
        out[clip.name] = {
            k: round(float(np.mean([r[k] for r in per_seed])), 3) for k in per_seed[0]
        }
    return out


def knee_value(text: str) -> float | None:
    return None if text.strip().lower() == "none" else float(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="a corpus (emote train corpus)")
    parser.add_argument("--songs", type=Path, default=SHARED_SINGING)
    parser.add_argument("--knees", default="none,0.5", help="comma-separated; none: off")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    for text in args.knees.split(","):
        knee = knee_value(text)
        record: dict[str, Any] = {}
        if args.corpus is not None:
            record["corpus"] = corpus_readings(args.corpus, knee)
        if args.songs.is_dir():
            record["songs"] = song_readings(args.songs, knee)
        results[str(knee)] = record
        print(f"knee {knee}:\n{json.dumps(record, indent=1)}", flush=True)
    if args.json:
        payload = {"command": "python -m bench.jaw_memory " + " ".join(argv or sys.argv[1:])}
        args.json.write_text(json.dumps(payload | {"knees": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
