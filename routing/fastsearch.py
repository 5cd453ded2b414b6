"""A Dijkstra whose work and memory follow the nodes it settles, not the size of the graph.

scipy's ``csgraph.dijkstra`` allocates and fills arrays over every node of the graph on each
call (about 2 ms on a 1.2-million-node grid even with a small ``limit``). :func:`nearest_search`
instead keeps its own small open-addressing hash map of the nodes it has reached and a binary heap,
compiled by numba, and stops as soon as the ``k`` best candidates (units, or one origin) are
proved: when the next node to settle is farther than the k-th best candidate time minus the
smallest candidate offset, no unsettled candidate can beat or tie it. The answer is the same as a
full Dijkstra's (times are the same sums along the same shortest paths).

The result is a :class:`SparseTree`: the settled nodes with their times and predecessors, looked
up by binary search, usable wherever :class:`routing.engine.Tree` is read (``dist[...]``,
``pred[...]``, ``n``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_EMPTY = np.int32(-1)


@njit(cache=True, nogil=True)
def _hash(x, mask):
    return (x * 2654435761) & mask


@njit(cache=True, nogil=True)
def _find(keys, x, mask):
    h = _hash(x, mask)
    while True:
        kk = keys[h]
        if kk == x or kk == -1:
            return h
        h = (h + 1) & mask


@njit(cache=True, nogil=True)
def _search(indptr, indices, data, seed_nodes, seed_offs, cand_node, cand_cost, cand_unit, unit_off,
            n_units, k, toff, min_uoff, cap0):
    """Heap Dijkstra from the seeds over one CSR graph, stopping once the ``k`` best candidates are
    proved. Candidate j is reached at ``(unit_off[u] + (cand_cost[j] + d[cand_node[j]])) + toff`` for
    unit ``u = cand_unit[j]``; ``cand_node`` is sorted. Returns the settled nodes, their times and
    predecessors (-1: a seed)."""
    cap = cap0
    mask = cap - 1
    keys = np.full(cap, -1, dtype=np.int32)
    hd = np.empty(cap, dtype=np.float64)
    hp = np.empty(cap, dtype=np.int32)
    hs = np.zeros(cap, dtype=np.uint8)
    used = 0
    # binary heap of (time, node)
    hcap = 256
    heap_d = np.empty(hcap, dtype=np.float64)
    heap_n = np.empty(hcap, dtype=np.int32)
    hn = 0
    out_n = np.empty(256, dtype=np.int32)
    n_out = 0
    best = np.full(n_units, np.inf)
    top_d = np.full(k, np.inf)  # the k best candidate times found so far, distinct units, sorted
    top_u = np.full(k, -1, dtype=np.int64)
    m = len(cand_node)
    for s in range(len(seed_nodes)):
        x = seed_nodes[s]
        dd = seed_offs[s]
        h = _find(keys, x, mask)
        if keys[h] == -1:
            keys[h] = x
            hd[h] = dd
            hp[h] = -1
            hs[h] = 0
            used += 1
        elif dd < hd[h]:
            hd[h] = dd
        else:
            continue
        if hn == hcap:
            hcap *= 2
            nd = np.empty(hcap, dtype=np.float64)
            nn = np.empty(hcap, dtype=np.int32)
            nd[:hn] = heap_d[:hn]
            nn[:hn] = heap_n[:hn]
            heap_d, heap_n = nd, nn
        i = hn
        hn += 1
        while i > 0:
            p = (i - 1) >> 1
            if heap_d[p] <= dd:
                break
            heap_d[i] = heap_d[p]
            heap_n[i] = heap_n[p]
            i = p
        heap_d[i] = dd
        heap_n[i] = x
    while hn > 0:
        dx = heap_d[0]
        x = heap_n[0]
        # pop
        hn -= 1
        if hn > 0:
            ld = heap_d[hn]
            ln = heap_n[hn]
            i = 0
            while True:
                c = 2 * i + 1
                if c >= hn:
                    break
                if c + 1 < hn and heap_d[c + 1] < heap_d[c]:
                    c += 1
                if heap_d[c] >= ld:
                    break
                heap_d[i] = heap_d[c]
                heap_n[i] = heap_n[c]
                i = c
            heap_d[i] = ld
            heap_n[i] = ln
        h = _find(keys, x, mask)
        if hs[h] == 1 or dx > hd[h]:
            continue
        # every candidate not yet reached is at least this late: stop when the k-th is proved
        if (min_uoff + dx) + toff > top_d[k - 1]:
            break
        hs[h] = 1
        if n_out == len(out_n):
            no = np.empty(2 * n_out, dtype=np.int32)
            no[:n_out] = out_n[:n_out]
            out_n = no
        out_n[n_out] = x
        n_out += 1
        # candidates at this node
        lo = 0
        hi = m
        while lo < hi:
            mid = (lo + hi) >> 1
            if cand_node[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        j = lo
        while j < m and cand_node[j] == x:
            u = cand_unit[j]
            t = (unit_off[u] + (cand_cost[j] + dx)) + toff
            if t < best[u]:
                best[u] = t
                # insert or improve u in the sorted top list
                pos = -1
                for q in range(k):
                    if top_u[q] == u:
                        pos = q
                        break
                if pos == -1:
                    if t < top_d[k - 1]:
                        pos = k - 1
                if pos >= 0:
                    top_d[pos] = t
                    top_u[pos] = u
                    while pos > 0 and top_d[pos - 1] > top_d[pos]:
                        top_d[pos - 1], top_d[pos] = top_d[pos], top_d[pos - 1]
                        top_u[pos - 1], top_u[pos] = top_u[pos], top_u[pos - 1]
                        pos -= 1
            j += 1
        # relax
        for a in range(indptr[x], indptr[x + 1]):
            y = indices[a]
            dy = dx + data[a]
            if 2 * (used + 1) > cap:  # grow the map
                ncap = cap * 2
                nmask = ncap - 1
                nk = np.full(ncap, -1, dtype=np.int32)
                nd2 = np.empty(ncap, dtype=np.float64)
                np2 = np.empty(ncap, dtype=np.int32)
                ns2 = np.zeros(ncap, dtype=np.uint8)
                for r in range(cap):
                    if keys[r] != -1:
                        g = _find(nk, keys[r], nmask)
                        nk[g] = keys[r]
                        nd2[g] = hd[r]
                        np2[g] = hp[r]
                        ns2[g] = hs[r]
                keys, hd, hp, hs, cap, mask = nk, nd2, np2, ns2, ncap, nmask
            g = _find(keys, y, mask)
            if keys[g] == -1:
                keys[g] = y
                hd[g] = dy
                hp[g] = x
                hs[g] = 0
                used += 1
            elif hs[g] == 0 and dy < hd[g]:
                hd[g] = dy
                hp[g] = x
            else:
                continue
            if hn == hcap:
                hcap *= 2
                nd = np.empty(hcap, dtype=np.float64)
                nn = np.empty(hcap, dtype=np.int32)
                nd[:hn] = heap_d[:hn]
                nn[:hn] = heap_n[:hn]
                heap_d, heap_n = nd, nn
            i = hn
            hn += 1
            while i > 0:
                p = (i - 1) >> 1
                if heap_d[p] <= dy:
                    break
                heap_d[i] = heap_d[p]
                heap_n[i] = heap_n[p]
                i = p
            heap_d[i] = dy
            heap_n[i] = y
    nodes = out_n[:n_out].copy()
    dist = np.empty(n_out, dtype=np.float64)
    pred = np.empty(n_out, dtype=np.int32)
    for r in range(n_out):
        g = _find(keys, nodes[r], mask)
        dist[r] = hd[g]
        pred[r] = hp[g]
    return nodes, dist, pred


@njit(cache=True, nogil=True)
def _walk(keys, pred, node, n):
    """Nodes from ``node`` back to its seed following the settled predecessors (``node`` first)."""
    out = np.empty(64, dtype=np.int64)
    m = 0
    x = node
    while True:
        if m == len(out):
            o2 = np.empty(2 * m, dtype=np.int64)
            o2[:m] = out[:m]
            out = o2
        out[m] = x
        m += 1
        if m > n + 1:
            return out[:0]  # a loop: cannot happen in a shortest-path tree
        i = np.searchsorted(keys, x)
        if i >= len(keys) or keys[i] != x:
            break
        p = pred[i]
        if p < 0 or p >= n:
            break
        x = p
    return out[:m]


class _Lookup:
    """Values of the settled nodes, read like a whole-graph array (``default`` elsewhere)."""

    __slots__ = ("keys", "values", "default")

    def __init__(self, keys: np.ndarray, values: np.ndarray, default):
        self.keys, self.values, self.default = keys, values, default

    def __getitem__(self, idx):
        if np.ndim(idx) == 0:
            i = int(np.searchsorted(self.keys, idx))
            if i < len(self.keys) and self.keys[i] == idx:
                return self.values[i]
            return self.default
        idx = np.asarray(idx)
        pos = np.minimum(np.searchsorted(self.keys, idx), max(len(self.keys) - 1, 0))
        if len(self.keys) == 0:
            return np.full(idx.shape, self.default, dtype=self.values.dtype)
        hit = self.keys[pos] == idx
        return np.where(hit, self.values[pos], self.default)


class SparseTree:
    """The settled part of a search: ``dist[i]`` (inf elsewhere), ``pred[i]`` (-9999 at a seed or
    elsewhere), ``n`` the graph's node count, ``settled`` how many nodes were settled."""

    def __init__(self, n: int, nodes: np.ndarray, dist: np.ndarray, pred: np.ndarray):
        order = np.argsort(nodes, kind="stable")
        keys = nodes[order]
        p = pred[order]
        self.n = n
        self.settled = len(nodes)
        self.limit = np.inf
        self.source = None
        self.dist = _Lookup(keys, dist[order], np.inf)
        self.pred = _Lookup(keys, np.where(p < 0, -9999, p).astype(np.int32), -9999)

    def path(self, node: int) -> list[int]:
        """Nodes from ``node`` back to its seed node (``node`` first), as engine.path_nodes."""
        out = _walk(self.pred.keys, self.pred.values, int(node), self.n)
        if len(out) == 0:
            raise RuntimeError("predecessor loop")
        return out.tolist()


