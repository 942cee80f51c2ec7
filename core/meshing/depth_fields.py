"""Per-view smooth depth errors and small camera rotation errors, fitted across views before fusion.

A feed-forward network's depth map is off by a smooth, view-specific relative error (a low-frequency
warp) on top of per-pixel noise, and a global alignment leaves each view a small scale and rotation error.
Fusion averages the per-pixel noise away, but a smooth error is shared by all of a view's pixels on one
surface patch, so only a few views average it and it caps how close the surface can get (see
`bench/mesh_noise_ablation.py`). Where views overlap, these errors are observable. View i's point X
(X - C_i = o_i, C_i its centre) lands on view j's surface at Y (Y - C_j = p_j) with normal n; correcting
view i's depth by a relative field f_i (depth / (1 + f_i)) and turning its camera by a small rotation w_i
about C_i moves X by ~ w_i x o_i - f_i o_i, and the same for view j, so the point-to-plane residual
n . (Y - X) becomes, to first order,

    n . (Y - X) + f_i (n . o_i) - w_i . (o_i x n) - f_j (n . p_j) + w_j . (p_j x n),

which is linear in (f_i, w_i, f_j, w_j). Each f is a sum of a few low-frequency cosines over the image
(`basis`); all views' coefficients and rotations are fitted together by robust, damped least squares
(Gauss-Seidel over the views, Huber re-weighting), rows scaled by 1 / |o_i| to be relative. Two passes
(Gauss-Newton steps) re-find the correspondences on the corrected views. A view no other view overlaps
gets no correction (the damping keeps its unknowns at zero). Centres are kept: the alignment fixes them
better than overlapping depth maps can.
"""

from __future__ import annotations

import numpy as np

from .views import FusionViews

MAX_SAMPLES = 48_000      # pixels sampled over all views (many views need fewer each to fix their fields)
MAX_FIELD = 0.2           # largest relative depth change of one pass
MAX_TURN_DEG = 1.0        # largest camera turn of one pass
MANY_VIEWS = 24           # above this many views each is compared with 4 neighbours, not `neighbours`


def basis(u: np.ndarray, v: np.ndarray, w, h, order: int) -> np.ndarray:
    """(n, order^2) cosine basis cos(pi kx u / (W - 1)) cos(pi ky v / (H - 1)), kx, ky in 0..order-1, at
    pixel coordinates (u, v) of a W x H view (u, v may be fractional; W, H scalars or one per point)."""
    x = np.asarray(u, np.float64) / np.maximum(np.asarray(w) - 1, 1)
    y = np.asarray(v, np.float64) / np.maximum(np.asarray(h) - 1, 1)
    k = np.arange(order)
    cx = np.cos(np.pi * x[:, None] * k[None])
    cy = np.cos(np.pi * y[:, None] * k[None])
    return (cx[:, :, None] * cy[:, None, :]).reshape(len(x), order * order)


