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


# ------------------------------------------------------------------------------- the road graph
_EDGE_ARRAYS = ("edge_id", "edge_u", "edge_v", "edge_cost_s", "edge_length_m", "edge_oneway", "edge_class",
                "metric_length", "node_id", "node_lonlat", "coord_xy", "coord_start", "coord_cum", "coord_ll")
KEEP_VERSIONS = 8


def graph_dir() -> Path | None:
    """Where graphs are published: ``GISAPP_GRAPH_DIR``, else the checkout's ``var/graph``
    (``GISAPP_GRAPH_DIR=off``: every process keeps its own arrays)."""
    env = os.environ.get("GISAPP_GRAPH_DIR")
    if env == "off":
        return None
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "var" / "graph"


def _graph_arrays(graph) -> dict[str, np.ndarray]:
    out = {name: getattr(graph, name) for name in _EDGE_ARRAYS}
    for side in ("forward", "reverse"):
        csr = getattr(graph, side)
        out[f"{side}_data"] = csr.matrix.data
        out[f"{side}_indices"] = csr.matrix.indices
        out[f"{side}_indptr"] = csr.matrix.indptr
        out[f"{side}_arc_edge"] = csr.arc_edge
        out[f"{side}_arc_forward"] = csr.arc_forward
    return out


def share_graph(graph, base: Path | None = None):
    """Publish ``graph``'s numeric arrays once (content-addressed: a digest of every array, so two
    databases, versions or settings never share a directory by mistake) and point the graph at the
    memory-mapped copies, so the workers of a host hold one copy in the page cache. The shapely
    geometries stay per process. Returns the graph (unchanged when sharing is off or fails)."""
    import hashlib

    from scipy.sparse import csr_matrix

    base = base if base is not None else graph_dir()
    if base is None or graph.n_edges == 0:
        return graph
    arrays = _graph_arrays(graph)
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(memoryview(a).cast("B"))
    try:
        path = publish(base / h.hexdigest(), arrays)
        mapped = attach(path)
        _prune(base, keep=path)
    except OSError:
        return graph
    if set(mapped) != set(arrays):
        return graph
    for name in _EDGE_ARRAYS:
        setattr(graph, name, mapped[name])
    for side in ("forward", "reverse"):
        csr = getattr(graph, side)
        n = csr.matrix.shape[0]
        m = csr_matrix((n, n))
        m.data, m.indices, m.indptr = mapped[f"{side}_data"], mapped[f"{side}_indices"], mapped[f"{side}_indptr"]
        csr.matrix = m
        csr.arc_edge = mapped[f"{side}_arc_edge"]
        csr.arc_forward = mapped[f"{side}_arc_forward"]
    graph.shared_dir = str(path)
    return graph


def _prune(base: Path, keep: Path) -> None:
    """Remove all but the KEEP_VERSIONS most recently used graph directories (a process that
    still maps a removed one keeps reading it: the pages live until it unmaps them)."""
    dirs = sorted((d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")),
                  key=lambda d: d.stat().st_mtime, reverse=True)
    os.utime(keep)
    for d in dirs[KEEP_VERSIONS:]:
        if d != keep:
            shutil.rmtree(d, ignore_errors=True)
