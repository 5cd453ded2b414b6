"""Benchmark the live stream: latency from commit to event received, and events lost, against polling.

Against a real gunicorn on loopback (the worker class of `make run`) on a database of its own:
  - 50 SSE clients on /api/v1/stream (one process),
  - 50 polling clients asking /api/v1/stream/events every 2 s (the peer, another process),
  - 20 incidents/s through POST /api/v1/dispatch/incidents (every other one dispatched with
    auto-assignment) and 200 position reports/s through POST /api/v1/dispatch/positions
    (batches of 10) for 60 s (a third process).
Latency = time the client got the event - the event's commit time stamped by the database
(clock_timestamp() in live_emit, same machine clock). `lost` counts (client, event) pairs of
the run's events that an SSE client never received.

Last line: live: p50_ms=<a> p99_ms=<b> lost=<n> polling_p50_ms=<c>

Environment: BENCH_LIVE_DURATION_S (60), BENCH_LIVE_CLIENTS (50), BENCH_LIVE_INCIDENTS_PER_S (20),
BENCH_LIVE_POSITIONS_PER_S (200), GISAPP_WORKERS / GISAPP_THREADS (as `make run`).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gisapp.core import db  # noqa: E402
from gisapp.core.config import private_cluster_url  # noqa: E402

DURATION_S = float(os.environ.get("BENCH_LIVE_DURATION_S", 60))
CLIENTS = int(os.environ.get("BENCH_LIVE_CLIENTS", 50))
INCIDENTS_PER_S = float(os.environ.get("BENCH_LIVE_INCIDENTS_PER_S", 20))
POSITIONS_PER_S = float(os.environ.get("BENCH_LIVE_POSITIONS_PER_S", 200))
POSITION_BATCH = 10
POLL_INTERVAL_S = 2.0
WORKERS = int(os.environ.get("GISAPP_WORKERS") or 2)
THREADS = int(os.environ.get("GISAPP_THREADS") or 256)
PASSWORD = "bench-password-1"
DB_NAME = "gisapp_bench_live"
BOX = (117.62, 36.84, 117.82, 36.92)  # inside the county


def _with_db(url: str, name: str) -> str:
    return re.sub(r"/[^/?]*\?", f"/{name}?", url, count=1)


def make_database() -> str:
    """A fresh database with the county, one station and squadron owning it, 200 units, users."""
    from geodata.reference import load_reference
    from gisapp.core.accounts import create_token, create_user

    server = os.environ.get("GISAPP_DATABASE_URL") or private_cluster_url()
    with psycopg.connect(_with_db(server, "postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [DB_NAME])
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(psycopg.sql.Identifier(DB_NAME)))
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(DB_NAME)))
    url = _with_db(server, DB_NAME)
    db.upgrade(url, log=lambda m: None)
    with db.connect(url) as conn:
        load_reference(conn)
        county = "(SELECT geom FROM county LIMIT 1)"
        st = conn.execute("INSERT INTO organisation (code, name, kind, takes_part_in_traffic, hq) VALUES "
                          "('B-ST', '压测派出所', 'station', true, ST_SetSRID(ST_MakePoint(117.73, 36.88), 4326)) "
                          "RETURNING id").fetchone()["id"]
        sq = conn.execute("INSERT INTO organisation (code, name, kind, hq) VALUES ('B-SQ', '压测中队', 'squadron', "
                          "ST_SetSRID(ST_MakePoint(117.74, 36.88), 4326)) RETURNING id").fetchone()["id"]
        conn.execute("INSERT INTO organisation (code, name, kind) VALUES ('B-ACC', '压测事故科', 'accident_section')")
        for org, kind in ((st, "station"), (sq, "traffic")):
            conn.execute(f"INSERT INTO jurisdiction (organisation_id, kind, version, geom, valid_from, author, reason) "
                         f"SELECT %s, %s, 1, {county}, '2020-01-01', 'bench', 'bench'", [org, kind])
        rnd = random.Random(7)
        for i in range(200):
            conn.execute(
                "INSERT INTO unit (code, name, organisation_id, kind, capabilities, last_position) VALUES "
                "(%s, %s, %s, 'patrol_car', %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
                [f"B{i:03d}", f"压测车{i:03d}", st if i % 2 else sq, ["accident_qualified"] if i % 3 == 0 else [],
                 rnd.uniform(BOX[0], BOX[2]), rnd.uniform(BOX[1], BOX[3])])
        create_user(conn, "b_dispatcher", PASSWORD, "dispatcher")
        create_user(conn, "b_viewer", PASSWORD, "viewer")
        unit_ids = [r["id"] for r in conn.execute("SELECT id FROM unit WHERE code LIKE 'B%%' ORDER BY id")]
        dev = create_user(conn, "b_gateway", PASSWORD, "gateway", unit_ids=unit_ids)
        token = create_token(conn, dev["id"], "bench")["token"]
        conn.commit()
    with open(ROOT / "var" / "bench_live_token", "w") as fh:
        fh.write(token)
    return url


def post_once_retried(session: requests.Session, url: str, body: dict, ok_status: tuple[int, ...]
                      ) -> tuple[bool, str | None]:
    """POST ``body``; retry once after a dropped keep-alive connection (the callers' writes are
    idempotent). Returns (ok, why it failed)."""
    why = None
    for _attempt in range(2):
        try:
            r = session.post(url, json=body, timeout=30)
        except requests.ConnectionError as e:
            why = repr(e)[:200]
            continue
        except requests.RequestException as e:
            return False, repr(e)[:200]
        ok = r.status_code in ok_status
        return ok, None if ok else f"{r.status_code} {r.text[:200]}"
    return False, why


def start_gunicorn(url: str) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, GISAPP_DATABASE_URL=url, GISAPP_SECRET_KEY="bench-secret")
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "--bind", "127.0.0.1:0", "--workers", str(WORKERS),
         "--threads", str(THREADS), "--worker-class", "gthread", "--timeout", "120", "--graceful-timeout", "3",
         "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    base = None
    booted = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (base is None or booted < WORKERS):
        line = proc.stderr.readline().decode(errors="replace")
        if not line:
            break
        m = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", line)
        base = m.group(1) if m else base
        booted += "Booting worker" in line
    if base is None:
        proc.kill()
        raise SystemExit("gunicorn did not start")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # drain the log
    # Wait until every worker has loaded the app (Booting worker is logged before the import),
    # so that the streams spread over all of them: ask on fresh connections until each answered.
    s = None
    pids: set[str] = set()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(pids) < WORKERS:
        try:
            s = s or login(base, "b_viewer")
            r = s.get(base + "/api/v1/dispatch/catalogue", headers={"Connection": "close"}, timeout=30)
            if r.status_code == 200:
                pids.add(r.headers.get("X-Gisapp-Worker", ""))
        except requests.RequestException:
            time.sleep(0.5)
    if len(pids) < WORKERS:
        print(f"warning: only {len(pids)} of {WORKERS} workers answered", flush=True)
    return proc, base


def login(base: str, user: str) -> requests.Session:
    s = requests.Session()
    r = s.post(base + "/api/v1/auth/login", json={"username": user, "password": PASSWORD}, timeout=30)
    r.raise_for_status()
    return s


# --- the three client processes -----------------------------------------------------------------

def _open_stream(base: str, cookie: str, last: int | None):
    """Connect a raw socket and send the stream request; return the socket."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(base)
    sock = socket.create_connection((u.hostname, u.port), timeout=20)
    extra = f"Last-Event-ID: {last}\r\n" if last is not None else ""
    sock.sendall((f"GET /api/v1/stream HTTP/1.1\r\nHost: {u.netloc}\r\nAccept: text/event-stream\r\n"
                  f"Cookie: {cookie}\r\n{extra}\r\n").encode())
    sock.setblocking(False)
    return sock


