"""Real WebRTC sessions over loopback against `emote serve` in a subprocess: an aiortc client
sends real speech and receives the avatar's video and its own audio. The mouth is measured
from the received pixels with FaceMesh (measure.mouth.mouth_openings)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import aiohttp
import numpy as np
import pytest

from contracts.paths import DEFAULT_SPEECH, REPO
from measure.mouth import MIN_MOUTH_RANGE, mouth_levels, mouth_openings
from measure.program import (
    CHUNK,
    RATE,
    Program,
    cut_bursts,
    levels_db,
    load_speech,
    speech_program,
)
from measure.server import serve
from measure.webrtc_client import Client
from measure.xcorr import best_lag

SPEECH = DEFAULT_SPEECH

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(max_sessions=2, cache_dir=tmp_path_factory.mktemp("loopback-cache")) as url:
        yield url


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_speech(SPEECH)


async def play(url: str, program: Program, during=None) -> tuple[Client, dict]:
    """Send ``program`` (keeping every received frame), run ``during(client, http)`` alongside,
    and close the session when the program is over; returns the client and the session's
    stats from just before closing."""
    client = Client(url, program, keep=lambda n, t: True)
    async with aiohttp.ClientSession() as http:
        await client.connect(http)
        try:
            await asyncio.wait_for(client.first_frame.wait(), 20)
            while client.track.start is None:
                await asyncio.sleep(0.02)
            if during is not None:
                await during(client, http)
            end = client.track.start + program.duration_s + 0.4
            await asyncio.sleep(max(0.0, end - time.monotonic()))
            stats = await client.stats(http)
        finally:
            await client.close(http)
    return client, stats


def mouth_track(client: Client) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times and mouth openings of the received frames where a face was found."""
    mouth = mouth_openings(client.received.kept)
    frames = sorted(mouth)
    times = np.asarray(client.received.video_t)[frames]
    return times, np.asarray([mouth[n] for n in frames])


def open_threshold(values: np.ndarray) -> float:
    closed, opened, threshold = mouth_levels(values)
    assert opened - closed > MIN_MOUTH_RANGE, "the mouth never opened"
    return threshold


def test_frames_arrive_at_25_fps_and_the_mouth_follows_the_speech(
    server: str, speech: np.ndarray
) -> None:
    program = speech_program(speech, lead_s=2.0, tail_s=1.0)
    client, stats = asyncio.run(play(server, program))
    got, sent = client.received, client.track.sent
    assert got.video_size == (512, 512)
    arrivals = np.asarray(got.video_t)
    span = (sent[0] + 1.0, sent[-1])
    inside = arrivals[(arrivals >= span[0]) & (arrivals <= span[1])]
    assert len(inside) / (span[1] - span[0]) >= 20.0
    assert stats["audio_chunks_in"] >= 0.9 * len(sent)

    times, mouth = mouth_track(client)
    assert len(mouth) >= 0.9 * len(got.kept)  # the face is found in the received frames
    onset = sent[program.onset_frames[0]]
    speech_end = onset + len(speech) / RATE
    silent = mouth[(times > sent[0] + 0.3) & (times < onset + 0.1)]
    speaking = mouth[(times > onset + 0.3) & (times < speech_end + 0.3)]
    assert len(silent) >= 25 and len(speaking) >= 100
    assert speaking.std() > 3.0 * silent.std(), (speaking.std(), silent.std())

    # the opening against the sent envelope, both on a 25 Hz grid of this process's clock
    samples = np.zeros(len(sent) * CHUNK, np.float32)
    samples[: len(program.samples)] = program.samples[: len(samples)]
    chunks = samples.reshape(len(sent), CHUNK)
    envelope = np.sqrt((chunks**2).mean(1))
    grid = np.arange(sent[0] + 0.5, sent[-1], 0.04)
    lag_ms, corr = best_lag(
        np.interp(grid, times, mouth), np.interp(grid, sent, envelope), max_ms=600.0
    )
    assert corr > 0.2, (corr, lag_ms)
    assert 0.0 <= lag_ms <= 600.0, lag_ms  # the mouth follows the sound it was sent


