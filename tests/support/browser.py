"""Drive Debian's headless chromium with Playwright (no browser download): log in, load a page,
record console errors and every request, take a screenshot."""

from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

CHROMIUM = os.environ.get("GISAPP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium_path() -> str:
    """Return the chromium binary, or raise with what to install."""
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if not path:
        raise RuntimeError("headless chromium is missing: run 'make setup' as root, or apt-get install chromium")
    return path


def launch(playwright):
    """Launch Debian's chromium headless (never a downloaded browser)."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)


# Reports every Content-Security-Policy violation as a console error (which ``watch`` records and
# ``guard_csp`` collects): a page that needs something the policy refuses fails its test.
_CSP_LISTENER = """
document.addEventListener('securitypolicyviolation', function (e) {
  console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') +
                ' at ' + (e.sourceFile || '') + ':' + (e.lineNumber || 0) + ' ' + (e.sample || ''));
});
"""


def is_csp_violation(text: str) -> bool:
    return text.startswith(("Refused to", "CSP violation")) or "Content Security Policy" in text


def guard_csp(ctx) -> list[str]:
    """Record every CSP violation of the pages of browser context ``ctx`` (console 'Refused to …'
    and the securitypolicyviolation event) into the returned list."""
    found: list[str] = []
    ctx.add_init_script(_CSP_LISTENER)

    def on_console(msg):
        if msg.type == "error" and is_csp_violation(msg.text):
            found.append(msg.text)

    ctx.on("console", on_console)
    return found


def new_context(browser, **kw):
    """A browser context whose CSP violations are recorded in ``ctx.csp_violations``."""
    ctx = browser.new_context(**kw)
    ctx.csp_violations = guard_csp(ctx)
    return ctx


@contextmanager
def logged_in_page(base_url: str, username: str, password: str, viewport: dict, locale: str = "zh-CN"):
    """A page of a fresh headless chromium, logged in as ``username`` (closed afterwards)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        ctx = new_context(browser, viewport=viewport, locale=locale)
        page = ctx.new_page()
        login(page, base_url, username, password)
        try:
            yield page
            assert ctx.csp_violations == [], ctx.csp_violations
        finally:
            ctx.close()
            browser.close()


@dataclass
class PageLoad:
    """What a page load did: console errors, requests by host, bytes received."""

    console_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    bytes: int = 0
    handlers: list = field(default_factory=list)
    pending: set = field(default_factory=set)
    last_activity: float = field(default_factory=time.monotonic)

    def stop(self, page) -> None:
        """Stop recording on ``page``."""
        for event, fn in self.handlers:
            page.remove_listener(event, fn)
        self.handlers.clear()


def watch(page, base_url: str) -> PageLoad:
    """Record console errors, page errors, requests to other hosts and failed requests of ``page``."""
    rec = PageLoad()
    origin = urlsplit(base_url).netloc
    page.add_init_script(_CSP_LISTENER)

    def on_console(msg):
        if msg.type == "error":
            rec.console_errors.append(msg.text)
            if is_csp_violation(msg.text):
                rec.csp_violations.append(msg.text)

    def on_request(req):
        rec.requests.append(req.url)
        # a live stream (server-sent events) stays open by design: it never makes the page busy
        if req.resource_type not in ("eventsource", "websocket") and "/api/v1/stream" not in req.url:
            rec.pending.add(id(req))
        rec.last_activity = time.monotonic()
        parts = urlsplit(req.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != origin:
            rec.foreign.append(req.url)

    def on_done(req):
        rec.pending.discard(id(req))
        rec.last_activity = time.monotonic()

    def on_failed(req):
        on_done(req)
        # A navigation aborts the previous page's pending requests (ERR_ABORTED): not a failure.
        if "ERR_ABORTED" not in (req.failure or ""):
            rec.failed.append(f"{req.url} {req.failure}")

    def on_response(resp):
        if resp.headers.get("content-type", "").startswith("text/event-stream"):
            return  # a live stream's body never ends: there is nothing to count
        try:
            length = resp.headers.get("content-length")
            rec.bytes += int(length) if length is not None else len(resp.body())
        except Exception:  # noqa: BLE001 - a body may be gone (redirects); count what we can
            pass

    def on_pageerror(exc):
        rec.console_errors.append(f"pageerror: {exc}")

    for event, fn in (("console", on_console), ("pageerror", on_pageerror), ("request", on_request),
                      ("requestfailed", on_failed), ("requestfinished", on_done), ("response", on_response)):
        page.on(event, fn)
        rec.handlers.append((event, fn))
    return rec


def login(page, base_url: str, username: str, password: str) -> None:
    """Log in through the HTML form."""
    page.goto(f"{base_url}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def wait_for_js(page, expression: str, timeout: int = 30000) -> None:
    """Wait until the JavaScript ``expression`` is truthy, polling from Python: Playwright's own
    ``wait_for_function`` polls with ``eval`` in the page, which the Content-Security-Policy refuses."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(f"() => !!({expression})"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout} ms: {expression}")
        page.wait_for_timeout(50)


def wait_map_idle(page, timeout_ms: int = 30000, rec: PageLoad | None = None, quiet_ms: int = 500) -> None:
    """Wait until the map's layers are registered and the network is quiet.

    With ``rec`` (from ``watch``), quiet means no request in flight for ``quiet_ms``;
    otherwise Playwright's "networkidle" load state.
    """
    wait_for_js(page, "window.gisapp && window.gisapp.isReady === true", timeout=timeout_ms)
    if rec is None:
        page.wait_for_load_state("networkidle", timeout=timeout_ms)
        return
    deadline = time.monotonic() + timeout_ms / 1000
    while time.monotonic() < deadline:
        if not rec.pending and time.monotonic() - rec.last_activity >= quiet_ms / 1000:
            return
        page.wait_for_timeout(50)
    raise TimeoutError(f"requests still in flight after {timeout_ms} ms")
