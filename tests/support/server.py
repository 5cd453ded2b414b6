"""The service over real HTTP in a thread of the test process, and clients bound to it."""

from __future__ import annotations

import threading

import requests
from werkzeug.serving import make_server

from support.database import PASSWORD


class LiveServer:
    """The app served over real HTTP on a loopback port, in a thread of the test process."""

    def __init__(self, app):
        self.httpd = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()


class Client(requests.Session):
    """A requests session bound to the live server's base URL."""

    def __init__(self, base: str):
        super().__init__()
        self.base = base
        # as a browser on the service's own pages: writes carry the page's Origin
        self.headers["Origin"] = base

    def request(self, method, url, *a, **kw):  # noqa: D401
        if url.startswith("/"):
            url = self.base + url
        kw.setdefault("timeout", 60)
        return super().request(method, url, *a, **kw)


def login_factory(srv: LiveServer):
    """Return (login, made): ``login(role)`` gives a client logged in as ``t_<role>`` through the API;
    ``made`` lists the clients, for closing them."""
    made = []

    def _login(role: str) -> Client:
        c = Client(srv.url)
        r = c.post("/api/v1/auth/login", json={"username": f"t_{role}", "password": PASSWORD})
        assert r.status_code == 200, r.text
        made.append(c)
        return c

    return _login, made


def expect_error(r, status: int | tuple[int, ...], field: str | None = None) -> dict:
    """Assert an error answer: the status (or one of them), the {error, field, reason} body, the field."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    body = r.json()
    assert set(body) >= {"error", "field", "reason"}
    assert body["reason"]
    if field is not None:
        assert body["field"] == field, body
    return body