def interrupt_program(speech: np.ndarray) -> tuple[Program, dict[str, int]]:
    """The clip's first ~2 s, cut at the end of a loud open vowel, twice: once
    as is (the control) and once to be interrupted, then a burst of speech; 1-2.5 s silences
    in between. Returns it with the 20 ms frames where each part starts and stops."""
    level = levels_db(speech, RATE, (550.0, 1100.0))  # open vowels (see cut_bursts)
    peak = 150 + int(np.argmax(level[150:250]))  # 1.5-2.5 s into the clip, 10 ms steps
    end = peak + int(np.argmax(level[peak : peak + 15] < level[peak] - 6.0))
    length = end * (RATE // 100) // CHUNK  # 20 ms frames, to the end of the loud vowel
    burst = cut_bursts(speech)[0]  # "john dashwood": opens wide
    marks = {"control": 50, "control_stop": 50 + length}
    marks["interrupted"] = marks["control_stop"] + 100
    marks["stop"] = marks["interrupted"] + length
    marks["again"] = marks["stop"] + 125
    samples = np.zeros((marks["again"] + 75) * CHUNK + len(burst), np.float32)
    for start in (marks["control"], marks["interrupted"]):
        samples[start * CHUNK : (start + length) * CHUNK] = speech[: length * CHUNK]
    samples[marks["again"] * CHUNK : marks["again"] * CHUNK + len(burst)] = burst
    levels = [float(np.sqrt((part[:CHUNK] ** 2).mean())) for part in (speech, speech, burst)]
    onsets = [marks["control"], marks["interrupted"], marks["again"]]
    return Program(samples, onsets, levels, [0, 0, 0]), marks


@pytest.fixture(scope="module")
def learned_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`emote serve --motion learned`: the learned model with its full head range."""
    cache = tmp_path_factory.mktemp("loopback-learned-cache")
    with serve(max_sessions=1, cache_dir=cache, options=("--motion", "learned")) as url:
        yield url


def test_interrupt_drops_the_queued_speech_and_the_face_goes_idle(
    server: str, speech: np.ndarray
) -> None:
    check_interrupt(server, speech)


def test_interrupt_with_the_learned_model(learned_server: str, speech: np.ndarray) -> None:
    """The barge-in test with the learned model (issue 14's renderer target, part of issue
    15's live default): its head turns render whole (before the depth-tested warp, tears read
    as an open mouth) and since motion v2 its mouth opens far enough to be told from shut
    through VP8 (the issue 4 model's speech read at most ~0.025 of the face height, inside
    the shut mouth's noise)."""
    check_interrupt(learned_server, speech)


def check_interrupt(server: str, speech: np.ndarray) -> None:
    program, marks = interrupt_program(speech)
    hit: dict[str, float] = {}

    async def interrupt_when_speech_stops(client: Client, http: aiohttp.ClientSession) -> None:
        while len(client.track.sent) < marks["stop"] + 2:  # 40 ms after the last speech
            await asyncio.sleep(0.002)
        hit["request"] = time.monotonic()
        async with http.post(f"{server}/api/sessions/{client.session_id}/interrupt") as r:
            assert r.status == 200 and (await r.json()) == {"interrupted": True}
        hit["done"] = time.monotonic()

    client, stats = asyncio.run(play(server, program, interrupt_when_speech_stops))
    assert stats["interrupts"] == 1
    got, sent = client.received, client.track.sent
    t_int, t_done, t_again = hit["request"], hit["done"], sent[marks["again"]]
    t_control = sent[marks["control_stop"] + 2]  # the same moment in the control

    arrivals = np.asarray(got.video_t)
    assert ((arrivals > t_done) & (arrivals < t_done + 2.0)).sum() >= 30  # the video goes on

    # The returned audio: after the control, the speech the server holds back to match the
    # video (its delay less the 40 ms waited here: ~80 ms) comes back; after the interrupt it
    # is dropped. A packet or a few of it
    # still leak through today: the chunk the session worker took from its queue just before
    # it saw the interrupt, and chunks still waiting in aiortc's track when it came.
    audio_t, audio_rms = np.asarray(got.audio_t), np.asarray(got.audio_rms)

    def speech_energy_back(start: float) -> float:
        window = audio_rms[(audio_t > start + 0.01) & (audio_t < start + 0.6)]
        return float((window**2).sum())

    held = speech_energy_back(t_control)
    assert held > 2 * 0.03**2  # a few packets of speech
    assert speech_energy_back(t_int) < 0.5 * held
    assert audio_rms[(audio_t > t_again) & (audio_t < t_again + 0.8)].max() > 0.01

    times, mouth = mouth_track(client)
    threshold = open_threshold(mouth)
    # the interrupted speech was animating the face ...
    speaking = (times > sent[marks["interrupted"]] + 0.2) & (times < t_int + 0.1)
    assert mouth[speaking].max() > threshold, ("speaking", mouth[speaking].max(), threshold)
    # ... which is idle within 300 ms of the interrupt and stays so until the next speech is
    # sent (a frame that arrives before then cannot show it; later ones may, as the lips part
    # ahead of the burst's first vowel ~100 ms after it is sent)
    idle = mouth[(times > t_int + 0.3) & (times < t_again)]
    # enough frames to judge (half the 25 fps count: a loaded 2-core machine delivers fewer)
    assert len(idle) > 0.5 * 25 * (t_again - t_int - 0.3)
    assert idle.max() < threshold, (idle.max(), threshold)
    again = mouth[(times > t_again) & (times < t_again + 1.0)]
    assert again.max() > threshold, ("talks again", again.max(), threshold)


async def session_gone(url: str, session_id: str, timeout_s: float) -> float | None:
    """Seconds until GET /api/sessions/{id} is 404 and /healthz counts no session, or None."""
    start = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while time.monotonic() - start < timeout_s:
            async with http.get(f"{url}/api/sessions/{session_id}") as r:
                gone = r.status == 404
            async with http.get(f"{url}/healthz") as r:
                idle = (await r.json())["sessions"] == 0
            if gone and idle:
                return time.monotonic() - start
            await asyncio.sleep(0.1)
    return None


async def working_session(url: str) -> None:
    client = Client(url, None)
    async with aiohttp.ClientSession() as http:
        await client.connect(http)
        try:
            deadline = time.monotonic() + 20
            while len(client.received.video_t) < 25:
                assert time.monotonic() < deadline, "no frames in the new session"
                await asyncio.sleep(0.05)
        finally:
            await client.close(http)


def test_a_client_that_closes_without_delete_is_cleaned_up(server: str) -> None:
    async def scenario() -> None:
        client = Client(server, None)
        async with aiohttp.ClientSession() as http:
            await client.connect(http)
            await asyncio.wait_for(client.first_frame.wait(), 20)
        await client.close()  # no DELETE
        assert await session_gone(server, client.session_id, 5.0) is not None
        await working_session(server)

    asyncio.run(scenario())


CLIENT = textwrap.dedent(
    """
    import asyncio, sys
    import aiohttp
    from measure.webrtc_client import Client

    async def main(url):
        client = Client(url, None)
        async with aiohttp.ClientSession() as http:
            await client.connect(http)
            await asyncio.wait_for(client.first_frame.wait(), 20)
            print(client.session_id, flush=True)
            await asyncio.sleep(120)

    asyncio.run(main(sys.argv[1]))
    """
)


def test_a_killed_client_is_cleaned_up_within_5_s(server: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", CLIENT, server], cwd=REPO, env=env, stdout=subprocess.PIPE
    )
    try:
        session_id = process.stdout.readline().decode().strip()
        assert len(session_id) == 32, session_id
    finally:
        process.send_signal(signal.SIGKILL)  # no DTLS close, no RTCP BYE: the peer just vanishes
        process.wait()
    asyncio.run(working_session(server))  # another session works meanwhile
    assert asyncio.run(session_gone(server, session_id, 5.0)) is not None
