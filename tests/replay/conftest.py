"""Fixtures of the replay tests: a hand-made world in its own database (a road line, two
stations, a squadron, units, a few incidents with recorded legs), and the demo database."""

from __future__ import annotations

import pytest
from support.database import create_test_database
from support.replay import REPLAY_DB, build_world

from gisapp.core.config import Settings


@pytest.fixture(scope="session")
def replay_world(server_url) -> dict:
    """The hand-made world; returns its URL, settings and ids (see support.replay)."""
    url = create_test_database(server_url, REPLAY_DB)
    ids = build_world(url)
    return {"url": url, "settings": Settings.from_env({"database_url": url}), **ids}


@pytest.fixture(scope="session")
def demo_settings(demo_database_url) -> Settings:
    return Settings.from_env({"database_url": demo_database_url})
