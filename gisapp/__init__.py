"""The Zouping police situational-awareness map server (gisapp)."""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
__version__ = "0.1.0"
