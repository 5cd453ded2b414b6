"""Append live events and fan them out to server-sent-event streams in every worker process.

Writers call :func:`emit` as the last statement of their transaction: it appends a row to
``live_event`` with the next id of a counter row (locked until commit, so ids are contiguous
and in commit order) and sends ``NOTIFY gisapp_live``. Each worker process runs one
:class:`Hub`: a thread that LISTENs on its own connection, fills any gap from the table, and
hands each event, already formatted as SSE text, to the queues of the streams it serves.
A stream resuming with ``Last-Event-ID`` first replays the rows after that id.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

log = logging.getLogger("gisapp.stream")

CHANNEL = "gisapp_live"
KINDS = ("incident", "leg", "unit", "sla", "stream")
# How often the listener re-reads the table for anything a lost notification left behind.
CATCH_UP_CHECK_S = 5.0
# The listener retries a lost database after 0.25 s, then every second (not a growing backoff:
# streams must go on within about a second of the database's return).
RECONNECT_FIRST_S = 0.25
RECONNECT_EVERY_S = 1.0


def emit(conn: psycopg.Connection, type_: str, data: dict[str, Any], incident_id: int | None = None) -> int:
    """Append one live event in the caller's transaction and return its id.

    Call it last in the transaction: the counter row stays locked until commit.
    """
    row = conn.execute("SELECT live_emit(%s, %s::jsonb, %s) AS id",
                       [type_, json.dumps(data, default=str, ensure_ascii=False), incident_id]).fetchone()
    return row["id"] if isinstance(row, dict) else row[0]


ORG_KEYS = ("organisation_id", "station_org_id", "traffic_org_id", "fallback_from_org_id")


def event_organisations(data: Any) -> frozenset[int] | None:
    """The organisations an event's data concerns (None: it concerns none, e.g. stream.reset)."""
    found: set[int] = set()
    todo = [data]
    while todo:
        x = todo.pop()
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ORG_KEYS and isinstance(v, int):
                    found.add(v)
                elif isinstance(v, dict | list):
                    todo.append(v)
        elif isinstance(x, list):
            todo.extend(x)
    return frozenset(found) if found else None


@dataclass(frozen=True)
class Event:
    """One event ready to send: its id, type, the SSE frame, and its data for scoped streams."""

    id: int
    type: str
    frame: bytes
    data: Any = None
    at: float = 0.0

    @property
    def kind(self) -> str:
        return self.type.split(".", 1)[0]

    def frame_for(self, orgs: frozenset[int] | None) -> bytes | None:
        """The frame as a stream limited to ``orgs`` sees it (None: not at all); orgs None: all."""
        if orgs is None:
            return self.frame
        if self.type == "unit.moved" and isinstance(self.data, dict):  # a batch: keep the own units
            units = [u for u in self.data.get("units", []) if u.get("organisation_id") in orgs]
            if not units:
                return None
            payload = json.dumps({"id": self.id, "type": self.type, "at": self.at, "data": {**self.data, "units": units}},
                                 ensure_ascii=False, default=str)
            return frame(self.id, payload)
        concerned = event_organisations(self.data)
        return self.frame if concerned is None or concerned & orgs else None


def frame(eid: int, payload_json: str) -> bytes:
    """Format one SSE message (the payload is one line of JSON)."""
    return f"id: {eid}\ndata: {payload_json}\n\n".encode()


def _event_from_row(r: dict) -> Event:
    at = r["at"].timestamp()
    payload = json.dumps({"id": r["id"], "type": r["type"], "at": at, "data": r["data"]},
                         ensure_ascii=False, default=str)
    return Event(r["id"], r["type"], frame(r["id"], payload), r["data"], at)


def scoped_events_json(conn: psycopg.Connection, after: int, limit: int, kinds: Iterable[str] | None,
                       orgs: frozenset[int]) -> str:
    """``events_json`` for a reader limited to ``orgs`` (a chief): other organisations' events left out."""
    out = []
    for r in fetch_events(conn, after, limit, kinds):
        ev = _event_from_row(r)
        f = ev.frame_for(orgs)
        if f is not None:
            out.append(f.decode().split("data: ", 1)[1].rstrip("\n"))
    return "[" + ",".join(out) + "]"


def fetch_events(conn: psycopg.Connection, after: int, limit: int = 1000,
                 kinds: Iterable[str] | None = None) -> list[dict]:
    """Return the stored events with id > ``after`` in id order (at most ``limit``)."""
    prefixes = [k + ".%" for k in kinds] if kinds else None
    return conn.execute(
        "SELECT id, type, at, incident_id, data FROM live_event WHERE id > %s "
        "AND (%s::text[] IS NULL OR type LIKE ANY(%s::text[])) ORDER BY id LIMIT %s",
        [after, prefixes, prefixes, limit]).fetchall()