def sse_clients(base: str, n: int, stop_at: float, out_path: str, ready) -> None:
    """n SSE streams read by one thread with a selector (so the clients add little latency of their own).

    Each stream's bytes are split into lines; chunked-encoding size lines are ignored, ``id:``
    and ``data:`` lines give the event id and its commit time.
    """
    import selectors

    s = login(base, "b_viewer")
    cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
    results: list[dict] = [{"ids": [], "lat": [], "errors": 0} for _ in range(n)]
    sel = selectors.DefaultSelector()
    state: dict[int, dict] = {}

    def connect(i: int, last: int | None) -> None:
        sock = _open_stream(base, cookie, last)
        state[i] = {"sock": sock, "buf": b"", "last": last, "id": None}
        sel.register(sock, selectors.EVENT_READ, i)

    for i in range(n):
        connect(i, None)
    ready.set()
    while time.time() < stop_at:
        for key, _ in sel.select(timeout=0.5):
            i = key.data
            st = state[i]
            try:
                data = st["sock"].recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            now = time.time()
            if not data:  # closed: resume from the last id, as a browser does
                sel.unregister(st["sock"])
                st["sock"].close()
                results[i]["errors"] += 1
                connect(i, st["last"])
                continue
            buf = st["buf"] + data
            *lines, st["buf"] = buf.split(b"\n")
            for line in lines:
                if line.startswith(b"id: "):
                    st["id"] = int(line[4:])
                elif line.startswith(b"data: ") and st["id"] is not None:
                    rest = line[line.index(b'"at"') + 4:]
                    at = float(rest[rest.index(b":") + 1:].split(b",", 1)[0])
                    results[i]["ids"].append(st["id"])
                    results[i]["lat"].append((now - at) * 1000.0)
                    st["last"], st["id"] = st["id"], None
    for st in state.values():
        st["sock"].close()
    with open(out_path, "w") as fh:
        json.dump(results, fh)