class Candidates:
    """Where each candidate point joins the graph: for every unit, up to two (node, cost) entries
    (leave its edge at the target node, or at the source node where that is allowed), sorted by node."""

    def __init__(self, node: np.ndarray, cost: np.ndarray, unit: np.ndarray, unit_off: np.ndarray):
        order = np.argsort(node, kind="stable")
        self.node = np.ascontiguousarray(node[order], dtype=np.int32)
        self.cost = np.ascontiguousarray(cost[order], dtype=np.float64)
        self.unit = np.ascontiguousarray(unit[order], dtype=np.int64)
        self.unit_off = np.ascontiguousarray(unit_off, dtype=np.float64)
        finite = self.unit_off[np.isfinite(self.unit_off)]
        self.min_off = float(finite.min()) if len(finite) else np.inf


def candidates(graph, sources) -> Candidates:
    """The join entries of the points ``sources`` (Snaps) on ``graph``'s forward arcs, with the same
    arithmetic as :meth:`routing.router.Router.etas_to` (``(1 - f) c`` toward v, ``f c`` toward u)."""
    e = sources.edge
    ok = (e >= 0) & np.isfinite(sources.offroad_s)
    idx = np.flatnonzero(ok)
    ec = e[idx]
    f = sources.fraction[idx]
    c = graph.edge_cost_s[ec]
    back = (~graph.edge_oneway[ec]) | (f == 0.0)
    node = np.concatenate([graph.edge_v[ec], graph.edge_u[ec][back]])
    cost = np.concatenate([(1.0 - f) * c, (f * c)[back]])
    unit = np.concatenate([idx, idx[back]])
    return Candidates(node, cost, unit, np.where(ok, sources.offroad_s, np.inf))


