"""Decode Mapbox Vector Tiles (layers, feature ids, properties, geometry types) for the tests."""

from __future__ import annotations

import struct


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 1:
            val, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wt == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        yield num, wt, val


def _packed(buf: bytes) -> list[int]:
    out, i = [], 0
    while i < len(buf):
        v, i = _varint(buf, i)
        out.append(v)
    return out


def _value(buf: bytes):
    for num, _wt, val in _fields(buf):
        if num == 1:
            return val.decode()
        if num == 2:
            return struct.unpack("<f", val)[0]
        if num == 3:
            return struct.unpack("<d", val)[0]
        if num in (4, 5):
            return val if num == 5 or val < 2**63 else val - 2**64
        if num == 6:
            return (val >> 1) ^ -(val & 1)
        if num == 7:
            return bool(val)
    return None


def decode(data: bytes) -> dict[str, dict]:
    """Return {layer name: {"extent", "features": [{"id", "type", "properties", "geometry_len"}]}}."""
    out: dict[str, dict] = {}
    for num, _wt, layer_buf in _fields(data):
        if num != 3:
            continue
        name, extent, keys, values, raw_feats = None, 4096, [], [], []
        for lnum, _lwt, lval in _fields(layer_buf):
            if lnum == 1:
                name = lval.decode()
            elif lnum == 2:
                raw_feats.append(lval)
            elif lnum == 3:
                keys.append(lval.decode())
            elif lnum == 4:
                values.append(_value(lval))
            elif lnum == 5:
                extent = lval
        feats = []
        for fb in raw_feats:
            f = {"id": None, "type": None, "properties": {}, "geometry_len": 0}
            for fnum, _fwt, fval in _fields(fb):
                if fnum == 1:
                    f["id"] = fval
                elif fnum == 2:
                    tags = _packed(fval)
                    f["properties"] = {keys[tags[k]]: values[tags[k + 1]] for k in range(0, len(tags), 2)}
                elif fnum == 3:
                    f["type"] = {1: "Point", 2: "LineString", 3: "Polygon"}.get(fval)
                elif fnum == 4:
                    f["geometry_len"] = len(_packed(fval))
            feats.append(f)
        out[name] = {"extent": extent, "features": feats}
    return out
