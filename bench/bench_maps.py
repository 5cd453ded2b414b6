#!/usr/bin/env python3
"""Benchmark the maps: road vector tiles against tipg, and the coverage page against a GeoJSON page.

1. Road tiles at zooms 10-15 over the county, requested by 10 concurrent clients, from this
   service (gunicorn, as `make run` serves it) and from tipg (uvicorn) serving the same
   ``road_edge`` table from the same PostGIS, with the same worker count. Two passes over the
   same tile list: "cold" (this service's tile caches emptied and the server restarted) and
   "warm" (repeat visits, as when many dispatchers look at the same county). Requests per
   second and p50/p99 latency for each.
2. The coverage page in Debian's headless chromium with an empty browser cache: roads as
   vector tiles (the page as shipped) against the same page with the roads as one
   ``folium.GeoJson`` (``?roads=geojson``): bytes received until the map is idle, and time
   to load.

Its last line is exactly
``maps: tiles_rps_ratio_vs_tipg=<x> page_bytes_ratio_vs_geojson=<y> page_load_ratio_vs_geojson=<z>``
where x is this service's over tipg's requests per second over both passes, y the GeoJSON
page's bytes over the tile page's, and z the GeoJSON page's load time over the tile page's.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from gisapp.core import db  # noqa: E402
from gisapp.core.config import Settings, private_cluster_url  # noqa: E402

CLIENTS = 10
ZOOMS = range(10, 16)
MAX_TILES_PER_ZOOM = {10: 1000, 11: 1000, 12: 1000, 13: 200, 14: 250, 15: 300}
WORKERS = 2
SEED = 6
BENCH_USER = "bench_maps"
BENCH_PASSWORD = "bench-maps-password"
PAGE_RUNS = 3
VENV_BIN = Path(sys.executable).parent


def log(msg: str) -> None:
    print(msg, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=5).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def tcp_url(settings: Settings) -> str:
    """A password URL over TCP for tipg (asyncpg cannot use the private cluster's socket directory)."""
    url = os.environ.get("GISAPP_DATABASE_URL")
    if url:
        return url
    password = (ROOT / "var" / "pg_password").read_text().strip()
    port = parse_qs(urlsplit(private_cluster_url()).query)["port"][0]
    dbname = os.environ.get("GISAPP_PG_DB", "gisapp")
    return f"postgresql://gisapp:{quote(password)}@127.0.0.1:{port}/{dbname}"


def prepare(settings: Settings) -> dict:
    """Make sure the demo world, its coverage and a benchmark user are there; return facts."""
    from gisapp.core.accounts import create_user, set_password

    with db.connect(settings.database_url) as conn:
        if conn.execute("SELECT count(*) AS n FROM road_edge").fetchone()["n"] == 0:
            from geodata import demo

            log("loading the demo world ...")
            demo.load_demo(conn, settings=settings, log=log)
            conn.commit()
        if conn.execute("SELECT count(*) AS n FROM road_coverage").fetchone()["n"] == 0:
            try:
                from routing import coverage, get_router  # noqa: F401
            except ImportError:
                log("routing is not installed: the coverage page shows roads without response times")
            else:
                try:
                    coverage.refresh_static(conn, settings)
                    conn.commit()
                except Exception as e:  # noqa: BLE001 - the benchmark still runs without coverage
                    conn.rollback()
                    log(f"coverage refresh failed ({e}); continuing without response times")
        if conn.execute("SELECT 1 FROM app_user WHERE username = %s", [BENCH_USER]).fetchone():
            set_password(conn, BENCH_USER, BENCH_PASSWORD)
        else:
            create_user(conn, BENCH_USER, BENCH_PASSWORD, "admin", display_name="bench")
        conn.commit()
        facts = conn.execute(
            "SELECT count(*) AS edges, round(sum(length_m) / 1000) AS km FROM road_edge").fetchone()
        tiles = []
        for z in ZOOMS:
            rows = conn.execute(
                """WITH c AS (SELECT ST_Transform(ST_Union(geom), 3857) AS g FROM county),
                        r AS (SELECT floor((ST_XMin(g) + 20037508.342789244) / (40075016.68557849 / 2^%(z)s))::int AS x0,
                                     floor((ST_XMax(g) + 20037508.342789244) / (40075016.68557849 / 2^%(z)s))::int AS x1,
                                     floor((20037508.342789244 - ST_YMax(g)) / (40075016.68557849 / 2^%(z)s))::int AS y0,
                                     floor((20037508.342789244 - ST_YMin(g)) / (40075016.68557849 / 2^%(z)s))::int AS y1
                                FROM c)
                   SELECT x, y FROM r, c, generate_series(r.x0, r.x1) x, generate_series(r.y0, r.y1) y
                    WHERE ST_Intersects(ST_TileEnvelope(%(z)s, x, y), c.g) ORDER BY x, y""", {"z": z}).fetchall()
            cells = [(z, r["x"], r["y"]) for r in rows]
            random.Random(SEED + z).shuffle(cells)
            tiles += cells[: MAX_TILES_PER_ZOOM[z]]
        conn.execute("DELETE FROM tile_cache")
        conn.commit()
    return {"edges": facts["edges"], "km": float(facts["km"] or 0), "tiles": tiles}


class Server:
    """A server subprocess in its own process group."""

    def __init__(self, args: list[str], env: dict, health: str):
        self.args, self.env, self.health = args, env, health
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_http(self.health)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


def ours(settings: Settings, port: int) -> Server:
    env = dict(os.environ, GISAPP_DATABASE_URL=settings.database_url)
    args = [str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS), "--threads", "16",
            "--worker-class", "gthread", "--timeout", "120", "--log-level", "warning", "wsgi:app"]
    return Server(args, env, f"http://127.0.0.1:{port}/healthz")


