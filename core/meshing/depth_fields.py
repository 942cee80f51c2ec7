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

Rows, Gram blocks and the fields run in torch on the fusion device (float64 geometry, the depth maps in
float32 as fusion gets them); only the small per-view solves of the Gauss-Seidel sweeps run on the host.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .views import FusionViews

SAMPLES = 3000            # pixels sampled per view by default
MAX_SAMPLES = 48_000      # pixels sampled over all views (many views need fewer each to fix their fields)
MAX_FIELD = 0.2           # largest relative depth change of one pass
MAX_TURN_DEG = 1.0        # largest camera turn of one pass
MANY_VIEWS = 24           # above this many views each is compared with 4 neighbours, not `neighbours`
MIN_PAIR_ROWS = 50        # a pair of views sharing fewer observations is left out
FIELD_CHUNK = 16          # views whose full-size fields are built at once (bounds the float64 scratch)


def basis(u: torch.Tensor, v: torch.Tensor, w: torch.Tensor, h: torch.Tensor, order: int) -> torch.Tensor:
    """(n, order^2) cosine basis cos(pi kx u / (W - 1)) cos(pi ky v / (H - 1)), kx, ky in 0..order-1
    (column kx * order + ky), at pixel coordinates (u, v) (n,) of W x H views (w, h: (n,), one per point;
    u, v may be fractional)."""
    x = u / (w - 1).clamp(min=1)
    y = v / (h - 1).clamp(min=1)
    k = torch.arange(order, dtype=u.dtype, device=u.device)
    cx = torch.cos(math.pi * x[:, None] * k)
    cy = torch.cos(math.pi * y[:, None] * k)
    return (cx[:, :, None] * cy[:, None, :]).reshape(len(x), order * order)