def pollers(base: str, n: int, stop_at: float, out_path: str, ready) -> None:
    """n clients polling /api/v1/stream/events every 2 s."""
    s0 = login(base, "b_viewer")
    cookies = s0.cookies
    lat: list[float] = []
    lock = threading.Lock()
    start_id = s0.get(base + "/api/v1/stream/events?after=0&limit=1").json()["last_id"]

    def run(i: int) -> None:
        s = requests.Session()
        s.cookies.update(cookies)
        after = start_id
        time.sleep(POLL_INTERVAL_S * i / n)  # spread the polls
        while time.time() < stop_at:
            t = time.monotonic()
            try:
                r = s.get(f"{base}/api/v1/stream/events?after={after}", timeout=30)
                now = time.time()
                evs = r.json()["events"]
                with lock:
                    lat.extend((now - e["at"]) * 1000.0 for e in evs)
                if evs:
                    after = evs[-1]["id"]
            except (requests.RequestException, ValueError):
                pass
            time.sleep(max(0.0, POLL_INTERVAL_S - (time.monotonic() - t)))

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    ready.set()
    for t in threads:
        t.join()
    with open(out_path, "w") as fh:
        json.dump(lat, fh)


def producers(base: str, start_at: float, duration: float, out_path: str) -> None:
    """Open-loop load: incidents and position batches on a fixed schedule."""
    token = (ROOT / "var" / "bench_live_token").read_text().strip()
    disp = login(base, "b_dispatcher")
    stats = {"incidents": 0, "incident_errors": 0, "positions": 0, "position_errors": 0, "late_s": 0.0}
    lock = threading.Lock()
    rnd = random.Random(11)
    units = list(range(1, 201))

    def incident(i: int) -> None:
        body = {"channel": "110" if i % 3 else "122", "type": "dispute" if i % 3 else "traffic_accident",
                "severity": "none" if i % 3 else "minor",
                "location": {"type": "Point", "coordinates": [rnd.uniform(BOX[0], BOX[2]), rnd.uniform(BOX[1], BOX[3])]},
                "dispatch": i % 2 == 0, "auto_assign": i % 2 == 0}
        body["idempotency_key"] = f"bench-{i}"  # a retry after a dropped keep-alive connection is safe
        ok, why = post_once_retried(disp, base + "/api/v1/dispatch/incidents", body, (200, 201))
        with lock:
            stats["incidents" if ok else "incident_errors"] += 1
            if why:
                stats.setdefault("why", []).append(why)

    sess = requests.Session()
    sess.headers["Authorization"] = f"Bearer {token}"

    def positions(i: int) -> None:
        now = datetime.now(UTC).isoformat()
        batch = [{"unit_id": units[(i * POSITION_BATCH + k) % len(units)], "lon": rnd.uniform(BOX[0], BOX[2]),
                  "lat": rnd.uniform(BOX[1], BOX[3]), "at": now} for k in range(POSITION_BATCH)]
        # a retry is safe: a (unit, time) already stored is a duplicate
        ok, why = post_once_retried(sess, base + "/api/v1/dispatch/positions", {"positions": batch}, (200,))
        with lock:
            stats["positions" if ok else "position_errors"] += POSITION_BATCH
            if why:
                stats.setdefault("why", []).append(why)

    from concurrent.futures import ThreadPoolExecutor

    jobs = [(k / INCIDENTS_PER_S, incident, k) for k in range(int(duration * INCIDENTS_PER_S))]
    per_s = POSITIONS_PER_S / POSITION_BATCH
    jobs += [(k / per_s, positions, k) for k in range(int(duration * per_s))]
    jobs.sort(key=lambda j: j[0])
    while time.time() < start_at:
        time.sleep(0.01)
    with ThreadPoolExecutor(max_workers=32) as pool:
        for offset, fn, k in jobs:
            delay = start_at + offset - time.time()
            if delay > 0:
                time.sleep(delay)
            else:
                stats["late_s"] = max(stats["late_s"], -delay)
            pool.submit(fn, k)
    with open(out_path, "w") as fh:
        json.dump(stats, fh)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    (ROOT / "var").mkdir(exist_ok=True)
    print(f"bench-live: {CLIENTS} SSE clients and {CLIENTS} polling clients (every {POLL_INTERVAL_S:g} s), "
          f"{INCIDENTS_PER_S:g} incidents/s and {POSITIONS_PER_S:g} position reports/s (batches of "
          f"{POSITION_BATCH}) for {DURATION_S:g} s; gunicorn gthread {WORKERS} workers x {THREADS} threads",
          flush=True)
    url = make_database()
    proc, base = start_gunicorn(url)
    tmp = ROOT / "var" / "bench_live"
    tmp.mkdir(exist_ok=True)
    ctx = mp.get_context("spawn")
    try:
        with db.connect(url) as conn:
            first_id = conn.execute("SELECT last_id FROM live_event_counter").fetchone()["last_id"] + 1
        start_at = time.time() + 8
        stop_at = start_at + DURATION_S + 10  # clients keep listening 10 s after the load stops
        r1, r2 = ctx.Event(), ctx.Event()
        p_sse = ctx.Process(target=sse_clients, args=(base, CLIENTS, stop_at, str(tmp / "sse.json"), r1))
        p_poll = ctx.Process(target=pollers, args=(base, CLIENTS, stop_at, str(tmp / "poll.json"), r2))
        p_sse.start()
        p_poll.start()
        if not (r1.wait(60) and r2.wait(60)):
            raise SystemExit("the clients did not connect")
        start_at = max(start_at, time.time() + 1)
        p_prod = ctx.Process(target=producers, args=(base, start_at, DURATION_S, str(tmp / "prod.json")))
        p_prod.start()
        p_prod.join()
        with db.connect(url) as conn:
            last_id = conn.execute("SELECT last_id FROM live_event_counter").fetchone()["last_id"]
        p_sse.join(DURATION_S + 60)
        p_poll.join(60)
        sse = json.loads((tmp / "sse.json").read_text())
        poll = json.loads((tmp / "poll.json").read_text())
        prod = json.loads((tmp / "prod.json").read_text())
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    expected = set(range(first_id, last_id + 1))
    lost = 0
    lat: list[float] = []
    reconnects = 0
    for res in sse:
        got = set(res["ids"])
        lost += len(expected - got)
        reconnects += res["errors"]
        lat.extend(x for i, x in zip(res["ids"], res["lat"], strict=True) if i in expected)
    events = len(expected)
    p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
    poll_p50 = pct(poll, 0.5)
    print(f"produced: {prod['incidents']} incidents ({prod['incident_errors']} errors), {prod['positions']} "
          f"position reports ({prod['position_errors']} errors), schedule slip {prod['late_s']:.2f} s")
    for why in sorted(set(prod.get("why", [])))[:5]:
        print("  error:", why)
    print(f"events: {events} in the run ({events / DURATION_S:.1f}/s); SSE deliveries {len(lat)} "
          f"of {events * CLIENTS} expected, client reconnects {reconnects}")
    print(f"SSE latency ms: p50 {p50:.1f}  p90 {pct(lat, 0.9):.1f}  p99 {p99:.1f}  max {max(lat or [0]):.1f}")
    print(f"polling latency ms (every {POLL_INTERVAL_S:g} s): p50 {poll_p50:.1f}  p99 {pct(poll, 0.99):.1f}; "
          f"SSE is {poll_p50 / p50 if p50 else float('nan'):.1f}x faster at the median")
    if lat:
        print(f"mean SSE latency {statistics.fmean(lat):.1f} ms")
    print(f"live: p50_ms={p50:.1f} p99_ms={p99:.1f} lost={lost} polling_p50_ms={poll_p50:.1f}")


if __name__ == "__main__":
    main()