def _normals_at(stack: np.ndarray, K_inv: np.ndarray, R: np.ndarray, view: np.ndarray, u: np.ndarray,
                v: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(n, 3) unit world normals of the depth maps `stack[view]` at integer pixels (u, v), from central
    differences of the back-projected neighbours; 0 where a neighbour has no depth or lies outside the image.
    K_inv, R: (n, 3, 3) per row; sizes: (n, 2) W, H per row."""
    w, h = sizes[:, 0], sizes[:, 1]
    inside = (u >= 1) & (u <= w - 2) & (v >= 1) & (v <= h - 2)
    uc, vc = np.clip(u, 1, np.maximum(w - 2, 1)), np.clip(v, 1, np.maximum(h - 2, 1))

    def point(du, dv):
        uu, vv = np.clip(uc + du, 0, w - 1), np.clip(vc + dv, 0, h - 1)
        z = stack[view, vv, uu].astype(np.float64)
        pix = np.stack([uu, vv, np.ones_like(uu)], 1).astype(np.float64)
        return np.einsum("nab,nb->na", K_inv, pix) * z[:, None], z > 0

    (pr, okr), (pl, okl), (pd, okd), (pu, oku) = point(1, 0), point(-1, 0), point(0, 1), point(0, -1)
    n = np.cross(pr - pl, pd - pu)
    norm = np.linalg.norm(n, axis=1)
    ok = inside & okr & okl & okd & oku & (norm > 0)
    out = np.zeros((len(u), 3))
    out[ok] = np.einsum("nab,nb->na", R[ok], n[ok] / norm[ok, None])
    return out


def _pair_rows(views: FusionViews, pix: list, links: list, order: int, tolerance: float) -> list:
    """Point-to-plane observations of each view's sampled pixels on the surfaces of its linked views, all
    pairs in one batch.

    pix: per view (u, v, depth) of its samples; links: per view the views it is compared with.
    Returns [(i, j, A_i, A_j, t)] with t ~= A_i x_i + A_j x_j, x = (field coefficients, rotation vector),
    rows scaled by 1 / |X - C_i| so that they are relative errors; pairs sharing fewer than 50 points are left out.
    """
    n = views.n_views
    sizes = np.array([d.shape[::-1] for d in views.depth])                  # (N, 2) W, H
    stack = np.zeros((n, sizes[:, 1].max(), sizes[:, 0].max()), np.float32)
    for k, d in enumerate(views.depth):
        stack[k, :d.shape[0], :d.shape[1]] = d
    src, dst, idx = [], [], []
    for i in range(n):
        for j in links[i]:
            src.append(np.full(len(pix[i][0]), i))
            dst.append(np.full(len(pix[i][0]), j))
            idx.append(np.arange(len(pix[i][0])))
    if not src:
        return []
    src, dst, idx = np.concatenate(src), np.concatenate(dst), np.concatenate(idx)
    offsets = np.cumsum([0] + [len(p[0]) for p in pix])
    allu = np.concatenate([p[0] for p in pix])
    allv = np.concatenate([p[1] for p in pix])
    row = offsets[src] + idx
    u, v = allu[row], allv[row]
    R = views.cam2world[:, :3, :3]
    # Each sample's X - C_i once per view, then one row per (sample, linked view).
    RK = R @ views.K_inv
    o_all = np.concatenate([(RK[k] @ np.stack([p[0], p[1], np.ones_like(p[0])])).T * p[2][:, None]
                            for k, p in enumerate(pix)])
    o_i = o_all[row]
    X = o_i + views.cam2world[src, :3, 3]
    w2c = views.world2cam[dst]
    cam = np.einsum("nab,nb->na", w2c[:, :3, :3], X) + w2c[:, :3, 3]
    z = cam[:, 2]
    Kj = views.K[dst]
    w, h = sizes[dst, 0], sizes[dst, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        uj = cam[:, 0] / z * Kj[:, 0, 0] + Kj[:, 0, 2]
        vj = cam[:, 1] / z * Kj[:, 1, 1] + Kj[:, 1, 2]
    keep = (z > 1e-9) & (uj >= 0) & (uj <= w - 1) & (vj >= 0) & (vj <= h - 1)
    sel = np.flatnonzero(keep)
    dj = _bilinear(stack, dst[sel], uj[sel], vj[sel], w[sel], h[sel])
    with np.errstate(divide="ignore", invalid="ignore"):
        same = (dj > 0) & (np.abs(dj / z[sel] - 1.0) < tolerance)   # same surface, not an occluder or outlier
    sel, dj = sel[same], dj[same]
    dsel = dst[sel]
    nrm = _normals_at(stack, views.K_inv[dsel], R[dsel], dsel, np.rint(uj[sel]).astype(np.int64),
                      np.rint(vj[sel]).astype(np.int64), sizes[dsel])
    good = nrm.any(1)
    sel, dj, nrm, dsel = sel[good], dj[good], nrm[good], dsel[good]
    ssel = src[sel]
    pj_cam = np.einsum("nab,nb->na", views.K_inv[dsel], np.stack([uj[sel], vj[sel], np.ones(len(sel))], 1)) * dj[:, None]
    p_j = np.einsum("nab,nb->na", R[dsel], pj_cam)
    o = o_i[sel]
    scale = 1.0 / np.linalg.norm(o, axis=1)
    r = np.einsum("nk,nk->n", nrm, views.cam2world[dsel, :3, 3] + p_j - X[sel])
    m = order * order
    A_i = np.empty((len(sel), m + 3))
    A_j = np.empty((len(sel), m + 3))
    np.multiply(basis(u[sel], v[sel], sizes[ssel, 0], sizes[ssel, 1], order),
                (np.einsum("nk,nk->n", nrm, o) * scale)[:, None], out=A_i[:, :m])
    A_i[:, m:] = np.cross(nrm, o) * scale[:, None]                      # -(o x n)
    np.multiply(basis(uj[sel], vj[sel], sizes[dsel, 0], sizes[dsel, 1], order),
                (-np.einsum("nk,nk->n", nrm, p_j) * scale)[:, None], out=A_j[:, :m])
    A_j[:, m:] = np.cross(p_j, nrm) * scale[:, None]
    t = -r * scale
    pair = ssel * n + dsel
    order_rows = np.argsort(pair, kind="stable")
    pair_sorted = pair[order_rows]
    cuts = np.flatnonzero(np.diff(pair_sorted)) + 1
    out = []
    for seg in np.split(order_rows, cuts):
        if len(seg) >= 50:
            i, j = divmod(int(pair[seg[0]]), n)
            out.append((i, j, A_i[seg], A_j[seg], t[seg]))
    return out


def _bilinear(stack: np.ndarray, view: np.ndarray, u: np.ndarray, v: np.ndarray, w: np.ndarray,
              h: np.ndarray) -> np.ndarray:
    """stack[view] sampled bilinearly at (u, v) inside each W x H image; 0 where one of the 4 pixels is 0 (no
    depth), so a sample never mixes a surface with a hole or with another surface's missing pixels."""
    u0 = np.clip(np.floor(u).astype(np.int64), 0, np.maximum(w - 2, 0))
    v0 = np.clip(np.floor(v).astype(np.int64), 0, np.maximum(h - 2, 0))
    u1, v1 = np.minimum(u0 + 1, w - 1), np.minimum(v0 + 1, h - 1)
    fu, fv = u - u0, v - v0
    q = [stack[view, v0, u0], stack[view, v0, u1], stack[view, v1, u0], stack[view, v1, u1]]
    val = (q[0] * (1 - fu) + q[1] * fu) * (1 - fv) + (q[2] * (1 - fu) + q[3] * fu) * fv
    return np.where((q[0] > 0) & (q[1] > 0) & (q[2] > 0) & (q[3] > 0), val, 0.0)


def fit_depth_fields(views: FusionViews, order: int = 5, samples: int = 3000, neighbours: int = 6,
                     tolerance: float = 0.03, damping: float = 0.05, rounds: int = 2, sweeps: int = 3) -> np.ndarray:
    """(N, order^2 + 3): per view the coefficients of its relative depth error field (`basis` order), then
    its small rotation as a rotation vector (radians, world axes, about the camera centre). See the module
    docstring.

    samples:    pixels per view (regular stride over its valid pixels) projected into others; fewer when
                the views together would exceed `MAX_SAMPLES`.
    neighbours: the views with the nearest centres each view is compared with (at most 4 above `MANY_VIEWS`).
    tolerance:  relative disagreement beyond which a pair of depths is not the same surface.
    damping:    Tikhonov weight, relative to the mean diagonal of a view's normal matrix.
    rounds:     robust re-weightings; each solves the weighted problem by `sweeps` Gauss-Seidel sweeps
                over the views (per-pair Gram blocks computed once per round).
    """
    n = views.n_views
    m = order * order + 3
    coef = np.zeros((n, m))
    samples = max(400, min(samples, MAX_SAMPLES // max(n, 1)))
    if n > MANY_VIEWS:
        neighbours = min(neighbours, 4)
    pix = []
    for i in range(n):
        ok = views.valid(i)
        stride = max(1, int(np.sqrt(ok.sum() / max(samples, 1))))
        vv, uu = np.nonzero(ok[::stride, ::stride])
        vv, uu = vv * stride, uu * stride
        pix.append((uu.astype(np.float64), vv.astype(np.float64), views.depth[i][vv, uu].astype(np.float64)))
    centres = views.cam2world[:, :3, 3]
    links = []
    for i in range(n):
        nearest = np.argsort(np.linalg.norm(centres - centres[i], axis=1))
        links.append([int(j) for j in nearest if j != i and len(pix[j][0]) and len(pix[i][0])][:neighbours])
    pairs = _pair_rows(views, pix, links, order, tolerance)
    if not pairs:
        return coef
    touching = [[k for k, p in enumerate(pairs) if view in p[:2]] for view in range(n)]
    weights = [np.ones(len(p[4])) for p in pairs]
    for _ in range(rounds):
        # Per pair (t ~= A_i x_i + A_j x_j): the weighted Gram blocks.
        grams = []
        for (_, _, Ai, Aj, t), wt in zip(pairs, weights, strict=True):
            Wi, Wj = Ai * wt[:, None], Aj * wt[:, None]
            grams.append((Wi.T @ Ai, Wj.T @ Aj, Wj.T @ Ai, Wi.T @ t, Wj.T @ t))
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
        res = [t - Ai @ coef[i] - Aj @ coef[j] for (i, j, Ai, Aj, t) in pairs]
        sigma = 1.4826 * np.median(np.abs(np.concatenate(res))) + 1e-12
        weights = [np.minimum(1.0, 1.5 * sigma / np.maximum(np.abs(x), 1e-12)) for x in res]
    return coef


def correct_depth_fields(views: FusionViews, rotations: bool = True, passes: int = 2, **fit) -> float:
    """Divide each view's depth by (1 + its fitted smooth error field) and, with `rotations`, turn its camera
    about its centre by the fitted small rotation; returns the largest |field| of one pass at a valid pixel
    (0 when nothing was corrected). Weights and masks are unchanged. The first-order model holds for small
    errors only, so one pass changes a depth by at most `MAX_FIELD` and turns a camera by at most
    `MAX_TURN_DEG` (a view that far off is for `support.drop_unsupported`, not for this).

    passes: fits, each on the views the one before corrected (Gauss-Newton steps: the model is linearised
    about the current depths and cameras, and the correspondences are found again).
    """
    worst = 0.0
    for _ in range(passes):
        worst = max(worst, _correct_once(views, rotations, **fit))
    return worst


def _correct_once(views: FusionViews, rotations: bool, **fit) -> float:
    import torch

    from ..align.geometry import axis_angle_to_matrix

    coef = fit_depth_fields(views, **fit)
    order = int(round(np.sqrt(coef.shape[1] - 3)))
    k = np.arange(order)
    worst = 0.0
    for i in np.flatnonzero(coef[:, :-3].any(1)):
        h, w = views.depth[i].shape
        cx = np.cos(np.pi * np.arange(w)[:, None] / max(w - 1, 1) * k[None])      # (W, order)
        cy = np.cos(np.pi * np.arange(h)[:, None] / max(h - 1, 1) * k[None])      # (H, order)
        field = (cy @ coef[i, :-3].reshape(order, order).T @ cx.T).astype(np.float32)   # (H, W)
        np.clip(field, -MAX_FIELD, MAX_FIELD, out=field)
        ok = views.valid(i)
        worst = max(worst, float(np.abs(field[ok]).max()) if ok.any() else 0.0)
        field += 1.0
        views.depth[i] = np.where(ok, views.depth[i] / field, np.float32(0))
    if rotations and coef[:, -3:].any():
        turn = coef[:, -3:]
        angle = np.linalg.norm(turn, axis=1, keepdims=True)
        turn = turn * np.minimum(1.0, np.radians(MAX_TURN_DEG) / np.maximum(angle, 1e-15))
        views.cam2world[:, :3, :3] = axis_angle_to_matrix(torch.as_tensor(turn)).numpy() @ views.cam2world[:, :3, :3]
        views.__dict__.pop("world2cam", None)              # the cached inverses are stale now
    return worst