def _per_view_samples(samples: int, n_views: int) -> int:
    """Pixels each view contributes: `samples`, fewer when the views together would exceed `MAX_SAMPLES`."""
    return max(400, min(samples, MAX_SAMPLES // max(n_views, 1)))


def _mv(M: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(n, 3): per-row products M[k] @ x[k] of (n, 3, 3) and (n, 3) (broadcast, not a batched matmul of
    3 x 3 matrices, which is slow on the CPU)."""
    return (M * x[:, None, :]).sum(2)


class _Stack:
    """The views' depth maps and valid masks on one device, padded to the largest view; the sampled pixels.

    depth: (N, Hmax, Wmax) float32, valid: (N, Hmax, Wmax) bool, sizes: (N, 2) int64 W, H (host and device);
    samples: flat (view, u, v) int64 of the pixels each view contributes (a regular stride over its valid
    pixels, about `per_view` of them).
    """

    def __init__(self, views: FusionViews, device: torch.device, per_view: int):
        n = views.n_views
        self.sizes = np.array([d.shape[::-1] for d in views.depth], np.int64)
        hm, wm = int(self.sizes[:, 1].max()), int(self.sizes[:, 0].max())
        depth = np.zeros((n, hm, wm), np.float32)
        valid = np.zeros((n, hm, wm), bool)
        s_view, s_u, s_v = [], [], []
        for i, d in enumerate(views.depth):
            ok = views.valid(i)
            depth[i, :d.shape[0], :d.shape[1]] = d
            valid[i, :d.shape[0], :d.shape[1]] = ok
            stride = max(1, int(np.sqrt(ok.sum() / max(per_view, 1))))
            vv, uu = np.nonzero(ok[::stride, ::stride])
            s_view.append(np.full(len(uu), i))
            s_u.append(uu * stride)
            s_v.append(vv * stride)
        self.counts = np.array([len(u) for u in s_u])
        self.depth = torch.from_numpy(depth).to(device)
        self.valid = torch.from_numpy(valid).to(device)
        self.size_t = torch.from_numpy(self.sizes).to(device)
        self.s_view, self.s_u, self.s_v = (torch.from_numpy(np.concatenate(a).astype(np.int64)).to(device)
                                           for a in (s_view, s_u, s_v))
        self.device = device

    def write_back(self, views: FusionViews, which) -> None:
        """Copy the (corrected) depth maps of views `which` back into `views.depth`."""
        for i in which:
            w, h = self.sizes[i]
            views.depth[i] = np.ascontiguousarray(self.depth[i, :h, :w].cpu().numpy())


def _links(views: FusionViews, counts: np.ndarray, neighbours: int) -> list:
    """Per view the (at most `neighbours`) views with the nearest centres; views without samples get none."""
    centres = views.cam2world[:, :3, 3]
    links = []
    for i in range(views.n_views):
        nearest = np.argsort(np.linalg.norm(centres - centres[i], axis=1))
        links.append([int(j) for j in nearest if j != i and counts[j] and counts[i]][:neighbours])
    return links


def _normals_at(depth: torch.Tensor, K_inv: torch.Tensor, R: torch.Tensor, view: torch.Tensor, u: torch.Tensor,
                v: torch.Tensor, w: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """(n, 3) float64 unit world normals of the depth maps `depth[view]` at integer pixels (u, v), from central
    differences of the back-projected neighbours; 0 where a neighbour has no depth or lies outside the image.
    K_inv, R: (n, 3, 3) per row; w, h: (n,) the view's size."""
    inside = (u >= 1) & (u <= w - 2) & (v >= 1) & (v <= h - 2)
    uc = torch.minimum(u.clamp(min=1), (w - 2).clamp(min=1))
    vc = torch.minimum(v.clamp(min=1), (h - 2).clamp(min=1))

    def point(du: int, dv: int):
        uu = torch.minimum((uc + du).clamp(min=0), w - 1)
        vv = torch.minimum((vc + dv).clamp(min=0), h - 1)
        z = depth[view, vv, uu].double()
        pix = torch.stack([uu, vv, torch.ones_like(uu)], 1).double()
        return _mv(K_inv, pix) * z[:, None], z > 0

    (pr, okr), (pl, okl), (pd, okd), (pu, oku) = point(1, 0), point(-1, 0), point(0, 1), point(0, -1)
    n = torch.linalg.cross(pr - pl, pd - pu)
    norm = torch.linalg.vector_norm(n, dim=1)
    ok = inside & okr & okl & okd & oku & (norm > 0)
    unit = n / torch.where(ok, norm, 1.0)[:, None]
    return torch.where(ok[:, None], _mv(R, unit), 0.0)


def _bilinear(depth: torch.Tensor, view: torch.Tensor, u: torch.Tensor, v: torch.Tensor, w: torch.Tensor,
              h: torch.Tensor) -> torch.Tensor:
    """(n,) float64: depth[view] sampled bilinearly at (u, v) inside each W x H image; 0 where one of the 4
    pixels is 0 (no depth), so a sample never mixes a surface with a hole or with another surface's missing
    pixels."""
    u0 = torch.minimum(torch.floor(u).long().clamp(min=0), (w - 2).clamp(min=0))
    v0 = torch.minimum(torch.floor(v).long().clamp(min=0), (h - 2).clamp(min=0))
    u1, v1 = torch.minimum(u0 + 1, w - 1), torch.minimum(v0 + 1, h - 1)
    fu, fv = u - u0, v - v0
    q = [depth[view, v0, u0].double(), depth[view, v0, u1].double(), depth[view, v1, u0].double(),
         depth[view, v1, u1].double()]
    val = (q[0] * (1 - fu) + q[1] * fu) * (1 - fv) + (q[2] * (1 - fu) + q[3] * fu) * fv
    return torch.where((q[0] > 0) & (q[1] > 0) & (q[2] > 0) & (q[3] > 0), val, 0.0)


class _Pairs:
    """Point-to-plane observations of each view's sampled pixels on the surfaces of its linked views, padded
    per pair of views: B (P, L, 2m) = [A_i | A_j] with t (P, L) ~= A_i x_i + A_j x_j, x = (field
    coefficients, rotation vector); rows scaled by 1 / |X - C_i| so that they are relative errors; `mask`
    (P, L) marks real rows; `ij` (P, 2) host int64 the two views."""

    def __init__(self, Bt: torch.Tensor, mask: torch.Tensor, ij: np.ndarray):
        self.Bt, self.mask, self.ij = Bt, mask, ij     # Bt: (P, L, 2m + 1) = [B | t], one product per round
        self.B, self.t = Bt[..., :-1], Bt[..., -1]


def _pair_rows(views: FusionViews, st: _Stack, links: list, order: int, tolerance: float) -> _Pairs | None:
    """All pairs' observations in one batch (see `_Pairs`); None when no pair shares `MIN_PAIR_ROWS`."""
    n, dev = views.n_views, st.device
    f64 = dict(dtype=torch.float64, device=dev)
    offsets = np.concatenate([[0], np.cumsum(st.counts)])
    row_sample, row_dst = [], []
    for i in range(n):
        for j in links[i]:
            row_sample.append(np.arange(offsets[i], offsets[i + 1]))
            row_dst.append(np.full(st.counts[i], j))
    if not row_sample:
        return None
    row_sample = torch.from_numpy(np.concatenate(row_sample)).to(dev)
    dst = torch.from_numpy(np.concatenate(row_dst).astype(np.int64)).to(dev)
    c2w = torch.as_tensor(views.cam2world, **f64)
    w2c = torch.as_tensor(views.world2cam, **f64)
    K = torch.as_tensor(views.K, **f64)
    K_inv = torch.as_tensor(views.K_inv, **f64)
    R, C = c2w[:, :3, :3], c2w[:, :3, 3]
    # Each sample's X - C_i once per view, then one row per (sample, linked view).
    su, sv = st.s_u.double(), st.s_v.double()
    sd = st.depth[st.s_view, st.s_v, st.s_u].double()
    pix = torch.stack([su, sv, torch.ones_like(su)], 1)
    o_all = _mv((R @ K_inv)[st.s_view], pix) * sd[:, None]
    src = st.s_view[row_sample]
    u, v = su[row_sample], sv[row_sample]
    o_i = o_all[row_sample]
    X = o_i + C[src]
    cam = _mv(w2c[dst, :3, :3], X) + w2c[dst, :3, 3]
    z = cam[:, 2]
    Kj = K[dst]
    wj, hj = st.size_t[dst, 0], st.size_t[dst, 1]
    zs = torch.where(z > 1e-9, z, 1.0)
    uj = cam[:, 0] / zs * Kj[:, 0, 0] + Kj[:, 0, 2]
    vj = cam[:, 1] / zs * Kj[:, 1, 1] + Kj[:, 1, 2]
    keep = (z > 1e-9) & (uj >= 0) & (uj <= wj - 1) & (vj >= 0) & (vj <= hj - 1)
    sel = torch.nonzero(keep).squeeze(1)
    dj = _bilinear(st.depth, dst[sel], uj[sel], vj[sel], wj[sel], hj[sel])
    same = (dj > 0) & ((dj / z[sel] - 1.0).abs() < tolerance)    # same surface, not an occluder or outlier
    sel, dj = sel[same], dj[same]
    dsel = dst[sel]
    nrm = _normals_at(st.depth, K_inv[dsel], R[dsel], dsel, torch.round(uj[sel]).long(), torch.round(vj[sel]).long(),
                      wj[sel], hj[sel])
    good = nrm.ne(0).any(1)
    sel, dj, nrm, dsel = sel[good], dj[good], nrm[good], dsel[good]
    ssel = src[sel]
    ujs, vjs = uj[sel], vj[sel]
    pj_cam = _mv(K_inv[dsel], torch.stack([ujs, vjs, torch.ones_like(ujs)], 1)) * dj[:, None]
    p_j = _mv(R[dsel], pj_cam)
    o = o_i[sel]
    scale = 1.0 / torch.linalg.vector_norm(o, dim=1)
    r = (nrm * (C[dsel] + p_j - X[sel])).sum(1)
    m = order * order
    rows = torch.empty((len(sel), 2 * (m + 3) + 1), **f64)              # [A_i | A_j | t]
    size_s, size_d = st.size_t[ssel], st.size_t[dsel]
    torch.mul(basis(u[sel], v[sel], size_s[:, 0], size_s[:, 1], order),
              ((nrm * o).sum(1) * scale)[:, None], out=rows[:, :m])
    rows[:, m:m + 3] = torch.linalg.cross(nrm, o) * scale[:, None]                 # -(o x n)
    torch.mul(basis(ujs, vjs, size_d[:, 0], size_d[:, 1], order),
              (-(nrm * p_j).sum(1) * scale)[:, None], out=rows[:, m + 3:2 * m + 3])
    rows[:, 2 * m + 3:-1] = torch.linalg.cross(p_j, nrm) * scale[:, None]
    rows[:, -1] = -r * scale
    # Group the rows by pair of views (stable: each pair's rows keep their order), pad to the longest pair.
    pair = ssel * n + dsel
    pair_sorted, order_rows = torch.sort(pair, stable=True)
    ids, counts = torch.unique_consecutive(pair_sorted, return_counts=True)
    counts_h = counts.cpu().numpy()
    starts = np.concatenate([[0], np.cumsum(counts_h)[:-1]])
    kept = counts_h >= MIN_PAIR_ROWS
    if not kept.any():
        return None
    slot = np.full(len(counts_h), -1, np.int64)
    slot[kept] = np.arange(int(kept.sum()))
    seg = torch.repeat_interleave(torch.arange(len(counts_h), device=dev), counts)
    rank = torch.arange(len(pair_sorted), device=dev) - torch.from_numpy(starts).to(dev)[seg]
    pslot = torch.from_numpy(slot).to(dev)[seg]
    on = pslot >= 0
    P, L = int(kept.sum()), int(counts_h[kept].max())
    Bt = torch.zeros((P, L, rows.shape[1]), **f64)
    mask = torch.zeros((P, L), dtype=torch.bool, device=dev)
    dest = (pslot[on], rank[on])
    Bt[dest] = rows[order_rows[on]]
    mask[dest] = True
    ids_h = ids.cpu().numpy()[kept]
    return _Pairs(Bt, mask, np.stack([ids_h // n, ids_h % n], 1))


def fit_depth_fields(views: FusionViews, order: int = 5, samples: int = SAMPLES, neighbours: int = 6,
                     tolerance: float = 0.03, damping: float = 0.05, rounds: int = 2, sweeps: int = 3,
                     device: str | torch.device = "cpu", _stack: _Stack | None = None) -> np.ndarray:
    """(N, order^2 + 3): per view the coefficients of its relative depth error field (`basis` order), then
    its small rotation as a rotation vector (radians, world axes, about the camera centre). See the module
    docstring.

    samples:    pixels per view (regular stride over its valid pixels) projected into others; fewer when
                the views together would exceed `MAX_SAMPLES`.
    neighbours: the views with the nearest centres each view is compared with (at most 4 above `MANY_VIEWS`).
    tolerance:  relative disagreement beyond which a pair of depths is not the same surface.
    damping:    Tikhonov weight, relative to the mean diagonal of a view's normal matrix.
    rounds:     robust re-weightings; each solves the weighted problem by `sweeps` Gauss-Seidel sweeps
                over the views (per-pair Gram blocks computed once per round, in one batched product on
                `device`).
    _stack:     `correct_depth_fields`' device copy of the views, kept across its passes (holding the
                depths corrected so far, sampled at `samples`); built here when absent.
    """
    n = views.n_views
    m = order * order + 3
    coef = np.zeros((n, m))
    st = _stack or _Stack(views, torch.device(device), _per_view_samples(samples, n))
    if n > MANY_VIEWS:
        neighbours = min(neighbours, 4)
    pairs = _pair_rows(views, st, _links(views, st.counts, neighbours), order, tolerance)
    if pairs is None:
        return coef
    ij = pairs.ij
    touching = [np.flatnonzero((ij[:, 0] == view) | (ij[:, 1] == view)) for view in range(n)]
    weights = None                  # first round unweighted (padding rows are zero)
    for _ in range(rounds):
        # Per pair: the weighted Gram matrix of [A_i | A_j] and right-hand side, on the device, then the host.
        Bw = pairs.Bt if weights is None else pairs.Bt * weights[..., None]
        full = torch.bmm(Bw.transpose(1, 2), pairs.Bt).cpu().numpy()
        gram, rhs = full[:, :-1, :-1], full[:, :-1, -1]                    # (P, 2m, 2m), (P, 2m)
        diag = np.zeros((n, m, m))
        np.add.at(diag, ij[:, 0], gram[:, :m, :m])
        np.add.at(diag, ij[:, 1], gram[:, m:, m:])
        for view in range(n):
            diag[view][np.diag_indices(m)] += damping * np.trace(diag[view]) / m
        for _sweep in range(sweeps):
            for view in range(n):
                if not diag[view].any():
                    continue
                b = np.zeros(m)
                for k in touching[view]:
                    i, j = ij[k]
                    gji = gram[k, m:, :m]                                        # W_j^T A_i
                    b += rhs[k, :m] - gji.T @ coef[j] if i == view else rhs[k, m:] - gji @ coef[i]
                coef[view] = np.linalg.solve(diag[view], b)
        # Re-weight (Huber at 1.5 robust sigmas of all residuals) so occlusion mismatches count less.
        x = torch.from_numpy(np.concatenate([coef[ij[:, 0]], coef[ij[:, 1]]], 1)).to(pairs.B.device)
        res = (pairs.t - torch.bmm(pairs.B, x[:, :, None])[..., 0]).abs()
        sigma = 1.4826 * float(torch.median(res[pairs.mask])) + 1e-12
        weights = torch.where(pairs.mask, (1.5 * sigma / res.clamp(min=1e-12)).clamp(max=1.0), 0.0)
    return coef


def correct_depth_fields(views: FusionViews, rotations: bool = True, passes: int = 2,
                         device: str | torch.device = "cpu", **fit) -> float:
    """Divide each view's depth by (1 + its fitted smooth error field) and, with `rotations`, turn its camera
    about its centre by the fitted small rotation; returns the largest |field| of one pass at a valid pixel
    (0 when nothing was corrected). Weights and masks are unchanged. The first-order model holds for small
    errors only, so one pass changes a depth by at most `MAX_FIELD` and turns a camera by at most
    `MAX_TURN_DEG` (a view that far off is for `support.drop_unsupported`, not for this).

    passes: fits, each on the views the one before corrected (Gauss-Newton steps: the model is linearised
            about the current depths and cameras, and the correspondences are found again).
    device: where the rows, Gram blocks and fields are computed (the fusion device).
    """
    from ..align.geometry import axis_angle_to_matrix

    n = views.n_views
    st = _Stack(views, torch.device(device), _per_view_samples(fit.get("samples", SAMPLES), n))
    worst, changed = 0.0, np.zeros(n, bool)
    for _ in range(passes):
        coef = fit_depth_fields(views, device=st.device, _stack=st, **fit)
        fixed = np.flatnonzero(coef[:, :-3].any(1))
        worst = max(worst, _apply_fields(st, coef, fixed))
        changed[fixed] = True
        if rotations and coef[:, -3:].any():
            turn = coef[:, -3:]
            angle = np.linalg.norm(turn, axis=1, keepdims=True)
            turn = turn * np.minimum(1.0, np.radians(MAX_TURN_DEG) / np.maximum(angle, 1e-15))
            views.cam2world[:, :3, :3] = axis_angle_to_matrix(torch.as_tensor(turn)).numpy() @ views.cam2world[:, :3, :3]
            views.__dict__.pop("world2cam", None)              # the cached inverses are stale now
    st.write_back(views, np.flatnonzero(changed))
    return worst


def _apply_fields(st: _Stack, coef: np.ndarray, which: np.ndarray) -> float:
    """Divide the depth maps of views `which` (on the device) by 1 + their fields (clipped to +-`MAX_FIELD`),
    keeping 0 off their valid pixels; returns the largest |field| at a valid pixel."""
    if not len(which):
        return 0.0
    order = int(round(np.sqrt(coef.shape[1] - 3)))
    dev = st.depth.device
    _, hm, wm = st.depth.shape
    k = torch.arange(order, dtype=torch.float64, device=dev)
    worst = torch.zeros((), dtype=torch.float32, device=dev)
    for start in range(0, len(which), FIELD_CHUNK):
        idx = which[start:start + FIELD_CHUNK]
        it = torch.from_numpy(idx).to(dev)
        w = torch.from_numpy(st.sizes[idx, 0]).to(dev).double()
        h = torch.from_numpy(st.sizes[idx, 1]).to(dev).double()
        xs = torch.arange(wm, dtype=torch.float64, device=dev)[None] / (w[:, None] - 1).clamp(min=1)
        ys = torch.arange(hm, dtype=torch.float64, device=dev)[None] / (h[:, None] - 1).clamp(min=1)
        cx = torch.cos(math.pi * xs[..., None] * k)                         # (c, Wmax, order)
        cy = torch.cos(math.pi * ys[..., None] * k)                         # (c, Hmax, order)
        grid = torch.from_numpy(coef[idx, :-3].reshape(-1, order, order)).to(dev)   # [kx, ky]
        field = (cy @ grid.transpose(1, 2) @ cx.transpose(1, 2)).float().clamp_(-MAX_FIELD, MAX_FIELD)
        ok = st.valid[it]
        worst = torch.maximum(worst, torch.where(ok, field.abs(), 0.0).amax())
        st.depth[it] = torch.where(ok, st.depth[it] / (field + 1.0), 0.0)
    return float(worst)
