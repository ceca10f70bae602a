"""`emote bench`'s measurements (measure.latency): the cross-correlation, the offline reference
that separates the generator's own lip timing from the streams' A/V offset
(measure.mouth_reference), and a whole run of the script (python -m bench.latency) against
its own server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contracts.paths import REPO
from measure.latency import av_offset
from measure.mouth_reference import Generator, kept_frames
from measure.program import CHUNK, RATE, burst_program
from measure.xcorr import xcorr_lag


def test_the_cross_correlation_finds_a_delay_between_its_steps() -> None:
    rng = np.random.default_rng(0)
    level_t = np.arange(1000) * 0.02 + 0.01  # 20 ms packets, level at the middle
    level = np.convolve(rng.random(1000), np.ones(8) / 8, mode="same")
    frame_t = np.arange(480) * 0.04 + 0.02  # 25 fps
    for delay in (0.0, 0.037, 0.1124):
        mouth = np.interp(frame_t - delay, level_t, level)
        lag, corr = xcorr_lag([(frame_t, mouth, level_t, level)])
        assert lag == pytest.approx(delay * 1000, abs=1.5) and corr > 0.95


def test_bursts_start_anywhere_in_a_packet_and_their_onsets_say_where() -> None:
    rng = np.random.default_rng(1)
    bursts = [rng.uniform(0.1, 0.5, RATE).astype(np.float32) for _ in range(3)]  # 1 s each
    program = burst_program(bursts, 60.0, seed=4)
    offsets = program.onset_offsets
    assert len(offsets) == len(program.onset_frames) >= 15
    assert all(0 <= o < CHUNK for o in offsets)
    # spread over the packet (the server's frames meet them at every phase), not one place
    assert len({o * 4 // CHUNK for o in offsets}) == 4
    for i in range(len(offsets)):
        start = round(program.onset_s(i) * RATE)
        assert not program.samples[start - 1] and program.samples[start]  # silence, then it
        assert start == program.onset_frames[i] * CHUNK + offsets[i]
    assert burst_program(bursts, 60.0, seed=4).onset_offsets == offsets  # seeded


def test_the_av_offset_is_the_mouth_vs_sound_less_the_generators_own_lead() -> None:
    # lags are "the mouth follows the sound by": -20 ms live, -18 ms offline
    got = av_offset(-20.0, 0.5, -18.0, 0.6)
    assert got["av_offset_ms"] == 2.0 and got["mouth_vs_sound_ms"] == 20.0
    assert got["generator_lead_ms"] == 18.0 and got["generator_lead_corr"] == 0.6
    assert av_offset(-20.0, 0.5, None, None)["av_offset_ms"] is None  # no reference: unknown


def test_the_reference_needs_the_servers_generator() -> None:
    assert Generator.from_stats(None) is None
    assert Generator.from_stats({"session_id": "x"}) is None  # a server that does not say
    stats = {"motion": "learned", "motion_seed": 3, "motion_steps": 2}
    assert Generator.from_stats(stats) == Generator("learned", 3, 2)


def test_the_reference_keeps_the_frames_the_live_bench_measures() -> None:
    # every 5th, and the second after an onset at 2.0 s arrived back 0.12 s later
    kept = kept_frames(100, [2.0], 0.12)
    window = [k for k in range(100) if 1.88 < (k + 0.5) / 25 <= 2.88]
    assert kept == sorted(set(range(0, 100, 5)) | set(window))


@pytest.mark.slow
def test_a_bench_run_reports_every_number_with_the_streams_in_sync(tmp_path: Path) -> None:
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    command = [sys.executable, "-m", "bench.latency", "--duration", "16"]
    command += ["--json", str(out), "--plot", str(png), "--cache-dir", str(tmp_path / "cache")]
    subprocess.run(command, cwd=REPO, check=True)
    summary = json.loads(out.read_text())
    for key in ("first_frame_ms", "av_offset_ms", "fps", "jitter_ms_p95", "dropped"):
        assert summary[key] is not None, key
    assert set(summary["latency_ms"]) >= {"p50", "p95", "max"}
    assert summary["latency_ms"]["n"] >= 4 and len(summary["sessions"]) == 1
    # dsp keeps the lips shut in the pauses: no burst finds the mouth already open
    assert summary["onsets_open_before"] == 0, summary["sessions"][0]["onsets"]
    # dsp opens the lips before the sound; the streams add no offset of their own
    assert 0.0 < summary["generator_lead_ms"] < 60.0, summary["generator_lead_ms"]
    assert abs(summary["av_offset_ms"]) <= 20.0, summary
    assert png.stat().st_size > 10_000
