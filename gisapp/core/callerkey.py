"""Caller numbers encrypted at rest (issue 13, call-back).

The full number of a caller is stored only as ``incident.caller_encrypted``: AES-256-GCM from
the ``cryptography`` package, a fresh 96-bit nonce per record, the incident id as associated
data (a ciphertext copied onto another incident does not decrypt). Layout of the stored bytes:
``b"\\x01" | key id (4 bytes) | nonce (12) | ciphertext + tag``.

The key never lives in the database. It is, in this order: the setting ``caller_key``
(``GISAPP_CALLER_KEY``, urlsafe base64 of 32 bytes), else the file ``caller_key_file``
(default ``var/caller_key``, written by ``gisapp caller-key init``, which ``make setup`` and
``make run`` call). Earlier keys stay readable through ``caller_key_previous`` (setting) or the
file ``<caller_key_file>.previous``: ``gisapp caller-key rotate`` writes a new key, keeps the old
one there, and re-encrypts every stored number with the new key (see README "Call-back").

Without a key, intake still works and keeps only the masked number (a warning is logged), and a
reveal answers 503 naming ``caller_key``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gisapp.core.config import ROOT

VERSION = b"\x01"
_KID_LEN = 4
_NONCE_LEN = 12


class CallerKeyError(Exception):
    """The key is missing, malformed, or not the one a record was encrypted with."""


def new_key() -> str:
    """A new random key in its text form (urlsafe base64 of 32 bytes)."""
    return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()


def parse_key(text: str, name: str = "caller_key") -> bytes:
    """The 32 key bytes of a key's text form; CallerKeyError naming ``name`` when malformed."""
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        raise CallerKeyError(f"{name}: not urlsafe base64") from None
    if len(raw) != 32:
        raise CallerKeyError(f"{name}: must be 32 bytes (urlsafe base64, 44 characters); "
                             "make one with `gisapp caller-key init`")
    return raw


def key_file(settings) -> Path:
    return Path(settings.caller_key_file) if settings.caller_key_file else ROOT / "var" / "caller_key"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def current_key(settings) -> bytes | None:
    """The key new numbers are encrypted with, or None when none is configured."""
    if settings.caller_key:
        return parse_key(settings.caller_key)
    text = _read(key_file(settings))
    return parse_key(text, str(key_file(settings))) if text else None


def keys(settings) -> list[bytes]:
    """Every key a stored number may be decrypted with: the current one first, then the previous."""
    out = []
    cur = current_key(settings)
    if cur is not None:
        out.append(cur)
    if settings.caller_key_previous:
        out.append(parse_key(settings.caller_key_previous, "caller_key_previous"))
    prev = _read(key_file(settings).with_name(key_file(settings).name + ".previous"))
    if prev:
        out.append(parse_key(prev, "caller_key_file.previous"))
    return out


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"gisapp caller key id\0" + key).digest()[:_KID_LEN]


def _aad(incident_id: int) -> bytes:
    return f"incident:{incident_id}".encode()


def encrypt(key: bytes, number: str, incident_id: int) -> bytes:
    nonce = os.urandom(_NONCE_LEN)
    return VERSION + key_id(key) + nonce + AESGCM(key).encrypt(nonce, number.encode(), _aad(incident_id))


def stored_key_id(blob: bytes) -> bytes:
    return bytes(blob[1:1 + _KID_LEN])


def decrypt(candidates: list[bytes], blob: bytes, incident_id: int) -> str:
    """The number in ``blob``; CallerKeyError when no configured key is the one it was written with."""
    blob = bytes(blob)
    if not blob or blob[:1] != VERSION:
        raise CallerKeyError("unknown format of the stored caller number")
    kid = stored_key_id(blob)
    nonce = blob[1 + _KID_LEN:1 + _KID_LEN + _NONCE_LEN]
    for key in candidates:
        if hmac.compare_digest(key_id(key), kid):
            try:
                return AESGCM(key).decrypt(nonce, blob[1 + _KID_LEN + _NONCE_LEN:], _aad(incident_id)).decode()
            except InvalidTag:
                raise CallerKeyError("the stored caller number does not authenticate (altered or moved)") from None
    raise CallerKeyError("the key this number was encrypted with is not configured (caller_key_previous?)")


def blind(settings, number: str) -> str:
    """A keyed digest of a number (for request fingerprints): not reversible by trying all numbers."""
    key = current_key(settings)
    if key is None:
        return "unkeyed"
    return hmac.new(key, b"caller number\0" + number.encode(), hashlib.sha256).hexdigest()


def write_key_file(path: Path, text: str) -> None:
    """Write a key file readable by its owner only, atomically (a reader never sees half a key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    os.replace(tmp, path)


def init_key_file(settings) -> tuple[Path, bool]:
    """Create the key file when there is none (and no key in the environment); (path, created)."""
    path = key_file(settings)
    if settings.caller_key or _read(path):
        return path, False
    write_key_file(path, new_key())
    return path, True


def rotate(conn, settings) -> int:
    """Make a new key the current one and re-encrypt every stored number with it, in ``conn``'s
    transaction (the caller commits). The old key is kept in ``<file>.previous`` so that a server
    still holding numbers under it (or this transaction failing) loses nothing. Returns how many
    numbers were re-encrypted."""
    if settings.caller_key:
        raise CallerKeyError("the key comes from GISAPP_CALLER_KEY: rotate it there (set the old one as "
                             "GISAPP_CALLER_KEY_PREVIOUS, the new one as GISAPP_CALLER_KEY, then run "
                             "`gisapp caller-key reencrypt`)")
    path = key_file(settings)
    old = _read(path)
    if old:
        write_key_file(path.with_name(path.name + ".previous"), old)
    write_key_file(path, new_key())
    return reencrypt(conn, settings)


def reencrypt(conn, settings) -> int:
    """Re-encrypt every stored number that is not under the current key; return how many."""
    cur = current_key(settings)
    if cur is None:
        raise CallerKeyError("no caller key is configured (caller_key)")
    candidates = keys(settings)
    n = 0
    rows = conn.execute("SELECT id, caller_encrypted FROM incident WHERE caller_encrypted IS NOT NULL "
                        "ORDER BY id FOR UPDATE").fetchall()
    for row in rows:
        blob = bytes(row["caller_encrypted"])
        if stored_key_id(blob) == key_id(cur):
            continue
        number = decrypt(candidates, blob, row["id"])
        conn.execute("UPDATE incident SET caller_encrypted = %s WHERE id = %s", [encrypt(cur, number, row["id"]),
                                                                               row["id"]])
        n += 1
    return n
