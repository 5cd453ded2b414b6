"""The report tables as an XLSX workbook (one sheet per table) and as CSV.

Headers in the reader's language (Chinese by default), real numbers, real dates and datetimes
in local (Beijing) time: a spreadsheet sorts and sums them without conversion.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from . import figures, ranking
from .filters import Filters

TABLES = ("sla", "overdue", "arrivals", "outcomes", "ranking")
SHEETS = {"sla": ("SLA 及时率", "SLA"), "overdue": ("超期警单", "Overdue"), "arrivals": ("到场时间", "Arrivals"),
          "outcomes": ("处置结果", "Outcomes"), "ranking": ("满天星排名", "Ranking")}
CLOCKS = {"sign_off": ("签收", "Sign-off"), "first_feedback": ("首次反馈", "First feedback"), "close": ("结案", "Closure")}


@dataclass
class Column:
    key: str
    zh: str
    en: str
    kind: str = "text"  # text | int | float | rate | seconds | datetime | month


@dataclass
class Table:
    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]


def _c(key, zh, en, kind="text") -> Column:
    return Column(key, zh, en, kind)


def _name(r: dict, lang: str, zh="name", en="name_en") -> str:
    return (r.get(en) or r.get(zh)) if lang == "en" else r.get(zh)


def _local(at: str | datetime | None, tz: str) -> datetime | None:
    if at is None:
        return None
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return at.astimezone(ZoneInfo(tz)).replace(tzinfo=None)


def sla_table(conn, settings, f: Filters, lang: str) -> Table:
    rep = figures.sla_report(conn, settings, f)
    cols = [_c("month", "月份", "Month", "month"), _c("code", "单位代码", "Code"), _c("name", "单位", "Organisation"),
            _c("legs", "警单数", "Legs", "int")]
    for c, (zh, en) in CLOCKS.items():
        cols += [_c(f"{c}_met", f"{zh}及时数", f"{en} met", "int"),
                 _c(f"{c}_decided", f"{zh}应考核数", f"{en} decided", "int"),
                 _c(f"{c}_rate", f"{zh}及时率", f"{en} rate", "rate")]
    cols.append(_c("overdue_now", "当前超期数", "Overdue now", "int"))
    rows = [dict(r, name=_name(r, lang)) for r in rep["rows"]]
    county = dict(rep["county"], code="", name=_name(rep["county"], lang))
    return Table("sla", SHEETS["sla"][lang == "en"], cols, rows + [county])


def overdue_table(conn, settings, f: Filters, lang: str) -> Table:
    rep = figures.overdue_report(conn, settings, f)
    cols = [_c("leg_id", "警单编号", "Leg", "int"), _c("code", "警情编号", "Incident"),
            _c("organisation", "单位", "Organisation"), _c("clock", "时限", "Clock"),
            _c("due_at", "到期时间", "Due at", "datetime"), _c("late_s", "超期（秒）", "Late (s)", "seconds")]
    rows = [dict(r, organisation=_name(r, lang, "organisation", "organisation_en"),
                 clock=CLOCKS[r["clock"]][lang == "en"], due_at=_local(r["due_at"], f.tz)) for r in rep["rows"]]
    return Table("overdue", SHEETS["overdue"][lang == "en"], cols, rows)


def arrivals_table(conn, settings, f: Filters, lang: str) -> Table:
    rep = figures.arrivals_report(conn, settings, f)
    dims = {"by_organisation": ("单位", "Organisation"), "by_channel": ("报警渠道", "Channel"),
            "by_type": ("警情类型", "Type"), "by_area": ("道路", "Roads")}
    cols = [_c("dimension", "分组", "By"), _c("key", "代码", "Key"), _c("label", "名称", "Name"),
            _c("n", "到场警单数", "Arrivals", "int"), _c("mean_s", "平均（秒）", "Mean (s)", "seconds"),
            _c("p50_s", "中位数（秒）", "p50 (s)", "seconds"), _c("p90_s", "90分位（秒）", "p90 (s)", "seconds")]
    rows = []
    for dim, names in dims.items():
        for r in rep[dim]:
            rows.append(dict(r, dimension=names[lang == "en"], label=_name(r, lang, "label", "label_en")))
    if rep["county"]:
        rows.append(dict(rep["county"], dimension="全县" if lang != "en" else "County",
                         label=_name(rep["county"], lang, "label", "label_en")))
    return Table("arrivals", SHEETS["arrivals"][lang == "en"], cols, rows)


def outcomes_table(conn, settings, f: Filters, lang: str) -> Table:
    rep = figures.outcomes_report(conn, settings, f)
    en = lang == "en"
    cols = [_c("section", "类别", "Section"), _c("code", "代码", "Code"), _c("label", "名称", "Name"),
            _c("n", "数量", "Count", "int"), _c("rate", "比率", "Rate", "rate")]
    summary = "Summary" if en else "汇总"
    rows = [
        {"section": summary, "code": "accident_incidents", "label": "Accident incidents" if en else "事故警情",
         "n": rep["accident_incidents"], "rate": None},
        {"section": summary, "code": "station_share", "label": "Stations' share" if en else "派出所承办比例",
         "n": rep["accident_incidents_station"], "rate": rep["station_share"]},
        {"section": summary, "code": "accident_section_share",
         "label": "Accident section's share" if en else "事故科承办比例",
         "n": rep["accident_incidents_section"], "rate": rep["accident_section_share"]},
        {"section": summary, "code": "mediation_rate", "label": "On-site mediation" if en else "现场调解率",
         "n": rep["mediated"], "rate": rep["mediation_rate"]},
    ]
    for key, zh, en_ in (("outcomes", "警单处置结果", "Legs closed"), ("closed_without_dispatch", "未派警结案",
                                                                        "Closed without dispatch")):
        for r in rep[key]:
            rows.append({"section": en_ if en else zh, "code": r["code"], "label": _name(r, lang, "label", "label_en"),
                         "n": r["n"], "rate": None})
    return Table("outcomes", SHEETS["outcomes"][en], cols, rows)


def ranking_table(conn, settings, f: Filters, lang: str, weights: ranking.Weights | None = None) -> Table:
    month = f"{f.last_day.year:04d}-{f.last_day.month:02d}"
    rep = ranking.ranking(conn, settings, f, month, weights or ranking.load_weights(settings))
    cols = [_c("month", "月份", "Month", "month"), _c("rank", "排名", "Rank", "int"),
            _c("rank_change", "名次变化", "Change", "int"), _c("code", "单位代码", "Code"),
            _c("name", "单位", "Station"), _c("score", "得分", "Score", "float"), _c("stars", "星级", "Stars", "float")]
    for m, (zh, en) in ranking.LABELS.items():
        cols.append(_c(m, zh, en, "rate"))
    rows = []
    for r in rep["rows"]:
        row = dict(r, month=month, name=_name(r, lang))
        for p in r["parts"]:
            row[p["measure"]] = p["value"]
        rows.append(row)
    return Table("ranking", SHEETS["ranking"][lang == "en"], cols, rows)


BUILDERS = {"sla": sla_table, "overdue": overdue_table, "arrivals": arrivals_table, "outcomes": outcomes_table,
            "ranking": ranking_table}


def tables(conn: psycopg.Connection, settings, f: Filters, lang: str, names=TABLES) -> list[Table]:
    return [BUILDERS[n](conn, settings, f, lang) for n in names]


def _month_date(v: str | None) -> date | None:
    return date(int(v[:4]), int(v[5:7]), 1) if v else None


def xlsx(conn: psycopg.Connection, settings, f: Filters, lang: str = "zh") -> bytes:
    """The workbook: one sheet per table (TABLES), a first sheet naming the period and filters."""
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
                                   "remove_timezone": True})
    bold = wb.add_format({"bold": True, "bg_color": "#DDE6F0", "border": 1, "text_wrap": True})
    fmt = {"datetime": wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
           "month": wb.add_format({"num_format": "yyyy-mm"}), "rate": wb.add_format({"num_format": "0.00%"}),
           "seconds": wb.add_format({"num_format": "0.0"}), "float": wb.add_format({"num_format": "0.00"}),
           "date": wb.add_format({"num_format": "yyyy-mm-dd"})}
    for t in tables(conn, settings, f, lang):
        ws = wb.add_worksheet(t.title)
        for j, c in enumerate(t.columns):
            ws.write_string(0, j, c.en if lang == "en" else c.zh, bold)
            ws.set_column(j, j, 22 if c.kind in ("datetime", "text") else 14)
        for i, r in enumerate(t.rows, start=1):
            for j, c in enumerate(t.columns):
                v = r.get(c.key)
                if v is None:
                    ws.write_blank(i, j, None)
                elif c.kind == "month":
                    ws.write_datetime(i, j, datetime.combine(_month_date(v), datetime.min.time()), fmt["month"])
                elif c.kind == "datetime":
                    ws.write_datetime(i, j, v, fmt["datetime"])
                elif c.kind in ("int", "float", "rate", "seconds"):
                    ws.write_number(i, j, v, fmt.get(c.kind))
                else:
                    ws.write_string(i, j, str(v))
        ws.freeze_panes(1, 0)
    info = wb.add_worksheet("说明" if lang != "en" else "About")
    en = lang == "en"
    lines = [("From" if en else "起始日期", datetime.combine(f.first_day, datetime.min.time()), "date"),
             ("To (inclusive)" if en else "截止日期（含）", datetime.combine(f.last_day, datetime.min.time()), "date"),
             ("Time zone" if en else "时区", f.tz, None),
             ("Organisation" if en else "单位", f.organisation_id, None),
             ("Channel" if en else "报警渠道", f.channel, None), ("Type" if en else "警情类型", f.type, None),
             ("Computed at" if en else "统计时间", _local(f.as_of, f.tz), "datetime")]
    for i, (k, v, kind) in enumerate(lines):
        info.write_string(i, 0, k, bold)
        if v is None:
            info.write_blank(i, 1, None)
        elif kind:
            info.write_datetime(i, 1, v, fmt[kind])
        elif isinstance(v, int):
            info.write_number(i, 1, v)
        else:
            info.write_string(i, 1, str(v))
    info.set_column(0, 1, 24)
    wb.close()
    return buf.getvalue()


def _csv_cell(v: Any, kind: str) -> Any:
    if v is None:
        return ""
    if kind == "datetime":
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + v  # a spreadsheet does not run it as a formula
    return v


def csv_bytes(conn: psycopg.Connection, settings, f: Filters, table: str, lang: str = "zh") -> bytes:
    """One table as CSV: UTF-8 with a byte-order mark (Excel reads Chinese), local times."""
    t = BUILDERS[table](conn, settings, f, lang)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([c.en if lang == "en" else c.zh for c in t.columns])
    for r in t.rows:
        w.writerow([_csv_cell(r.get(c.key), c.kind) for c in t.columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
