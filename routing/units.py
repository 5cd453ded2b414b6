"""The units in memory: positions, status, capabilities and labels, checked on every use.

A nearest-unit query used to read the candidate units from PostGIS each time (a KNN index scan
and a hundred rows to decode, most of the query's time). :func:`snapshot` instead keeps one
:class:`UnitSnapshot` per database and process, and checks it with one aggregate over the unit
table's ``row_version`` column (migration 0060: a trigger gives every insert and update a new
number). The stamp and the rows are read in the same statement, so a snapshot is exactly the
rows of the snapshot its stamp was read in; an uncommitted change of the caller's own transaction
changes the stamp too, and a rollback changes it back. The snapshot also keeps the units'
snaps to the road graph of the router it was last used with.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import tuple_row

# One row: the road network version, the database's oid (a database dropped and re-created from
# a template under the same name restarts its unit history), the unit count and the XOR of the
# hashes of every row version.
STAMP_SQL = ("SELECT (SELECT version FROM road_network_version), "
             "(SELECT oid::bigint FROM pg_database WHERE datname = current_database()), "
             "count(*), coalesce(bit_xor(hashint8extended(row_version, 0)), 0) FROM unit")

_ROWS_SQL = ("WITH s AS (SELECT count(*) AS n, coalesce(bit_xor(hashint8extended(row_version, 0)), 0) AS h "
             "FROM unit) "
             "SELECT s.n, s.h, (SELECT oid::bigint FROM pg_database WHERE datname = current_database()), "
             "u.id, u.organisation_id, ST_X(u.last_position), ST_Y(u.last_position), u.code, u.name, u.status, "
             "u.capabilities FROM s LEFT JOIN unit u ON true ORDER BY u.id")


@dataclass(frozen=True)
class Stamp:
    """What a snapshot is valid for: the database, the unit rows (count, hash) and the road network."""

    db_oid: int
    count: int
    hash: int
    road_version: int


@dataclass
class UnitSnapshot:
    """Every unit of one database at one stamp, as arrays ordered by unit id (read-only)."""

    db_oid: int
    count: int
    hash: int
    ids: np.ndarray  # int64
    org: np.ndarray  # int64 organisation id
    lonlat: np.ndarray  # (n, 2) float64, NaN without a position
    status: np.ndarray  # object (str)
    codes: list[str]
    names: list[str]
    caps: list[frozenset[str]]
    _masks: dict[tuple, np.ndarray] = field(default_factory=dict, repr=False)
    _snaps: dict[int, Any] = field(default_factory=dict, repr=False)  # id(router) -> (router, Snaps)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def matches(self, stamp: Stamp) -> bool:
        return (self.db_oid, self.count, self.hash) == (stamp.db_oid, stamp.count, stamp.hash)

    def select(self, statuses: Sequence[str], caps: Sequence[str] | None = None,
               orgs: Iterable[int] | None = None) -> np.ndarray:
        """Indices of the units with a position, one of ``statuses``, every capability of ``caps``
        and (when given) an organisation among ``orgs``, in unit id order."""
        key = (tuple(sorted(set(statuses))), tuple(sorted(set(caps or ()))))
        mask = self._masks.get(key)
        if mask is None:
            mask = np.isfinite(self.lonlat[:, 0]) & np.isin(self.status, list(key[0]))
            if key[1]:
                need = frozenset(key[1])
                mask &= np.fromiter((need <= c for c in self.caps), dtype=bool, count=len(self.caps))
            with self._lock:
                if len(self._masks) > 256:
                    self._masks.clear()
                self._masks[key] = mask
        if orgs is not None:
            mask = mask & np.isin(self.org, np.fromiter(orgs, dtype=np.int64))
        return np.flatnonzero(mask)

    def snaps(self, router) -> Any:
        """The snaps of every positioned unit to ``router``'s graph (rows of units without a
        position are not meaningful), computed once per router."""
        hit = self._snaps.get(id(router))
        if hit is not None and hit[0] is router:
            return hit[1]
        pos = np.where(np.isfinite(self.lonlat), self.lonlat, 0.0)
        s = router.snap_cached(pos) if len(pos) else router.snap(pos)
        with self._lock:
            self._snaps.clear()  # one router at a time: the current road network
            self._snaps[id(router)] = (router, s)
        return s


_snapshots: dict[tuple, UnitSnapshot] = {}
_lock = threading.Lock()


def read_stamp(conn: psycopg.Connection) -> Stamp:
    """The current stamp, as the caller's transaction sees it (one cheap statement)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        version, oid, n, h = cur.execute(STAMP_SQL, prepare=True).fetchone()
    return Stamp(int(oid), int(n), int(h), int(version) if version is not None else 0)


def load(conn: psycopg.Connection) -> UnitSnapshot:
    """Read every unit and the stamp of what was read, in one statement."""
    with conn.cursor(row_factory=tuple_row, binary=True) as cur:
        rows = cur.execute(_ROWS_SQL).fetchall()
    n, h, oid = int(rows[0][0]), int(rows[0][1]), int(rows[0][2])
    rows = [r for r in rows if r[3] is not None]
    return UnitSnapshot(
        db_oid=oid, count=n, hash=h,
        ids=np.array([r[3] for r in rows], dtype=np.int64),
        org=np.array([r[4] for r in rows], dtype=np.int64),
        lonlat=np.array([(np.nan if r[5] is None else r[5], np.nan if r[6] is None else r[6]) for r in rows],
                        dtype=np.float64).reshape(-1, 2),
        status=np.array([r[9] for r in rows], dtype=object),
        codes=[r[7] for r in rows], names=[r[8] for r in rows],
        caps=[frozenset(r[10] or ()) for r in rows])


def snapshot(conn: psycopg.Connection, stamp: Stamp | None = None) -> UnitSnapshot:
    """The units as the caller's transaction sees them: the cached snapshot when its stamp is
    current, else read anew (and cached when nothing else replaced it meanwhile)."""
    stamp = stamp or read_stamp(conn)
    info = conn.info
    key = (info.host, info.port, info.dbname)
    snap = _snapshots.get(key)
    if snap is not None and snap.matches(stamp):
        return snap
    snap = load(conn)
    with _lock:
        _snapshots[key] = snap
    return snap


def clear_cache() -> None:
    with _lock:
        _snapshots.clear()
