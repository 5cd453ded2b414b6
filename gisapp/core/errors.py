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
        """The text a person reads, in ``lang``: the keyed text, else a generic one naming the field.

        A keyed text may use ``{field}`` (the field's ``field.<name>`` label in ``lang``, else the
        name); a parameter given as ``Text("some.key")`` is itself looked up in ``lang``."""
        from gisapp.core.i18n import MESSAGES, t

        label = field_label(self.field, lang)
        if self.key is not None:
            params = {"field": label}
            def local(v):
                if not isinstance(v, Text):
                    return str(v)
                if v.texts is not None:
                    return v.texts.get(lang, v.fallback)
                return t(v.key, lang) if v.key in MESSAGES else v.fallback

            for name, value in self.params.items():
                if isinstance(value, (list, tuple)):
                    value = ("、" if lang == "zh" else ", ").join(local(v) for v in value) or "—"
                params[name] = local(value) if not isinstance(value, str) else value
            return t(self.key, lang, **params)
        generic = f"err.status.{self.status}" if f"err.status.{self.status}" in MESSAGES else "err.status.400"
        return t(generic, lang, field=label, reason=self.reason)

    def to_dict(self, lang: str = "en") -> dict:
        out = {"error": type(self).__name__, "field": self.field, "reason": self.reason,
               "message": self.message(lang)}
        if self.key is not None:
            out["key"] = self.key
        out.update(self.extra)
        return out


class Text:
    """An error parameter shown in the reader's language: the text of ``key`` (gisapp.core.i18n),
    else ``fallback`` (e.g. a status or role code: ``Text(f"leg.status.{s}", s)``)."""

    __slots__ = ("key", "fallback", "texts")

    def __init__(self, key: str, fallback: str | None = None):
        self.key = key
        self.fallback = key if fallback is None else fallback
        self.texts: dict[str, str] | None = None

    @classmethod
    def pair(cls, zh: str, en: str) -> Text:
        """A parameter already written in both languages (e.g. a list of what a unit lacks)."""
        out = cls("", en)
        out.texts = {"zh": zh, "en": en}
        return out

    @classmethod
    def code(cls, prefix: str, code) -> Text:
        """The text of a code under ``prefix`` (``Text.code("dp.leg.", "closed")``), else the code."""
        return cls(f"{prefix}{code}", str(code))

    @classmethod
    def codes(cls, prefix: str, codes) -> list[Text]:
        return [cls.code(prefix, c) for c in codes]

    def __str__(self) -> str:
        return self.fallback

    def __repr__(self) -> str:
        return f"Text({self.key!r})"


def field_label(field: str | None, lang: str) -> str:
    """The label of a field in ``lang`` (``field.<name>``; an indexed path such as
    ``positions[3].lat`` by its last part), else the field's own name."""
    from gisapp.core.i18n import MESSAGES, t

    if not field:
        return ""
    for name in (field, field.rsplit(".", 1)[-1].split("[", 1)[0], field.split("[", 1)[0]):
        if f"field.{name}" in MESSAGES:
            return t(f"field.{name}", lang)
    return field


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
