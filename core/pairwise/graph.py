"""Scene graphs: which image pairs the pairwise networks (DUSt3R / MASt3R) look at.

`make_pairs(n, graph)` returns a `PairGraph` whose `edges` are *directed* (i, j) pairs: the network is run
on (i, j) and on (j, i), so every graph is symmetric. Graph strings (K >= 1, R an image index):

    complete                every pair
    swin-K                  each image with its K following images, wrapping around (cyclic)
    swin-K-noncyclic        the same without wrapping (a video or a walk that does not close)
    logwin-K                offsets 1, 2, 4, ..., 2^(K-1), cyclic; "-noncyclic" as above
    oneref-R                every image with reference image R
    retrieval-K             each image with its K most similar images (cosine similarity of descriptors)
    seq-K                   a video shot (frames in order): the sliding window swin-K-noncyclic, log-spaced
                            longer links (offsets 2^p between K and 8K), and, with descriptors, loop
                            closures: each frame with its most similar frame more than 8K frames away when
                            that frame is as similar as the frame's own window neighbours are

Every graph returned is connected: if the chosen rule leaves separate groups, the most similar pairs
(or, without descriptors, neighbouring indices) joining them are added and a note says so. A single image
gives the monocular pair (0, 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

VALID_GRAPHS = ("'complete', 'swin-K', 'swin-K-noncyclic', 'logwin-K', 'logwin-K-noncyclic', 'oneref-R', "
                "'retrieval-K', 'seq-K' (K >= 1 a whole number, R the index of the reference image)")

_WINDOW = re.compile(r"(swin|logwin)-(\d+)(-noncyclic)?")
_ONEREF = re.compile(r"oneref-(\d+)")
_RETRIEVAL = re.compile(r"retrieval-(\d+)")
_SEQUENCE = re.compile(r"seq-(\d+)")
SEQ_LOG_REACH = 8   # seq-K: log-spaced links reach K * this; loop closures start beyond it


@dataclass
class PairGraph:
    """edges: (E, 2) int64 directed pairs, symmetric, sorted, no duplicates. notes: things to tell the user."""

    edges: np.ndarray
    notes: list[str] = field(default_factory=list)
    n_images: int = 0
    graph: str = ""

    @property
    def n_edges(self) -> int:
        return int(len(self.edges))

    @property
    def undirected(self) -> np.ndarray:
        """(E/2, 2) int64 pairs with i < j (the monocular (0, 0) pair is kept as is)."""
        keep = self.edges[:, 0] <= self.edges[:, 1]
        return self.edges[keep]


def make_pairs(n: int, graph: str = "complete", descriptors=None) -> PairGraph:
    """Build the pair graph of `n` images.

    graph:       one of the strings in the module docstring.
    descriptors: (n, C) global image descriptors (e.g. pooled encoder tokens); required by "retrieval-K",
                 also used by every graph to choose the edges that join separate groups.
    Raises ValueError for an unknown graph string, a bad K/R, or missing/mis-shaped descriptors.
    """
    if n < 1:
        raise ValueError(f"cannot build pairs of {n} images; at least one image is needed")
    spec = graph.strip().lower()
    kind, k, cyclic = _parse(spec)
    desc = _check_descriptors(descriptors, n, required=(kind == "retrieval"))
    if kind == "oneref" and k >= n:
        raise ValueError(f"oneref-{k}: the reference image index must be below the number of images ({n})")
    if n == 1:
        note = "Only one image: it is paired with itself (monocular prediction, pair (0, 0))."
        return PairGraph(np.zeros((1, 2), np.int64), [note], 1, spec)

    notes: list[str] = []
    if kind == "complete":
        pairs = _complete(n)
    elif kind in ("swin", "logwin"):
        offsets = list(range(1, k + 1)) if kind == "swin" else [2 ** p for p in range(k)]
        pairs = _window(n, offsets, cyclic)
    elif kind == "oneref":
        pairs = [(k, j) for j in range(n) if j != k]
    elif kind == "seq":
        pairs, note = sequence_pairs(n, k, desc)
        notes += [note] if note else []
    else:
        pairs, note = _retrieval(desc, k)
        notes += [note] if note else []

    edges = _symmetric(pairs)
    if kind != "complete" and len(edges) == n * (n - 1):
        notes.append(f"'{spec}' with {n} images pairs every image with every other one (the complete graph).")
    edges, note = _connect(n, edges, desc, spec)
    if note:
        notes.append(note)
    return PairGraph(edges, notes, n, spec)


def check_graph(graph: str) -> None:
    """Raise ValueError (naming the valid forms) if `graph` is not a scene-graph spec `make_pairs` knows."""
    _parse(graph.strip().lower())


def connected_components(n: int, edges: np.ndarray) -> np.ndarray:
    """(n,) int64 label per image: the smallest image index of its connected component."""
    parent = np.arange(n)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, j in np.asarray(edges, dtype=np.int64).reshape(-1, 2):
        ri, rj = find(int(i)), find(int(j))
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.array([find(i) for i in range(n)], dtype=np.int64)


# ----------------------------------------------------------------------------------------------

def _parse(spec: str) -> tuple[str, int, bool]:
    """graph string → (kind, K or R, cyclic)."""
    if spec == "complete":
        return "complete", 0, True
    m = _WINDOW.fullmatch(spec)
    if m:
        kind, k, cyclic = m.group(1), int(m.group(2)), m.group(3) is None
    elif m := _ONEREF.fullmatch(spec):
        return "oneref", int(m.group(1)), True
    elif m := _RETRIEVAL.fullmatch(spec):
        kind, k, cyclic = "retrieval", int(m.group(1)), True
    elif m := _SEQUENCE.fullmatch(spec):
        kind, k, cyclic = "seq", int(m.group(1)), False
    else:
        raise ValueError(f"unknown scene graph {spec!r}; valid forms: {VALID_GRAPHS}")
    if k < 1:
        raise ValueError(f"scene graph {spec!r}: K must be at least 1; valid forms: {VALID_GRAPHS}")
    return kind, k, cyclic


def _check_descriptors(descriptors, n: int, required: bool) -> np.ndarray | None:
    """(n, C) float64 unit rows (zero rows stay zero), or None when not given."""
    if descriptors is None:
        if required:
            raise ValueError("the retrieval scene graph needs image descriptors (an (N, C) array, e.g. pooled "
                             "encoder tokens); none were given — use 'complete' or 'swin-K' instead")
        return None
    if hasattr(descriptors, "detach"):  # a torch tensor, without importing torch here
        descriptors = descriptors.detach().float().cpu().numpy()
    d = np.asarray(descriptors, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != n:
        raise ValueError(f"descriptors must have shape ({n}, C) for {n} images, got {d.shape}")
    if not np.isfinite(d).all():
        raise ValueError("descriptors contain NaN or infinite values")
    norms = np.linalg.norm(d, axis=1, keepdims=True)
    return d / np.maximum(norms, 1e-12)


def _complete(n: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def _window(n: int, offsets: list[int], cyclic: bool) -> list[tuple[int, int]]:
    pairs = []
    for i in range(n):
        for off in offsets:
            j = i + off
            if cyclic:
                j %= n
            elif j >= n:
                continue
            if j != i:  # a cyclic offset that is a multiple of n would pair an image with itself
                pairs.append((i, j))
    return pairs


def sequence_pairs(n: int, window: int, desc: np.ndarray | None = None) -> tuple[list[tuple[int, int]], str]:
    """Undirected pairs of the seq-K graph (module doc) of `n` frames in order; desc: (n, C) unit rows or None.

    Loop closures: frame i is linked to its most similar frame j with |i − j| > K * SEQ_LOG_REACH when
    their cosine similarity is at least the lower of the two frames' median similarity to their
    window neighbours (a revisit looks as much alike as consecutive frames do); of several closures
    between the same two stretches, only the locally best ones survive (one per frame, each way).
    """
    reach = window * SEQ_LOG_REACH
    offsets = list(range(1, window + 1)) + [2 ** p for p in range(1, 32) if window < 2 ** p <= reach]
    pairs = _window(n, offsets, cyclic=False)
    if desc is None or n <= reach + 1:
        return pairs, ""
    sim = desc @ desc.T
    idx = np.arange(n)
    near = np.full(n, np.nan)
    for i in range(n):
        nb = [j for j in range(max(0, i - window), min(n, i + window + 1)) if j != i]
        near[i] = np.median(sim[i, nb])
    far = np.abs(idx[:, None] - idx[None, :]) > reach
    cand = np.where(far, sim, -np.inf)
    best = np.argmax(cand, axis=1)
    loops = []
    for i in range(n):
        j = int(best[i])
        if np.isfinite(cand[i, j]) and cand[i, j] >= min(near[i], near[j]) and int(np.argmax(cand[j])) in \
                range(max(0, i - window), min(n, i + window + 1)):
            loops.append((min(i, j), max(i, j)))
    loops = sorted(set(loops))
    note = f"seq-{window}: {len(loops)} loop closure pair(s) found by descriptor similarity." if loops else ""
    return pairs + loops, note


def _retrieval(desc: np.ndarray, k: int) -> tuple[list[tuple[int, int]], str]:
    """Each image with its k nearest neighbours by cosine similarity (self excluded, ties → lower index)."""
    n = len(desc)
    note = ""
    if k > n - 1:
        note = f"retrieval-{k}: only {n - 1} other images, so each image is paired with all of them."
        k = n - 1
    sim = desc @ desc.T
    np.fill_diagonal(sim, -np.inf)
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return [(i, int(j)) for i in range(n) for j in order[i]], note


def _symmetric(pairs) -> np.ndarray:
    """Both directions of every pair, sorted lexicographically, duplicates removed: (E, 2) int64."""
    a = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    both = np.concatenate([a, a[:, ::-1]])
    return np.unique(both, axis=0)


def _connect(n: int, edges: np.ndarray, desc: np.ndarray | None, spec: str) -> tuple[np.ndarray, str]:
    """Add the fewest joining edges needed to make the graph connected (a maximum spanning forest of the
    separate groups: most similar pairs first, or neighbouring indices without descriptors)."""
    labels = connected_components(n, edges)
    groups = len(np.unique(labels))
    if groups == 1:
        return edges, ""
    if desc is not None:
        iu, ju = np.triu_indices(n, k=1)
        across = labels[iu] != labels[ju]
        iu, ju = iu[across], ju[across]
        sim = np.einsum("ec,ec->e", desc[iu], desc[ju])
        order = np.argsort(-sim, kind="stable")
        candidates = zip(iu[order], ju[order], strict=True)
        how = "most similar images (descriptor cosine similarity)"
    else:
        candidates = ((i, i + 1) for i in range(n - 1))
        how = "neighbouring image indices"
    # Kruskal over the groups: an edge is added only if it joins two groups not yet joined.
    root = {int(g): int(g) for g in np.unique(labels)}

    def find(g: int) -> int:
        while root[g] != g:
            g = root[g]
        return g

    added = []
    for i, j in candidates:
        gi, gj = find(int(labels[i])), find(int(labels[j]))
        if gi != gj:
            root[max(gi, gj)] = min(gi, gj)
            added.append((int(i), int(j)))
            if len(added) == groups - 1:
                break
    shown = ", ".join(f"({i}, {j})" for i, j in added[:10]) + (", ..." if len(added) > 10 else "")
    note = (f"'{spec}' left the images in {groups} separate groups; added {len(added)} pair(s) joining them "
            f"by {how}: {shown}.")
    return _symmetric(np.concatenate([edges, np.asarray(added, dtype=np.int64)])), note