def nearest_search(csr, seeds: list[tuple[int, float]], cands: Candidates, k: int, toff: float) -> SparseTree:
    """Search ``csr`` (the reverse graph, toward a point) from its seeds until the ``k`` best
    candidates (``toff``: the point's own off-road time) are proved, or everything reachable is settled."""
    m = csr.matrix
    n = m.shape[0]
    if not seeds or k <= 0 or len(cands.unit_off) == 0:
        e = np.empty(0, dtype=np.int32)
        return SparseTree(n, e, np.empty(0), e)
    sn = np.array([s[0] for s in seeds], dtype=np.int32)
    so = np.array([s[1] for s in seeds], dtype=np.float64)
    min_off = cands.min_off if np.isfinite(cands.min_off) else 0.0
    nodes, dist, pred = _search(m.indptr, m.indices, m.data, sn, so, cands.node, cands.cost, cands.unit,
                                cands.unit_off, len(cands.unit_off), int(k), float(toff), float(min_off), 1024)
    return SparseTree(n, nodes, dist, pred)


# ------------------------------------------------------------------------------- coverage repair
@njit(cache=True, nogil=True)
def _repair(f_indptr, f_indices, f_data, f_edge, r_indptr, r_indices, r_data, r_edge, dist, src, changed,
            seed_nodes, seed_offs, seed_src):
    """Repair a multi-source search in place after the sources flagged in ``changed`` moved:
    forget the nodes they reached, re-enter those from their still-valid neighbours, add the moved
    sources' new seeds, and run Dijkstra only where times change. Returns the edges touching a
    node whose time or source changed."""
    n = len(dist)
    touched = np.empty(1024, dtype=np.int32)
    nt = 0
    for x in range(n):
        s = src[x]
        if s >= 0 and changed[s]:
            dist[x] = np.inf
            src[x] = -1
            if nt == len(touched):
                t2 = np.empty(2 * nt, dtype=np.int32)
                t2[:nt] = touched[:nt]
                touched = t2
            touched[nt] = x
            nt += 1
    hcap = 1024
    heap_d = np.empty(hcap, dtype=np.float64)
    heap_n = np.empty(hcap, dtype=np.int32)
    hn = 0
    n_inval = nt
    for q in range(n_inval + len(seed_nodes)):
        if q < n_inval:
            x = touched[q]
            best = np.inf
            bs = -1
            for a in range(r_indptr[x], r_indptr[x + 1]):
                p = r_indices[a]
                if src[p] >= 0:
                    c = dist[p] + r_data[a]
                    if c < best:
                        best = c
                        bs = src[p]
            if bs < 0 or not best < dist[x]:
                continue
            dist[x] = best
            src[x] = bs
            dd = best
        else:
            j = q - n_inval
            x = seed_nodes[j]
            dd = seed_offs[j]
            if not dd < dist[x]:
                continue
            dist[x] = dd
            src[x] = seed_src[j]
            if nt == len(touched):
                t2 = np.empty(2 * nt, dtype=np.int32)
                t2[:nt] = touched[:nt]
                touched = t2
            touched[nt] = x
            nt += 1
        if hn == hcap:
            hcap *= 2
            nd = np.empty(hcap, dtype=np.float64)
            nn = np.empty(hcap, dtype=np.int32)
            nd[:hn] = heap_d[:hn]
            nn[:hn] = heap_n[:hn]
            heap_d, heap_n = nd, nn
        i = hn
        hn += 1
        while i > 0:
            p = (i - 1) >> 1
            if heap_d[p] <= dd:
                break
            heap_d[i] = heap_d[p]
            heap_n[i] = heap_n[p]
            i = p
        heap_d[i] = dd
        heap_n[i] = x
    while hn > 0:
        dx = heap_d[0]
        x = heap_n[0]
        hn -= 1
        if hn > 0:
            ld = heap_d[hn]
            ln = heap_n[hn]
            i = 0
            while True:
                c = 2 * i + 1
                if c >= hn:
                    break
                if c + 1 < hn and heap_d[c + 1] < heap_d[c]:
                    c += 1
                if heap_d[c] >= ld:
                    break
                heap_d[i] = heap_d[c]
                heap_n[i] = heap_n[c]
                i = c
            heap_d[i] = ld
            heap_n[i] = ln
        if dx > dist[x]:
            continue
        for a in range(f_indptr[x], f_indptr[x + 1]):
            y = f_indices[a]
            dy = dx + f_data[a]
            if not dy < dist[y]:
                continue
            dist[y] = dy
            src[y] = src[x]
            if nt == len(touched):
                t2 = np.empty(2 * nt, dtype=np.int32)
                t2[:nt] = touched[:nt]
                touched = t2
            touched[nt] = y
            nt += 1
            if hn == hcap:
                hcap *= 2
                nd = np.empty(hcap, dtype=np.float64)
                nn = np.empty(hcap, dtype=np.int32)
                nd[:hn] = heap_d[:hn]
                nn[:hn] = heap_n[:hn]
                heap_d, heap_n = nd, nn
            i = hn
            hn += 1
            while i > 0:
                p = (i - 1) >> 1
                if heap_d[p] <= dy:
                    break
                heap_d[i] = heap_d[p]
                heap_n[i] = heap_n[p]
                i = p
            heap_d[i] = dy
            heap_n[i] = y
    # the edges around every touched node (both directions of the graph)
    m = 0
    for q in range(nt):
        x = touched[q]
        m += (f_indptr[x + 1] - f_indptr[x]) + (r_indptr[x + 1] - r_indptr[x])
    edges = np.empty(m, dtype=np.int64)
    m = 0
    for q in range(nt):
        x = touched[q]
        for a in range(f_indptr[x], f_indptr[x + 1]):
            edges[m] = f_edge[a]
            m += 1
        for a in range(r_indptr[x], r_indptr[x + 1]):
            edges[m] = r_edge[a]
            m += 1
    return edges


def repair(graph, dist: np.ndarray, src: np.ndarray, changed: np.ndarray, seed_nodes: np.ndarray,
           seed_offs: np.ndarray, seed_src: np.ndarray) -> np.ndarray:
    """:func:`_repair` on ``graph`` (dist and src are changed in place); the touched edges, unique."""
    f, r = graph.forward, graph.reverse
    edges = _repair(f.matrix.indptr, f.matrix.indices, f.matrix.data, f.arc_edge, r.matrix.indptr,
                    r.matrix.indices, r.matrix.data, r.arc_edge, dist, src, changed,
                    np.ascontiguousarray(seed_nodes, dtype=np.int32), np.ascontiguousarray(seed_offs, dtype=np.float64),
                    np.ascontiguousarray(seed_src, dtype=np.int64))
    return np.unique(edges)
