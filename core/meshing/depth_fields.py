"""Per-view smooth depth correction from multi-view agreement, before fusion.

A feed-forward network's depth map is off by a smooth, view-specific relative error (a low-frequency
warp) on top of per-pixel noise, and a global alignment leaves each view a small scale error. Fusion
averages the per-pixel noise away, but a smooth error is shared by all of a view's pixels on one
surface patch, so only a few views average it and it caps how close the surface can get (see
`bench/mesh_noise_ablation.py`). Where views overlap, the warps are observable: view i's point X,
seen in view j at depth z_j, disagrees with j's own depth d_j by

    d_j / z_j - 1  ~=  f_j(u_j, v_j) - a * f_i(u_i, v_i),      a = zhat_j . (X - C_i) / z_j,

where f is a view's relative depth error (depth = true depth * (1 + f)), (u, v) the pixel in each
view, C_i view i's centre and zhat_j view j's optical axis in the world (moving X along i's ray by
f_i * (X - C_i) changes z_j by a * f_i * z_j). Each f is modelled as a sum of a few low-frequency
cosines over the image (`basis`) and all views' coefficients are fitted together by robust, damped
least squares (Gauss-Seidel over views, re-weighted); each depth map is then divided by (1 + f).
A view no other view overlaps gets no correction (the damping keeps its coefficients at zero).
"""

from __future__ import annotations

import numpy as np

from .views import FusionViews

MAX_SAMPLES = 100_000     # pixels sampled over all views (many views need fewer each to fix their fields)


def basis(u: np.ndarray, v: np.ndarray, w: int, h: int, order: int) -> np.ndarray:
    """(n, order^2) cosine basis cos(pi kx u / (W - 1)) cos(pi ky v / (H - 1)), kx, ky in 0..order-1, at
    pixel coordinates (u, v) of a W x H view (u, v may be fractional)."""
    x = np.asarray(u, np.float64) / max(w - 1, 1)
    y = np.asarray(v, np.float64) / max(h - 1, 1)
    k = np.arange(order)
    cx = np.cos(np.pi * x[:, None] * k[None])
    cy = np.cos(np.pi * y[:, None] * k[None])
    return (cx[:, :, None] * cy[:, None, :]).reshape(len(x), order * order)


def _pair_rows(views: FusionViews, i: int, j: int, pix: tuple, order: int, tolerance: float):
    """Observations of view i's sampled pixels in view j: (Bi, Bj, a, r) or None when they share none."""
    u, v, d = pix
    Kinv, c2w = views.K_inv[i], views.cam2world[i]
    ray = (Kinv @ np.stack([u, v, np.ones_like(u)]).astype(np.float64)) * d
    offset = (c2w[:3, :3] @ ray).T                       # X - C_i, (n, 3)
    X = offset + c2w[:3, 3]
    w2c = views.world2cam[j]
    cam = X @ w2c[:3, :3].T + w2c[:3, 3]
    z = cam[:, 2]
    h, w = views.depth[j].shape
    with np.errstate(divide="ignore", invalid="ignore"):
        uj = cam[:, 0] / z * views.K[j, 0, 0] + views.K[j, 0, 2]
        vj = cam[:, 1] / z * views.K[j, 1, 1] + views.K[j, 1, 2]
    ok = (z > 1e-9) & (uj >= 0) & (uj <= w - 1) & (vj >= 0) & (vj <= h - 1)
    if ok.sum() < 50:
        return None
    dj = _bilinear(views.depth[j], uj[ok], vj[ok])
    keep = dj > 0
    r = np.zeros(int(ok.sum()))
    r[keep] = dj[keep] / z[ok][keep] - 1.0
    keep &= np.abs(r) < tolerance                        # same surface, not an occluder or outlier
    if keep.sum() < 50:
        return None
    sel = np.flatnonzero(ok)[keep]
    a = (offset[sel] @ w2c[2, :3]) / z[sel]
    return (basis(u[sel], v[sel], *views.depth[i].shape[::-1], order),
            basis(uj[sel], vj[sel], w, h, order), a, r[keep])


def _bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """img sampled bilinearly at (u, v) inside the image; 0 where one of the 4 pixels is 0 (no depth), so a
    sample never mixes a surface with a hole or with another surface's missing pixels."""
    h, w = img.shape
    u0 = np.clip(np.floor(u).astype(np.int64), 0, max(w - 2, 0))
    v0 = np.clip(np.floor(v).astype(np.int64), 0, max(h - 2, 0))
    u1, v1 = np.minimum(u0 + 1, w - 1), np.minimum(v0 + 1, h - 1)
    fu, fv = u - u0, v - v0
    q = [img[v0, u0], img[v0, u1], img[v1, u0], img[v1, u1]]
    val = (q[0] * (1 - fu) + q[1] * fu) * (1 - fv) + (q[2] * (1 - fu) + q[3] * fu) * fv
    return np.where((q[0] > 0) & (q[1] > 0) & (q[2] > 0) & (q[3] > 0), val, 0.0)


