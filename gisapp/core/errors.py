"""Define the service's own exceptions; each carries an HTTP status, none imports Flask."""

from __future__ import annotations


class GisappError(Exception):
    """An error with an HTTP status, the offending field and a human reason."""

    status = 400

    def __init__(self, reason: str, field: str | None = None, status: int | None = None, *,
                 key: str | None = None, params: dict | None = None, **extra):
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.extra = extra
        # ``key`` names the user-facing text in gisapp.core.i18n (both languages), filled from
        # ``params``; ``reason`` stays the stable English text for API clients and logs.
        self.key = key
        self.params = params or {}
        if status is not None:
            self.status = status

    def message(self, lang: str) -> str:
        """The text a person reads, in ``lang``: the keyed text, else a generic one naming the field."""
        from gisapp.core.i18n import MESSAGES, t

        if self.key is not None:
            return t(self.key, lang, **self.params)
        label_key = f"field.{self.field}"
        label = t(label_key, lang) if label_key in MESSAGES else (self.field or "")
        generic = f"err.status.{self.status}" if f"err.status.{self.status}" in MESSAGES else "err.status.400"
        return t(generic, lang, field=label, reason=self.reason)

    def to_dict(self, lang: str = "en") -> dict:
        out = {"error": type(self).__name__, "field": self.field, "reason": self.reason,
               "message": self.message(lang)}
        if self.key is not None:
            out["key"] = self.key
        out.update(self.extra)
        return out


class ValidationError(GisappError):
    status = 400


class GeometryError(GisappError):
    status = 422


class NotFound(GisappError):
    status = 404


class Conflict(GisappError):
    status = 409


class Unauthorized(GisappError):
    status = 401


class Forbidden(GisappError):
    status = 403


class PayloadTooLarge(GisappError):
    status = 413
