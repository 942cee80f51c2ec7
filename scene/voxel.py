"""Vectorised voxel-grid downsampling of a coloured, confidence-weighted point cloud (numpy only)."""

from __future__ import annotations

import numpy as np


def voxel_keys(points: np.ndarray, size: float) -> np.ndarray:
    """(n,) int64 key of the voxel holding each point (n, 3); equal keys ⇔ same voxel."""
    ijk = np.floor(points / np.float32(size)).astype(np.int64)
    ijk -= ijk.min(axis=0)
    dims = ijk.max(axis=0) + 1
    if float(dims[0]) * float(dims[1]) * float(dims[2]) < 2.0**62:
        return (ijk[:, 0] * dims[1] + ijk[:, 1]) * dims[2] + ijk[:, 2]
    # Too many voxels for one int64: number the distinct voxels instead (slower, same result).
    _, inv = np.unique(ijk, axis=0, return_inverse=True)
    return inv.reshape(-1).astype(np.int64)


def voxel_downsample(points: np.ndarray, rgba: np.ndarray, conf: np.ndarray, view: np.ndarray,
                     size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One point per occupied voxel of edge `size`.

    points (n, 3) float32, rgba (n, 4) float32 linear, conf (n,) float32, view (n,) int32.
    The new point is the confidence-weighted mean position and colour of the voxel's points (so
    confident points dominate), its confidence the voxel's maximum and its view that of the most
    confident point. Returns arrays in the same layouts, ordered by voxel key.
    """
    if len(points) == 0 or size <= 0:
        return points, rgba, conf, view
    keys = voxel_keys(points, size)
    order = np.argsort(keys, kind="stable")
    ks = keys[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    group = np.cumsum(np.r_[False, ks[1:] != ks[:-1]])          # voxel index of each sorted point
    m = len(starts)
    w = np.maximum(conf[order].astype(np.float64), 1e-12)
    wsum = np.bincount(group, weights=w, minlength=m)

    def wmean(values: np.ndarray) -> np.ndarray:
        v = values[order].astype(np.float64)
        cols = [np.bincount(group, weights=w * v[:, c], minlength=m) for c in range(v.shape[1])]
        return (np.stack(cols, axis=1) / wsum[:, None]).astype(np.float32)

    P = wmean(points)
    C = wmean(rgba)
    # Most confident point per voxel: sort by (voxel, conf) and take each run's last element.
    order2 = np.lexsort((conf, keys))
    ends = np.r_[starts[1:], len(keys)] - 1
    best = order2[ends]
    return P, C, conf[best].astype(np.float32), view[best].astype(np.int32)
