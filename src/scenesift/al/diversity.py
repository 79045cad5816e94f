"""Diversity: batches that cover the embedding space instead of one drive ten times over.

* ``kcenter_greedy``: the core-set k-center greedy (Sener & Savarese): repeatedly pick the
  frame farthest from every centre so far (labelled frames are centres from the start).
  Exact, O(n d) per pick: fine up to ~1e5 frames x 1e3 picks.
* ``kcenter_approx``: the same greedy for million-frame pools (see its docstring).
* ``covering_radius``: max over the pool of the distance to the nearest centre, the quantity
  k-center greedy keeps within 2x of optimal.
* ``cluster_then_uncertainty`` and ``badge_select``: uncertainty and diversity together.

Hand-written because no library does it: scikit-learn has no k-center greedy, and its
k-means++ seeding cannot start from existing centres (labelled frames). Distances use
|x|^2 + |c|^2 - 2 x.c, so the work is BLAS matrix products on float32, chunked over rows so
no n x k matrix is ever held.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans, kmeans_plusplus
from sklearn.decomposition import PCA
from threadpoolctl import threadpool_limits

from scenesift.al.heuristics import top_k

_CHUNK = 65_536
_CENTRE_BLOCK = 1024


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-d (rows, dims); got shape {x.shape}")
    return x


def _centred(x: np.ndarray, mean: np.ndarray, chunk: int = _CHUNK) -> np.ndarray:
    """float32 copy of ``x - mean``, chunked (centring keeps |x|^2 + |c|^2 - 2x.c accurate)."""
    out = np.empty(x.shape, np.float32)
    for s in range(0, len(x), chunk):
        out[s : s + chunk] = x[s : s + chunk] - mean
    return out


def _sqnorms(z: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", z, z)


def _update_min(
    mind: np.ndarray, z: np.ndarray, sq: np.ndarray, centres: np.ndarray, chunk: int = _CHUNK
) -> None:
    """mind = min(mind, squared distance of each row of ``z`` to its nearest ``centres``)."""
    for c0 in range(0, len(centres), _CENTRE_BLOCK):
        c = np.asarray(centres[c0 : c0 + _CENTRE_BLOCK], np.float32)
        ct = np.ascontiguousarray(-2.0 * c.T)
        csq = _sqnorms(c)
        for s in range(0, len(z), chunk):
            g = z[s : s + chunk] @ ct
            g += csq
            d = g.min(axis=1)
            d += sq[s : s + chunk]
            np.maximum(d, 0.0, out=d)
            np.minimum(mind[s : s + chunk], d, out=mind[s : s + chunk])


def _min_sqdist(z: np.ndarray, centres: np.ndarray | None, chunk: int = _CHUNK) -> np.ndarray:
    mind = np.full(len(z), np.inf, np.float32)
    if centres is not None and len(centres):
        _update_min(mind, z, _sqnorms(z), centres, chunk)
    return mind


def covering_radius(
    embeddings: np.ndarray,
    selected: np.ndarray | None = None,
    labelled: np.ndarray | None = None,
    chunk: int = _CHUNK,
) -> float:
    """Max over the pool of the distance to the nearest centre (``selected`` pool rows and
    ``labelled`` embeddings); inf with no centre. Chunked: memory O(chunk x 1024)."""
    x = _as_matrix(embeddings, "embeddings")
    sel = np.zeros(0, np.int64) if selected is None else np.asarray(selected, np.int64)
    parts = [x[sel]]
    if labelled is not None and len(labelled):
        parts.append(_as_matrix(labelled, "labelled embeddings"))
    centres = np.concatenate(parts).astype(np.float64)
    if len(x) == 0:
        return 0.0
    if len(centres) == 0:
        return float("inf")
    mean = x.mean(axis=0, dtype=np.float64)
    z = _centred(x, mean, chunk)
    mind = _min_sqdist(z, (centres - mean).astype(np.float32), chunk)
    return float(np.sqrt(mind.max()))


def _start(z: np.ndarray, sq: np.ndarray, labelled, rng: np.random.Generator):
    """Initial squared distances; without labelled centres the first pick is random and its
    score is the radius it alone covers (so scores never increase along the picks)."""
    mind = _min_sqdist(z, labelled)
    picks: list[int] = []
    dists: list[float] = []
    if labelled is None or len(labelled) == 0:
        first = int(rng.integers(len(z)))
        _update_min(mind, z, sq, z[first : first + 1])
        picks.append(first)
        dists.append(float(np.sqrt(mind.max())))
        mind[first] = -1.0
    return mind, picks, dists


def kcenter_greedy(
    embeddings: np.ndarray,
    budget: int,
    labelled: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    chunk: int = _CHUNK,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-center greedy: rows in pick order and each pick's distance to its nearest
    earlier centre. ``labelled`` (k, d) are centres from the start; without them the first
    pick is random (``rng``). One BLAS matrix-vector product over the pool per pick."""
    x = _as_matrix(embeddings, "embeddings")
    n = len(x)
    budget = max(0, min(int(budget), n))
    if budget == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    rng = rng if rng is not None else np.random.default_rng(0)
    mean = x.mean(axis=0, dtype=np.float64)
    z = _centred(x, mean, chunk)
    lab = None if labelled is None else _as_matrix(labelled, "labelled embeddings")
    if lab is not None and lab.shape[1] != x.shape[1]:
        raise ValueError(f"labelled embeddings have {lab.shape[1]} dims, the pool {x.shape[1]}")
    lab = None if lab is None else _centred(lab, mean, chunk)
    sq = _sqnorms(z)
    mind, picks, dists = _start(z, sq, lab, rng)
    while len(picks) < budget:
        i = int(np.argmax(mind))  # picked rows hold -1, so picks stay distinct
        picks.append(i)
        dists.append(float(np.sqrt(max(mind[i], 0.0))))
        c = z[i]
        d = z @ (-2.0 * c)
        d += sq
        d += c @ c
        np.minimum(mind, d, out=mind)
        mind[i] = -1.0
    return np.asarray(picks, np.int64), np.asarray(dists)


