"""Fixtures of the routing tests: scratch databases with the hand-made road network of
``support.routing`` and with Helsinki's OSM roads."""

from __future__ import annotations

import pytest
from support.database import create_test_database
from support.routing import EDGES, HELSINKI_DB, HELSINKI_PBF, NODES, ROUTING_DB, insert_network, lonlat

from gisapp.core import db
from gisapp.core.config import Settings


@pytest.fixture(scope="session")
def hand_network(server_url):
    """A scratch database holding the hand-made network; yields (url, node ids, edge ids)."""
    url = create_test_database(server_url, ROUTING_DB)
    with db.connect(url) as conn:
        nodes, edges = insert_network(conn, {n: lonlat(n) for n in NODES}, EDGES)
        conn.commit()
    return url, nodes, edges


@pytest.fixture(scope="session")
def helsinki_settings() -> Settings:
    """Settings for Helsinki: a Finnish metric CRS (ETRS-TM35FIN) instead of Zouping's."""
    return Settings.from_env({"metric_srid": 3067})


@pytest.fixture(scope="session")
def helsinki_db(server_url, helsinki_settings):
    """A scratch database with Helsinki.osm.pbf imported by ``gisapp import-osm``'s code."""
    from geodata.osm import import_osm

    url = create_test_database(server_url, HELSINKI_DB)
    with db.connect(url) as conn:
        summary = import_osm(conn, HELSINKI_PBF, helsinki_settings)
        conn.commit()
    return url, summary
