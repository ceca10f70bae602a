"""Server parts below the WebRTC loopback tests: receive buffers, encoder, compute margin
(the barge-in loopback test runs at the default margin of a 2-session server)."""

from __future__ import annotations

import fractions
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc.rtp import RtpPacket

from stream_server import video_codec
from stream_server.app import AvatarServer, ServerConfig
from stream_server.jitter import ImmediateJitterBuffer
from stream_server.session import Session, default_margin_s


def packet(seq: int, timestamp: int, marker: bool = False, payload: bytes = b"x") -> RtpPacket:
    p = RtpPacket(sequence_number=seq, timestamp=timestamp, marker=int(marker))
    p._data = payload
    return p


def test_audio_packets_are_released_as_they_arrive() -> None:
    buffer = ImmediateJitterBuffer(capacity=16)
    for seq in range(5):
        _, frame = buffer.add(packet(seq, seq * 960, payload=bytes([seq])))
        assert frame is not None and frame.timestamp == seq * 960 and frame.data == bytes([seq])


def test_a_video_frame_is_released_at_its_marker_packet() -> None:
    seen: list = []
    buffer = ImmediateJitterBuffer(capacity=128, is_video=True, on_frame=seen.append)
    assert buffer.add(packet(10, 3600, payload=b"a"))[1] is None
    assert buffer.add(packet(11, 3600, payload=b"b"))[1] is None
    _, frame = buffer.add(packet(12, 3600, marker=True, payload=b"c"))
    assert frame is not None and (frame.timestamp, frame.data) == (3600, b"abc")
    assert seen == [frame]  # the bench times delivery from this
    # A frame whose marker packet was lost still comes out when the next frame begins.
    assert buffer.add(packet(13, 7200, payload=b"d"))[1] is None
    _, frame = buffer.add(packet(15, 10800, payload=b"f"))  # 14 (the marker) lost
    assert frame is None  # the gap: nothing is complete yet
    _, frame = buffer.add(packet(14, 7200, payload=b"e"))  # late, but it completes 7200
    assert frame is not None and (frame.timestamp, frame.data) == (7200, b"de")


def test_fast_vp8_encoder_encodes_and_caps_the_bitrate() -> None:
    encoder = video_codec.FastVp8Encoder()
    encoder.target_bitrate = 5_000_000
    assert encoder.target_bitrate == video_codec.MAX_BITRATE
    rgb = np.zeros((512, 512, 3), np.uint8)
    rgb[128:384, 128:384] = (200, 120, 90)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    frame.pts, frame.time_base = 0, fractions.Fraction(1, 90_000)
    payloads, timestamp = encoder.encode(frame)
    assert payloads and timestamp == 0
    assert encoder.codec.bit_rate == video_codec.MAX_BITRATE  # our codec, not aiortc's 1.5 Mb/s


def test_the_default_compute_margin_scales_with_sessions_per_core() -> None:
    assert default_margin_s(1, cpus=2) == pytest.approx(0.03)
    assert default_margin_s(2, cpus=2) == pytest.approx(0.03)  # the loopback tests' server
    assert default_margin_s(3, cpus=2) == pytest.approx(0.06)
    assert default_margin_s(4, cpus=2) == pytest.approx(0.06)
    assert default_margin_s(8, cpus=2) == pytest.approx(0.12)


def test_the_server_takes_the_default_margin_unless_told(tmp_path: Path) -> None:
    config = ServerConfig(default_avatar=tmp_path / "p.jpg", cache_dir=tmp_path, max_sessions=4)
    assert AvatarServer(config).margin_s == pytest.approx(default_margin_s(4))
    config.margin_ms = 45.0
    assert AvatarServer(config).margin_s == pytest.approx(0.045)


def test_the_default_margin_follows_the_measured_capacity(tmp_path: Path) -> None:
    """--max-sessions 8 on a machine that measures room for 1: the margin is one session's,
    not eight's (it held the bench's glass to glass ~45 ms longer on 2 cores)."""
    from stream_server.capacity import FrameCost

    config = ServerConfig(default_avatar=tmp_path / "p.jpg", cache_dir=tmp_path, max_sessions=8)
    server = AvatarServer(config)
    assert server.margin_s == pytest.approx(default_margin_s(8))
    server._set_capacity(FrameCost.from_probe(1.0, 900.0, 1.0))  # room for one session
    assert server.admission.limit == 1
    assert server.margin_s == pytest.approx(default_margin_s(1))
    config.margin_ms = 45.0  # a margin given stays
    told = AvatarServer(config)
    told._set_capacity(FrameCost.from_probe(1.0, 900.0, 1.0))
    assert told.margin_s == pytest.approx(0.045)


