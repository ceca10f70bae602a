"""The project's measuring library: what the benchmarks, the tests and the evaluation read
off rendered and streamed faces.

One concern per module:

* ``facemesh``: MediaPipe FaceMesh over frames (mouth, mouth width, eyes, landmarks).
* ``xcorr``: how far the mouth follows the sound (cross-correlations, refined between steps).
* ``lipsync``: the lip-sync report of a rendered clip against its reference phones.
* ``clip``: rendering a clip offline and reading it back (WAV out, MP4 frames in).
* ``mouth``: the mouth instrument of the live bench (FaceMesh's plain mesh on kept frames,
  the open threshold) and rendered frames of known opening.
* ``program``: the speech a live client sends (bursts starting at loud open vowels).
* ``webrtc_client``: the aiortc client that sends a program and records what comes back.
* ``server``: ``emote serve`` on a free loopback port, for a measurement.
* ``soak``: the soak and churn bench (the server's RSS, threads, fds and shared memory over
  an hour of sessions and after many short ones; ``bench.soak``).
* ``mouth_reference``: the motion generator's own lip lead, rendered offline.
* ``bench_options``: the latency benchmark's options (``emote bench``, ``bench.latency``).
* ``render_sweep``: the renderer sweep's runner (head sweep, expressions, blink on a
  portrait, read back with FaceMesh: pose, mouth at jawOpen 0, blink depth, eye-region SSIM;
  the targets and verdicts); its docstring defines every measured quantity;
  ``bench.render_sweep`` runs it on every portrait.
* ``sweep_programs``: the renderer sweep's motion programs (head sweep, expressions, blink).
* ``sweep_frames``: the renderer sweep's readings of a frame (FaceMesh plain and refined,
  eye SSIM, folds, iris hidden, FaceMesh's mouth error under rotation).
* ``sweep_pose``: the renderer sweep's pose readings (rigid 3D fit, 2D fit, source-map pose).
* ``sweep_expressions``: the renderer sweep's expression and blink readings.
* ``sweep_sheet``: the renderer sweep's contact sheets.
* ``latency``: the live analysis (glass-to-glass latency, A/V offset, frame delivery);
  its docstring defines every measured quantity.

It imports ``contracts``, ``engines`` and ``stream_server`` (its jitter buffer and loopback
rules) only: the scripts in ``bench/``, ``training`` and the tests import it.
"""
