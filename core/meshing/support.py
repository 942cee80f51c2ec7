"""Views that no other view agrees with (a camera placed far off by a failed alignment) are left out."""

from __future__ import annotations

import numpy as np

from .views import FusionViews


def view_support(views: FusionViews, points: list[np.ndarray], tolerance: float = 0.1,
                 max_points: int = 2000, max_others: int = 8) -> np.ndarray:
    """(N,) fraction of each view's sample points that some other view measured at the same depth.

    Up to `max_points` points of view i are projected into the `max_others` views whose cameras are
    nearest; a point is supported when it lands in view j's image on a valid pixel whose depth is
    within `tolerance` (relative) of the point's depth. Views with no points get 0.
    """
    n = views.n_views
    out = np.zeros(n)
    w2c = views.world2cam
    centres = views.cam2world[:, :3, 3]
    has_depth = [bool(views.valid(j).any()) for j in range(n)]
    for i in range(n):
        p = points[i][:: max(1, len(points[i]) // max_points)]
        if not len(p):
            continue
        ok = np.zeros(len(p), bool)
        order = np.argsort(np.linalg.norm(centres - centres[i], axis=1))
        for j in [int(j) for j in order if j != i and has_depth[j]][:max_others]:
            cam = p @ w2c[j][:3, :3].T + w2c[j][:3, 3]
            z = cam[:, 2]
            zs = np.maximum(z, 1e-9)
            u = np.rint(cam[:, 0] / zs * views.K[j, 0, 0] + views.K[j, 0, 2]).astype(np.int64)
            v = np.rint(cam[:, 1] / zs * views.K[j, 1, 1] + views.K[j, 1, 2]).astype(np.int64)
            h, w = views.depth[j].shape
            inside = (z > 1e-9) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
            dj = np.zeros(len(p))
            dj[inside] = views.depth[j][v[inside], u[inside]]
            ok |= (dj > 0) & (np.abs(dj - z) <= tolerance * zs)
        out[i] = ok.mean()
    return out


def drop_unsupported(views: FusionViews, points: list[np.ndarray], min_support: float) -> list[int]:
    """Leave out (weight 0, warning) views whose support is below `min_support`; needs >= 3 views
    with depth (with two, neither can outvote the other: both stay and a warning says they disagree,
    as it does when no view agrees with any other). Returns the indices left out."""
    have = [i for i in range(views.n_views) if len(points[i])]
    if len(have) < 2 or min_support <= 0:
        return []
    support = view_support(views, points)
    bad = [i for i in have if support[i] < min_support]
    if len(have) == 2 or len(bad) == len(have):
        if bad:
            names = ", ".join(views.names[i] for i in bad)
            views.warnings.append(
                f"The views do not agree in depth ({names}: under {100 * min_support:.0f} % of their points "
                "match another view); the mesh holds each view's surface separately, at a coarse voxel size "
                "if they lie far apart. Check the cameras (a failed alignment?).")
        return []
    for i in bad:
        views.weight[i] = np.zeros_like(views.weight[i])
        views.depth[i] = np.zeros_like(views.depth[i])
        points[i] = points[i][:0]
        views.warnings.append(
            f"{views.names[i]} was left out of the mesh: only {100 * support[i]:.0f} % of its depth agrees "
            "with the other views (is its camera misplaced?).")
    return bad
