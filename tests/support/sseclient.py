"""Read a server-sent-event stream over plain http.client (tests, benchmark, simulate-live watchers)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class SSEMessage:
    """One message: its id (None when the server gave none) and data (parsed JSON when it is JSON)."""

    id: int | None
    data: Any
    raw: str


class SSEClient:
    """An open stream; iterate :meth:`messages`. A read waits at most ``timeout`` seconds."""

    def __init__(self, base_url: str, path: str, headers: dict[str, str] | None = None, timeout: float = 30):
        u = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        self.conn.request("GET", path, headers={"Accept": "text/event-stream", **(headers or {})})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = dict(self.resp.getheaders())
        self.last_id: int | None = None

    def body(self) -> str:
        """The whole body of a non-stream (error) answer."""
        return self.resp.read().decode(errors="replace")

    def messages(self, deadline: float | None = None) -> Iterator[SSEMessage]:
        """Yield messages until the server closes the stream or ``time.monotonic()`` passes ``deadline``.

        A read waits at most the client's timeout (then TimeoutError); heartbeats are skipped.
        """
        data: list[str] = []
        eid: int | None = None
        while deadline is None or time.monotonic() < deadline:
            line = self.resp.readline()
            if not line:
                return
            text = line.decode("utf-8").rstrip("\r\n")
            if not text:
                if data:
                    raw = "\n".join(data)
                    try:
                        parsed = json.loads(raw)
                    except ValueError:
                        parsed = raw
                    if eid is not None:
                        self.last_id = eid
                    yield SSEMessage(eid, parsed, raw)
                data, eid = [], None
                continue
            if text.startswith(":"):
                continue
            name, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "id":
                eid = int(value) if value.isdigit() else None

    def close(self) -> None:
        self.conn.close()