def events_json(conn: psycopg.Connection, after: int, limit: int = 1000, kinds: Iterable[str] | None = None) -> str:
    """The stored events with id > ``after`` as one JSON array text, built by the database (polling)."""
    prefixes = [k + ".%" for k in kinds] if kinds else None
    row = conn.execute(
        "SELECT coalesce(json_agg(json_build_object('id', id, 'type', type, 'at', extract(epoch FROM at), "
        "'data', data) ORDER BY id), '[]'::json)::text AS j FROM (SELECT id, type, at, data FROM live_event "
        "WHERE id > %s AND (%s::text[] IS NULL OR type LIKE ANY(%s::text[])) ORDER BY id LIMIT %s) e",
        [after, prefixes, prefixes, limit]).fetchone()
    return row["j"] if isinstance(row, dict) else row[0]


def stream_bounds(conn: psycopg.Connection) -> tuple[int, int]:
    """Return (oldest stored id - 1, last id): a resume after the first value is complete."""
    row = conn.execute("SELECT (SELECT last_id FROM live_event_counter) AS last_id, "
                       "(SELECT min(id) FROM live_event) AS min_id").fetchone()
    last = row["last_id"]
    oldest = (row["min_id"] - 1) if row["min_id"] is not None else last
    return oldest, last


class Subscriber:
    """The queue of one open stream."""

    def __init__(self, kinds: frozenset[str] | None, maxsize: int, orgs: frozenset[int] | None = None):
        self.kinds, self.orgs = kinds, orgs
        self.queue: queue.Queue[Event] = queue.Queue(maxsize)
        self.dropped = False

    def offer(self, ev: Event) -> bool:
        if self.kinds is not None and ev.kind not in self.kinds and ev.kind != "stream":
            return True
        if self.orgs is not None and ev.frame_for(self.orgs) is None:
            return True
        try:
            self.queue.put_nowait(ev)
            return True
        except queue.Full:
            self.dropped = True
            return False


class Hub:
    """One per process: LISTENs for live events and fans them out to this process's streams."""

    def __init__(self, url: str, settings):
        self.url = url
        self.settings = settings
        self.last_id = 0
        self._subs: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gisapp-stream-hub", daemon=True)
        self._thread.start()

    # -- subscribers ---------------------------------------------------------------------
    def subscribe(self, kinds: frozenset[str] | None = None, wait_s: float = 10.0,
                  orgs: frozenset[int] | None = None) -> tuple[Subscriber, int]:
        """Register a stream (limited to ``orgs`` when given); return it and the id of the last event
        already delivered."""
        if not self._ready.wait(wait_s):
            raise RuntimeError("the live event listener is not connected to the database")
        sub = Subscriber(kinds, self.settings.stream_queue_max_events, orgs)
        with self._lock:
            self._subs.add(sub)
            return sub, self.last_id

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def _deliver(self, ev: Event) -> None:
        with self._lock:
            if ev.id <= self.last_id:
                return
            self.last_id = ev.id
            subs = list(self._subs)
        for sub in subs:
            if not sub.offer(ev):
                self.unsubscribe(sub)  # the stream ends; its client resumes from Last-Event-ID

    # -- listener thread -----------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def _catch_up(self, conn: psycopg.Connection) -> None:
        while True:
            rows = fetch_events(conn, self.last_id, 2000)
            for r in rows:
                self._deliver(_event_from_row(r))
            if len(rows) < 2000:
                return

    def _handle(self, conn: psycopg.Connection, payload: str) -> None:
        try:
            msg = json.loads(payload)
            eid = int(msg["id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed live notification: %.80s", payload)
            return
        if eid <= self.last_id:
            return
        if eid == self.last_id + 1 and "data" in msg:
            self._deliver(Event(eid, str(msg["type"]), frame(eid, payload), msg["data"], msg.get("at", 0.0)))
        else:  # a gap (reconnect) or a payload too large for NOTIFY: read the table
            self._catch_up(conn)

    def _run(self) -> None:
        backoff = RECONNECT_FIRST_S
        first = True
        connect_timeout = max(2, int(getattr(self.settings, "db_connect_timeout_s", 5) or 5))
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=connect_timeout,
                                     application_name="gisapp-stream-hub") as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    if first:
                        self.last_id = conn.execute("SELECT last_id FROM live_event_counter").fetchone()["last_id"]
                        first = False
                    else:
                        self._catch_up(conn)
                    self._ready.set()
                    backoff = RECONNECT_FIRST_S
                    next_check = time.monotonic()
                    while not self._stop.is_set():
                        for n in conn.notifies(timeout=1.0):
                            self._handle(conn, n.payload)
                        now = time.monotonic()
                        if now >= next_check:
                            next_check = now + CATCH_UP_CHECK_S
                            self._catch_up(conn)  # belt and braces: nothing stays undelivered
            except Exception as e:  # noqa: BLE001 - the listener must outlive any failure: reconnect
                log.warning("live event listener lost its connection (%s); reconnecting", e)
                self._stop.wait(backoff)
                backoff = RECONNECT_EVERY_S


