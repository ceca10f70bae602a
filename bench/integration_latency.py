"""The integrations' latencies, read from their pixels: speech start, barge-in, pacing.

    python -m bench.integration_latency [--integration livekit|pipecat|all] [--runs 3] \
        [--json OUT.json]

Runs an integration's scenario in .venv-integrations ``--runs`` times and reads the frames
that left with FaceMesh:

* ``livekit``: tests/integrations/livekit_scenario.py. livekit-agents' sending side talks to
  our worker through the in-process room double (docs/integrations/livekit.md). The frames
  are read where they leave through livekit's ``VideoSource``, and the barge-in is
  ``lk.clear_buffer``.
* ``pipecat``: tests/integrations/pipecat_scenario.py. A Pipecat pipeline feeds
  ``EmoteVideoService`` into Pipecat's output transport over a real-time recording device
  (docs/integrations/pipecat.md). The frames are read where the transport writes them, and
  the barge-in is an ``InterruptionFrame``.

Both play the same program: 1 s idle, 2 s of speech, 1 s idle, then 4 s of speech
interrupted 0.75 s into its playback. Per run it reports:

* ``first_audio_ms``: segment sent -> its first audio handed to the transport (livekit's
  ``AudioSource``; Pipecat's device write);
* ``first_open_ms``: segment sent -> the first frame whose mouth is open (FaceMesh inner-lip
  gap / face height > 0.02). Segment 1's first wide vowel (AA of "john", the reference
  alignment) is 0.27 s into it, so first_open - first_audio - 270 ms is how far the open
  mouth trails the sound handed to livekit (which then sits up to 100 ms in the
  ``AudioSource`` queue before it plays);
* ``clear_rpc_ms`` (livekit): ``lk.clear_buffer`` called -> answered;
* ``mouth_shut_ms``: barge-in -> the last frame with the mouth not shut
  (gap > 0.006) after it, 0 when it was shut already;
* ``fps``, ``max_gap_ms``: the video's pacing as it left.

And, in this process, the push core's cost (``engines.avatar_frames``, dsp motion, the CPU
renderer): ms of one core per frame of speech (pushed in 100 ms pieces) and per idle frame.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from contracts.paths import DEFAULT_PORTRAIT, DEFAULT_SPEECH, REPO

SCENARIOS = {
    "livekit": REPO / "tests" / "integrations" / "livekit_scenario.py",
    "pipecat": REPO / "tests" / "integrations" / "pipecat_scenario.py",
}
OPEN, SHUT = 0.02, 0.006


def run_once(python: Path, scenario: Path, cache: Path, out: Path) -> dict[str, float]:
    from measure.facemesh import FaceTracker

    subprocess.run(
        [
            str(python), str(scenario), "--out", str(out), "--cache", str(cache),
            "--portrait", str(DEFAULT_PORTRAIT), "--speech", str(DEFAULT_SPEECH),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    events = json.loads((out / "events.json").read_text())
    data = np.load(out / "frames.npz")
    times = data["times"]
    mouth = FaceTracker().track(list(data["frames"])).mouth
    sent = events["seg1"]["sent_at"]
    clear = events["seg2"]["clear_at"]
    first_audio = events["seg1"].get("first_sound") or events["audio"][0][0]
    after = (times > clear) & (mouth > SHUT)
    opened = times[(times > sent) & (mouth > OPEN)]
    gaps = np.diff(times)
    report = {
        "first_audio_ms": float((first_audio - sent) * 1000),
        "first_open_ms": float((opened[0] - sent) * 1000) if len(opened) else float("nan"),
        "mouth_shut_ms": float((times[after].max() - clear) * 1000) if after.any() else 0.0,
        "fps": float(len(times) / (times[-1] - times[0])),
        "max_gap_ms": float(gaps.max() * 1000),
    }
    for rpc in events.get("rpcs", []):
        if rpc["method"] == "lk.clear_buffer":
            report["clear_rpc_ms"] = float((rpc["answered_at"] - rpc["at"]) * 1000)
    return report


def core_speed(cache: Path, seconds: float = 4.0) -> dict[str, float]:
    import time

    from engines.avatar import prepare_avatar
    from engines.avatar_frames import AvatarFrames
    from engines.dsp_motion import DspMotionGenerator
    from engines.frame_renderer import FrameRenderer
    from engines.renderer_models import create_renderer
    from engines.rig import rig_for_avatar

    avatar = prepare_avatar(DEFAULT_PORTRAIT, cache_dir=cache)
    rig = rig_for_avatar(avatar.avatar_id, avatar.image, avatar.landmarks, cache)
    core = AvatarFrames(FrameRenderer(create_renderer(), rig).render, DspMotionGenerator())
    pcm = (np.random.default_rng(0).normal(0, 3000, int(24_000 * seconds))).astype(np.int16)
    core.idle()  # warm
    t0, n = time.perf_counter(), 0
    for start in range(0, len(pcm), 2400):
        n += len(core.push_audio(pcm[start : start + 2400]))
    speech = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(50):
        core.idle()
    idle = (time.perf_counter() - t0) / 50
    return {"speech_ms_per_frame": speech * 1000, "idle_ms_per_frame": idle * 1000}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--integration", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--python",
        type=Path,
        default=Path(
            os.environ.get("EMOTE_INTEGRATIONS_PYTHON", REPO / ".venv-integrations/bin/python")
        ),
    )
    args = parser.parse_args(argv)
    if not args.python.exists():
        print(f"{args.python} missing: ./run.sh setup-integrations", file=sys.stderr)
        return 2
    from engines.avatar import prepare_avatar

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        prepare_avatar(DEFAULT_PORTRAIT, cache_dir=cache)
        names = list(SCENARIOS) if args.integration == "all" else [args.integration]
        runs = {
            name: [
                run_once(args.python, SCENARIOS[name], cache, Path(tmp) / f"{name}{i}")
                for i in range(args.runs)
            ]
            for name in names
        }
        core = core_speed(cache)
    for name, name_runs in runs.items():
        for i, run in enumerate(name_runs):
            print(f"{name} run {i}: " + ", ".join(f"{k} {v:.1f}" for k, v in run.items()))
    print("core: " + ", ".join(f"{k} {v:.1f}" for k, v in core.items()))
    report = {
        "runs": runs,
        "core": core,
        "command": f"python -m bench.integration_latency --integration {args.integration} "
        f"--runs {args.runs}",
        "cpus": os.cpu_count(),
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
