"""Measure the TTS engines on this machine: voices, speed, and timing accuracy.

    python -m training.tts.measure [--sentences 8] [--seed 0]

Prints, per engine, the number of voices and the synthesis speed (seconds of audio per
second of wall time, one process; festival batched with ``synthesize_many``); per voice
tried, the energy lag (the shift of the phone labels that best matches the audio's energy
envelope: vowels loud, silences and stop closures quiet; near 0 when timings are right);
and the accuracy of the pocketsphinx aligner used for pico, measured by aligning voices
whose timings are exact and comparing phone starts (phones matched by label sequence).
"""

from __future__ import annotations

import argparse
import difflib
import time

import numpy as np

from training.sentences import sentences
from training.tts import ENGINES, TtsEngine, aligner
from training.tts.timeline import VOWELS
from training.utterance import SAMPLE_RATE, Utterance

_QUIET = frozenset(("SIL", "P", "B", "T", "D", "K", "G"))
_HOP = SAMPLE_RATE // 200  # 5 ms
_WINDOW = 3 * _HOP
# Voices with exact timings used to measure the aligner, and voices sampled for speed.
ALIGNER_REFERENCES = ("espeak-ng/en-us", "espeak-ng/en-gb+f3", "mbrola/us1", "mbrola/us2",
                      "mbrola/en1", "festival/kal_diphone", "flite/slt", "flite/awb")  # fmt: skip


def energy_lag_ms(utterances: list[Utterance], max_lag: int = 12) -> float:
    """The label shift (ms, + = labels should move later) that best fits the energy."""
    scores = np.zeros(2 * max_lag + 1)
    for utt in utterances:
        n = 1 + (len(utt.audio) - _WINDOW) // _HOP
        frames = np.lib.stride_tricks.sliding_window_view(utt.audio, _WINDOW)[::_HOP][:n]
        energy = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
        centres = (np.arange(n) * _HOP + _WINDOW / 2) / SAMPLE_RATE
        for k, lag in enumerate(range(-max_lag, max_lag + 1)):
            target = np.full(n, np.nan)
            for phone in utt.phones:
                shift = lag * _HOP / SAMPLE_RATE
                inside = (centres >= phone.start + shift) & (centres < phone.end + shift)
                if phone.label in VOWELS:
                    target[inside] = 1.0
                elif phone.label in _QUIET:
                    target[inside] = 0.0
            known = ~np.isnan(target)
            scores[k] += np.corrcoef(energy[known], target[known])[0, 1]
    return (int(np.argmax(scores)) - max_lag) * _HOP / SAMPLE_RATE * 1000.0


def start_errors_ms(reference: Utterance, aligned: list[tuple[str, float, float]]) -> np.ndarray:
    """Signed errors (aligned - reference) of phone starts, phones matched by label."""
    ref = [(p.label, p.start) for p in reference.phones if p.label != "SIL"]
    hyp = [(label, start) for label, start, _ in aligned if label != "SIL"]
    matcher = difflib.SequenceMatcher(a=[r[0] for r in ref], b=[h[0] for h in hyp],
                                      autojunk=False)  # fmt: skip
    errors = [
        hyp[block.b + k][1] - ref[block.a + k][1]
        for block in matcher.get_matching_blocks()
        for k in range(block.size)
    ]
    return 1000.0 * np.array(errors)


def _speed(engine: TtsEngine, voices: list[str], texts: list[str]) -> tuple[float, list]:
    """x real time, one utterance per call, or per batch where the engine batches."""
    batch = getattr(engine, "synthesize_many", None)
    audio_s, wall_s, utterances = 0.0, 0.0, []
    for voice in voices:
        start = time.perf_counter()
        made = batch(texts, voice) if batch else [engine.synthesize(t, voice) for t in texts]
        wall_s += time.perf_counter() - start
        audio_s += sum(utt.seconds for utt in made)
        utterances += made
    return audio_s / wall_s, utterances


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    texts = sentences(args.seed, args.sentences)

    print("engine      voices  x real time (voices timed)")
    by_voice: dict[str, list[Utterance]] = {}
    for engine in ENGINES.values():
        voices = engine.voices()
        if not voices:
            print(f"{engine.name:11s} not installed")
            continue
        sample = voices if len(voices) <= 9 else ["espeak-ng/en-us", "espeak-ng/en-gb+f3",
                                                  "espeak-ng/en-us+klatt"]  # fmt: skip
        engine.synthesize(texts[0], sample[0])  # load libraries and caches first
        speed, utterances = _speed(engine, sample, texts)
        print(f"{engine.name:11s} {len(voices):6d}  {speed:7.1f}  ({len(sample)})")
        for utt in utterances:
            by_voice.setdefault(utt.voice, []).append(utt)

    print("\nvoice                            energy lag (ms)")
    for voice, utterances in by_voice.items():
        print(f"{voice:32s} {energy_lag_ms(utterances):+6.0f}")

    if not aligner.available():
        print("\npocketsphinx not installed: no aligner measurement")
        return
    print("\naligner vs exact timings: phone-start error (ms)")
    everything = []
    for voice in ALIGNER_REFERENCES:
        errors = [start_errors_ms(u, aligner.align(u.audio, u.text))
                  for u in by_voice.get(voice, [])]  # fmt: skip
        if not errors:
            continue
        e = np.concatenate(errors)
        everything.append(e)
        print(
            f"{voice:24s} mean|e| {np.abs(e).mean():5.1f}  median|e| {np.median(np.abs(e)):5.1f}"
            f"  bias {e.mean():+5.1f}  <=20ms {np.mean(np.abs(e) <= 20):4.0%}  n={e.size}"
        )
    e = np.concatenate(everything)
    print(
        f"{'all':24s} mean|e| {np.abs(e).mean():5.1f}  median|e| {np.median(np.abs(e)):5.1f}"
        f"  bias {e.mean():+5.1f}  <=20ms {np.mean(np.abs(e) <= 20):4.0%}  n={e.size}"
    )


if __name__ == "__main__":
    main()