def prune_events(conn: psycopg.Connection, settings) -> int:
    """Delete live events older than the retention (the newest event is always kept)."""
    cur = conn.execute(
        "DELETE FROM live_event WHERE at < now() - make_interval(secs => %s * 3600.0) "
        "AND id < (SELECT last_id FROM live_event_counter)", [settings.live_event_retention_h])
    return cur.rowcount


_hubs: dict[str, Hub] = {}
_hubs_lock = threading.Lock()


def get_hub(url: str, settings) -> Hub:
    """Return this process's hub for the database at ``url``, starting it on first use."""
    with _hubs_lock:
        hub = _hubs.get(url)
        if hub is None:
            hub = _hubs[url] = Hub(url, settings)
        return hub


def stop_hubs() -> None:
    """Stop every hub of this process (tests, shutdown)."""
    with _hubs_lock:
        for hub in _hubs.values():
            hub.stop()
        _hubs.clear()


class StreamBody:
    """The body of one SSE response: the missed events after ``last_event_id``, then live ones.

    The subscription is registered (in the constructor, before the response starts) before
    the backlog is read, and events go out in id order with ids at or below the last one
    sent skipped, so nothing falls between the backlog and the live queue. ``close()``
    (called by the WSGI server when the client goes) unsubscribes.
    """

    def __init__(self, hub: Hub, pool, settings, last_event_id: int | None, kinds: frozenset[str] | None,
                 orgs: frozenset[int] | None = None):
        self.hub, self.pool, self.settings = hub, pool, settings
        self.last_event_id, self.kinds, self.orgs = last_event_id, kinds, orgs
        self.sub, self.start_id = hub.subscribe(kinds, orgs=orgs)

    def close(self) -> None:
        self.hub.unsubscribe(self.sub)

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._frames()
        finally:
            self.close()

    def _frames(self) -> Iterator[bytes]:
        sub, start_id, kinds, lei = self.sub, self.start_id, self.kinds, self.last_event_id
        yield f"retry: 2000\n: stream open, last event id {start_id}\n\n".encode()
        sent = start_id
        if lei is not None and lei < start_id:
            sent = lei
            with self.pool.connection() as conn:
                oldest, _ = stream_bounds(conn)
            if lei < oldest or start_id - lei > self.settings.stream_backlog_max_events:
                payload = json.dumps({"id": start_id, "type": "stream.reset", "at": time.time(),
                                      "data": {"reason": "the events after the given id are no longer kept; "
                                                         "reload the state", "last_event_id": lei}})
                yield frame(start_id, payload)
                sent = start_id
            while sent < start_id:
                with self.pool.connection() as conn:
                    rows = fetch_events(conn, sent, 1000)
                if not rows:
                    break
                for r in rows:
                    ev = _event_from_row(r)
                    if kinds is None or ev.kind in kinds:
                        f = ev.frame_for(self.orgs)
                        if f is not None:
                            yield f
                    sent = ev.id
        elif lei is not None:
            sent = lei  # the client is ahead of this worker's hub: skip what it has
        heartbeat = self.settings.stream_heartbeat_s
        while True:
            if sub.dropped and sub.queue.empty():
                return  # this client fell too far behind: it reconnects and resumes from the table
            try:
                ev = sub.queue.get(timeout=heartbeat)
            except queue.Empty:
                yield b": ping\n\n"
                continue
            # Send what has queued up since in one write (fewer wake-ups and syscalls under load).
            batch = []
            while True:
                if ev.id > sent:
                    sent = ev.id
                    f = ev.frame_for(sub.orgs)
                    if f is not None:
                        batch.append(f)
                if len(batch) >= 200:
                    break
                try:
                    ev = sub.queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                yield b"".join(batch)
