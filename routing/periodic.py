"""A daemon thread that runs a task every so often, sooner when poked (no Flask, no database).

Used by routing's live-coverage refresher and by the service's maintenance thread
(``gisapp.maintenance``): each web worker runs its own, and the tasks themselves make
concurrent runs in several processes harmless (advisory locks, idempotent updates).
"""

from __future__ import annotations

import threading
import time
from typing import Any


class Periodic:
    """Run :meth:`task` every ``interval_s`` seconds, sooner after :meth:`poke`, but never twice
    within ``min_gap_s``. An exception is logged and kept in ``last_error``; the next run retries."""

    thread_name = "gisapp-periodic"

    def __init__(self, interval_s: float, min_gap_s: float = 1.0, log=None):
        self.interval_s, self.min_gap_s = float(interval_s), float(min_gap_s)
        self.log = log or (lambda msg: None)
        self.runs = 0
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)

    def task(self) -> Any:
        raise NotImplementedError

    def report(self, out: Any) -> str | None:
        """A line to log about a run's result (None: nothing worth saying)."""
        return None

    def start(self):
        self._thread.start()
        return self

    def poke(self) -> None:
        """Something changed: run soon."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_once(self) -> Any:
        """Run the task now."""
        out = self.task()
        self.runs += 1
        return out

    def tick(self) -> Any:
        """What the thread runs each time (the whole task; a subclass may pace its parts)."""
        return self.run_once()

    def _loop(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            wait = last + self.min_gap_s - time.monotonic()
            if (wait > 0 and self._stop.wait(wait)) or self._stop.is_set():
                break
            last = time.monotonic()
            try:
                msg = self.report(self.tick())
                self.last_error = None
                if msg:
                    self.log(msg)
            except Exception as e:  # the database may be restarting; try again next time
                self.last_error = f"{type(e).__name__}: {e}"
                self.log(f"{self.thread_name} failed: {self.last_error}")
