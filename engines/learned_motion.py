"""The learned motion generator: a distilled flow model samples each hop in 1-4 steps.

Per hop (contracts/motion_spec.py): log-mel of the audio window, the encoder graph (audio +
history -> conditioning; noise -> the prior), then the sampler loop (engines/sampler.py)
over the denoiser graph, then clipping to the motion-frame limits. The student runs
``steps`` flow-map jumps (default 2); the teacher runs Heun over ``steps`` uniform steps
(default 24, 47 network calls) and is the quality reference. Backends: onnxruntime (CPU by
default, one intra-op thread; ``device`` cuda/tensorrt for its GPU providers), native
TensorRT, or any pair of engines passed as ``graphs`` (the torch reference over a training
checkpoint: export.torch_engines.motion_engines; needs torch).

Hops: the model generates ``HOP_FRAMES`` (2) frames at a time. A call for fewer frames
(a live stream usually asks for one: its audio arrives in 20 ms pieces) reads the missing
end of the window as zeros, which the model was trained on, and returns the first frames;
a call for more runs several hops, each conditioned on the frames before it.

Noise: each frame has its own noise vector, a pure function of (seed, frame index), and a
hop's noise is its frames' vectors. Hops that overlap (a live stream asks for frame k, then
k + 1, each time sampling the hop k, k + 1) therefore agree on the noise of the frames they
share, so the sample drawn for a frame does not jump between hops. ``temperature`` scales
the noise of the mouth's fields (< 1: closer to the most likely motion, less variety: the
mouth follows the audio), ``head_temperature`` that of the head pose, ``face_temperature``
that of the rest (brows, eyes, gaze: motion the audio only loosely decides, which a cold
sample flattens: at 0.5 the model blinked 0-2 times in 7-13 s). The head is at 0.8: the
model trained with long pauses (docs/benchmarks.md, "A mouth that stays shut in pauses")
samples a narrower head than the one before it, whose head at 0.8 sometimes drifted to a
held turn on songs and so ran at 0.5; at 0.8 this one moves about as far as that one did at
0.5 (yaw std 0.024-0.034 rad against 0.029-0.062 on two speech clips, a song and a rap,
seeds 0-2; largest turn 0.14 rad against 0.40). Its turn and tilt (yaw, roll) have their
own ``turn_temperature``, 1.3: at 0.8 the student turned and tilted half as much as the
corpus it learned from, while it nodded as much (docs/benchmarks.md, "The student's head,
turn and tilt").

The jaw it remembers: the history the model reads has its jawOpen compressed above
``HISTORY_JAW_KNEE`` (by ``HISTORY_JAW_SLOPE``); what it outputs is not touched. Trained with
the corpus's own history, in which a sung note's jaw equals the jaw before it, the student
learned to hold whatever its history holds, so on a long, quiet held note its own output fed
back as history ratcheted the jaw open to 1.0 (docs/benchmarks.md, "Teacher vs student").
Openings of speech stay below the knee and are read as they were.

Determinism: nothing carries state between calls except a barge-in, so the output depends
only on the seed, the audio, the history and how the calls split the frames into hops.

``reset()`` (barge-in): the audio already received belongs to the interrupted speech and is
heard as silence; the history frames from before the barge-in are faded toward the neutral
pose over ``RESET_EASE_FRAMES`` frames, so the face eases back to idle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contracts import audio_features, motion_frame
from contracts import motion_spec as spec
from contracts.clock import SAMPLES_PER_FRAME
from contracts.paths import MODELS_DIR
from contracts.style import NEUTRAL, Style
from engines.engine import Engine, EngineError
from engines.onnxruntime_engine import OnnxRuntimeEngine
from engines.sampler import SAMPLERS, schedule_uniform

DEFAULT_STEPS = {"student": 2, "teacher": 24}
DEFAULT_SAMPLER = {"student": "flow_map", "teacher": "heun"}
STUDENT_MAX_STEPS = 4  # what distillation trained (training/distill.py)
DEFAULT_TEMPERATURE = 0.5  # the mouth: swept 0.5/0.8/1.0 on rendered frames (benchmarks.md)
DEFAULT_HEAD_TEMPERATURE = 0.8  # head pose: swept 0.5/0.8/1.0 (benchmarks.md)
DEFAULT_FACE_TEMPERATURE = 0.8  # brows, eyes, gaze: swept 0.5/0.8/1.0 (benchmarks.md)
DEFAULT_TURN_TEMPERATURE = 1.3  # headYaw, headRoll: swept 1.2/1.3/1.6/2.0 (benchmarks.md)
_TURN = motion_frame.indices(("headYaw", "headRoll"))
RESET_EASE_FRAMES = 5  # 200 ms
# The remembered jaw: jawOpen above the knee reads as knee + slope * (jaw - knee) in the
# history (module docstring; chosen on a fresh synthetic corpus, docs/benchmarks.md).
HISTORY_JAW_KNEE = 0.5
HISTORY_JAW_SLOPE = 0.5
_JAW = motion_frame.INDEX["jawOpen"]
TRAIN_HINT = (
    "run `emote train motion` (or: python -m training.export_motion --pipeline --corpus DIR)"
)


class LearnedMotionGenerator:
    """MotionGenerator over the exported teacher or student graphs."""

    past_samples: int = spec.PAST_SAMPLES
    lookahead_samples: int = spec.LOOKAHEAD_SAMPLES
    history_frames: int = spec.HISTORY_FRAMES

    def __init__(
        self,
        which: str = "student",
        steps: int | None = None,
        seed: int = 0,
        models_dir: Path | None = None,
        sampler: str | None = None,
        backend: str = "onnxruntime",
        device: str = "cpu",
        threads: int = 1,
        temperature: float = DEFAULT_TEMPERATURE,
        graphs: tuple[Engine, Engine] | None = None,
        face_temperature: float = DEFAULT_FACE_TEMPERATURE,
        head_temperature: float = DEFAULT_HEAD_TEMPERATURE,
        turn_temperature: float = DEFAULT_TURN_TEMPERATURE,
        history_jaw_knee: float | None = HISTORY_JAW_KNEE,
    ) -> None:
        if which not in spec.WHICH:
            raise ValueError(f"unknown motion model {which!r}; choose from {spec.WHICH}")
        self.which = which
        self.steps = int(steps if steps is not None else DEFAULT_STEPS[which])
        if self.steps < 1 or (which == "student" and self.steps > STUDENT_MAX_STEPS):
            limit = f"1..{STUDENT_MAX_STEPS}" if which == "student" else ">= 1"
            raise ValueError(f"{which} steps must be {limit}, got {self.steps}")
        if history_jaw_knee is not None and not 0.0 <= history_jaw_knee <= 1.0:
            raise ValueError(f"history_jaw_knee must be in 0..1 or None, got {history_jaw_knee}")
        self.history_jaw_knee = history_jaw_knee  # None: the history as generated
        self.sampler_name = sampler or DEFAULT_SAMPLER[which]
        if self.sampler_name not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler_name!r}; choose from {list(SAMPLERS)}")
        self.sampler = SAMPLERS[self.sampler_name]
        self.schedule = schedule_uniform(self.steps)
        self.seed = int(seed)
        self.temperature = float(temperature)
        self.face_temperature = float(face_temperature)
        self._temperatures = np.full(spec.DIM, self.face_temperature, np.float32)
        self._temperatures[motion_frame.MOUTH_INDICES] = self.temperature
        self._temperatures[motion_frame.HEAD_SLICE] = float(head_temperature)
        self._temperatures[_TURN] = float(turn_temperature)
        if graphs is not None:  # e.g. the torch reference (export.torch_engines.motion_engines)
            self.encoder, self.denoiser = graphs
        elif backend in ("onnxruntime", "tensorrt"):
            self.encoder, self.denoiser = graph_engines(
                models_dir or MODELS_DIR, which, backend, device, threads
            )
        else:
            raise EngineError(f"unknown backend {backend!r} for the motion model")
        self._reset_pending = False
        self._reset_frame: int | None = None
        self.cache_features = True  # reuse log-mel rows across hops (off: the reference)
        self._mel_cache: tuple[int, np.ndarray, np.ndarray] | None = None
        self._noise_cache: dict[int, np.ndarray] = {}
        self._mute_before = 0
        self.style = NEUTRAL
        self._style_vector = NEUTRAL.vector()

    def set_style(self, style: Style) -> None:
        """Speak in ``style`` from the next hop on: the model's style input (the face moves
        to it over the next few hops, carried by the history)."""
        self.style = style
        self._style_vector = style.vector()

    def reset(self) -> None:
        self._reset_pending = True

    def generate(
        self, audio: np.ndarray, history: np.ndarray, first_frame: int, n_frames: int
    ) -> np.ndarray:
        expected = self.past_samples + n_frames * SAMPLES_PER_FRAME + self.lookahead_samples
        audio = np.asarray(audio, np.float32)
        if audio.shape != (expected,):
            raise ValueError(
                f"expected {expected} samples for {n_frames} frames, got {audio.shape}"
            )
        if history.shape != (self.history_frames, motion_frame.DIM):
            raise ValueError(f"expected history ({self.history_frames}, DIM), got {history.shape}")
        if self._reset_pending:
            # Everything received so far ends before this hop's first window does.
            self._reset_frame = first_frame
            self._mute_before = SAMPLES_PER_FRAME * (first_frame + 1) + self.lookahead_samples
            self._reset_pending = False
        audio = self._muted(audio, first_frame)
        frames = np.asarray(history, np.float32)
        out = []
        for offset in range(0, n_frames, spec.HOP_FRAMES):
            count = min(spec.HOP_FRAMES, n_frames - offset)
            start = offset * SAMPLES_PER_FRAME
            window = np.zeros(spec.WINDOW_SAMPLES, np.float32)
            piece = audio[start : start + spec.WINDOW_SAMPLES]
            window[: len(piece)] = piece
            k = first_frame + offset
            remembered = self._remembered(self._eased(frames[-self.history_frames :], k))
            hop = self.sample_hop(window, remembered, k)
            out.append(hop[:count])
            frames = np.concatenate([frames, hop[:count]])
        return np.concatenate(out)

    def sample_hop(self, window: np.ndarray, history: np.ndarray, frame: int) -> np.ndarray:
        """(HOP_FRAMES, DIM) frames for the hop starting at ``frame`` from its full window."""
        noise = (
            self._temperatures
            * np.stack([self._frame_noise(f) for f in range(frame, frame + spec.HOP_FRAMES)])
        )[None].astype(np.float32)
        mel = self._features(window, frame)
        encoded = self.encoder.run(
            {
                "mel": mel[None],
                "history": history[None],
                "noise": noise,
                "style": self._style_vector[None],
            }
        )
        cond = encoded["cond"]

        def velocity(x: np.ndarray, t: float, s: float) -> np.ndarray:
            times = {"t": np.full((1, 1), t, np.float32), "s": np.full((1, 1), s, np.float32)}
            return self.denoiser.run({"cond": cond, "x": x, **times})["velocity"]

        x = self.sampler(velocity, encoded["x_init"], self.schedule)
        # Now and then a sampled head turns on and on (an autoregressive drift); kept inside
        # the range the renderer draws, it comes back (docs/benchmarks.md, "Motion v2").
        return motion_frame.keep_head_in_range(motion_frame.clip(np.asarray(x[0], np.float32)))

    def _frame_noise(self, frame: int) -> np.ndarray:
        """The noise vector of one frame (cached: consecutive hops share frames)."""
        noise = self._noise_cache.get(frame)
        if noise is None:
            noise = np.random.default_rng([self.seed, frame]).standard_normal(spec.DIM)
            if len(self._noise_cache) >= 8:
                self._noise_cache.pop(next(iter(self._noise_cache)))
            self._noise_cache[frame] = noise
        return noise

    def _features(self, window: np.ndarray, frame: int) -> np.ndarray:
        """Log-mel rows of the hop's window, reusing the previous hop's rows whose samples
        are unchanged (a live hop moves the window by 4 of its 53 rows). Rows that covered
        the zero-padded end of a partial window, or muted audio, differ and are recomputed."""
        start = frame * SAMPLES_PER_FRAME - self.past_samples
        reuse, mel_old, shift_rows = 0, None, 0
        if self._mel_cache is not None and self.cache_features:
            old_start, old_window, mel_old = self._mel_cache
            shift = start - old_start
            if 0 <= shift < len(window) and shift % audio_features.HOP == 0:
                overlap = len(window) - shift
                changed = np.flatnonzero(old_window[shift:] != window[:overlap])
                same = int(changed[0]) if len(changed) else overlap
                if same >= audio_features.WIN:
                    shift_rows = shift // audio_features.HOP
                    reuse = (same - audio_features.WIN) // audio_features.HOP + 1
                    reuse = min(reuse, len(mel_old) - shift_rows)
        if reuse > 0 and mel_old is not None:
            fresh = audio_features.log_mel(window[reuse * audio_features.HOP :])
            mel = np.concatenate([mel_old[shift_rows : shift_rows + reuse], fresh])
        else:
            mel = audio_features.log_mel(window)
        self._mel_cache = (start, window.copy(), mel)
        return mel

    def _muted(self, audio: np.ndarray, first_frame: int) -> np.ndarray:
        start = SAMPLES_PER_FRAME * first_frame - self.past_samples
        muted = self._mute_before - start
        if muted <= 0:
            return audio
        audio = audio.copy()
        audio[:muted] = 0.0
        return audio

    def _remembered(self, history: np.ndarray) -> np.ndarray:
        """The history as the model reads it: jawOpen compressed above the knee."""
        knee = self.history_jaw_knee
        if knee is None or not (history[:, _JAW] > knee).any():
            return history
        remembered = history.copy()
        jaw = history[:, _JAW]
        remembered[:, _JAW] = np.where(jaw > knee, knee + HISTORY_JAW_SLOPE * (jaw - knee), jaw)
        return remembered

    def _eased(self, history: np.ndarray, frame: int) -> np.ndarray:
        """History frames from before a barge-in, faded toward neutral as time passes."""
        if self._reset_frame is None:
            return history
        indices = frame - len(history) + np.arange(len(history))
        before = indices < self._reset_frame
        if not before.any():
            return history
        keep = max(0.0, 1.0 - (frame - self._reset_frame + 1) / RESET_EASE_FRAMES)
        eased = history.copy()
        eased[before] = motion_frame.neutral() + keep * (history[before] - motion_frame.neutral())
        return eased


def graph_engines(
    models_dir: Path, which: str, backend: str, device: str, threads: int
) -> tuple[Engine, Engine]:
    """The encoder and denoiser graphs on onnxruntime (``device``: cpu, cuda, tensorrt) or
    native TensorRT."""
    paths = [models_dir / name for name in spec.graph_files(which)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise EngineError(f"motion model files missing: {', '.join(missing)}; {TRAIN_HINT}")
    names = [f"motion_{which}_{part}" for part in ("encoder", "denoiser")]
    encoder: Engine
    denoiser: Engine
    if backend == "tensorrt":
        from engines.tensorrt_engine import TensorRTEngine

        encoder, denoiser = (TensorRTEngine(n, p) for n, p in zip(names, paths, strict=True))
    else:
        encoder, denoiser = (
            OnnxRuntimeEngine(n, p, device, threads) for n, p in zip(names, paths, strict=True)
        )
    return encoder, denoiser
