"""Shared fixtures: the bundled portrait prepared once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.paths import DEFAULT_PORTRAIT
from engines.avatar import Avatar, prepare_avatar
from engines.rig import Rig, build_rig

PORTRAIT = DEFAULT_PORTRAIT


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emote-cache")


@pytest.fixture(scope="session")
def mona_avatar(session_cache: Path) -> Avatar:
    return prepare_avatar(PORTRAIT, cache_dir=session_cache)


@pytest.fixture(scope="session")
def mona_rig(mona_avatar: Avatar) -> Rig:
    return build_rig(mona_avatar.image, mona_avatar.landmarks)
