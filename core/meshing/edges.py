"""Depth-edge filter: flying pixels at occlusion edges are dropped before fusion.

Networks blend foreground and background depth across occlusion edges ("flying pixels"), often
with a moderate confidence. In fusion such a pixel carves free space through real surfaces behind
the edge (its depth lies beyond them), which opens holes and leaves a stray sheet. The test is the
second difference of depth along rows and columns, relative to the depth: a planar surface, even at
a grazing angle, has a nearly linear depth ramp (second difference ~0), while a step has a second
difference of the step's size at the pixels on either side of it. Those pixels are dropped.
"""

from __future__ import annotations

import numpy as np

from .views import FusionViews


def _second_difference(d: np.ndarray, ok: np.ndarray, axis: int) -> np.ndarray:
    """|d[-1] + d[+1] - 2 d| / d along `axis`, 0 where a neighbour is missing."""
    prev, nxt = np.roll(d, 1, axis), np.roll(d, -1, axis)
    okp, okn = np.roll(ok, 1, axis), np.roll(ok, -1, axis)
    edge_rows = np.zeros_like(ok)
    idx = [slice(None)] * 2
    idx[axis] = [0, -1]
    edge_rows[tuple(idx)] = True
    usable = ok & okp & okn & ~edge_rows
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.abs(prev + nxt - 2.0 * d) / d
    return np.where(usable, r, 0.0)


def drop_depth_edges(views: FusionViews, max_jump: float) -> int:
    """Zero the weight of pixels whose relative second difference exceeds `max_jump`; returns the count."""
    dropped = 0
    for i in range(views.n_views):
        d = views.depth[i].astype(np.float64)
        ok = views.weight[i] > 0
        if not ok.any():
            continue
        edge = ok & (np.maximum(_second_difference(d, ok, 0), _second_difference(d, ok, 1)) > max_jump)
        views.weight[i] = np.where(edge, 0.0, views.weight[i]).astype(np.float32)
        views.depth[i] = np.where(edge, 0.0, views.depth[i]).astype(np.float32)
        dropped += int(edge.sum())
    return dropped
