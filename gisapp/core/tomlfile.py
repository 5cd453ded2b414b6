"""Configuration files in TOML (the dispatch rules, the ranking weights), parsed once and re-read
when the file changes on disk."""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TomlFiles(Generic[T]):
    """Parsed files by path: ``load(path)`` parses with ``parse(doc, path)`` the first time and
    again only when the file's modification time changes; a malformed file raises ``error``.
    Safe to share between the threads of a web worker."""

    def __init__(self, parse: Callable[[dict, str], T], error: type[Exception]):
        self._parse = parse
        self._error = error
        self._cache: dict[str, tuple[float, T]] = {}
        self._lock = threading.Lock()

    def load(self, path: str) -> T:
        mtime = os.stat(path).st_mtime
        with self._lock:
            hit = self._cache.get(path)
            if hit and hit[0] == mtime:
                return hit[1]
        with open(path, "rb") as fh:
            try:
                doc = tomllib.load(fh)
            except tomllib.TOMLDecodeError as e:
                raise self._error(f"{path}: {e}") from None
        value = self._parse(doc, path)
        with self._lock:
            self._cache[path] = (mtime, value)
        return value
