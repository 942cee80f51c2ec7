"""Mesh clean-up: floating pieces, decimation to a face budget, vertex normals.

The per-vertex work is vectorised in torch on whatever device the mesh is on (the GPU when fusion
ran there); the functions also accept numpy arrays and then return numpy arrays.
"""

from __future__ import annotations

import numpy as np


def _torch(x):
    import torch

    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def component_labels(n_vertices: int, faces):
    """(V,) int64 label of each vertex's connected component (the smallest vertex index in it).

    Parallel union-find: every edge hooks the larger of its two roots under the smaller
    (scatter-min), then pointer jumping compresses the trees; repeats until no edge joins two roots.
    Takes a few rounds (about log of the longest chain), each a handful of vectorised passes.
    """
    import torch

    f = _torch(faces).long()
    parent = torch.arange(n_vertices, device=f.device)
    if len(f):
        a = f.reshape(-1)
        b = f[:, [1, 2, 0]].reshape(-1)
        while True:
            pa, pb = parent[a], parent[b]
            join = pa != pb
            if not bool(join.any()):
                break
            lo, hi = torch.minimum(pa[join], pb[join]), torch.maximum(pa[join], pb[join])
            parent.scatter_reduce_(0, hi, lo, reduce="amin")
            while True:
                nxt = parent[parent]
                if torch.equal(nxt, parent):
                    break
                parent = nxt
    return parent if isinstance(faces, torch.Tensor) else parent.cpu().numpy()


def keep_large_components(n_vertices: int, faces, min_fraction: float):
    """(F,) bool: faces of the components with at least `min_fraction` x the largest one's face count."""
    import torch

    f = _torch(faces).long()
    if not len(f) or min_fraction <= 0:
        return torch.ones(len(f), dtype=torch.bool, device=f.device)
    lab = component_labels(n_vertices, f)[f[:, 0]]
    _, inv, counts = torch.unique(lab, return_inverse=True, return_counts=True)
    return counts[inv] >= min_fraction * counts.max()


def drop_small_components(vertices, faces, colors, min_fraction: float):
    """Keep the faces of components with at least `min_fraction` x the largest component's face count
    (numpy in, numpy out; vertices no kept face uses are dropped)."""
    if not len(faces) or min_fraction <= 0:
        return vertices, faces, colors
    keep = keep_large_components(len(vertices), faces, min_fraction).cpu().numpy()
    return compact(vertices, np.asarray(faces)[keep], colors)


def compact(vertices, faces, colors=None):
    """Drop vertices no face uses; renumber faces (numpy or torch, matching the input)."""
    import torch

    if isinstance(faces, torch.Tensor):
        used = torch.zeros(len(vertices), dtype=torch.bool, device=faces.device)
        used[faces.reshape(-1)] = True
        remap = torch.cumsum(used.long(), 0) - 1
        return vertices[used], remap[faces], (None if colors is None else colors[used])
    used = np.zeros(len(vertices), bool)
    used[faces.reshape(-1)] = True
    remap = np.cumsum(used) - 1
    return vertices[used], remap[faces], (None if colors is None else colors[used])


def decimate(vertices, faces, colors, face_budget: int, cell: float):
    """Vertex clustering until at most `face_budget` faces: vertices in one grid cell merge (mean
    position and colour), degenerate and duplicate faces go. The cell grows x1.25 per attempt,
    starting at `cell` (world units). numpy in, numpy out."""
    if face_budget <= 0 or len(faces) <= face_budget:
        return vertices, faces, colors
    while True:
        key = np.floor(vertices / cell).astype(np.int64)
        _, inv = np.unique(key, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        n = inv.max() + 1
        cnt = np.bincount(inv, minlength=n).astype(np.float64)[:, None]
        v = np.stack([np.bincount(inv, vertices[:, k], n) for k in range(3)], 1) / cnt
        c = np.stack([np.bincount(inv, colors[:, k], n) for k in range(3)], 1) / cnt
        f = inv[faces]
        f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
        _, first = np.unique(np.sort(f, axis=1), axis=0, return_index=True)
        f = f[np.sort(first)]
        if len(f) <= face_budget:
            return compact(v, f, c)
        cell *= 1.25


def vertex_normals(vertices, faces):
    """(V, 3) float32 unit normals: area-weighted mean of the adjacent faces' normals (their winding).
    numpy in -> numpy out; torch in -> torch out."""
    import torch

    v, f = _torch(vertices).double(), _torch(faces).long()
    fn = torch.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]], dim=1)
    n = torch.zeros_like(v)
    for k in range(3):
        n.index_add_(0, f[:, k], fn)
    n = (n / n.norm(dim=1, keepdim=True).clamp_min(1e-30)).float()
    return n if isinstance(faces, torch.Tensor) else n.cpu().numpy()


def smooth_taubin(vertices, faces, iterations: int, lam: float = 0.5, mu: float = -0.53):
    """Taubin lambda|mu smoothing (torch): removes per-vertex jitter (depth noise that fusion did not
    average out) without shrinking the surface. Uniform weights over the edges of the faces."""
    import torch

    v = vertices.clone()
    f = faces.long()
    a = torch.cat([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    b = torch.cat([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    deg = torch.zeros(len(v), dtype=v.dtype, device=v.device).index_add_(0, a, torch.ones_like(a, dtype=v.dtype))
    deg = deg.clamp_min(1)[:, None]
    for _ in range(iterations):
        for step in (lam, mu):
            mean = torch.zeros_like(v).index_add_(0, a, v[b]) / deg
            v = v + step * (mean - v)
    return v