def project(
    embeddings: np.ndarray,
    labelled: np.ndarray | None,
    dims: int | None,
    rng: np.random.Generator,
    fit_rows: int = 100_000,
    chunk: int = _CHUNK,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Centred float32 copies of pool and labelled embeddings, reduced to ``dims`` principal
    components (randomized PCA fitted on ``fit_rows`` random rows) when fewer than d."""
    x = _as_matrix(embeddings, "embeddings")
    lab = None if labelled is None or len(labelled) == 0 else _as_matrix(labelled, "labelled")
    if lab is not None and lab.shape[1] != x.shape[1]:
        raise ValueError(f"labelled embeddings have {lab.shape[1]} dims, the pool {x.shape[1]}")
    if dims is None or dims >= min(x.shape):
        mean = x.mean(axis=0, dtype=np.float64)
        return _centred(x, mean, chunk), None if lab is None else _centred(lab, mean, chunk)
    rows = np.sort(rng.choice(len(x), size=min(len(x), fit_rows), replace=False))
    seed = int(rng.integers(2**31 - 1))
    pca = PCA(n_components=dims, svd_solver="randomized", random_state=seed)
    pca.fit(np.asarray(x[rows], np.float32))

    def transform(a: np.ndarray) -> np.ndarray:
        out = np.empty((len(a), dims), np.float32)
        for s in range(0, len(a), chunk):
            out[s : s + chunk] = pca.transform(np.asarray(a[s : s + chunk], np.float32))
        return out

    return transform(x), None if lab is None else transform(lab)


class _Cells:
    """Rows grouped into cells around seed rows, for triangle-inequality pruning.

    A new centre c can only lower the distance of a row x whose cell seed is s if
    |c - s| - |x - s| < sqrt(mind(x)). Per cell (radius R = max |x - s|) that skips whole
    cells far from every new centre; inside a reached cell it skips rows with
    |x - s| + sqrt(mind(x)) <= min_c |c - s|. Exact, like Elkan's k-means bounds: early
    rounds (large distances) touch everything, later ones, where most picks are, touch a
    few percent of the pool. Rows are permuted so a cell is a contiguous slice.

    Seeds are farthest-point picks on a sample (random seeds leave dense regions without a
    seed, and their cells get wide). Rows are assigned to the nearest seed in a 32-d PCA
    projection (4x cheaper for 128-d features); the bound holds for any seed, so an
    imperfect assignment costs work, never correctness.
    """

    def __init__(self, z: np.ndarray, rng: np.random.Generator, chunk: int = _CHUNK) -> None:
        n, d = z.shape
        k = int(np.clip(np.sqrt(n) / 2, 1, 512))
        sample = np.sort(rng.choice(n, size=min(n, 10 * k), replace=False))
        with threadpool_limits(limits=1, user_api="blas"):  # 1e3 small products
            first, _ = kcenter_greedy(z[sample], k, rng=rng, chunk=chunk)
        self.seeds = z[sample[first]].copy()
        if d > 48 and len(sample) > 32:
            seed = int(rng.integers(2**31 - 1))
            pca = PCA(n_components=32, svd_solver="randomized", random_state=seed)
            basis = pca.fit(z[sample]).components_.T.astype(np.float32)
        else:
            basis = np.eye(d, dtype=np.float32)
        seeds_p = self.seeds @ basis
        st = np.ascontiguousarray(-2.0 * seeds_p.T)
        ssq = _sqnorms(seeds_p)
        cell = np.empty(n, np.int64)
        dist = np.empty(n, np.float32)
        for s in range(0, n, chunk):
            g = (z[s : s + chunk] @ basis) @ st
            g += ssq
            c = g.argmin(axis=1)
            cell[s : s + chunk] = c
            diff = z[s : s + chunk] - self.seeds[c]
            dist[s : s + chunk] = np.sqrt(_sqnorms(diff))
        dist = dist * 1.0001 + 1e-6  # |x - seed| with slack for float32 rounding
        self.order = np.argsort(cell, kind="stable")
        self.dist = dist[self.order]  # in cell order, like every array the rounds use
        self.bounds = np.concatenate([[0], np.cumsum(np.bincount(cell, minlength=k))])
        self.radius = np.zeros(k, np.float32)
        np.maximum.at(self.radius, cell, dist)
        self.cellmax = np.full(k, np.inf, np.float32)

    def refresh(self, mind: np.ndarray, cells: np.ndarray | None = None) -> None:
        for c in range(len(self.seeds)) if cells is None else cells:
            a, b = self.bounds[c], self.bounds[c + 1]
            self.cellmax[c] = mind[a:b].max() if b > a else -1.0

    def update(self, mind: np.ndarray, z: np.ndarray, sq: np.ndarray, new: np.ndarray) -> int:
        """Lower ``mind`` (in cell order) by the centres ``new``; returns rows x centres done."""
        centres = z[new]
        # float64 (a few hundred x k): an overestimate here could skip a row wrongly
        c64, s64 = centres.astype(np.float64), self.seeds.astype(np.float64)
        to_seed = np.sqrt(
            np.maximum(_sqnorms(c64)[:, None] + _sqnorms(s64)[None, :] - 2 * c64 @ s64.T, 0.0)
        )
        reach = to_seed - self.radius < np.sqrt(np.maximum(self.cellmax, 0.0))
        work = 0
        cells = np.flatnonzero(reach.any(axis=0))
        for c in cells:
            a, b = self.bounds[c], self.bounds[c + 1]
            if b == a:
                continue
            near = to_seed[reach[:, c], c]
            cs = centres[reach[:, c]]
            rows = np.flatnonzero(self.dist[a:b] + np.sqrt(np.maximum(mind[a:b], 0)) > near.min())
            if len(rows) > (b - a) // 2:
                _update_min(mind[a:b], z[a:b], sq[a:b], cs)
                work += (b - a) * len(cs)
            elif len(rows):
                rows += a
                sub = mind[rows]
                _update_min(sub, z[rows], sq[rows], cs)
                mind[rows] = sub
                work += len(rows) * len(cs)
        self.refresh(mind, cells)
        return work


def kcenter_approx(
    embeddings: np.ndarray,
    budget: int,
    labelled: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    dims: int | None = 128,
    batch: int = 256,
    tolerance: float = 0.05,
    fit_rows: int = 100_000,
    chunk: int = _CHUNK,
) -> tuple[np.ndarray, np.ndarray]:
    """k-center greedy for million-frame pools: lazy multi-pick rounds, pruned updates.

    1. Rounds: take the ``4 x batch`` frames farthest from every centre (candidates; the
       rest are at most ``r_out`` away), run exact greedy among the candidates on their
       pairwise distances, and accept picks while the best candidate is still at least
       ``(1 - tolerance) x r_out`` away. This is the approximation: every pick is at least
       (1 - t) x as far as the exact greedy's pick would be, so its 2-approximation of the
       optimal covering radius becomes 2 / (1 - t); in exchange the pool is read once per
       round (~100 picks) instead of once per pick. ``tolerance=0`` (with ``dims=None``)
       is exactly ``kcenter_greedy``.
    2. Each round's picks update the pool's distances with one matrix product per cell of
       nearby rows, skipping rows the triangle inequality proves unaffected (``_Cells``,
       exact): after the first rounds a round touches a few percent of the pool.
    3. Embeddings wider than ``dims`` (e.g. 1280-d pooled EfficientNet features) are first
       reduced to ``dims`` principal components (randomized PCA on ``fit_rows`` rows), so
       the working copy stays n x dims float32 (0.5 GB for 1M x 128) instead of 5 GB; picks
       are then greedy in the reduced space, which drops the least-varying directions
       (measured on 128-d synthetic clusters: 32 dims cost ~17% in covering radius, no
       reduction ~0%; see BENCHMARKS.md). ``dims=None`` never reduces.

    Returns pool rows in pick order and each pick's distance (in the space picked in).
    Memory: the float32 working copy, its cell-ordered copy, O(chunk x batch) temporaries.
    """
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"tolerance must be in [0, 1); got {tolerance}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1; got {batch}")
    x = _as_matrix(embeddings, "embeddings")
    n = len(x)
    budget = max(0, min(int(budget), n))
    if budget == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    rng = rng if rng is not None else np.random.default_rng(0)
    z, lab = project(x, labelled, dims, rng, fit_rows, chunk)
    first = None if lab is not None else int(rng.integers(n))
    cells = _Cells(z, rng, chunk)
    z = z[cells.order]  # cell order from here on; picks are mapped back at the end
    sq = _sqnorms(z)
    mind = _min_sqdist(z, lab, chunk)
    picks: list[int] = []
    dists: list[float] = []
    if first is not None:
        first = int(np.flatnonzero(cells.order == first)[0])
        _update_min(mind, z, sq, z[first : first + 1], chunk)
        picks.append(first)
        dists.append(float(np.sqrt(mind.max())))
        mind[first] = -1.0
    cells.refresh(mind)
    bar_factor = (1.0 - tolerance) ** 2  # on squared distances
    with threadpool_limits(limits=1, user_api="blas"):
        # per-cell products are small (~1e3 rows): BLAS threads cost more than they give,
        # and spin-wait badly when other processes share the cores (several x slower here)
        _greedy_rounds(z, sq, mind, cells, picks, dists, budget, batch, bar_factor)
    return cells.order[np.asarray(picks, np.int64)], np.asarray(dists)


def _greedy_rounds(z, sq, mind, cells, picks, dists, budget, batch, bar_factor) -> None:
    """The rounds of ``kcenter_approx`` (steps 1 and 2), appending to picks and dists."""
    n = len(z)
    while len(picks) < budget:
        want = min(batch, budget - len(picks))
        c = min(n - len(picks), 4 * want)
        if c < n:
            part = np.argpartition(-mind, c)[: c + 1]
            cand, r_out = part[:c], float(mind[part[c]])
        else:
            cand, r_out = np.flatnonzero(mind >= 0), -np.inf
        cm = mind[cand].astype(np.float64)
        zc = z[cand].astype(np.float64)
        sqc = sq[cand].astype(np.float64)
        pair = np.maximum(sqc[:, None] + sqc[None, :] - 2 * zc @ zc.T, 0.0)
        chosen: list[int] = []
        bar = bar_factor * max(r_out, 0.0)
        for _ in range(want):
            a = int(np.argmax(cm))
            if cm[a] < 0 or (chosen and cm[a] < bar):
                break
            chosen.append(a)
            dists.append(float(np.sqrt(cm[a])))
            np.minimum(cm, pair[a], out=cm)
            cm[a] = -1.0
        new = cand[chosen]
        picks.extend(int(i) for i in new)
        mind[new] = -1.0
        cells.update(mind, z, sq, new)


def cluster_then_uncertainty(
    embeddings: np.ndarray,
    scores: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    candidates: float = 10.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The most uncertain frame of each of ``budget`` k-means clusters of the top
    ``candidates x budget`` most uncertain frames (MiniBatchKMeans; KMeans up to 20,000
    candidates), so a batch spreads
    over scenes instead of ten near-identical frames of one drive. Clusters left empty are
    filled with the next most uncertain candidates. Returns rows (by score) and scores."""
    x = _as_matrix(embeddings, "embeddings")
    scores = np.asarray(scores, np.float64)
    n = len(x)
    budget = max(0, min(int(budget), n))
    if candidates < 1:
        raise ValueError(f"candidates must be >= 1 (a multiple of the budget); got {candidates}")
    cand = top_k(scores, int(np.ceil(candidates * budget)))
    if budget == 0 or len(cand) <= budget:
        return cand[:budget], scores[cand[:budget]]
    seed = int(rng.integers(2**31 - 1))
    if len(cand) <= 20_000:  # full Lloyd is cheaper than mini-batches on small sets
        km: KMeans | MiniBatchKMeans = KMeans(n_clusters=budget, random_state=seed, n_init=1)
    else:
        km = MiniBatchKMeans(
            n_clusters=budget, random_state=seed, n_init=1, batch_size=max(1024, 2 * budget)
        )
    labels = km.fit_predict(np.asarray(x[cand], np.float32))
    # cand is sorted best first, so a stable sort by cluster keeps the best of each first
    order = np.argsort(labels, kind="stable")
    first = np.ones(len(order), bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    picked = np.zeros(len(cand), bool)
    picked[order[first]] = True
    fill = np.flatnonzero(~picked)[: budget - int(picked.sum())]
    picked[fill] = True
    rows = cand[picked]  # still best first
    return rows, scores[rows]


def badge_select(
    embeddings: np.ndarray,
    scores: np.ndarray,
    budget: int,
    rng: np.random.Generator,
    candidates: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """BADGE-style batch: k-means++ seeding (scikit-learn's ``kmeans_plusplus``) where a
    frame's chance is its squared distance to the chosen seeds times its uncertainty.

    BADGE samples gradient embeddings whose norm grows with uncertainty; strategies see no
    gradients, so the pooled embeddings are used and uncertainty enters as the sample
    weight, with the same effect: far *and* uncertain frames are likely, near-duplicates of
    a pick are not. ``candidates`` (a multiple of the budget) restricts the seeding to the
    most uncertain frames first, for large pools (k-means++ costs O(n d budget log budget)).
    Returns rows in seeding order and their scores.
    """
    x = _as_matrix(embeddings, "embeddings")
    scores = np.asarray(scores, np.float64)
    n = len(x)
    budget = max(0, min(int(budget), n))
    if budget == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    rows = np.arange(n) if candidates is None else top_k(scores, int(np.ceil(candidates * budget)))
    w = np.nan_to_num(scores[rows], nan=0.0, posinf=0.0, neginf=0.0)
    w = np.clip(w - min(0.0, w.min()), 0, None)
    # a small floor keeps zero-uncertainty frames drawable once the uncertain ones run out
    w = w + max(w.max(), 1.0) * 1e-9
    _, idx = kmeans_plusplus(
        np.asarray(x[rows], np.float32),
        n_clusters=min(budget, len(rows)),
        sample_weight=w,
        random_state=int(rng.integers(2**31 - 1)),
    )
    # k-means++ may draw an exact duplicate again once every distance is 0: keep firsts
    _, first = np.unique(idx, return_index=True)
    picked = rows[idx[np.sort(first)]]
    if len(picked) < budget:
        rest = np.setdiff1d(np.arange(n), picked)
        order = top_k(scores[rest], budget - len(picked))
        picked = np.concatenate([picked, rest[order]])
    return picked.astype(np.int64), scores[picked]
