"""The Zouping police situational-awareness map server (gisapp)."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Import the Flask app lazily, so that geodata and routing can use gisapp.catalog,
    # gisapp.geometry and gisapp.config without importing Flask.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'gisapp' has no attribute {name!r}")
