"""Averaging over a view graph: rotations, log-scales and positions from pairwise measurements.

Every solver here works on the graph of views (N nodes) with one measurement per directed edge
(i, j) and solves a weighted least-squares problem whose normal matrix is the graph Laplacian, so the
error of every frame is what the whole graph says about it — not what a chain along a spanning tree
accumulates. That is what keeps a long shot's camera path free of drift.

Rotations (`average_rotations`): measurements Q_ij ≈ R_iᵀ R_j (R cam2world). Minimises the robust
(Cauchy) sum of squared angles of E_ij = R_j (R_i Q_ij)ᵀ by Gauss–Newton in the world tangent space:
with R_k ← exp(ω_k) R_k, log E_ij ≈ e_ij + ω_j − ω_i, so each step is three Laplacian solves (one per
axis) sharing one factorisation. Started from a chain along the maximum spanning tree.

All tensors are float64 on any device; the Laplacian is dense (N x N), which is cheap up to a few
thousand views (one Cholesky factorisation per reweighting round).
"""

from __future__ import annotations

import numpy as np
import torch

from .geometry import axis_angle_to_matrix, maximum_spanning_tree

_L2_ROUNDS = 3         # unweighted rounds before the robust ones
ROBUST_FACTOR = 0.5   # Cauchy scale of the rotation residuals, in medians (pair errors are heavy-tailed)


def matrix_to_axis_angle(r: torch.Tensor) -> torch.Tensor:
    """Inverse of Rodrigues' formula: (..., 3, 3) rotations → (..., 3) axis * angle (radians).

    Accurate near 0 (angle from atan2 of the skew and symmetric parts); angles near π lose the axis
    sign, which the robust solvers here never need (their residuals are small).
    """
    skew = torch.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1) / 2
    sin = skew.norm(dim=-1, keepdim=True)
    cos = ((r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2] - 1) / 2)[..., None]
    ang = torch.atan2(sin, cos)
    scale = torch.where(sin > 1e-12, ang / sin.clamp_min(1e-12), torch.ones_like(sin))
    return skew * scale


def laplacian(n: int, i: torch.Tensor, j: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Dense weighted graph Laplacian (n, n) of edges (i, j) with weights w (E,), float64."""
    lap = torch.zeros(n * n, dtype=torch.float64, device=w.device)
    lap.index_add_(0, i * n + i, w)
    lap.index_add_(0, j * n + j, w)
    lap.index_add_(0, i * n + j, -w)
    lap.index_add_(0, j * n + i, -w)
    return lap.reshape(n, n)


def solve_differences(n: int, i: torch.Tensor, j: torch.Tensor, d: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Least-squares x (n, C) with x_j − x_i ≈ d_ij: min Σ w_ij |x_j − x_i − d_ij|², mean of x zero.

    i, j: (E,) node ids; d: (E, C) measured differences; w: (E,) weights > 0. The graph must be connected.
    """
    lap = laplacian(n, i, j, w)
    wd = w[:, None] * d
    rhs = torch.zeros(n, d.shape[1], dtype=torch.float64, device=d.device)
    rhs.index_add_(0, j, wd).index_add_(0, i, -wd)
    # L + 11ᵀ/n is positive definite on a connected graph and has the same solution with mean zero.
    mat = lap + torch.full_like(lap, 1.0 / n)
    chol, info = torch.linalg.cholesky_ex(mat)
    if int(info) == 0:
        x = torch.cholesky_solve(rhs, chol)
    else:
        x = torch.linalg.lstsq(mat, rhs).solution
    return x - x.mean(0)


def chain_rotations(n: int, edges: np.ndarray, rel: torch.Tensor, score: np.ndarray) -> torch.Tensor:
    """Rotations (n, 3, 3) chained along the maximum spanning tree of `score` (a starting point)."""
    root, tree = maximum_spanning_tree(n, edges, score)
    best = {}
    for e, (a, b) in enumerate(edges.tolist()):
        if (a, b) not in best or score[e] > score[best[(a, b)]]:
            best[(a, b)] = e
    out = torch.zeros(n, 3, 3, dtype=torch.float64, device=rel.device)
    out[root] = torch.eye(3, dtype=torch.float64, device=rel.device)
    for a, b in tree:
        if (a, b) in best:
            out[b] = out[a] @ rel[best[(a, b)]]
        else:
            out[b] = out[a] @ rel[best[(b, a)]].T
    return out


def average_rotations(n: int, edges: np.ndarray, rel: torch.Tensor, weight: torch.Tensor | None = None,
                      init: torch.Tensor | None = None, iters: int = 8, robust: bool = True) -> torch.Tensor:
    """Robust rotation averaging (module doc).

    edges: (E, 2) view pairs (i, j), i ≠ j; rel: (E, 3, 3) measurements of R_iᵀ R_j; weight: (E,) prior
    weights (default 1); init: (n, 3, 3) starting rotations (default: spanning-tree chain).
    Returns (n, 3, 3) cam2world rotations, mean rotation of the gauge as the chain left it.
    """
    dev = rel.device
    e = torch.as_tensor(np.asarray(edges, np.int64).reshape(-1, 2), device=dev)
    i, j = e[:, 0], e[:, 1]
    w0 = torch.ones(len(e), dtype=torch.float64, device=dev) if weight is None else weight.double()
    rot = chain_rotations(n, np.asarray(edges), rel, w0.cpu().numpy()) if init is None else init.double()
    w = w0
    for it in range(iters + _L2_ROUNDS):
        err = rot[j] @ (rot[i] @ rel).transpose(1, 2)           # E_ij, world frame
        res = matrix_to_axis_angle(err)                         # (E, 3)
        # Least-squares rounds first: a chain through a bad pair starts whole stretches far off, and
        # a tight robust kernel would then disown exactly the good edges that could pull them back.
        if robust and it >= _L2_ROUNDS:
            ang = res.norm(dim=-1)
            sigma = (ROBUST_FACTOR * ang.median()).clamp_min(1e-6)
            w = w0 / (1 + (ang / sigma) ** 2)
        omega = solve_differences(n, i, j, -res, w)
        rot = axis_angle_to_matrix(omega) @ rot
        if it >= _L2_ROUNDS and float(omega.norm(dim=-1).max()) < 1e-10:
            break
    u, _, vh = torch.linalg.svd(rot)
    return u @ vh
