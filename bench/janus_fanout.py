"""Viewers per avatar through Janus: one avatar session published into a real Janus
VideoRoom, watched by N subscribers, on this machine.

    python -m bench.janus_fanout [--viewers 1,5,10,20] [--speech-s 8] [--decoded 5]
                                 [--json OUT.json]

Needs root and Debian's ``janus`` (``./run.sh test`` installs it). It makes a private
network namespace (measure.janus_lab: Janus never puts media on loopback), runs itself again
inside it, and for each N starts Janus and ``emote serve --publish-to`` it, one direct
session that sends real speech, and N ``JanusViewer``s (measure.janus_fanout says what is
read from each). All viewers run in this one process. The first ``--decoded`` decode what
they receive and are read with FaceMesh (frame rate, A/V offset against the session's own
peer); the others only count frames and packets as they arrive, without decoding, since on
this small machine N decoders in one Python process would compete with the server and
Janus for the two cores and measure themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

INSIDE = "--inside-netns"


def summary(result: dict[str, Any]) -> dict[str, Any]:
    viewers = result["viewers"]

    def worst(key: str) -> float | None:
        values = [abs(v[key]) for v in viewers if v.get(key) is not None]
        return max(values) if values else None

    def low(key: str) -> float | None:
        values = [v[key] for v in viewers]
        return min(values) if values else None

    delays = sorted(
        v["video_delay_vs_direct_ms"]
        for v in viewers
        if v.get("video_delay_vs_direct_ms") is not None
    )
    return {
        "viewers": result["viewers_asked"],
        "decoded": sum(v["decoded"] for v in viewers),
        "receiving": sum(v["frames"] > 0 for v in viewers),
        "fps_min": low("fps"),
        "frames_vs_direct_min": low("frames_vs_direct"),
        "audio_vs_direct_min": low("audio_vs_direct"),
        "fps_direct": result["direct"]["fps"],
        "av_offset_vs_direct_ms_worst": worst("av_offset_vs_direct_ms"),
        "av_shift_ms_worst": worst("av_shift_ms"),
        "video_delay_vs_direct_ms_median": delays[len(delays) // 2] if delays else None,
        "mouth_vs_sound_ms_direct": result["direct"]["mouth_vs_sound_ms"],
        "janus_cores": result["cpu_cores"]["janus"],
        "server_cores": result["cpu_cores"]["server"],
        "server_frames_dropped": (result.get("server_session") or {}).get("frames_dropped"),
        "viewers_joined_s": result["viewers_joined_s"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", default="1,5,10,20", help="viewer counts, comma-separated")
    parser.add_argument("--speech-s", type=float, default=8.0)
    parser.add_argument(
        "--decoded",
        type=int,
        default=5,
        help="viewers that decode and are read with FaceMesh; the rest only count arrivals",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument(INSIDE, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        counts = [int(n) for n in args.viewers.split(",")]
    except ValueError:
        parser.error("--viewers takes whole numbers, comma-separated")
    if any(n < 1 or n > 64 for n in counts):
        parser.error("--viewers: between 1 and 64 each")
    from measure.janus_lab import in_netns, netns, unavailable

    if not getattr(args, INSIDE[2:].replace("-", "_")):
        reason = unavailable()
        if reason is not None:
            print(f"bench.janus_fanout: {reason}", file=sys.stderr)
            return 2
        with netns() as name:
            command = [sys.executable, "-m", "bench.janus_fanout", *(argv or sys.argv[1:]), INSIDE]
            return subprocess.call(in_netns(name, command))
    from measure.janus_fanout import run

    results = []
    for n in counts:
        result = run(n, args.speech_s, args.decoded)
        results.append({"summary": summary(result), "run": result})
        print(json.dumps(results[-1]["summary"]), flush=True)
    if args.json is not None:
        report = {
            "command": f"python -m bench.janus_fanout --viewers {args.viewers} "
            f"--speech-s {args.speech_s:g} --decoded {args.decoded}",
            "cpus": os.cpu_count(),
            "results": results,
        }
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
