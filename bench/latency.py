"""End-to-end latency of the live server, measured from a WebRTC client on this machine.

Usage (``emote bench`` runs the same code):
    python -m bench.latency [--url URL] [--sessions N] [--duration S] [--audio WAV]
                            [--json OUT.json] [--plot OUT.png]

Without ``--url`` it starts its own server (``emote serve`` on a free loopback port, with
``--max-sessions N``) and stops it at the end. The script: arguments, the run, the JSON and
the plot. What each number means, and the code that measures it: measure/latency.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from measure.bench_options import add_arguments, check_arguments
from measure.latency import (
    SessionResult,
    analyse,
    format_summary,
    run_sessions,
    summarize,
)
from measure.program import cut_bursts, load_speech
from measure.server import BenchError, serve

__all__ = [
    "BenchError",
    "add_arguments",
    "build_parser",
    "check_arguments",
    "main",
    "plot",
    "run",
    "run_arguments",
]


# -- the plot --------------------------------------------------------------------------------


def plot(summary: dict, results: list[SessionResult], path: Path, duration_s: float) -> None:
    """Latency histogram on top, then one timeline per session (Pillow only)."""
    from PIL import Image, ImageDraw, ImageFont

    width, left, right = 1400, 70, 20
    hist_h, row_h = 260, 120
    image = Image.new("RGB", (width, hist_h + 40 + row_h * len(results) + 10), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    latencies = [
        o["latency_ms"] for r in results for o in r.report["onsets"] if o["latency_ms"] is not None
    ]
    top, bottom = 30, hist_h - 30
    span = max(400.0, max(latencies, default=0.0) + 40, (summary["latency_xcorr_ms"] or 0) + 40)
    x_of = lambda ms: left + (width - left - right) * ms / span  # noqa: E731
    draw.text(
        (left, 6),
        f"glass-to-glass latency (onset sent -> mouth seen open), "
        f"{len(latencies)} onsets, {len(results)} sessions",
        fill="black",
        font=font,
    )
    counts = np.histogram(latencies, bins=np.arange(0, span + 20, 20))[0] if latencies else []
    peak = max(1, max(counts, default=1))
    for i, c in enumerate(counts):
        x0, x1 = x_of(20 * i), x_of(20 * (i + 1))
        draw.rectangle([x0 + 1, bottom - (bottom - top) * c / peak, x1 - 1, bottom], fill="#4a78c2")
    draw.line([left, bottom, width - right, bottom], fill="black")
    for ms in range(0, int(span) + 1, 50):
        draw.line([x_of(ms), bottom, x_of(ms), bottom + 4], fill="black")
        draw.text((x_of(ms) - 8, bottom + 6), str(ms), fill="black", font=font)
    draw.text((width - right - 20, bottom + 6), "ms", fill="black", font=font)
    draw.text((8, top), f"max {peak}", fill="black", font=font)
    marks = [(f"p{p}", summary["latency_ms"][f"p{p}"], c) for p, c in ((50, "red"), (95, "orange"))]
    marks.append(("cross-corr.", summary["latency_xcorr_ms"], "green"))
    for i, (name, ms, colour) in enumerate(marks):
        if ms is not None:
            draw.line([x_of(ms), top, x_of(ms), bottom], fill=colour, width=2)
            draw.text((x_of(ms) + 3, top + 12 * i), f"{name} {ms:.0f}", fill=colour, font=font)

    y = hist_h + 10
    draw.text(
        (left, y),
        "timeline per session (s from answer): grey ticks frames received (red: pts gap), "
        "dots mouth opening, blue onset sent, red mouth open, green audio back",
        fill="black",
        font=font,
    )
    t_span = duration_s + 1.0
    tx = lambda t: left + (width - left - right) * t / t_span  # noqa: E731
    for r in results:
        y0 = y + 20
        y1 = y0 + row_h - 30
        line = r.timeline
        origin = line["origin"]
        draw.text((6, y0), f"session {r.index}", fill="black", font=font)
        draw.rectangle([left, y0, width - right, y1], outline="#bbbbbb")
        for t in line["frames"]:
            draw.line([tx(t - origin), y1 - 8, tx(t - origin), y1], fill="#999999")
        for t in line["gaps"]:
            draw.line([tx(t - origin), y1 - 16, tx(t - origin), y1], fill="#d62728", width=2)
        for t, m in line["mouth"]:
            yy = y1 - 12 - (y1 - y0 - 20) * float(np.clip(m, -0.1, 1.2)) / 1.2
            draw.ellipse(
                [tx(t - origin) - 1.5, yy - 1.5, tx(t - origin) + 1.5, yy + 1.5], fill="#333333"
            )
        for sent, opened, heard in line["onsets"]:
            draw.line([tx(sent - origin), y0, tx(sent - origin), y1], fill="#1f77b4", width=2)
            if opened is not None:
                draw.line([tx(opened - origin), y0, tx(opened - origin), y1], fill="#d62728")
            if heard is not None:
                x = tx(heard - origin)
                draw.line([x, y0, x, y0 + 14], fill="#2ca02c", width=2)
        for s in range(int(t_span) + 1):
            draw.text((tx(s) - 3, y1 + 2), str(s), fill="black", font=font)
        y += row_h
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


# -- running -------------------------------------------------------------------------------


def run_arguments(args: argparse.Namespace) -> dict:
    """:func:`run` with the parsed arguments of ``emote bench`` (or this module's own)."""
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    return run(
        args.url,
        args.sessions,
        args.duration,
        args.audio,
        args.json,
        args.plot,
        cache_dir,
        args.margin_ms,
    )


def run(
    url: str | None,
    sessions: int,
    duration_s: float,
    audio: Path,
    json_path: Path | None = None,
    plot_path: Path | None = None,
    cache_dir: Path | None = None,
    margin_ms: float | None = None,
) -> dict:
    """The bench: ``sessions`` clients for ``duration_s`` against ``url`` (None: a server of
    its own, with ``cache_dir`` and ``margin_ms``), sending bursts cut from ``audio``; writes
    the summary to ``json_path`` and the plot to ``plot_path`` when given, prints it and
    returns it."""
    bursts = cut_bursts(load_speech(audio))
    if not bursts:
        raise ValueError(f"no speech onsets found in {audio}")
    with contextlib.ExitStack() as stack:
        if url is None:
            print(f"starting a server for {sessions} session(s) ...", file=sys.stderr)
            url = stack.enter_context(serve(sessions, cache_dir, margin_ms=margin_ms))
        print(f"{sessions} session(s) x {duration_s:.0f} s against {url}", file=sys.stderr)
        clients = asyncio.run(run_sessions(url, sessions, duration_s, bursts))
    print("measuring mouth openings with FaceMesh (and the offline reference) ...", file=sys.stderr)
    results = [analyse(i, c, stats) for i, (c, stats) in enumerate(clients)]
    summary = {
        "url": url,
        "duration_s": duration_s,
        "audio": str(audio),
        "server_margin_ms": margin_ms,  # None: the server's default (or --url's server)
        **summarize(results),
    }
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(summary, indent=2))
    if plot_path:
        plot(summary, results, plot_path, duration_s)
    print(format_summary(summary))
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--cache-dir", type=Path, help="the spawned server's avatar cache")
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if problem := check_arguments(args):
        parser.error(problem)
    run_arguments(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
