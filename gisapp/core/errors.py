"""Define the service's own exceptions; each carries an HTTP status, none imports Flask."""

from __future__ import annotations


class GisappError(Exception):
    """An error with an HTTP status, the offending field and a human reason."""

    status = 400

    def __init__(self, reason: str, field: str | None = None, status: int | None = None, **extra):
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.extra = extra
        if status is not None:
            self.status = status

    def to_dict(self) -> dict:
        out = {"error": type(self).__name__, "field": self.field, "reason": self.reason}
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
