"""A database restart under a real gunicorn: 503 with Retry-After within seconds while PostgreSQL is
away (JSON for the API, a page for HTML, never a 500), and service again soon after its return (bench-faults measures the 2 s target).

The server under test runs against a throwaway PostgreSQL instance of its own (initdb'd by the
test under tmp_path), which the test stops and starts; the cluster the other tests share is
never touched.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from support.dispatch import Gunicorn
from support.pgtemp import ThrowawayCluster
from support.sseclient import SSEClient

from gisapp.core import db
from gisapp.core.accounts import create_token, create_user

PASSWORD = "restart-password-1"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = ThrowawayCluster(tmp_path_factory.mktemp("restart_pg"))
    c.start()
    yield c
    c.destroy()


@pytest.fixture(scope="module")
def served(cluster):
    """gunicorn (2 workers) on a fresh database of the throwaway cluster; a dispatcher's bearer token."""
    from geodata.reference import load_reference

    url = cluster.create_database("gisapp_restart")
    with db.connect(url) as conn:
        load_reference(conn)
        user = create_user(conn, "r_dispatcher", PASSWORD, "dispatcher")
        token = create_token(conn, user["id"], "restart")["token"]
        conn.commit()
    srv = Gunicorn(url, workers=2, threads=16)
    yield srv, token
    srv.stop()


def _intake(base: str, token: str, key: str, timeout: float = 40) -> requests.Response:
    return requests.post(base + "/api/v1/dispatch/incidents", timeout=timeout,
                         headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                         json={"channel": "110", "type": "dispute", "description": f"restart test {key}",
                               "location": {"type": "Point", "coordinates": [117.74, 36.88]}})


def _calls(base: str, token: str, page: requests.Session):
    """(name, callable) for a write, a JSON read, the health check and an HTML page."""
    auth = {"Authorization": f"Bearer {token}"}
    return [
        ("write", lambda: _intake(base, token, uuid.uuid4().hex)),
        ("read", lambda: requests.get(base + "/api/v1/stream/events?after=0&limit=5", headers=auth, timeout=40)),
        ("health", lambda: requests.get(base + "/healthz", timeout=40)),
        ("page", lambda: page.get(base + "/", timeout=40)),
    ]


def _timed(fn):
    t0 = time.monotonic()
    try:
        r = fn()
    except requests.RequestException as e:
        return None, time.monotonic() - t0, repr(e)
    return r, time.monotonic() - t0, None


def test_database_restart_gives_503_then_service_again(cluster, served):
    srv, token = served
    base = srv.url
    page = requests.Session()
    r = page.post(base + "/api/v1/auth/login", json={"username": "r_dispatcher", "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    calls = _calls(base, token, page)
    # Fill both workers' pools with connections (all of them go stale at the restart).
    with ThreadPoolExecutor(16) as ex:
        for r, _, err in ex.map(lambda f: _timed(f[1]), calls * 10):
            assert err is None and r.status_code in (200, 201), (err, r and r.text)

    # Streams open across the restart (on both workers, most likely) go on once the database is back.
    streams = [SSEClient(base, "/api/v1/stream?types=incident", headers={"Authorization": f"Bearer {token}"},
                         timeout=20) for _ in range(6)]
    assert all(st.status == 200 for st in streams)

    cluster.stop()
    t_down = time.monotonic()
    seen: list[tuple[str, int | None, float, str | None]] = []
    while time.monotonic() - t_down < 8:
        with ThreadPoolExecutor(8) as ex:
            for (name, _), (r, dt, err) in zip(calls, ex.map(lambda f: _timed(f[1]), calls), strict=True):
                seen.append((name, r.status_code if r is not None else None, dt, err))
                assert err is None, f"{name}: {err}"
                assert r.status_code == 503, f"{name} during the outage: {r.status_code} {r.text[:300]}"
                assert dt < 10, f"{name} took {dt:.1f} s to answer during the outage"  # was 30 s, then a 500
                retry = r.headers.get("Retry-After")
                assert retry and retry.isdigit() and 0 < int(retry) <= 10, (name, r.headers)
                if name == "page":
                    assert r.headers["Content-Type"].startswith("text/html"), r.headers
                else:
                    assert r.headers["Content-Type"].startswith("application/json"), r.headers
                    body = r.json()
                    assert body["status"] == "error" if name == "health" else body["field"] == "database", r.text
    assert {s[0] for s in seen} == {"write", "read", "health", "page"}
    resume = SSEClient(base, "/api/v1/stream", headers={"Authorization": f"Bearer {token}", "Last-Event-ID": "1"},
                       timeout=20)
    assert resume.status == 503 and resume.headers.get("Retry-After"), (resume.status, resume.headers)
    resume.close()

    cluster.start(wait=False)
    t_up = cluster.wait_ready(every_s=0.02)
    first_ok = None
    statuses = []
    while time.monotonic() - t_up < 10:
        r, _, err = _timed(calls[0][1])
        assert err is None, err
        statuses.append(r.status_code)
        assert r.status_code in (201, 503), f"after the restart: {r.status_code} {r.text[:300]}"
        if r.status_code == 201:
            first_ok = time.monotonic()
            created = r.json()["id"]
            break
        time.sleep(0.05)
    assert first_ok is not None, statuses
    print(f"first write {first_ok - t_up:.2f} s after PostgreSQL accepted connections")
    # generous here (a loaded CI machine); make bench-faults measures the 2 s target as recovery_s
    assert first_ok - t_up <= 5.0, f"first write {first_ok - t_up:.2f} s after PostgreSQL accepted connections"
    for st in streams:
        got = None
        for m in st.messages(deadline=time.monotonic() + 10):
            if m.data["type"] == "incident.created" and m.data["data"]["incident"]["id"] == created:
                got = created
                break
        st.close()
        assert got == created, "a stream open across the restart did not carry the first new incident within 10 s"
    # No stale pooled connection turns into an error: every endpoint, many times, on both workers.
    with ThreadPoolExecutor(16) as ex:
        for r, _, err in ex.map(lambda f: _timed(f[1]), calls * 20):
            assert err is None, err
            assert r.status_code in (200, 201), f"{r.status_code} {r.text[:300]}"
