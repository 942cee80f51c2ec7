"""Small batched geometry kernels used by global alignment (torch; any device).

Conventions: rotations act on column vectors (x' = R x); in batched point code points are row
vectors, so a transform is applied as `pts @ R.transpose(-1, -2) + t`. Camera axes are OpenCV's
(x right, y down, z forward); the centre of pixel (u, v) is at (u, v).
"""

from __future__ import annotations

import numpy as np
import torch


def axis_angle_to_matrix(w: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, differentiable everywhere (also at w = 0).

    w: (..., 3) axis * angle in radians.  Returns (..., 3, 3).
    """
    th2 = (w * w).sum(-1, keepdim=True)[..., None]            # (..., 1, 1)
    small = th2 < 1e-8
    # sqrt/sin of a safe value on the small branch: torch.where would otherwise back-propagate NaN.
    th2s = torch.where(small, torch.ones_like(th2), th2)
    th = th2s.sqrt()
    a = torch.where(small, 1 - th2 / 6, torch.sin(th) / th)
    b = torch.where(small, 0.5 - th2 / 24, (1 - torch.cos(th)) / th2s)
    x, y, z = w.unbind(-1)
    o = torch.zeros_like(x)
    k = torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*w.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=w.dtype, device=w.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def similarity_stats(src: torch.Tensor, dst: torch.Tensor, w: torch.Tensor):
    """Weighted sufficient statistics of a point correspondence set, in float64.

    src, dst: (B, P, 3); w: (B, P). Returns (sw (B,), s_src (B,3), s_dst (B,3), s_cross (B,3,3) = Σ w·dst·srcᵀ,
    s_src2 (B,) = Σ w·|src|²). Statistics of several sets add up (e.g. the two views of an edge), which is
    how correspondences of different image shapes are fitted together.
    """
    src, dst, w = src.double(), dst.double(), w.double()
    # Batched matrix products, not einsum: a three-operand einsum over millions of points runs several
    # times slower on the CPU (it materialises or loops where bmm calls one BLAS kernel per batch).
    wc = w[:, None, :]
    ws = (wc @ src)[:, 0]                                            # (B, 3)
    wd = (wc @ dst)[:, 0]
    cross = (dst * w[..., None]).transpose(1, 2) @ src               # (B, 3, 3)
    src2 = (wc @ (src * src).sum(-1, keepdim=True))[:, 0, 0]
    return w.sum(1), ws, wd, cross, src2


def umeyama_from_stats(stats):
    """Least-squares similarity dst ≈ s R src + t from `similarity_stats` (Umeyama 1991).

    Returns s (B,), R (B, 3, 3), t (B, 3) in float64. Entries with no weight get the identity.
    """
    sw, ss, sd, sc, ss2 = stats
    wsum = sw.clamp_min(1e-30)
    mu_s, mu_d = ss / wsum[:, None], sd / wsum[:, None]
    cov = sc / wsum[:, None, None] - mu_d[:, :, None] * mu_s[:, None, :]
    var_s = (ss2 / wsum - (mu_s * mu_s).sum(-1)).clamp_min(0)
    u, sig, vh = torch.linalg.svd(cov)
    det = torch.linalg.det(u @ vh)
    d = torch.ones_like(sig)
    d[:, 2] = torch.where(det < 0, -1.0, 1.0).to(sig.dtype)
    r = u @ (d[..., None] * vh)
    s = (sig * d).sum(-1) / var_s.clamp_min(1e-30)
    bad = (sw <= 0) | ~torch.isfinite(s) | (s <= 0) | ~torch.isfinite(r).all(-1).all(-1)
    if bad.any():
        r = torch.where(bad[:, None, None], torch.eye(3, dtype=r.dtype, device=r.device), r)
        s = torch.where(bad, torch.ones_like(s), s)
    t = mu_d - s[:, None] * (r @ mu_s[..., None])[..., 0]
    return s, r, t


def weiszfeld_focal(pts: torch.Tensor, du: torch.Tensor, dv: torch.Tensor, w: torch.Tensor,
                    index: torch.Tensor, n: int, iters: int = 20) -> torch.Tensor:
    """Robust per-view focal from pointmaps in their own camera frame (principal point known).

    Minimises Σ w·|(du, dv) − f·(x/z, y/z)| (an L1 of 2-D reprojection offsets) by Weiszfeld iterations,
    started from the median per-pixel ratio. pts: (M, P, 3) camera-frame points of M observations;
    du, dv: (M, P) pixel offsets from the principal point; w: (M, P) weights; index: (M,) view (or focal
    group) of each observation, in [0, n). Returns (n,) float64 focals (NaN where a view has no data).
    """
    z = pts[..., 2].double()
    ok = z > 1e-8
    zs = torch.where(ok, z, torch.ones_like(z))
    px = torch.where(ok, pts[..., 0].double() / zs, torch.zeros_like(z))
    py = torch.where(ok, pts[..., 1].double() / zs, torch.zeros_like(z))
    w = torch.where(ok, w.double(), torch.zeros_like(z))
    du, dv = du.double(), dv.double()
    dot, sq = px * du + py * dv, px * px + py * py

    def solve(wt):
        num = torch.zeros(n, dtype=torch.float64, device=pts.device).index_add_(0, index, (wt * dot).sum(1))
        den = torch.zeros(n, dtype=torch.float64, device=pts.device).index_add_(0, index, (wt * sq).sum(1))
        return num / den.clamp_min(1e-30), den

    # Start from the median of the per-pixel focal ratios (outliers wreck a least-squares start).
    fp = torch.where((w > 0) & (sq > 1e-12), dot / sq.clamp_min(1e-30), torch.full_like(sq, float("nan")))
    med = torch.nanmedian(fp, dim=1).values
    okm = torch.isfinite(med)
    num = torch.zeros(n, dtype=torch.float64, device=pts.device).index_add_(0, index[okm], med[okm])
    cnt = torch.zeros(n, dtype=torch.float64, device=pts.device).index_add_(0, index[okm], torch.ones_like(med[okm]))
    f = num / cnt.clamp_min(1)
    # Gate out pixels whose own ratio is far from that start: a near-zero z gives an outlier enough
    # leverage to drag a Weiszfeld iteration to f = 0.
    f0 = f[index][:, None]
    w = torch.where((fp > f0 / 2) & (fp < f0 * 2), w, torch.zeros_like(w))
    _, den = solve(w)
    for _ in range(iters):
        fo = f[index][:, None]
        r = torch.sqrt((du - fo * px) ** 2 + (dv - fo * py) ** 2)
        f, _ = solve(w / r.clamp_min(1e-6 * fo.abs().clamp_min(1.0)))
    return torch.where(den > 0, f, torch.full_like(f, float("nan")))


def maximum_spanning_tree(n: int, pairs: np.ndarray, scores: np.ndarray):
    """Prim's algorithm on an undirected graph given as scored pairs (duplicates keep the best score).

    Returns (root, tree) where tree is a list of (parent, child) in breadth-first order from `root`
    (the endpoint of the best pair), or raises ValueError naming the unreachable nodes.
    """
    best = np.full((n, n), -np.inf)
    for (a, b), s in zip(pairs, scores, strict=True):
        if a != b:
            best[a, b] = best[b, a] = max(best[a, b], s)
    root = int(pairs[int(np.argmax(scores))][0]) if len(pairs) else 0
    in_tree = np.zeros(n, bool)
    in_tree[root] = True
    link = best[root].copy()
    parent = np.full(n, root)
    tree = []
    for _ in range(n - 1):
        cand = np.where(in_tree, -np.inf, link)
        k = int(np.argmax(cand))
        if not np.isfinite(cand[k]):
            missing = sorted(int(i) for i in np.where(~in_tree)[0])
            raise ValueError(missing)
        tree.append((int(parent[k]), k))
        in_tree[k] = True
        upd = best[k] > link
        link[upd] = best[k][upd]
        parent[upd] = k
    return root, tree


def rotation_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations → (N, 4) unit quaternions (w, x, y, z) with w >= 0 (Shepperd's method)."""
    R = np.asarray(R, dtype=np.float64).reshape(-1, 3, 3)
    m00, m11, m22 = R[:, 0, 0], R[:, 1, 1], R[:, 2, 2]
    # Four candidate formulas; each is well conditioned where its squared component is the largest.
    cand = np.stack([
        np.stack([1 + m00 + m11 + m22, R[:, 2, 1] - R[:, 1, 2], R[:, 0, 2] - R[:, 2, 0], R[:, 1, 0] - R[:, 0, 1]], -1),
        np.stack([R[:, 2, 1] - R[:, 1, 2], 1 + m00 - m11 - m22, R[:, 0, 1] + R[:, 1, 0], R[:, 0, 2] + R[:, 2, 0]], -1),
        np.stack([R[:, 0, 2] - R[:, 2, 0], R[:, 0, 1] + R[:, 1, 0], 1 - m00 + m11 - m22, R[:, 1, 2] + R[:, 2, 1]], -1),
        np.stack([R[:, 1, 0] - R[:, 0, 1], R[:, 0, 2] + R[:, 2, 0], R[:, 1, 2] + R[:, 2, 1], 1 - m00 - m11 + m22], -1),
    ], 1)                                                     # (N, 4 candidates, 4 components)
    best = np.argmax(np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22,
                               1 - m00 - m11 + m22], -1), axis=1)
    q = cand[np.arange(len(R)), best]
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q * np.where(q[:, :1] < 0, -1.0, 1.0)
