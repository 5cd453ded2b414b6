"""`gisapp export` and `gisapp import` on the command line, against a scratch database."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from support.database import create_test_database

from gisapp.cli import main
from gisapp.core import db


@pytest.fixture(scope="module")
def scratch_url(server_url):
    from geodata.reference import load_reference

    url = create_test_database(server_url, "gisapp_test_io_cli")
    with db.connect(url) as conn:
        load_reference(conn)
        conn.commit()
    return url


def test_export_then_import_towns_and_a_refused_file(scratch_url, tmp_path, monkeypatch):
    monkeypatch.setenv("GISAPP_DATABASE_URL", scratch_url)
    runner = CliRunner()
    out = tmp_path / "towns.gpkg"
    r = runner.invoke(main, ["export", "towns", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows"] == 16
    # the file comes back unchanged (replace keeps the same 16 towns)
    r = runner.invoke(main, ["import", "towns", str(out), "--replace"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows_imported"] == 16
    # a CSV without a CRS is refused, with the reason, and imports nothing
    csv = tmp_path / "v.csv"
    csv.write_text("WKT,code,name,town_code,population\n"
                   "POINT (117.70 36.90),CLI-1,甲村,371681102,10\n"
                   "POINT (117.71 36.91),CLI-2,乙村,371681102,-3\n", encoding="utf-8")
    r = runner.invoke(main, ["import", "villages", str(csv)])
    assert r.exit_code == 1 and "--crs" in r.output
    r = runner.invoke(main, ["import", "villages", str(csv), "--crs", "EPSG:4326"])
    assert r.exit_code == 1
    assert "row 2: population: must be at least 0" in r.output
    with db.connect(scratch_url) as conn:
        assert conn.execute("SELECT count(*) AS n FROM village").fetchone()["n"] == 0
    r = runner.invoke(main, ["import", "villages", str(csv), "--crs", "EPSG:4326", "--skip-invalid"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows_imported"] == 1
    with db.connect(scratch_url) as conn:
        row = conn.execute("SELECT code, synthetic FROM village").fetchone()
        assert row == {"code": "CLI-1", "synthetic": False}
        meta = conn.execute("SELECT source, synthetic FROM dataset_meta WHERE layer = 'villages'").fetchone()
        assert meta["synthetic"] is False and "v.csv" in meta["source"]
