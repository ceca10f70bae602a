"""The learned motion model's contract, torch-free: window geometry and graph I/O names.

The runtime (engines/learned_motion.py) and training (training/dataset.py) both read the
audio window and the history from here; export/motion_model.py builds the networks for it.

Per hop of ``HOP_FRAMES`` frames starting at frame k the model reads:

* audio samples [640 k - PAST_SAMPLES, 640 (k + HOP_FRAMES) + LOOKAHEAD_SAMPLES) as
  ``MEL_FRAMES`` log-mel frames (contracts/audio_features.py);
* the last ``HISTORY_FRAMES`` motion frames (k - HISTORY_FRAMES .. k - 1) of the rolling
  buffer, with engines.motion_buffer.MotionBuffer.last's padding at the session start.

Each model (teacher, student) is two ONNX graphs, batch dimension first (dynamic), all other
dimensions static, everything in motion units (contracts/motion_frame.py):

* encoder ``motion_<which>_encoder.onnx``: ``mel`` (B, MEL_FRAMES, N_MELS), ``history``
  (B, HISTORY_FRAMES, DIM), ``noise`` (B, HOP_FRAMES, DIM) standard normal, ``style``
  (B, STYLE_DIM) the speaking style (contracts/style.py: ``Style.vector``) ->
  ``cond`` (B, width) and ``x_init`` (B, HOP_FRAMES, DIM): the noise mapped onto the prior
  (the dataset's per-field mean and spread, which the graph carries);
* denoiser ``motion_<which>_denoiser.onnx``: ``cond``, ``x`` (B, HOP_FRAMES, DIM) at flow time
  ``t`` (B, 1), target time ``s`` (B, 1) -> ``velocity`` (B, HOP_FRAMES, DIM): the step is
  x + (s - t) * velocity. The teacher returns its instantaneous velocity at t (its graph
  has no ``s`` input; engines feed a graph only its own inputs, so callers pass ``s``
  anyway); the student returns the mean velocity of the teacher's path from t to s, so one
  step lands where the teacher's many would.

Time runs from t = 1 (noise) to t = 0 (motion); engines/sampler.py holds the loops.
"""

from __future__ import annotations

from contracts import audio_features, motion_frame, style

SAMPLES_PER_FRAME = 640
HOP_FRAMES = 2
HISTORY_FRAMES = 6  # 240 ms of motion: enough to carry velocity and a blink in progress
PAST_SAMPLES = 6480  # 405 ms of audio context (a syllable and a half)
LOOKAHEAD_SAMPLES = 960  # 60 ms: lips move before the sound
WINDOW_SAMPLES = PAST_SAMPLES + HOP_FRAMES * SAMPLES_PER_FRAME + LOOKAHEAD_SAMPLES
MEL_FRAMES = audio_features.num_frames(WINDOW_SAMPLES)
N_MELS = audio_features.N_MELS
DIM = motion_frame.DIM
STYLE_DIM = style.STYLE_DIM
# The window's last analysis frame ends exactly at its end (no samples left unread), and
# windows of consecutive hops start on the same 10 ms grid.
assert (WINDOW_SAMPLES - audio_features.WIN) % audio_features.HOP == 0
assert SAMPLES_PER_FRAME % audio_features.HOP == 0

ENCODER_INPUTS = ("mel", "history", "noise", "style")
ENCODER_OUTPUTS = ("cond", "x_init")
DENOISER_INPUTS = ("cond", "x", "t", "s")
DENOISER_OUTPUTS = ("velocity",)
WHICH = ("student", "teacher")


def graph_files(which: str) -> tuple[str, str]:
    """File names (encoder, denoiser) of one model in the models directory."""
    if which not in WHICH:
        raise ValueError(f"unknown motion model {which!r}; choose from {WHICH}")
    return f"motion_{which}_encoder.onnx", f"motion_{which}_denoiser.onnx"
