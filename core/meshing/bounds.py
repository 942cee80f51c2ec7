"""Robust bounds of the fused volume from the confident points."""

from __future__ import annotations

import numpy as np

from .views import FusionViews

SAMPLES_PER_VIEW = 20000   # bounds and statistics need a sample, not every pixel
POOLED_BOUNDS_SAMPLES = 262144   # percentiles of 2.6e5 points sit within ~0.2 % of the pooled sample's


def sample_points(views: FusionViews, per_view: int = SAMPLES_PER_VIEW) -> list[np.ndarray]:
    """Per view, (n_i, 3) float64 world points of at most ~`per_view` valid pixels (regular stride)."""
    out = []
    for i in range(views.n_views):
        n_valid = int(views.valid(i).sum())
        stride = max(1, int(np.sqrt(n_valid / per_view)))
        out.append(views.points_world(i, stride))
    return out


def robust_bounds(points: list[np.ndarray], percentile: float) -> np.ndarray:
    """(2, 3) [min, max] world corners: per-axis [p, 100 - p] percentiles of the pooled points.

    Each view contributes equally (subsampled to the smallest non-empty view's count x 4), so one
    view with many far pixels cannot move the bounds much; all views together give at most
    ~`POOLED_BOUNDS_SAMPLES` points (a 100-view scene would otherwise sort 2 million).
    """
    pts = [p for p in points if len(p)]
    cap = max(1, min(4 * min(len(p) for p in pts), POOLED_BOUNDS_SAMPLES // len(pts)))
    pooled = np.concatenate([p[:: max(1, len(p) // cap)] for p in pts])
    # One call, per axis on contiguous rows: one partition per axis serves both percentiles.
    return np.percentile(np.ascontiguousarray(pooled.T), [percentile, 100.0 - percentile], axis=1)
