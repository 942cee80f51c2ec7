"""One refinement step of global alignment: parameters, residuals, robust loss and the Adam update.

Variable projection (see `refine`'s module docstring): Adam moves only per-view rotations / translations /
focals and per-edge similarities; for the current values, each pixel's depth is solved in closed form
(an IRLS-weighted mean along its ray), so depths never take gradient steps. A step reads nothing back to
the host, so on CUDA it can be captured once as a graph and replayed (`loop`).

Shapes: N views, E edges; per image-shape group M observations (edge, view) of P sampled pixels each.
All tensors live on the alignment device; parameters are float32, the state they start from float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import PointmapError
from ..options import AlignOptions
from .geometry import axis_angle_to_matrix
from .init import conf_weight, sample_stride


@dataclass
class Intrinsics:
    """Per-view intrinsics constraints (float64 tensors on the device)."""

    pp: torch.Tensor           # (N, 2) principal point, network pixels
    aspect: torch.Tensor       # (N,) fy / fx
    known_f: torch.Tensor      # (N,) known fx, NaN = unknown
    focal_group: torch.Tensor  # (N,) index of the focal estimate a view uses (shared focal: the same one)

    @staticmethod
    def build(shapes, opt: AlignOptions, dev) -> Intrinsics:
        """From image shapes [(H, W)] and the known focals / intrinsics / shared-focal choice of `opt`."""
        n = len(shapes)
        pp = torch.tensor([[(w - 1) / 2, (h - 1) / 2] for h, w in shapes], dtype=torch.float64)
        aspect = torch.ones(n, dtype=torch.float64)
        known = torch.full((n,), float("nan"), dtype=torch.float64)
        if opt.focals is not None:
            f = np.asarray(opt.focals, np.float64).reshape(-1)
            if len(f) != n:
                raise PointmapError(f"Alignment options: {len(f)} focals given for {n} images.")
            known = torch.from_numpy(np.where(f > 0, f, np.nan))
        if opt.intrinsics is not None:
            if len(opt.intrinsics) != n:
                raise PointmapError(f"Alignment options: {len(opt.intrinsics)} intrinsics given for {n} images.")
            for k, K in enumerate(opt.intrinsics):
                if K is None:
                    continue
                K = np.asarray(K, np.float64)
                if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
                    raise PointmapError(f"Alignment options: intrinsics of image {k} are not a valid 3x3 matrix.")
                pp[k] = torch.tensor(K[:2, 2])
                aspect[k] = K[1, 1] / K[0, 0]
                known[k] = K[0, 0]
        group = torch.arange(n)
        free = torch.isnan(known)
        if opt.shared_focal and free.any():
            group[free] = int(free.nonzero()[0, 0])
        return Intrinsics(pp.to(dev), aspect.to(dev), known.to(dev), group.to(dev))


def rays(cam: Intrinsics, focal: torch.Tensor, views: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rays (n, P, 3) of pixels (u, v) (P,) in cameras `views` (n,); z component 1 (so depth = z)."""
    fx = focal.index_select(0, views)[:, None]
    fy = fx * cam.aspect.index_select(0, views)[:, None].float()
    pp = cam.pp.index_select(0, views).float()
    x = (u[None, :] - pp[:, 0:1]) / fx
    y = (v[None, :] - pp[:, 1:2]) / fy
    return torch.stack([x, y, torch.ones_like(x)], -1)


def obs_affine(g, cam_R, cam_t, edge_s, edge_R, edge_t) -> tuple[torch.Tensor, torch.Tensor]:
    """Per observation of group `g` (A (M,3,3), b (M,3)): edge-frame point → camera-frame point, q = A x + b."""
    # index_select, not advanced indexing: its backward (index_add) can be captured in a CUDA graph.
    rvt = cam_R.index_select(0, g.obs_view).transpose(1, 2)
    a = edge_s.index_select(0, g.obs_edge)[:, None, None] * (rvt @ edge_R.index_select(0, g.obs_edge))
    b = (rvt @ (edge_t.index_select(0, g.obs_edge) - cam_t.index_select(0, g.obs_view))[..., None])[..., 0]
    return a, b


