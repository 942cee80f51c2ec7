"""Mesh clean-up: floating pieces, decimation to a face budget, vertex normals."""

from __future__ import annotations

import numpy as np


def component_labels(n_vertices: int, faces: np.ndarray) -> np.ndarray:
    """(V,) int64 label of each vertex's connected component (minimum vertex index in it).

    Label propagation along face edges with pointer jumping; converges in a few dozen passes.
    """
    labels = np.arange(n_vertices, dtype=np.int64)
    if not len(faces):
        return labels
    a = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    b = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    while True:
        m = np.minimum(labels[a], labels[b])
        new = labels.copy()
        np.minimum.at(new, a, m)
        np.minimum.at(new, b, m)
        while True:          # pointer jumping: follow labels to their roots
            nxt = new[new]
            if np.array_equal(nxt, new):
                break
            new = nxt
        if np.array_equal(new, labels):
            return labels
        labels = new


def drop_small_components(vertices, faces, colors, min_fraction: float):
    """Keep the faces of components with at least `min_fraction` x the largest component's face count."""
    if not len(faces) or min_fraction <= 0:
        return vertices, faces, colors
    lab = component_labels(len(vertices), faces)[faces[:, 0]]
    uniq, inv, counts = np.unique(lab, return_inverse=True, return_counts=True)
    keep = counts[inv] >= min_fraction * counts.max()
    return compact(vertices, faces[keep], colors)


def compact(vertices, faces, colors):
    """Drop vertices no face uses; renumber faces."""
    used = np.zeros(len(vertices), bool)
    used[faces.reshape(-1)] = True
    remap = np.cumsum(used) - 1
    return vertices[used], remap[faces], colors[used]


def decimate(vertices, faces, colors, face_budget: int, cell: float):
    """Vertex clustering until at most `face_budget` faces: vertices in one grid cell merge (mean
    position and colour), degenerate and duplicate faces go. The cell grows x1.25 per attempt,
    starting at `cell` (world units)."""
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


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) float32 unit normals: area-weighted mean of the adjacent faces' normals (their winding)."""
    fn = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    idx = faces.reshape(-1)
    n = np.stack([np.bincount(idx, np.repeat(fn[:, k], 3), len(vertices)) for k in range(3)], 1)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return (n / np.maximum(norm, 1e-30)).astype(np.float32)
