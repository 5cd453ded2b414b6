"""The `gisapp` command line: database, demo data, users, statistics."""

from __future__ import annotations

import json

import click

from gisapp.core import db
from gisapp.core.config import Settings

from .io import export_cmd, import_cmd
from .jobs import jobs_group
from .plan import plan_group
from .replay import replay_cmd, replay_sweep_cmd
from .report import report_group
from .routing import import_osm_command, routing_group
from .simulate import simulate_live


def _settings() -> Settings:
    return Settings.from_env()


@click.group()
def main() -> None:
    """Zouping police situational-awareness map server."""


@main.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@click.option("--target", type=int, default=None, help="stop at this migration version")
def db_upgrade(target: int | None) -> None:
    """Apply pending SQL migrations (numbered files in gisapp/core/migrations)."""
    applied = db.upgrade(_settings().database_url, target, log=lambda m: click.echo(m, err=True))
    click.echo(f"schema up to date ({len(applied)} applied)")


@db_group.command("version")
def db_version() -> None:
    """Print the applied schema version."""
    with db.connect(_settings().database_url) as conn:
        click.echo(db.current_version(conn))


@main.command("load-demo")
@click.option("--seed", type=int, default=None, help="generator seed (default: the parameter file's)")
@click.option("--if-empty", is_flag=True, help="do nothing when the demo is already loaded")
@click.option("--params", type=click.Path(exists=True, dir_okay=False), default=None,
              help="generator parameter file (default geodata/demo_params.toml; with --region "
                   "geodata/region_params.toml)")
@click.option("--region", default=None, help="a region of several counties instead of Zouping: binzhou, shandong")
@click.option("--history/--no-history", default=None,
              help="incident history (the Zouping demo: on; regions: off, not generated yet)")
@click.option("--database", default=None,
              help="with --region: build into this database on the same server, reused while its "
                   "fingerprint matches (e.g. gisapp_region_shandong)")
@click.option("--processes", type=int, default=None, help="with --region: parallel processes (default: cores)")
def load_demo(seed: int | None, if_empty: bool, params: str | None, region: str | None, history: bool | None,
              database: str | None, processes: int | None) -> None:
    """Load the Zouping demo (or a region): the real outlines and the generated world."""
    from geodata import demo

    s = _settings()
    if region is not None or database is not None:
        _load_region(s, region, params, seed, bool(history), database, processes)
        return
    if history is False:
        raise click.UsageError("--no-history applies to --region only (the Zouping demo always has its history)")
    with db.connect(s.database_url) as conn:
        if if_empty and demo.is_loaded(conn):
            click.echo("demo already loaded", err=True)
            return
        summary = demo.load_demo(conn, seed=seed, params_path=params, settings=s,
                                 log=lambda m: click.echo(m, err=True))
        conn.commit()
        try:  # static coverage (issue 4's routing) follows the new road network when available
            from routing.coverage import refresh_static
        except ImportError:
            refresh_static = None
        if refresh_static is not None:
            refresh_static(conn, s)
            conn.commit()
            click.echo("refreshed the static road coverage", err=True)
    click.echo(json.dumps(summary, ensure_ascii=False))


def _load_region(s: Settings, region: str | None, params: str | None, seed: int | None, history: bool,
                 database: str | None, processes: int | None) -> None:
    """``load-demo --region``: into the configured database, or a cached one of its own (--database)."""
    from geodata import region as regions
    from gisapp.core.errors import GisappError

    if region is None:
        raise click.UsageError("--database needs --region")
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    try:
        regions.region_counties(region)
        p = regions.load_region_params(params)
        if seed is not None:
            p["seed"] = int(seed)
        if history:
            raise click.UsageError("regions are generated without incident history: use --no-history")
        if database is not None:
            url, summary = regions.ensure_region_database(s.database_url, region, database, p, s, processes, log)
            click.echo(json.dumps(summary or {"region": region, "database": database, "reused": True},
                                  ensure_ascii=False))
            return
        with db.connect(s.database_url) as conn:
            summary = regions.load_region(conn, region, p, s, processes, log=log)
            conn.commit()
            from routing.coverage import refresh_static  # the app's coverage follows the new network

            refresh_static(conn, s)
            conn.commit()
            log("refreshed the static road coverage")
    except GisappError as exc:
        click.echo(f"error: {exc.message('en')}", err=True)
        raise SystemExit(2) from exc
    click.echo(json.dumps(summary, ensure_ascii=False))