def tipg(settings: Settings, port: int) -> Server:
    env = dict(os.environ, DATABASE_URL=tcp_url(settings), TIPG_DB_SCHEMAS='["public"]',
               TIPG_DB_TABLES='["public.road_edge"]', TIPG_DEBUG="FALSE")
    args = [str(VENV_BIN / "uvicorn"), "tipg.main:app", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(WORKERS), "--log-level", "warning", "--no-access-log"]
    return Server(args, env, f"http://127.0.0.1:{port}/collections")


def run_pass(urls: list[str], headers: dict | None = None) -> dict:
    """Fetch every URL once with CLIENTS concurrent keep-alive clients; return rps and latencies."""
    local = threading.local()
    lat: list[float] = []
    sizes: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()

    def fetch(url: str) -> None:
        sess = getattr(local, "s", None)
        if sess is None:
            sess = local.s = requests.Session()
            sess.headers.update(headers or {})
        t0 = time.perf_counter()
        r = sess.get(url, timeout=120)
        dt = time.perf_counter() - t0
        with lock:
            lat.append(dt)
            sizes.append(len(r.content))
            if r.status_code != 200:
                errors.append(f"{r.status_code} {url}")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as ex:
        list(ex.map(fetch, urls))
    wall = time.perf_counter() - t0
    lat.sort()
    return {"n": len(urls), "wall_s": wall, "rps": len(urls) / wall, "p50_ms": lat[len(lat) // 2] * 1000,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
            "mean_kb": statistics.mean(sizes) / 1024, "errors": errors}


def bench_token(settings: Settings) -> str:
    """A bearer token of the benchmark user (made by prepare)."""
    from gisapp.core.accounts import create_token

    with db.connect(settings.database_url) as conn:
        uid = conn.execute("SELECT id FROM app_user WHERE username = %s", [BENCH_USER]).fetchone()["id"]
        token = create_token(conn, uid, "bench-maps")["token"]
        conn.commit()
    return token


def bench_tiles(settings: Settings, tiles: list[tuple[int, int, int]]) -> float:
    p_ours, p_tipg = free_port(), free_port()
    ours_urls = [f"http://127.0.0.1:{p_ours}/tiles/roads/{z}/{x}/{y}.mvt" for z, x, y in tiles]
    tipg_urls = [f"http://127.0.0.1:{p_tipg}/collections/public.road_edge/tiles/WebMercatorQuad/{z}/{x}/{y}"
                 f"?properties=id,road_class,name,oneway" for z, x, y in tiles]
    a, b = ours(settings, p_ours), tipg(settings, p_tipg)
    auth = {"Authorization": f"Bearer {bench_token(settings)}"}  # nothing is read without a log-in
    results: dict[str, dict] = {}
    try:
        a.start()
        b.start()
        run_pass(ours_urls[:20], auth)  # warm connections and pools
        run_pass(tipg_urls[:20])
        with db.connect(settings.database_url) as conn:
            conn.execute("DELETE FROM tile_cache")
            conn.commit()
        a.stop()
        a.start()  # empty per-process caches: the cold pass makes every tile once
        results["ours cold"] = run_pass(ours_urls, auth)
        results["tipg pass 1"] = run_pass(tipg_urls)
        results["ours warm"] = run_pass(ours_urls, auth)
        results["tipg pass 2"] = run_pass(tipg_urls)
    finally:
        a.stop()
        b.stop()
    log(f"{'server / pass':<14} {'tiles':>6} {'rps':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean KB':>8} errors")
    for k, r in results.items():
        log(f"{k:<14} {r['n']:>6} {r['rps']:>8.1f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['mean_kb']:>8.1f} "
            f"{len(r['errors'])}")
        if r["errors"]:
            log(f"  first errors: {r['errors'][:3]}")
    cold = results["ours cold"]["rps"] / results["tipg pass 1"]["rps"]
    warm = results["ours warm"]["rps"] / results["tipg pass 2"]["rps"]
    n = 2 * len(tiles)
    both = (n / (results["ours cold"]["wall_s"] + results["ours warm"]["wall_s"])) / (
        n / (results["tipg pass 1"]["wall_s"] + results["tipg pass 2"]["wall_s"]))
    log(f"tiles rps ratio vs tipg: cold {cold:.2f}, warm {warm:.2f}, both passes {both:.2f}")
    return both


def bench_page(settings: Settings) -> tuple[float, float]:
    from playwright.sync_api import sync_playwright
    from support.browser import launch, wait_map_idle, watch

    port = free_port()
    srv = ours(settings, port)
    base = f"http://127.0.0.1:{port}"
    out: dict[str, list[tuple[int, float]]] = {"tiles": [], "geojson": []}
    try:
        srv.start()
        with sync_playwright() as p:
            browser = launch(p)
            for run in range(PAGE_RUNS + 1):
                for variant, path in (("tiles", "/map/coverage"), ("geojson", "/map/coverage?roads=geojson")):
                    ctx = browser.new_context(viewport={"width": 1600, "height": 900})
                    # log in through the API (sharing the context's cookies) so that no page has warmed
                    # the browser cache: the measured load is the page's whole initial transfer
                    r = ctx.request.post(base + "/api/v1/auth/login",
                                         data={"username": BENCH_USER, "password": BENCH_PASSWORD})
                    assert r.ok, r.text()
                    page = ctx.new_page()
                    rec = watch(page, base)
                    t0 = time.perf_counter()
                    page.goto(base + path, timeout=300_000)
                    wait_map_idle(page, timeout_ms=300_000, rec=rec, quiet_ms=500)
                    dt = time.perf_counter() - t0 - 0.5  # the quiet period itself is not load time
                    rec.stop(page)
                    if rec.foreign or rec.console_errors:
                        raise RuntimeError(f"{variant}: foreign {rec.foreign[:3]} errors {rec.console_errors[:3]}")
                    if run > 0:  # the first round warms the server (page rendering, tile caches)
                        out[variant].append((rec.bytes, dt))
                    ctx.close()
            browser.close()
    finally:
        srv.stop()
    med = {k: (statistics.median(b for b, _ in v), statistics.median(t for _, t in v)) for k, v in out.items()}
    for k, (b, t) in med.items():
        log(f"coverage page, roads as {k:<8}: {b / 1024:>9.0f} KB received, {t:.2f} s to load (median of {PAGE_RUNS})")
    return med["geojson"][0] / med["tiles"][0], med["geojson"][1] / med["tiles"][1]


def main() -> None:
    settings = Settings.from_env()
    if urlsplit(tcp_url(settings)).hostname is None:
        raise SystemExit("tipg needs a TCP database URL")
    facts = prepare(settings)
    log(f"network: {facts['edges']} road segments, {facts['km']:.0f} km; {len(facts['tiles'])} tiles at zooms "
        f"{ZOOMS.start}-{ZOOMS.stop - 1}; {CLIENTS} concurrent clients; {WORKERS} workers per server")
    tiles_ratio = bench_tiles(settings, facts["tiles"])
    bytes_ratio, load_ratio = bench_page(settings)
    print(f"maps: tiles_rps_ratio_vs_tipg={tiles_ratio:.2f} page_bytes_ratio_vs_geojson={bytes_ratio:.2f} "
          f"page_load_ratio_vs_geojson={load_ratio:.2f}", flush=True)


if __name__ == "__main__":
    main()
