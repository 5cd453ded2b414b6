"""`gisapp report monthly`: the month's report workbook for a scheduled job (issue 14)."""

from __future__ import annotations

import click

from gisapp.core import db
from gisapp.core.config import Settings


@click.group("report")
def report_group() -> None:
    """Reports: SLA, arrivals, outcomes, the 满天星 ranking (gisapp.reports)."""


@report_group.command("monthly")
@click.option("--month", required=True, help="the local (Beijing) month, YYYY-MM")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, writable=True),
              help="the XLSX file to write")
@click.option("--organisation", default=None, help="organisation code or id (default: every organisation)")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", help="language of the headers")
def monthly(month: str, out: str, organisation: str | None, lang: str) -> None:
    """Write the month's report (SLA, overdue, arrivals, outcomes, ranking) as an XLSX workbook; audited."""
    from gisapp.core.audit import audit
    from gisapp.core.errors import GisappError
    from gisapp.reports import export
    from gisapp.reports.filters import parse_filters

    s = Settings.from_env()
    with db.connect(s.database_url) as conn:
        try:
            from gisapp.reports.figures import tune

            tune(conn)
            f = parse_filters(conn, s, None, {"month": month, "organisation": organisation})
        except GisappError as e:
            raise click.ClickException(f"{e.field}: {e.message('en')}") from None
        body = export.xlsx(conn, s, f, lang)
        with open(out, "wb") as fh:
            fh.write(body)
        audit(conn, None, "export", "reports", "xlsx", {"format": "xlsx", "via": "cli", "month": month,
                                                        **f.filters_json(), "bytes": len(body), "file": out},
              client="cli")
        conn.commit()
    click.echo(f"wrote {out} ({len(body)} bytes): report of {month}"
               + (f" for organisation {f.organisation_id}" if f.organisation_id else ""))
