"""Depth-edge filter: pixels next to a depth discontinuity are dropped before fusion.

Networks blend foreground and background depth across occlusion edges ("flying pixels"), often
with a moderate confidence. In fusion such a pixel carves free space through real surfaces behind
the edge (its depth lies beyond them), which opens holes and leaves a stray sheet. A pixel whose
3x3 neighbourhood (valid pixels only) spans more than `max_jump` x its smallest depth is dropped.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .views import FusionViews


def drop_depth_edges(views: FusionViews, max_jump: float) -> int:
    """Zero the weight of edge pixels in place; returns how many were dropped."""
    dropped = 0
    for i in range(views.n_views):
        d = views.depth[i]
        ok = views.weight[i] > 0
        if not ok.any():
            continue
        hi = np.pad(np.where(ok, d, -np.inf), 1, constant_values=-np.inf)
        lo = np.pad(np.where(ok, d, np.inf), 1, constant_values=np.inf)
        dmax = sliding_window_view(hi, (3, 3)).max(axis=(2, 3))
        dmin = sliding_window_view(lo, (3, 3)).min(axis=(2, 3))
        edge = ok & (dmax - dmin > max_jump * dmin)
        views.weight[i] = np.where(edge, 0.0, views.weight[i]).astype(np.float32)
        views.depth[i] = np.where(edge, 0.0, d).astype(np.float32)
        dropped += int(edge.sum())
    return dropped
