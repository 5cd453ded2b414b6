"""Reports (issue 14): exact figures on a small world of known legs, bad input, scope and roles,
empty periods, the XLSX and CSV exports, the CLI, and the demo year recomputed with pandas."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import openpyxl
import pytest
from click.testing import CliRunner
from support.server import expect_error

from gisapp.core import db
from gisapp.reports import ranking as rk

MARCH = "month=2025-03"


def _row(rows, org):
    return next(r for r in rows if r["organisation_id"] == org)


# --- exact figures ------------------------------------------------------------------------------------

def test_sla_rows_per_organisation_and_month_are_exact(rlogin, small_world):
    w = small_world
    rep = rlogin("leadership").get(f"/api/v1/reports/sla?{MARCH}").json()
    assert rep["empty"] is False
    assert rep["period"]["from"] == "2025-03-01" and rep["period"]["to"] == "2025-03-31"
    a = _row(rep["rows"], w.station_a)
    assert a["month"] == "2025-03" and a["code"] == "R-A-ST" and a["name"] == "甲派出所" and a["kind"] == "station"
    assert (a["legs"], a["sign_off_met"], a["sign_off_decided"], a["sign_off_rate"]) == (4, 2, 4, 0.5)
    assert (a["first_feedback_met"], a["first_feedback_decided"], a["first_feedback_rate"]) == (2, 4, 0.5)
    assert (a["close_met"], a["close_decided"], a["close_rate"]) == (2, 4, 0.5)
    assert a["overdue_now"] == 1
    b = _row(rep["rows"], w.station_b)  # the cancelled leg is not counted
    assert (b["legs"], b["sign_off_rate"], b["first_feedback_rate"], b["close_rate"], b["overdue_now"]) == (
        1, 1.0, 1.0, 1.0, 0)
    c = rep["county"]
    assert c["month"] is None and c["legs"] == 6 and c["overdue_now"] == 1
    assert (c["sign_off_met"], c["sign_off_decided"]) == (4, 6) and c["sign_off_rate"] == round(4 / 6, 6)
    assert (c["first_feedback_met"], c["close_met"], c["close_decided"]) == (4, 4, 6)
    # two months: one row per organisation and month
    both = rlogin("admin").get("/api/v1/reports/sla?from=2025-02-01&to=2025-03-31").json()
    assert {(r["code"], r["month"]) for r in both["rows"]} == {
        ("R-A-ST", "2025-02"), ("R-B-ST", "2025-02"), ("R-A-ST", "2025-03"), ("R-B-ST", "2025-03"),
        ("R-AS", "2025-03")}
    # a channel and a type filter
    acc = rlogin("admin").get(f"/api/v1/reports/sla?{MARCH}&type=traffic_accident").json()
    assert acc["county"]["legs"] == 3 and _row(acc["rows"], w.station_a)["legs"] == 1
    assert rlogin("admin").get(f"/api/v1/reports/sla?{MARCH}&channel=110").json()["county"]["legs"] == 3


def test_the_metrics_endpoint_answers_as_before(rlogin, small_world):
    m = rlogin("admin").get("/api/v1/metrics/sla?from=2025-03-01T00:00:00Z&to=2025-04-01T00:00:00Z"
                            f"&organisation={small_world.station_a}").json()
    assert m["legs"] == 4 and m["sign_off_rate"] == 0.5 and m["close_rate"] == 0.5
    assert m["mean_arrival_s"] == 900.0 and m["mediation_rate"] == 1.0


def test_overdue_legs_now(rlogin, small_world):
    rows = rlogin("leadership").get(f"/api/v1/reports/overdue?{MARCH}").json()["rows"]
    assert {(r["code"].startswith("JQ"), r["organisation_id"], r["clock"]) for r in rows} == {
        (True, small_world.station_a, c) for c in ("sign_off", "first_feedback", "close")}
    so = next(r for r in rows if r["clock"] == "sign_off")
    due = datetime.fromisoformat(so["due_at"])
    assert due == datetime(2025, 3, 10, 5, 1, 30, tzinfo=UTC)
    assert so["late_s"] > 0 and so["organisation"] == "甲派出所"


def test_arrivals_by_organisation_channel_type_and_area(rlogin, small_world):
    w = small_world
    rep = rlogin("admin").get(f"/api/v1/reports/arrivals?{MARCH}").json()
    org = {r["key"]: r for r in rep["by_organisation"]}
    assert {k: org[str(w.station_a)][k] for k in ("n", "mean_s", "p50_s", "p90_s")} == {
        "n": 3, "mean_s": 900.0, "p50_s": 900.0, "p90_s": 1140.0}
    assert org[str(w.station_a)]["label"] == "甲派出所" and org[str(w.station_a)]["label_en"] == "Station A"
    assert org[str(w.section)]["mean_s"] == 1500.0
    assert rep["county"] == {"key": "county", "label": "全县", "label_en": "County", "n": 5, "mean_s": 900.0,
                             "p50_s": 900.0, "p90_s": 1380.0}
    ch = {r["key"]: (r["n"], r["mean_s"]) for r in rep["by_channel"]}
    assert ch == {"110": (2, 900.0), "122": (3, 900.0)}
    ty = {r["key"]: (r["n"], r["mean_s"], r["label"]) for r in rep["by_type"]}
    assert ty == {"theft": (2, 900.0, "盗窃"), "traffic_accident": (3, 900.0, "交通事故")}
    area = {r["key"]: (r["n"], r["mean_s"]) for r in rep["by_area"]}
    assert area == {"urban": (3, 800.0), "rural": (2, 1050.0)}


def test_outcomes_shares_and_mediation(rlogin):
    rep = rlogin("leadership").get(f"/api/v1/reports/outcomes?{MARCH}").json()
    assert rep["accident_incidents"] == 2
    assert rep["station_share"] == 1.0 and rep["accident_section_share"] == 0.5
    assert rep["mediation_rate"] == 0.5 and rep["mediated"] == 1 and rep["mediation_decided"] == 2
    outs = {o["code"]: o["n"] for o in rep["outcomes"]}
    assert outs == {"to_criminal_investigation": 1, "other": 1, "mediation": 1, "to_accident_section": 1,
                    "summary_procedure": 1}
    med = next(o for o in rep["outcomes"] if o["code"] == "mediation")
    assert med["label"] == "现场调解" and med["label_en"] == "On-site mediation"


def test_ranking_scores_stars_ranks_and_changes(rlogin, small_world):
    w = small_world
    rep = rlogin("leadership").get("/api/v1/reports/ranking?month=2025-03").json()
    assert rep["month"] == "2025-03" and rep["weights"]["version"] == rk.load_weights().version
    assert abs(sum(rep["weights"]["parts"].values()) - 1) < 1e-9
    a, b = _row(rep["rows"], w.station_a), _row(rep["rows"], w.station_b)
    # A: 0.3 x 0.5 + 0.2 x 0.5 + 0.2 x 0.5 + 0.15 x 2/3 (arrived within 15 min) + 0.15 x 1 (mediated)
    assert a["score"] == 60.0 and a["stars"] == 0.0 and a["rank"] == 2 and a["rank_change"] == -1
    # B: everything on time, its one accident handed to the accident section (mediation 0)
    assert b["score"] == 85.0 and b["stars"] == 1.5 and b["rank"] == 1 and b["rank_change"] == 1
    parts = {p["measure"]: p for p in a["parts"]}
    assert parts["arrival_rate"]["value"] == round(2 / 3, 6) and parts["mediation_rate"]["value"] == 1.0
    assert round(sum(p["points"] for p in a["parts"]), 2) == a["score"]
    assert [r["organisation_id"] for r in rep["rows"][:2]] == [w.station_b, w.station_a]
    # February: A ranked first, no month before it
    feb = rlogin("leadership").get("/api/v1/reports/ranking?month=2025-02").json()
    assert _row(feb["rows"], w.station_a)["rank"] == 1 and _row(feb["rows"], w.station_a)["rank_change"] is None
    # weights overridden through the API
    only = rlogin("admin").get("/api/v1/reports/ranking?month=2025-03&weights=sign_off_rate:1").json()
    assert _row(only["rows"], w.station_a)["score"] == 50.0 and only["weights"]["parts"] == {"sign_off_rate": 1.0}


def test_a_score_explains_itself_with_the_legs_behind_it(rlogin, small_world):
    w = small_world
    ex = rlogin("chief").get(f"/api/v1/reports/ranking/{w.station_a}?month=2025-03").json()
    assert ex["score"] == 60.0 and ex["rank"] == 2
    parts = {p["measure"]: p for p in ex["parts"]}
    so = parts["sign_off_rate"]["legs"]
    assert len(so) == 4 and sum(x["met"] for x in so) == 2 and all(x["code"].startswith("JQ") for x in so)
    assert [x["met"] for x in parts["mediation_rate"]["legs"]] == [True]
    assert len(parts["arrival_rate"]["legs"]) == 3
    # the chief may not open another station's explanation
    expect_error(rlogin("chief").get(f"/api/v1/reports/ranking/{w.station_b}?month=2025-03"), 403, "organisation_id")


def test_trends_heatmap_grids_and_the_incidents_behind_a_figure(rlogin, small_world):
    w = small_world
    admin = rlogin("admin")
    tr = admin.get("/api/v1/reports/trends?month=2025-03&months=3").json()
    assert tr["months"] == ["2025-01", "2025-02", "2025-03"]
    assert tr["series"]["sign_off_rate"] == [None, 0.5, round(4 / 6, 6)]
    assert tr["series"]["incidents"] == [0, 2, 6]  # the cancelled leg's incident is an incident
    assert tr["series"]["mean_arrival_s"][2] == 900.0 and tr["series"]["mediation_rate"][2] == 0.5
    hm = admin.get(f"/api/v1/reports/heatmap?{MARCH}").json()
    assert hm["hours"] == list(range(24)) and hm["weekdays"] == list(range(1, 8))
    # reported 09:59 .. 14:59 Beijing time on Monday 10 March
    assert sorted(hm["cells"]) == [[1, 9, 1], [1, 10, 1], [1, 11, 1], [1, 12, 1], [1, 13, 1], [1, 14, 1]]
    gr = admin.get(f"/api/v1/reports/grids?{MARCH}").json()
    g = next(f for f in gr["features"] if f["properties"]["grid_id"] == w.grid_a)
    assert g["properties"]["incidents"] == 2 and g["properties"]["sla_misses"] == 1
    assert g["geometry"]["type"] == "MultiPolygon"
    inc = admin.get(f"/api/v1/reports/incidents?{MARCH}&measure=sign_off_miss").json()
    assert inc["total"] == 2  # A2 signed off late, A4 never
    assert {r["code"] for r in admin.get(f"/api/v1/reports/overdue?{MARCH}").json()["rows"]} < {
        r["code"] for r in inc["rows"]}
    assert admin.get(f"/api/v1/reports/incidents?{MARCH}&measure=mediated").json()["total"] == 1
    assert admin.get(f"/api/v1/reports/incidents?{MARCH}&measure=accident").json()["total"] == 2
    assert admin.get(f"/api/v1/reports/incidents?{MARCH}&measure=outcome:summary_procedure").json()["total"] == 1
    page = admin.get(f"/api/v1/reports/incidents?{MARCH}&measure=all&limit=2&offset=1").json()
    assert page["total"] == 6 and len(page["rows"]) == 2
    assert set(page["rows"][0]) >= {"incident_id", "code", "reported_at", "type", "channel", "organisation", "status",
                                    "outcome"}
    # a heat-map cell and a grid of the choropleth open the incidents behind them
    for d, h, n in hm["cells"]:
        cell = admin.get(f"/api/v1/reports/incidents?{MARCH}&weekday={d}&hour={h}").json()
        assert cell["total"] == n and cell["weekday"] == d and cell["hour"] == h
    assert admin.get(f"/api/v1/reports/incidents?{MARCH}&weekday=2&hour=10").json()["total"] == 0
    by_grid = admin.get(f"/api/v1/reports/incidents?{MARCH}&grid={w.grid_a}").json()
    assert by_grid["total"] == g["properties"]["incidents"] == 2
    missed = admin.get(f"/api/v1/reports/incidents?{MARCH}&grid={w.grid_a}&measure=any_miss").json()
    assert missed["total"] == g["properties"]["sla_misses"] == 1
    expect_error(admin.get(f"/api/v1/reports/incidents?{MARCH}&grid=999999"), 404, "grid")
    expect_error(admin.get(f"/api/v1/reports/incidents?{MARCH}&hour=24"), 400, "hour")
    expect_error(admin.get(f"/api/v1/reports/incidents?{MARCH}&weekday=0"), 400, "weekday")


def test_a_period_without_data_says_so(rlogin):
    admin = rlogin("admin")
    sla = admin.get("/api/v1/reports/sla?month=2024-01").json()
    assert sla["empty"] is True and sla["rows"] == [] and sla["county"]["legs"] == 0
    assert sla["county"]["sign_off_rate"] is None and sla["county"]["close_rate"] is None
    arr = admin.get("/api/v1/reports/arrivals?month=2024-01").json()
    assert arr["empty"] is True and arr["county"]["mean_s"] is None and arr["by_area"] == []
    out = admin.get("/api/v1/reports/outcomes?month=2024-01").json()
    assert out["empty"] is True and out["station_share"] is None and out["mediation_rate"] is None
    rank = admin.get("/api/v1/reports/ranking?month=2024-01").json()
    assert rank["empty"] is True and all(r["score"] is None and r["rank"] is None for r in rank["rows"])
    assert admin.get("/api/v1/reports/heatmap?month=2024-01").json()["cells"] == []
    assert admin.get("/api/v1/reports/export.xlsx?month=2024-01").status_code == 200


# --- bad input, scope, roles ----------------------------------------------------------------------------

@pytest.mark.parametrize("query, status, field", [
    ("month=2025-13", 400, "month"),
    ("month=March", 400, "month"),
    ("from=2025-03-10&to=2025-03-01", 400, "to"),
    ("from=2019-01-01&to=2025-01-01", 400, "to"),
    ("from=2025-02-30", 400, "from"),
    ("month=2025-03&from=2025-03-01", 400, "month"),
    ("organisation=NO-SUCH-ORG", 404, "organisation"),
    ("organisation=999999", 404, "organisation"),
    ("channel=119", 400, "channel"),
    ("type=no_such_type", 400, "type"),
])
def test_bad_input_names_the_field_in_the_users_language(rlogin, query, status, field):
    c = rlogin("leadership")
    zh = expect_error(c.get(f"/api/v1/reports/sla?{query}"), status, field)
    assert re.search(r"[\u4e00-\u9fff]", zh["message"]), zh
    en = expect_error(c.get(f"/api/v1/reports/sla?{query}&lang=en"), status, field)
    assert not re.search(r"[\u4e00-\u9fff]", en["message"]) and en["message"] != zh["message"]


@pytest.mark.parametrize("query, field", [
    ("weights=sign_off_rate:0.5,close_rate:0.4", "weights"),
    ("weights=nonsense", "weights"),
    ("weights=speed:1", "weights"),
    ("month=2025-3", "month"),
])
def test_bad_ranking_weights_and_months(rlogin, query, field):
    body = expect_error(rlogin("admin").get(f"/api/v1/reports/ranking?{query}&lang=en"), 400, field)
    assert body["message"]


def test_bad_measure_table_and_paging(rlogin):
    admin = rlogin("admin")
    expect_error(admin.get("/api/v1/reports/incidents?measure=bogus"), 400, "measure")
    expect_error(admin.get("/api/v1/reports/incidents?measure=outcome:bogus"), 400, "measure")
    expect_error(admin.get("/api/v1/reports/incidents?limit=0"), 400, "limit")
    expect_error(admin.get("/api/v1/reports/export.csv?table=users"), 400, "table")
    expect_error(admin.get("/api/v1/reports/trends?months=0"), 400, "months")


def test_the_weights_file_must_sum_to_one():
    with pytest.raises(rk.RankingError, match="sum to 1"):
        rk.parse_weights({"version": "t", "weights": {"sign_off_rate": 0.5, "close_rate": 0.4}})
    with pytest.raises(rk.RankingError, match="unknown measure"):
        rk.parse_weights({"version": "t", "weights": {"speed": 1.0}})
    with pytest.raises(rk.RankingError, match="version"):
        rk.parse_weights({"weights": {"sign_off_rate": 1.0}})
    w = rk.load_weights()
    assert w.version and abs(sum(w.parts.values()) - 1) < 1e-9 and w.stars(100) == 5.0 and w.stars(50) == 0.0


def test_a_chief_sees_their_station_with_the_county_and_no_other(rlogin, small_world):
    w = small_world
    chief = rlogin("chief")
    rep = chief.get(f"/api/v1/reports/sla?{MARCH}").json()
    assert {r["organisation_id"] for r in rep["rows"]} == {w.station_a}
    assert rep["county"]["legs"] == 6  # the county for comparison
    assert {r["key"] for r in chief.get(f"/api/v1/reports/arrivals?{MARCH}").json()["by_organisation"]} == {
        str(w.station_a)}
    assert all(r["organisation_id"] == w.station_a
               for r in chief.get(f"/api/v1/reports/overdue?{MARCH}").json()["rows"])
    for path in ("sla", "arrivals", "outcomes", "overdue", "grids", "incidents", "export.xlsx"):
        expect_error(chief.get(f"/api/v1/reports/{path}?{MARCH}&organisation={w.station_b}"), 403, "organisation")
    expect_error(chief.get(f"/api/v1/reports/sla?{MARCH}&organisation=R-B-ST"), 403, "organisation")
    # the incidents behind a figure: their station's only
    all_ = chief.get(f"/api/v1/reports/incidents?{MARCH}").json()
    assert all_["total"] == 4


def test_leadership_reads_everything_and_writes_nothing(rlogin, small_world):
    lead = rlogin("leadership")
    rep = lead.get(f"/api/v1/reports/sla?{MARCH}&organisation=R-B-ST").json()
    assert {r["organisation_id"] for r in rep["rows"]} == {small_world.station_b}
    assert lead.get("/api/v1/dispatch/board").status_code == 200
    expect_error(lead.post("/api/v1/dispatch/incidents", json={
        "channel": "110", "type": "theft", "location": {"type": "Point", "coordinates": list((117.7, 36.9))}}),
        403, "role")
    expect_error(lead.post("/api/v1/grids", json={"type": "Feature", "geometry": None, "properties": {}}), 403)
    me = lead.get("/api/v1/auth/me").json()
    assert me["role"] == "leadership"
    # other roles do not read the reports
    for role in ("dispatcher", "viewer", "duty_officer"):
        expect_error(rlogin(role).get(f"/api/v1/reports/sla?{MARCH}"), 403, "role")


# --- exports and the CLI -------------------------------------------------------------------------------

def test_xlsx_export_has_real_numbers_and_dates_and_the_apis_values(rlogin, rconn, small_world):
    c = rlogin("leadership")
    api = c.get(f"/api/v1/reports/sla?{MARCH}").json()
    r = c.get(f"/api/v1/reports/export.xlsx?{MARCH}")
    assert r.status_code == 200 and "spreadsheetml" in r.headers["Content-Type"]
    assert "attachment" in r.headers["Content-Disposition"]
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames[:5] == ["SLA 及时率", "超期警单", "到场时间", "处置结果", "满天星排名"]
    ws = wb["SLA 及时率"]
    head = [x.value for x in ws[1]]
    assert head[:4] == ["月份", "单位代码", "单位", "警单数"] and "签收及时率" in head
    rows = [dict(zip(head, [x.value for x in row], strict=True)) for row in ws.iter_rows(min_row=2)]
    a = next(x for x in rows if x["单位代码"] == "R-A-ST")
    want = _row(api["rows"], small_world.station_a)
    assert isinstance(a["月份"], datetime) and (a["月份"].year, a["月份"].month) == (2025, 3)
    assert a["警单数"] == want["legs"] and isinstance(a["警单数"], int)
    assert a["签收及时率"] == want["sign_off_rate"] and isinstance(a["签收及时率"], float)
    county = rows[-1]
    assert county["单位"] == "全县" and county["警单数"] == api["county"]["legs"]
    od = wb["超期警单"]
    due = [x.value for x in od[2]][4]
    assert isinstance(due, datetime) and due == datetime(2025, 3, 10, 13, 1, 30)  # Beijing time
    rank = wb["满天星排名"]
    rhead = [x.value for x in rank[1]]
    first = dict(zip(rhead, [x.value for x in rank[2]], strict=True))
    assert first["排名"] == 1 and first["单位代码"] == "R-B-ST" and first["得分"] == 85.0 and first["星级"] == 1.5
    arr = wb["到场时间"]
    assert any(row[2].value == "城区道路" and row[4].value == 800.0 for row in arr.iter_rows(min_row=2))
    # English headers for an English reader; the export is audited
    en = openpyxl.load_workbook(io.BytesIO(c.get(f"/api/v1/reports/export.xlsx?{MARCH}&lang=en").content))
    assert [x.value for x in en["SLA"][1]][:3] == ["Month", "Code", "Organisation"]
    n = rconn.execute("SELECT count(*) AS n FROM audit_log WHERE actor = 't_leadership' AND action = 'export' "
                      "AND entity = 'reports' AND entity_id = 'xlsx'").fetchone()["n"]
    assert n >= 2


def test_csv_export_utf8_with_bom_and_audited(rlogin, rconn):
    c = rlogin("admin")
    r = c.get(f"/api/v1/reports/export.csv?table=overdue&{MARCH}")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")
    lines = r.content.decode("utf-8-sig").splitlines()
    assert lines[0].split(",") == ["警单编号", "警情编号", "单位", "时限", "到期时间", "超期（秒）"]
    assert len(lines) == 4 and "2025-03-10 13:01:30" in r.content.decode("utf-8-sig")
    sla = c.get(f"/api/v1/reports/export.csv?table=sla&{MARCH}").content.decode("utf-8-sig").splitlines()
    assert sla[-1].startswith(",,全县,6,4,6,")
    assert rconn.execute("SELECT count(*) AS n FROM audit_log WHERE actor = 't_admin' AND action = 'export' "
                         "AND entity_id = 'overdue'").fetchone()["n"] >= 1


def test_cli_writes_the_monthly_workbook(reports_db, tmp_path, rlogin, rconn):
    from gisapp.cli import main

    out = tmp_path / "m.xlsx"
    res = CliRunner().invoke(main, ["report", "monthly", "--month", "2025-03", "--out", str(out),
                                    "--organisation", "R-A-ST"], env={"GISAPP_DATABASE_URL": reports_db})
    assert res.exit_code == 0, res.output
    wb = openpyxl.load_workbook(out)
    ws = wb["SLA 及时率"]
    codes = [row[1].value for row in ws.iter_rows(min_row=2)]
    assert codes == ["R-A-ST", ""] or codes == ["R-A-ST", None]
    assert rconn.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'export' AND client = 'cli'"
                         ).fetchone()["n"] >= 1
    bad = CliRunner().invoke(main, ["report", "monthly", "--month", "2025-13", "--out", str(out)],
                             env={"GISAPP_DATABASE_URL": reports_db})
    assert bad.exit_code != 0 and "month" in bad.output


# --- the demo year recomputed independently -----------------------------------------------------------

def test_the_demo_months_figures_match_an_independent_pandas_recomputation(demo_login, demo_conn, demo_app):
    from support import reports_pandas as rp

    from gisapp.dispatch.rules import load_rules

    last = demo_conn.execute("SELECT max(dispatched_at) AS b FROM dispatch_leg").fetchone()["b"]
    assert last is not None, "the demo has no dispatch history"
    prev = (last.astimezone(rp_tz()).replace(day=1) - timedelta(days=1))
    month = f"{prev.year:04d}-{prev.month:02d}"  # the last whole month of the demo
    c = demo_login("leadership")
    api = {k: c.get(f"/api/v1/reports/{k}?month={month}").json() for k in ("sla", "arrivals", "outcomes")}
    assert api["sla"]["county"]["legs"] > 2000
    s = demo_app.extensions["gisapp.settings"]
    rules = load_rules(s)
    p = api["sla"]["period"]
    want = rp.recompute(demo_conn, datetime.fromisoformat(p["start"]), datetime.fromisoformat(p["end"]),
                        datetime.fromisoformat(p["as_of"]), s.local_timezone,
                        {"sign_off": s.sign_off_sla_s, "first_feedback": s.first_feedback_sla_s,
                         "close": s.close_sla_s}, rules.types_of_category("accident"), rules.mediation_outcome)
    assert rp.differences(api, want) == []
    # and the brief's rates, roughly, for the month
    assert 0.9 < api["sla"]["county"]["sign_off_rate"] < 0.99
    assert 0.75 < api["outcomes"]["mediation_rate"] < 0.92


def rp_tz():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Shanghai")


def test_demo_accounts_include_the_leader(server_url, demo_template, monkeypatch):
    from support.database import copy_database

    from gisapp.cli import main
    from gisapp.core import db

    url = copy_database(server_url, demo_template, "gisapp_test_demo_leader")
    monkeypatch.setenv("GISAPP_DATABASE_URL", url)
    r = CliRunner().invoke(main, ["user", "demo-accounts"])
    assert r.exit_code == 0, r.output
    with db.connect(url) as conn:
        row = conn.execute("SELECT role, station_id FROM app_user WHERE username = 'leader'").fetchone()
    assert row["role"] == "leadership" and row["station_id"] is None
    assert "leader" in r.output


def test_a_weights_file_not_summing_to_one_stops_the_service(reports_db, tmp_path):
    from support.dispatch import TEST_CALLER_KEY

    from gisapp.web import create_app

    bad = tmp_path / "ranking.toml"
    bad.write_text('version = "bad"\n[weights]\nsign_off_rate = 0.6\nclose_rate = 0.6\n', encoding="utf-8")
    with pytest.raises(rk.RankingError, match=r"sum to 1, they sum to 1\.2"):
        create_app({"database_url": reports_db, "secret_key": "x", "ranking_path": str(bad),
                    "caller_key": TEST_CALLER_KEY})


def test_a_leg_carries_its_incidents_type_channel_and_road_area(reports_db, make_leg):
    """Migration 0140: the copies on dispatch_leg follow the incident (written, re-typed, moved,
    merged); the reports count from them."""
    with db.connect(reports_db) as c:  # rolled back: the shared small world stays as it was
        org = c.execute("SELECT id FROM organisation WHERE kind = 'station' ORDER BY id LIMIT 1").fetchone()["id"]
        inc, lid = make_leg(c, org, datetime(2020, 5, 1, 2, 0, tzinfo=UTC), (117.7, 36.9), "theft", "110", so=30)
        other, _ = make_leg(c, org, datetime(2020, 5, 1, 3, 0, tzinfo=UTC), (117.7, 36.9), "traffic_accident", "122", so=30)

        def copy():
            return c.execute("SELECT l.incident_type, l.incident_channel, l.incident_road_area = i.road_area AS area "
                             "FROM dispatch_leg l JOIN incident i ON i.id = l.incident_id WHERE l.id = %s",
                             [lid]).fetchone()

        assert copy() == {"incident_type": "theft", "incident_channel": "110", "area": True}
        c.execute("UPDATE incident SET type = 'fight', channel = '122' WHERE id = %s", [inc])
        assert copy() == {"incident_type": "fight", "incident_channel": "122", "area": True}
        c.execute("UPDATE incident SET geom = ST_SetSRID(ST_MakePoint(117.75, 36.91), 4326) WHERE id = %s", [inc])
        assert copy()["area"] is True
        c.execute("UPDATE dispatch_leg SET incident_id = %s WHERE id = %s", [other, lid])  # a merge moves the leg
        assert copy() == {"incident_type": "traffic_accident", "incident_channel": "122", "area": True}
        c.rollback()