@main.command("stats")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def stats(as_json: bool) -> None:
    """Counts of every layer and road km by class."""
    from gisapp.core.stats import layer_stats

    with db.connect(_settings().database_url) as conn:
        out = layer_stats(conn)
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        for k, v in out["counts"].items():
            click.echo(f"{k:20s} {v}")
        for k, v in out["road_km_by_class"].items():
            click.echo(f"road km {k:12s} {v:.1f}")


@main.group("user")
def user_group() -> None:
    """Accounts and tokens."""


@user_group.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(
    ["admin", "dispatcher", "planner", "chief", "duty_officer", "viewer", "device", "gateway", "leadership"]))
@click.option("--station", default=None,
              help="organisation code (required for a chief and a duty officer: the organisation they work for)")
@click.option("--unit", "units", multiple=True,
              help="unit code or id: a device's one unit (required), a gateway's units (repeat --unit)")
@click.option("--password", default=None, help="password (prompted when omitted)")
@click.option("--display-name", default="")
def user_create(username: str, role: str, station: str | None, units: tuple[str, ...], password: str | None,
                display_name: str) -> None:
    """Create a user (a device names its unit with --unit; a gateway lists its units, --unit repeated)."""
    from gisapp.core.accounts import create_user

    if password is None:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    with db.connect(_settings().database_url) as conn:
        station_id = None
        if station:
            row = conn.execute("SELECT id FROM organisation WHERE code = %s", [station]).fetchone()
            if row is None:
                raise click.ClickException(f"no organisation with code {station!r}")
            station_id = row["id"]
        unit_ids = []
        for u in units:
            as_id = int(u) if u.isdigit() and len(u) <= 18 else None
            row = conn.execute("SELECT id FROM unit WHERE code = %s OR id = %s ORDER BY code = %s DESC LIMIT 1",
                               [u, as_id, u]).fetchone()
            if row is None:
                raise click.ClickException(f"no unit with code or id {u!r}")
            unit_ids.append(row["id"])
        if role == "device" and len(unit_ids) != 1:
            raise click.ClickException("a device account names its one unit: --unit CODE")
        if role not in ("device", "gateway") and unit_ids:
            raise click.ClickException("--unit is for device and gateway accounts")
        try:
            user = create_user(conn, username, password, role, station_id, display_name,
                               unit_id=unit_ids[0] if role == "device" else None,
                               unit_ids=unit_ids if role == "gateway" else None)
        except Exception as e:  # GisappError carries field and reason
            raise click.ClickException(getattr(e, "reason", str(e))) from None
        conn.commit()
    click.echo(f"created {user['username']} ({user['role']})")


@user_group.command("token")
@click.argument("username")
@click.option("--name", default="cli", help="a label for the token")
def user_token(username: str, name: str) -> None:
    """Create an API token for a user and print it (shown once)."""
    from gisapp.core.accounts import create_token

    with db.connect(_settings().database_url) as conn:
        row = conn.execute("SELECT id FROM app_user WHERE username = %s", [username]).fetchone()
        if row is None:
            raise click.ClickException(f"no user {username!r}")
        tok = create_token(conn, row["id"], name)
        conn.commit()
    click.echo(tok["token"])


DEMO_PASSWORD = "zouping-demo"