def test_serve_refuses_a_negative_margin(capsys) -> None:
    from emote.cli import main

    assert main(["serve", "--margin-ms", "-5", "--port", "1"]) == 2
    assert "--margin-ms" in capsys.readouterr().err


def test_bench_margin_needs_its_own_server(capsys) -> None:
    from emote.cli import main

    assert main(["bench", "--url", "http://127.0.0.1:1", "--margin-ms", "30"]) == 2
    assert "--margin-ms" in capsys.readouterr().err


def test_the_bench_judges_a_longer_run_against_the_same_open_mouth() -> None:
    from measure.mouth import OPEN_FRACTION, mouth_levels

    rng = np.random.default_rng(0)
    closed = np.abs(rng.normal(0.0, 0.001, 400))
    speech = np.append(rng.uniform(0.01, 0.04, 199), 0.08)  # one burst opened very wide
    short = np.concatenate([closed, speech])
    # the same call three times over: a rare wide opening now comes three times, but the
    # open level (and so the threshold) stays that of the call's speech
    longer = np.concatenate([short, short + 1e-4, short + 2e-4])
    levels_short, levels_long = mouth_levels(short), mouth_levels(longer)
    assert levels_long == pytest.approx(levels_short, abs=1e-3)
    shut, opened, threshold = levels_short
    assert 0.035 < opened <= 0.041 and shut < 0.001
    assert threshold == pytest.approx(shut + OPEN_FRACTION * (opened - shut))


def _session_fed_by_hand() -> tuple[Session, Callable[[float], None]]:
    """A session (worker not started) and ``arrive(t)``: a 20 ms chunk arriving t seconds
    after the session's t0."""
    from engines.dsp_motion import DspMotionGenerator
    from stream_server.metrics import Metrics

    session = Session(
        "s", "a", lambda motion: np.zeros((768, 512), np.uint8), DspMotionGenerator(), Metrics()
    )
    t0, chunk = session.clock.t0, np.full(320, 0.1, np.float32)  # 20 ms at 16 kHz

    def arrive(at_s: float) -> None:
        session.place_audio(t0 + at_s + 1e-6, chunk, np.repeat(chunk, 3))

    return session, arrive


def test_input_audio_is_fitted_to_the_session_clock_and_counted() -> None:
    from stream_server.clock_fit import JITTER_S

    session, arrive = _session_fed_by_hand()
    t0 = session.clock.t0

    # The first chunk lands at its arrival, on the clock moved (by under half a packet) so
    # that its end is 1 ms after a frame's completing sample (640 + dsp's 1080 lookahead,
    # mod the packet): at 100 ms that is 108.5 ms, 8.5 ms further on.
    arrive(0.100)
    assert session.clock.t0 == pytest.approx(t0 - 0.0085)
    assert (session.stats.audio_inserted_samples, session.samples_placed) == (1416, 1736)
    first = 0.100  # on the session's time, the moved clock's 108.5 ms
    arrive(first + 0.020)  # on time
    arrive(first + 0.040 + JITTER_S / 2)  # a little late (jitter): left alone
    assert (session.stats.audio_inserted_samples, session.samples_placed) == (1416, 2376)
    arrive(first + 0.080 + JITTER_S)  # a stall: the gap (60 ms, 3 packets) becomes silence
    assert (session.stats.audio_inserted_samples, session.samples_placed) == (1416 + 960, 3656)
    arrive(first + (3656 + 320 - 800 - 1736) / 16000)  # 50 ms ahead of the clock: cut
    assert (session.stats.audio_trimmed_samples, session.samples_placed) == (320, 3656)
    assert session.stats.as_json()["audio_trimmed_samples"] == 320
    assert session.clock.t0 == pytest.approx(t0 - 0.0085)  # moved once


def test_a_session_anchored_late_catches_up_with_its_audio_by_whole_packets() -> None:
    from stream_server.clock_fit import LATE_WINDOW

    session, arrive = _session_fed_by_hand()

    arrive(0.100)  # the first chunk came 25 ms late: the session is anchored 25 ms late
    for j in range(1, LATE_WINDOW):  # every later chunk is 25 ms early: left alone...
        arrive(0.100 + 0.02 * j - 0.025)
    assert session.stats.audio_trimmed_samples == 0
    arrive(0.100 + 0.02 * LATE_WINDOW - 0.025)  # ... until half a second of it: cut by a
    assert session.stats.audio_trimmed_samples == 320  # whole packet (the frames' alignment)
    for j in range(LATE_WINDOW + 1, 3 * LATE_WINDOW):  # 5 ms early now: under a packet, kept
        arrive(0.100 + 0.02 * j - 0.025)
    assert session.stats.audio_trimmed_samples == 320


