"""Same seed, same world; `load-demo` replaces the previous demo cleanly and keeps users' links."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from support.database import create_test_database

from gisapp.core import db
from gisapp.core.accounts import create_user
from gisapp.core.config import Settings

END = datetime(2025, 6, 1, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def reload_url(server_url):
    return create_test_database(server_url, "gisapp_test_reload")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """The demo's parameter file with a shorter, thinner history (60 days of a tenth of the volume,
    and five earlier months): reloading, the foreign keys, the users' links and the plans do not
    depend on the history's size, and five full loads would take a minute of the suite."""
    from geodata.demo import PARAMS_PATH

    text = Path(PARAMS_PATH).read_text(encoding="utf-8")
    for key, value in {"days": "60", "start": '"2025-01-01"', "incidents_110": "3000", "accidents_122": "900",
                       "other_122": "100"}.items():
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text, count=1)
        assert n == 1, key
    path = tmp_path_factory.mktemp("demo") / "demo_params.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_same_seed_same_data_and_clean_replace(reload_url, small):
    from geodata import demo

    with db.connect(reload_url) as conn:
        first = demo.load_demo(conn, seed=11, params_path=small, end=END, log=lambda m: None)
        conn.commit()
        h1 = demo.content_hash(conn)
        station = conn.execute("SELECT id, code FROM organisation WHERE kind = 'station' ORDER BY code LIMIT 1"
                               ).fetchone()
        unit = conn.execute("SELECT id, code FROM unit ORDER BY code LIMIT 1").fetchone()
        chief = create_user(conn, "reload_chief", "pw-reload-1", "chief", station["id"])
        dev = create_user(conn, "reload_device", "pw-reload-1", "device", None, unit_id=unit["id"])
        conn.commit()

        fks = conn.execute("SELECT conrelid::regclass::text AS t, conname, pg_get_constraintdef(oid) AS d "
                           "FROM pg_constraint WHERE contype = 'f' ORDER BY 1, 2").fetchall()
        second = demo.load_demo(conn, seed=11, params_path=small, end=END, log=lambda m: None)
        # the foreign keys dropped for the bulk load are all back, as they were
        assert conn.execute("SELECT conrelid::regclass::text AS t, conname, pg_get_constraintdef(oid) AS d "
                            "FROM pg_constraint WHERE contype = 'f' ORDER BY 1, 2").fetchall() == fks
        conn.commit()
        assert demo.content_hash(conn) == h1
        assert {k: v for k, v in first.items() if k != "seconds"} == {k: v for k, v in second.items()
                                                                    if k != "seconds"}
        # nothing left over from the first load
        assert conn.execute("SELECT count(*) AS n FROM incident").fetchone()["n"] == first["incidents"]
        assert conn.execute("SELECT count(*) AS n FROM road_edge").fetchone()["n"] == first["road_edges"]
        assert conn.execute("SELECT min(id) AS n FROM road_edge").fetchone()["n"] == 1
        # users keep their station and unit
        row = conn.execute("SELECT o.code FROM app_user u JOIN organisation o ON o.id = u.station_id "
                           "WHERE u.id = %s", [chief["id"]]).fetchone()
        assert row["code"] == station["code"]
        row = conn.execute("SELECT x.code FROM app_user u JOIN unit x ON x.id = u.unit_id WHERE u.id = %s",
                           [dev["id"]]).fetchone()
        assert row["code"] == unit["code"]


def test_another_seed_gives_another_world():
    from geodata.demo import load_params
    from geodata.world import build_world

    srid = Settings().metric_srid
    a = build_world(load_params(seed=11), np.random.default_rng(11), srid)
    b = build_world(load_params(seed=12), np.random.default_rng(12), srid)
    assert not np.array_equal(a.village_xy, b.village_xy)
    assert a.village_xy.shape == b.village_xy.shape


def test_reload_while_a_chief_and_plans_exist(reload_url, small):
    """`load-demo` over a demo in use (a chief user, a draft, a published plan and its grid
    changes) succeeds, with another seed too (issue 12, item 10)."""
    from geodata import demo
    from gisapp.planning.drafts import create_plan
    from gisapp.planning.publish import publish_plan

    s = Settings()
    with db.connect(reload_url) as conn:
        demo.load_demo(conn, seed=11, params_path=small, end=END, log=lambda m: None)
        conn.commit()
        station = conn.execute("SELECT id, code FROM organisation WHERE kind = 'station' ORDER BY code DESC LIMIT 1"
                               ).fetchone()
        create_user(conn, "reload_chief2", "pw-reload-1", "chief", station["id"])
        admin = create_user(conn, "reload_admin2", "pw-reload-1", "admin")
        create_plan(conn, admin, name="draft over the demo", kind="station")
        published = create_plan(conn, admin, name="published over the demo", kind="traffic")
        publish_plan(conn, admin, published["id"], None, "test", s)
        grid = conn.execute("SELECT id FROM grid LIMIT 1").fetchone()["id"]
        conn.execute("INSERT INTO plan_grid_change (plan_id, grid_id, from_org_id, to_org_id) "
                     "VALUES (%s, %s, %s, %s)", [published["id"], grid, station["id"], station["id"]])
        conn.commit()
        for seed in (11, 12):
            out = demo.load_demo(conn, seed=seed, params_path=small, end=END, log=lambda m: None)
            conn.commit()
            assert out["incidents"] > 0
        # the users and plans are still there
        assert conn.execute("SELECT count(*) AS n FROM app_user WHERE username = 'reload_chief2'").fetchone()["n"] == 1
        assert conn.execute("SELECT count(*) AS n FROM plan").fetchone()["n"] >= 2