@user_group.command("demo-accounts")
def demo_accounts() -> None:
    """Create the demo accounts (one per role) if missing and print how to log in."""
    from gisapp.core.accounts import create_user

    with db.connect(_settings().database_url) as conn:
        station = conn.execute(
            "SELECT id, name FROM organisation WHERE kind = 'station' ORDER BY code LIMIT 1").fetchone()
        wanted = [("admin", "admin", None), ("dispatcher", "dispatcher", None), ("planner", "planner", None),
                  ("viewer", "viewer", None),
                  ("leader", "leadership", None)]  # issue 14: command centre / bureau leadership, read-only
        if station:
            wanted.append(("chief", "chief", station["id"]))
            wanted.append(("duty", "duty_officer", station["id"]))  # the chief's station's desk
        accident = conn.execute(
            "SELECT id, name FROM organisation WHERE kind = 'accident_section' ORDER BY code LIMIT 1").fetchone()
        if accident:
            wanted.append(("duty_accident", "duty_officer", accident["id"]))  # the accident section's desk
        # a unit terminal is bound to one unit: the first unit of the chief's station
        unit = conn.execute(
            "SELECT id, code FROM unit WHERE organisation_id = %s ORDER BY code LIMIT 1",
            [station["id"]]).fetchone() if station else None
        made = []
        for username, role, st in wanted:
            if conn.execute("SELECT 1 FROM app_user WHERE username = %s", [username]).fetchone():
                continue
            create_user(conn, username, DEMO_PASSWORD, role, st, f"demo {role}")
            made.append(username)
        if unit and not conn.execute("SELECT 1 FROM app_user WHERE username = 'device'").fetchone():
            create_user(conn, "device", DEMO_PASSWORD, "device", None, "demo device", unit_id=unit["id"])
            made.append("device")
        conn.commit()
    click.echo("demo accounts (password for all: {}){}".format(DEMO_PASSWORD, f", created {made}" if made else ""))
    click.echo("  admin, dispatcher, planner, viewer, leader (leadership: every organisation's reports, read-only)" + (f", chief and duty (of {station['name']})" if station else "")
               + (f", duty_accident (of {accident['name']})" if accident else "")
               + (f", device (unit {unit['code']})" if unit else ""))
    click.echo("  log in at /login, or: curl -c c.txt -H 'Content-Type: application/json' "
               f"-d '{{\"username\":\"dispatcher\",\"password\":\"{DEMO_PASSWORD}\"}}' http://127.0.0.1:5000/api/v1/auth/login")


@main.group("caller-key")
def caller_key_group() -> None:
    """The key that encrypts full caller numbers at rest (call-back; gisapp.core.callerkey)."""


@caller_key_group.command("init")
def caller_key_init() -> None:
    """Create the key file (var/caller_key, or caller_key_file) when there is no key yet."""
    from gisapp.core import callerkey

    path, created = callerkey.init_key_file(_settings())
    if created:
        click.echo(f"caller key written to {path} (owner-only); keep a copy off this machine", err=True)


@caller_key_group.command("rotate")
def caller_key_rotate() -> None:
    """Make a new key and re-encrypt every stored caller number with it (one transaction).

    The old key is kept in <caller_key_file>.previous; delete that file once every server runs
    with the new key (numbers are re-encrypted by then)."""
    from gisapp.core import callerkey

    s = _settings()
    try:
        with db.connect(s.database_url) as conn:
            n = callerkey.rotate(conn, s)
            conn.commit()
    except callerkey.CallerKeyError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"new caller key in {callerkey.key_file(s)}; {n} numbers re-encrypted; "
               f"the old key is in {callerkey.key_file(s)}.previous until you delete it")


@caller_key_group.command("reencrypt")
def caller_key_reencrypt() -> None:
    """Re-encrypt every stored caller number under the current key (after setting a new
    GISAPP_CALLER_KEY with the old one as GISAPP_CALLER_KEY_PREVIOUS)."""
    from gisapp.core import callerkey

    s = _settings()
    try:
        with db.connect(s.database_url) as conn:
            n = callerkey.reencrypt(conn, s)
            conn.commit()
    except callerkey.CallerKeyError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{n} numbers re-encrypted")


@main.command("serve")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
def serve(host: str, port: int) -> None:
    """Serve with the development server (use `make run` for gunicorn)."""
    from gisapp.web import create_app

    create_app().run(host=host, port=port, threaded=True)


for _cmd in (jobs_group, import_cmd, export_cmd, import_osm_command, routing_group, plan_group, simulate_live, report_group,
             replay_cmd, replay_sweep_cmd):
    main.add_command(_cmd)
