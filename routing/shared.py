"""Arrays shared by the processes of a host: written once per graph version, memory-mapped by each.

N gunicorn workers that each build the road graph hold N copies of its arrays. :func:`publish`
writes named arrays as ``.npy`` files into a directory (atomically: a temporary directory renamed
into place, so a reader never sees half a graph; the first writer wins when several race), and
:func:`attach` maps them read-only (``np.load(mmap_mode="r")``), so the page cache holds one copy
that every process reads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np


def publish(directory: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` into ``directory`` unless it already exists (one version, written once)."""
    target = Path(directory)
    if (target / "_complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        for name, a in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(a), allow_pickle=False)
        (tmp / "_complete").write_text("ok\n")
        try:
            os.rename(tmp, target)
        except OSError:  # another process published the same version first
            if not (target / "_complete").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def attach(directory: str | os.PathLike) -> dict[str, np.ndarray]:
    """Map every array of a published directory read-only (KeyError-free: {} when not published)."""
    d = Path(directory)
    if not (d / "_complete").exists():
        return {}
    return {p.stem: np.load(p, mmap_mode="r", allow_pickle=False) for p in sorted(d.glob("*.npy"))}


def memory_mb() -> dict[str, float]:
    """This process's resident memory (MB): rss, pss (shared pages divided among the processes
    mapping them) and private (pages only this process holds), from /proc/self/smaps_rollup."""
    out = {"rss": 0.0, "pss": 0.0, "private": 0.0}
    try:
        text = Path("/proc/self/smaps_rollup").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        key, kb = parts[0].rstrip(":"), parts[1]
        if key == "Rss":
            out["rss"] = int(kb) / 1024
        elif key == "Pss":
            out["pss"] = int(kb) / 1024
        elif key in ("Private_Clean", "Private_Dirty"):
            out["private"] += int(kb) / 1024
    return out