def fit_depth_fields(views: FusionViews, order: int = 5, samples: int = 3000, neighbours: int = 6,
                     tolerance: float = 0.03, damping: float = 0.05, rounds: int = 2, sweeps: int = 3) -> np.ndarray:
    """(N, order^2) coefficients of each view's relative depth error field (see the module docstring).

    samples:    pixels per view (regular stride over its valid pixels) projected into others; fewer when
                the views together would exceed `MAX_SAMPLES`.
    neighbours: the views with the nearest centres each view is compared with.
    tolerance:  relative disagreement beyond which a pair of depths is not the same surface.
    damping:    Tikhonov weight, relative to the mean diagonal of a view's normal matrix.
    rounds:     robust re-weightings; each solves the weighted problem by `sweeps` Gauss-Seidel sweeps
                over the views (per-pair Gram blocks computed once per round).
    """
    n = views.n_views
    m = order * order
    coef = np.zeros((n, m))
    samples = max(500, min(samples, MAX_SAMPLES // max(n, 1)))
    pix = []
    for i in range(n):
        ok = views.valid(i)
        stride = max(1, int(np.sqrt(ok.sum() / max(samples, 1))))
        vv, uu = np.nonzero(ok[::stride, ::stride])
        vv, uu = vv * stride, uu * stride
        pix.append((uu.astype(np.float64), vv.astype(np.float64), views.depth[i][vv, uu].astype(np.float64)))
    centres = views.cam2world[:, :3, 3]
    pairs = []
    for i in range(n):
        if len(pix[i][0]) == 0:
            continue
        order_j = np.argsort(np.linalg.norm(centres - centres[i], axis=1))
        for j in [int(j) for j in order_j if j != i and len(pix[j][0])][:neighbours]:
            rows = _pair_rows(views, i, j, pix[i], order, tolerance)
            if rows is not None:
                pairs.append((i, j, *rows))
    if not pairs:
        return coef
    touching = [[k for k, p in enumerate(pairs) if view in p[:2]] for view in range(n)]
    weights = [np.ones(len(p[5])) for p in pairs]
    for _ in range(rounds):
        # Per pair, with M_i = -a B_i and M_j = B_j (r ~= M_j c_j + M_i c_i): the weighted Gram blocks.
        grams = []
        for (_, _, Bi, Bj, a, r), wt in zip(pairs, weights, strict=True):
            Mi = -a[:, None] * Bi
            Wi, Wj = Mi * wt[:, None], Bj * wt[:, None]
            grams.append((Wi.T @ Mi, Wj.T @ Bj, Wj.T @ Mi, Wi.T @ r, Wj.T @ r))
        diag = np.zeros((n, m, m))
        for (i, j, *_), (gii, gjj, *_rest) in zip(pairs, grams, strict=True):
            diag[i] += gii
            diag[j] += gjj
        for view in range(n):
            diag[view][np.diag_indices(m)] += damping * np.trace(diag[view]) / m
        for _sweep in range(sweeps):
            for view in range(n):
                if not diag[view].any():
                    continue
                b = np.zeros(m)
                for k in touching[view]:
                    i, j = pairs[k][:2]
                    gji, ri, rj = grams[k][2:]
                    b += ri - gji.T @ coef[j] if i == view else rj - gji @ coef[i]
                coef[view] = np.linalg.solve(diag[view], b)
        # Re-weight (Huber at 1.5 robust sigmas of all residuals) so occlusion mismatches count less.
        res = [r - (Bj @ coef[j] - a * (Bi @ coef[i])) for (i, j, Bi, Bj, a, r) in pairs]
        sigma = 1.4826 * np.median(np.abs(np.concatenate(res))) + 1e-12
        weights = [np.minimum(1.0, 1.5 * sigma / np.maximum(np.abs(x), 1e-12)) for x in res]
    return coef


def correct_depth_fields(views: FusionViews, **fit) -> float:
    """Divide each view's depth by (1 + its fitted smooth error field); returns the largest |field| at a
    valid pixel (0 when nothing was corrected). Weights and masks are unchanged."""
    coef = fit_depth_fields(views, **fit)
    order = int(round(np.sqrt(coef.shape[1])))
    worst = 0.0
    for i in range(views.n_views):
        if not coef[i].any():
            continue
        h, w = views.depth[i].shape
        k = np.arange(order)
        cx = np.cos(np.pi * np.arange(w)[:, None] / max(w - 1, 1) * k[None])      # (W, order)
        cy = np.cos(np.pi * np.arange(h)[:, None] / max(h - 1, 1) * k[None])      # (H, order)
        field = cy @ coef[i].reshape(order, order).T @ cx.T                        # (H, W)
        ok = views.valid(i)
        worst = max(worst, float(np.abs(field[ok]).max()) if ok.any() else 0.0)
        views.depth[i] = np.where(ok, views.depth[i] / (1.0 + field), 0.0).astype(np.float32)
    return worst
