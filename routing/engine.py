"""Run Dijkstra from points on edges: virtual source nodes with partial-edge offsets on a CSR graph."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from .graph import Csr


@dataclass
class Tree:
    """Result of a multi-source search over the n real nodes of a graph.

    ``dist[i]`` is the best time to node i from any source (inf: not reached, or beyond the
    limit); ``pred[i]`` the previous node on that path (>= n: the virtual node of source
    ``pred[i] - n``, i.e. i is a seed node; -9999: none); ``source[i]`` the index of the source.
    """

    dist: np.ndarray
    pred: np.ndarray | None
    source: np.ndarray | None
    n: int
    limit: float


def _flat(seeds: list[list[tuple[int, float]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeds as arrays: the count of seeds per source, then every seed's node and offset."""
    counts = np.fromiter((len(s) for s in seeds), dtype=np.int64, count=len(seeds))
    total = int(counts.sum())
    nodes = np.fromiter((node for s in seeds for node, _ in s), dtype=np.int32, count=total)
    offs = np.fromiter((off for s in seeds for _, off in s), dtype=np.float64, count=total)
    return counts, nodes, offs


def _with_sources(csr: Csr, counts: np.ndarray, nodes: np.ndarray, offs: np.ndarray) -> csr_matrix:
    """The graph plus one virtual node per source (numbered n, n+1, ...) with arcs to its seed
    nodes costing the offsets (seeds ordered by source)."""
    m = csr.matrix
    n, k = m.shape[0], len(counts)
    indptr = np.concatenate([m.indptr, m.indptr[-1] + np.cumsum(counts)]).astype(np.int32)
    return csr_matrix((np.concatenate([m.data, offs]), np.concatenate([m.indices, nodes.astype(np.int32)]), indptr),
                      shape=(n + k, n + k))


def _multi_source(g: csr_matrix, n: int, k: int, limit: float, predecessors: bool, sources: bool) -> Tree:
    """One Dijkstra from the k virtual source nodes of ``g`` at once (each node keeps its best source)."""
    starts = np.arange(n, n + k)
    if predecessors or sources:
        dist, pred, src = dijkstra(g, directed=True, indices=starts, return_predecessors=True,
                                   min_only=True, limit=limit)
        return Tree(dist[:n], pred[:n] if predecessors else None, (src[:n] - n) if sources else None, n, limit)
    dist = dijkstra(g, directed=True, indices=starts, min_only=True, limit=limit)
    return Tree(dist[:n], None, None, n, limit)


def _empty(n: int, limit: float, predecessors: bool, sources: bool) -> Tree:
    return Tree(np.full(n, np.inf), np.full(n, -9999, dtype=np.int32) if predecessors else None,
                np.full(n, -9999, dtype=np.int32) if sources else None, n, limit)


def search(csr: Csr, seeds: list[list[tuple[int, float]]], *, limit: float = np.inf,
           predecessors: bool = True, sources: bool = False) -> Tree:
    """Dijkstra from several sources, each given as seed nodes with start offsets (seconds).

    Every source becomes a virtual node with arcs to its seed nodes that cost the offsets, so
    the search is exact for points inside edges. ``limit`` stops the search at that time.
    """
    n = csr.matrix.shape[0]
    if not seeds or n == 0:
        return _empty(n, limit, predecessors, sources)
    g = _with_sources(csr, *_flat(seeds))
    return _multi_source(g, n, len(seeds), limit, predecessors, sources)


def search_arrays(csr: Csr, k: int, owner: np.ndarray, nodes: np.ndarray, offs: np.ndarray, *,
                  limit: float = np.inf, predecessors: bool = False, sources: bool = True) -> Tree:
    """Like :func:`search` with the seeds as arrays: seed j belongs to source ``owner[j]`` (sorted)."""
    n = csr.matrix.shape[0]
    if k == 0 or n == 0:
        return _empty(n, limit, predecessors, sources)
    g = _with_sources(csr, np.bincount(owner, minlength=k), nodes, offs)
    return _multi_source(g, n, k, limit, predecessors, sources)


def search_one(csr: Csr, seeds: list[tuple[int, float]], *, limit: float = np.inf) -> Tree:
    """Dijkstra from one point given by up to two seed nodes with offsets (the common query).

    Uses a graph built once with one spare virtual node whose two arcs are rewritten for each
    query under a lock, so no graph is copied per query.
    """
    if not seeds or len(seeds) > 2:
        return search(csr, [seeds], limit=limit)
    m = csr.matrix
    n = m.shape[0]
    aug = csr.__dict__.get("_aug1")
    if aug is None:
        indptr = np.concatenate([m.indptr, [m.indptr[-1] + 2]]).astype(np.int32)
        aug = csr_matrix((np.concatenate([m.data, [0.0, 0.0]]),
                          np.concatenate([m.indices, [0, 0]]).astype(np.int32), indptr), shape=(n + 1, n + 1))
        csr.__dict__["_aug1"] = aug
        csr.__dict__["_aug1_lock"] = threading.Lock()
    pair = sorted(seeds if len(seeds) == 2 else seeds * 2)
    with csr.__dict__["_aug1_lock"]:
        aug.indices[-2:] = [pair[0][0], pair[1][0]]
        aug.data[-2:] = [pair[0][1], pair[1][1]]
        dist, pred = dijkstra(aug, directed=True, indices=n, return_predecessors=True, limit=limit)
    return Tree(dist[:n], pred[:n], None, n, limit)


def path_nodes(tree: Tree, node: int) -> list[int]:
    """Nodes from ``node`` back to its seed node following predecessors (``node`` first)."""
    if hasattr(tree, "path"):  # a fastsearch.SparseTree walks its own settled nodes
        return tree.path(node)
    out = [node]
    p = int(tree.pred[node])
    guard = 0
    while 0 <= p < tree.n:
        out.append(p)
        p = int(tree.pred[p])
        guard += 1
        if guard > tree.n:
            raise RuntimeError("predecessor loop")
    return out


def search_each(csr: Csr, seeds: list[list[tuple[int, float]]], *, limit: float = np.inf) -> np.ndarray:
    """One search per source (seed nodes with offsets): a (k, n) matrix of times."""
    n = csr.matrix.shape[0]
    k = len(seeds)
    if k == 0 or n == 0:
        return np.full((k, n), np.inf)
    g = _with_sources(csr, *_flat(seeds))
    dist = dijkstra(g, directed=True, indices=np.arange(n, n + k), limit=limit)
    return np.atleast_2d(dist)[:, :n]