def depth_solve(q, r_o, om, local, n_views) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form per-pixel depth: weighted mean of the observations' projections on the ray.

    q: (M,P,3) camera-frame points; r_o: (M,P,3) rays; om: (M,P) weights; local: (M,) view of each.
    Returns d (n_views, P) and the weight sum (n_views, P).
    """
    rq = (q * r_o).sum(-1) / (r_o * r_o).sum(-1)
    num = torch.zeros(n_views, q.shape[1], dtype=q.dtype, device=q.device).index_add_(0, local, om * rq)
    den = torch.zeros_like(num).index_add_(0, local, om)
    return num / den.clamp_min(1e-30), den


class RefineParams:
    """The refinement's unknowns as float32 deltas from a starting estimate (`refine._State`).

    Rotations: axis-angle updates, views' and edges' in one (N+E, 3) tensor (one Rodrigues evaluation per
    step); translations in units of `scene` (the median depth, set before the first step); edge scales and
    focals in log units. Known poses and known focals get no update.
    """

    def __init__(self, state, cam: Intrinsics, fixed_scale: bool):
        dev = state.cam_R.device
        f32 = dict(dtype=torch.float32, device=dev)
        n, ne = state.cam_R.shape[0], state.edge_s.shape[0]
        self.n, self.fixed_scale, self.focal_group = n, fixed_scale, cam.focal_group
        self.cam_R0, self.cam_t0 = state.cam_R.float(), state.cam_t.float()
        self.edge_R0, self.edge_t0 = state.edge_R.float(), state.edge_t.float()
        self.log_s0, self.log_f0 = torch.log(state.edge_s).float(), torch.log(state.focal).float()
        self.w_all = torch.zeros(n + ne, 3, **f32, requires_grad=True)
        self.t_v = torch.zeros(n, 3, **f32, requires_grad=True)
        self.t_e = torch.zeros(ne, 3, **f32, requires_grad=True)
        self.ls_e = torch.zeros(ne, **f32, requires_grad=True)
        self.lf = torch.zeros(n, **f32, requires_grad=True)
        self.pose_free = torch.ones(n, 1, **f32)
        if state.known is not None:
            self.pose_free[state.known] = 0
        self.rot_free = torch.cat([self.pose_free, torch.ones(ne, 1, **f32)])
        self.f_free = torch.isnan(cam.known_f).float()
        self.scene = torch.ones((), **f32)

    @property
    def tensors(self) -> list[torch.Tensor]:
        """The leaf tensors Adam updates."""
        return [self.w_all, self.t_v, self.t_e, self.ls_e, self.lf]

    def current(self):
        """(cam_R (N,3,3), cam_t (N,3), edge_s (E,), edge_R (E,3,3), edge_t (E,3), focal (N,)), differentiable."""
        rot = axis_angle_to_matrix(self.w_all * self.rot_free)
        cam_R = self.cam_R0 @ rot[:self.n]
        edge_R = self.edge_R0 @ rot[self.n:]
        cam_t = self.cam_t0 + self.scene * self.t_v * self.pose_free
        edge_t = self.edge_t0 + self.scene * self.t_e
        ls = self.ls_e if self.fixed_scale else self.ls_e - self.ls_e.mean()
        edge_s = torch.exp(self.log_s0 + ls)
        focal = torch.exp(self.log_f0 + self.lf.index_select(0, self.focal_group) * self.f_free)
        return cam_R, cam_t, edge_s, edge_R, edge_t, focal


@dataclass
class GroupSample:
    """The pixels of one image-shape group that a stage optimises on."""

    group: object        # align.init.ViewGroup
    x: torch.Tensor      # (M, P, 3) edge-frame points
    w: torch.Tensor      # (M, P) confidence weights (0 below the threshold)
    u: torch.Tensor      # (P,) pixel columns
    v: torch.Tensor      # (P,) pixel rows
    om: torch.Tensor     # (M, P) IRLS weights of the next depth solve (updated in place by each step)


def sample_groups(groups, samples: int, conf_threshold: float, dev) -> list[GroupSample]:
    """About `samples` pixels per observation of every group, on a regular stride."""
    out = []
    for g in groups:
        stride = sample_stride(g.shape, samples)
        x, c = g.sample(stride)
        w = conf_weight(c, conf_threshold)
        u, v = g.grid(stride, dev)
        out.append(GroupSample(g, x, w, u, v, w.clone()))
    return out


def residuals(data: list[GroupSample], cam: Intrinsics, now) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per group: squared relative residuals e2 (M,P), validity (M,P) and solved depths (nv,P) at `now`
    (the tuple `RefineParams.current()` returns)."""
    out = []
    for s in data:
        g = s.group
        a, b = obs_affine(g, *now[:5])
        q = torch.baddbmm(b[:, None, :], s.x, a.transpose(1, 2))
        r_o = rays(cam, now[5], g.views, s.u, s.v).index_select(0, g.obs_local)
        with torch.no_grad():
            depth, den = depth_solve(q, r_o, s.om, g.obs_local, len(g.views))
            dep_o = depth.index_select(0, g.obs_local)
            ok = (den.index_select(0, g.obs_local) > 0) & (dep_o > 0)
            inv_d = torch.where(ok, 1 / dep_o.clamp_min(1e-12), torch.zeros_like(dep_o))
        res = q - dep_o[..., None] * r_o
        out.append(((res * res).sum(-1) * inv_d * inv_d, ok, depth))
    return out


def robust_step(data: list[GroupSample], cam: Intrinsics, params: RefineParams, adam, sigma: float,
                wsum: float) -> torch.Tensor:
    """Cauchy loss, gradient and Adam update with no host synchronisation (CUDA-graph capturable).

    Also refreshes each group's IRLS weights `om` for the next depth solve. Returns the loss (0-dim).
    """
    loss = 0
    for s, (e2, _, _) in zip(data, residuals(data, cam, params.current()), strict=True):
        rel = e2 / (sigma * sigma)
        loss = loss + (s.w * torch.log1p(rel)).sum()
        with torch.no_grad():
            s.om.copy_(s.w / (1 + rel))
    loss = loss * (sigma * sigma / max(wsum, 1e-30))
    loss.backward()
    adam.step()
    return loss.detach()
