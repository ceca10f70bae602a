"""The LiveKit worker's own parts, run with pytest in .venv-integrations by
tests/test_livekit_avatar.py (the file name keeps .venv's pytest from collecting it): the
dispatch metadata it accepts and refuses, the token it joins with, the load it reports."""

from __future__ import annotations

import pytest
from livekit import api

from contracts.style import Style
from integrations.avatar_setup import AvatarSettings
from integrations.livekit_avatar import (
    PUBLISH_ON_BEHALF,
    JobRequest,
    WorkerConfigError,
    WorkerState,
    avatar_token,
)


def test_dispatch_metadata_parsed() -> None:
    request = JobRequest.parse('{"agent_identity": "agent-7", "style": "happy:0.5"}')
    assert request.agent_identity == "agent-7"
    assert request.avatar_identity == "emote-avatar-agent-7"
    assert request.style == Style.parse("happy:0.5")
    request = JobRequest.parse(
        '{"agent_identity": "a", "avatar_identity": "face", "avatar": "57998f96e01ac3a9"}'
    )
    assert (request.avatar_identity, request.avatar) == ("face", "57998f96e01ac3a9")


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ("", "needs agent_identity"),
        ("not json", "not JSON"),
        ("[1]", "JSON object"),
        ('{"agent_identity": "a", "colour": "red"}', "unknown dispatch metadata keys: colour"),
        ('{"agent_identity": "a b"}', "needs agent_identity"),
        ('{"agent_identity": "a", "avatar_identity": ""}', "bad avatar_identity"),
        ('{"agent_identity": "a", "avatar": "../../etc/passwd"}', "prepared avatar's id"),
        ('{"agent_identity": "a", "style": "furious"}', "furious"),
        ('{"agent_identity": "a", "style": 3}', "style must be a string"),
    ],
)
def test_bad_dispatch_metadata_refused(metadata: str, message: str) -> None:
    with pytest.raises(WorkerConfigError, match=message):
        JobRequest.parse(metadata)


def test_token_publishes_on_behalf_of_the_agent_in_one_room() -> None:
    request = JobRequest.parse('{"agent_identity": "agent-7"}')
    token = avatar_token("key", "a-secret-of-at-least-32-characters!!", "room-1", request)
    claims = api.TokenVerifier("key", "a-secret-of-at-least-32-characters!!").verify(token)
    assert claims.identity == "emote-avatar-agent-7"
    assert claims.kind == "agent"
    assert claims.attributes == {PUBLISH_ON_BEHALF: "agent-7"}
    assert claims.video is not None and claims.video.room_join and claims.video.room == "room-1"
    with pytest.raises(Exception):  # noqa: B017 - any verification failure
        api.TokenVerifier("key", "another-secret-of-32-characters-xx!!").verify(token)


def test_load_is_sessions_over_capacity() -> None:
    state = WorkerState("ws://x", "k", "s", AvatarSettings(), max_sessions=2)
    assert state.load() == 0.0
    state.active.add("room-1")
    assert state.load() == 0.5
    state.active.add("room-2")
    assert state.load() == 1.0