def _opus_round_trip(frames: list[av.AudioFrame]) -> np.ndarray:
    """``frames`` (mono s16 48 kHz, consecutive) through aiortc's Opus encoder and decoder,
    as a WebRTC receiver hears them: one channel of the decoded samples."""
    from aiortc.codecs.opus import OpusDecoder, OpusEncoder
    from aiortc.jitterbuffer import JitterFrame

    encoder, decoder = OpusEncoder(), OpusDecoder()
    out = []
    for frame in frames:
        payloads, timestamp = encoder.encode(frame)
        for payload in payloads:
            for decoded in decoder.decode(JitterFrame(data=payload, timestamp=timestamp)):
                out.append(decoded.to_ndarray().reshape(-1)[:: len(decoded.layout.channels)])
    return np.concatenate(out).astype(np.float64)


def _s16_frame(samples: np.ndarray, pts: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples.astype(np.int16).reshape(1, -1), "s16", "mono")
    frame.sample_rate, frame.pts, frame.time_base = 48_000, pts, fractions.Fraction(1, 48_000)
    return frame


def test_opus_delays_the_decoded_sound_by_the_servers_opus_delay() -> None:
    from stream_server.session import OPUS_DELAY

    sound = np.zeros(48_000, np.int16)
    sound[24_000:24_048] = 20_000  # a 1 ms click at 0.5 s
    heard = _opus_round_trip([_s16_frame(sound[i : i + 960], i) for i in range(0, 48_000, 960)])
    assert abs(int(np.argmax(np.abs(heard))) - 24_000 - OPUS_DELAY) <= 4


def test_the_returned_sound_is_heard_at_its_frames_time() -> None:
    """A click in the input comes back, decoded as a receiver decodes it, at the time the
    video frame holding its audio is sent (the middle of a frame's audio goes out with it):
    the returned audio is aligned with the video after Opus's delay, not only by pts."""
    from engines.dsp_motion import DspMotionGenerator
    from stream_server.clock_fit import ALIGN_GUARD
    from stream_server.metrics import Metrics

    session = Session("s", "a", lambda motion: np.zeros(1), DspMotionGenerator(), Metrics())
    click = 640 * 20 + 123  # a session sample (16 kHz), in frame 20
    # ending where the alignment to the frames puts a chunk's end (clock_fit: 1 ms after a
    # frame's completing sample, 640 + 1080 for dsp, mod the frame), so the clock stays put
    audio16 = np.zeros(640 * 40 + (640 + 1080 + ALIGN_GUARD) % 640, np.float32)
    audio16[click] = 0.6
    audio48 = np.zeros(len(audio16) * 3, np.float32)
    audio48[3 * click : 3 * click + 48] = 0.6
    t0 = session.clock.t0
    # the whole of it arriving at its end's time: placed from sample 0, no silence, no cut
    session.place_audio(session.clock.t0 + len(audio16) / 16_000 + 1e-6, audio16, audio48)
    assert session.samples_placed == session.fitter.written == len(audio16)
    assert session.fitter.inserted == session.fitter.trimmed == 0
    assert session.clock.t0 == t0
    track = session.audio
    packets = [track.packet(n) for n in range(len(audio48) // 960)]
    assert all(p.pts == n * 960 and p.samples == 960 for n, p in enumerate(packets))
    heard = _opus_round_trip(packets)
    at = int(np.argmax(np.abs(heard)))  # samples from the start of packet 0
    heard_s = track.due(at // 960) + (at % 960) / 48_000
    clock = session.clock
    assert abs(heard_s - clock.audio_due(click)) < 0.0005, heard_s - clock.audio_due(click)
    # ... which is the send time of frame 20 plus the click's place after its middle
    assert clock.audio_due(click) == pytest.approx(clock.frame_due(20) + (123 - 320) / 16_000)


def test_a_closed_session_frees_its_encoder_at_once() -> None:
    """libvpx's state (~15 MB) is freed when the session ends, not when the garbage collector
    gets round to the peer connection's cycles (+3.3 MB of RSS per short session before)."""
    from engines.dsp_motion import DspMotionGenerator
    from stream_server.metrics import Metrics

    yuv = np.zeros((768, 512), np.uint8)
    session = Session("s" * 32, "a", lambda motion: yuv, DspMotionGenerator(), Metrics())
    session.encoder.queue.start(0)
    session.start()
    session.push_audio(np.zeros(3200, np.float32), np.zeros(9600, np.float32))
    deadline = time.monotonic() + 5.0
    while session.encoder._vp8._codec is None:  # the worker opened the encoder
        assert time.monotonic() < deadline, "no frame was encoded"
        time.sleep(0.02)
    session.stop()
    session.join()
    assert not session.alive and session.encoder._vp8._codec is None
    never_started = Session("t" * 32, "a", lambda motion: yuv, DspMotionGenerator(), Metrics())
    never_started.stop()
    never_started.join()  # nothing to wait for, nothing to free
