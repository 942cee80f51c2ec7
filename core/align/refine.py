"""Global alignment of pairwise pointmaps (DUSt3R's objective, solved faster and more robustly).

Unknowns: per view v a camera pose (cam2world R_v, t_v), a focal f_v (principal point fixed, at the
image centre unless intrinsics are given) and a depth per pixel; per edge e a similarity (s_e, R_e,
t_e) taking the edge's frame to the world. Objective (DUSt3R Eq. 5 with a robust kernel):

    Σ_e Σ_{v ∈ e} Σ_p  c  ρ( |R_vᵀ(s_e R_e X^{v,e}_p + t_e − t_v) − d_{v,p} r_{v,p}| / d_{v,p} )

with c = log(confidence), r_{v,p} = ((u−cx)/fx, (v−cy)/fy, 1) the pixel's ray in camera v (so d is z-depth)
and ρ a Cauchy kernel on the residual relative to depth (scale-free, outliers do not pull).

How it is fast: (1) the per-pixel depths are never optimised by gradient steps — for fixed cameras and
edges the best depth of a pixel has a closed form (an IRLS-weighted mean along its ray), so Adam only
moves the few pose / scale / focal parameters (variable projection); (2) those are estimated on a
strided subset of pixels (coarse, then finer), and the depth maps are solved once at full resolution
at the end; (3) a deterministic initialisation (MST + Umeyama + Weiszfeld, see align_init) starts close;
(4) on CUDA each stage's whole step (loss, backward, fused Adam) is captured once as a CUDA graph and
replayed, since a step over a few hundred parameters is bound by kernel launches, not arithmetic; the
loss is read back only every 10 steps (early stop, progress).
All work is batched over all observations of one image shape; the same code runs on CPU and GPU.

Pieces: `schedule` (step budget, stages, learning rate), `step` (parameters, residuals, one Adam step),
`loop` (stages, early stop, CUDA-graph replay); this module holds the state, the final depth solve and
the entry point `global_align`. `AlignOptions` is defined in `core.options` (re-exported here).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import CancelToken, PointmapError, check_cancel
from ..options import AlignOptions
from ..progress import ProgressFn, report


@dataclass
class AlignResult:
    """Aligned cameras and per-view maps (numpy). First camera at the identity unless poses were known."""

    cam2world: np.ndarray          # (N, 4, 4) float64, OpenCV axes
    K_net: np.ndarray              # (N, 3, 3) float64, network pixels
    depth: list[np.ndarray]        # N x (H, W) float32, z-depth
    points: list[np.ndarray]       # N x (H, W, 3) float32, world coordinates
    conf: list[np.ndarray]         # N x (H, W) float32, mean confidence over the view's observations
    info: dict = field(default_factory=dict)  # iterations, loss, seconds, init, ...

    @property
    def focals(self) -> np.ndarray:
        return (self.K_net[:, 0, 0] + self.K_net[:, 1, 1]) / 2


def global_align(pred, options: AlignOptions | None = None, progress: ProgressFn | None = None,
                 cancel: CancelToken | None = None) -> AlignResult:
    """Recover cameras, focals and depth maps from `PairPredictions` (see the module docstring)."""
    import torch

    from ..devices import release_cached
    from .init import build_groups
    from .initialise import initialise
    from .loop import refine
    from .schedule import auto_steps
    from .step import Intrinsics

    opt = options or AlignOptions()
    t0 = time.perf_counter()
    n = pred.n_images
    opt = auto_steps(opt, n)
    if n == 0 or pred.n_edges == 0:
        raise PointmapError("Global alignment needs at least one pair prediction.")
    store_dev = pred.storage.device
    dev = torch.device(opt.device) if opt.device else store_dev
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    if store_dev.type == "cuda" and store_dev.index is None:
        store_dev = torch.device("cuda", torch.cuda.current_device())
    # Predictions kept in host memory while computing on the GPU are streamed, never copied whole.
    stream = store_dev != dev
    edges = np.asarray(pred.edges, np.int64).reshape(-1, 2)
    groups = build_groups(pred, dev, stream=stream)
    cam = Intrinsics.build(pred.image_shapes, opt, dev)
    check_cancel(cancel)
    report(progress, "align", 0, opt.iterations + 1, "initialising")

    with torch.no_grad():
        init = initialise(groups, edges, n, opt.conf_threshold, cam.pp, cam.focal_group, n)
    release_cached(dev)   # the initialisation's float64 samples: nothing later has their shapes
    t_init = time.perf_counter()
    focal = torch.where(torch.isfinite(cam.known_f), cam.known_f, init.focal)
    fallback = torch.tensor([max(s) for s in pred.image_shapes], dtype=torch.float64, device=dev)
    focal = torch.where(torch.isfinite(focal) & (focal > 0), focal, fallback)
    state = _State(init.cam_R, init.cam_t, init.edge_s, init.edge_R, init.edge_t, focal)
    fixed_scale = False
    if opt.known_poses:
        fixed_scale = state.move_to_known(opt.known_poses, n)

    steps, loss, mode = 0, float("nan"), "none"
    if n > 2 and opt.iterations > 0:
        steps, loss, mode = refine(state, groups, cam, opt, fixed_scale, progress, cancel)
    check_cancel(cancel)
    t_refine = time.perf_counter()
    release_cached(dev)
    with torch.no_grad():
        depth, conf, full_loss = _solve_depths(state, groups, cam, opt, n, cancel)
        if not opt.known_poses:
            state.normalise_gauge()
            depth = [d * state.depth_factor for d in depth]
    out = _outputs(state, cam, depth, conf, opt.intrinsics)
    report(progress, "align", opt.iterations + 1, opt.iterations + 1, "done", loss=full_loss)
    out.info = {"iterations": steps, "loss": full_loss, "coarse_loss": loss,
                "seconds": time.perf_counter() - t0, "init_seconds": t_init - t0, "refine_seconds": t_refine - t_init,
                "init": "averaging-weiszfeld", "root": init.root, "refine_mode": mode,
                "device": str(dev), "streamed": stream}
    return out


# --------------------------------------------------------------------------------------------------


class _State:
    """Current estimate (float64): cameras, edge similarities, focals."""

    def __init__(self, cam_R, cam_t, edge_s, edge_R, edge_t, focal):
        self.cam_R, self.cam_t, self.focal = cam_R, cam_t, focal
        self.edge_s, self.edge_R, self.edge_t = edge_s, edge_R, edge_t
        self.known = self.known_R = self.known_t = None
        self.sigma = 0.05          # robust scale (relative residual); the refinement measures it
        self.depth_factor = 1.0    # how much the last gauge change scaled depths

    def apply_similarity(self, s, R, t):
        """Map the world by x → s R x + t."""
        self.cam_R = R @ self.cam_R
        self.cam_t = s * self.cam_t @ R.T + t
        self.edge_s = s * self.edge_s
        self.edge_R = R @ self.edge_R
        self.edge_t = s * self.edge_t @ R.T + t

    def move_to_known(self, known: dict, n: int) -> bool:
        """Express the estimate in the known poses' frame and pin those poses. Returns True when the
        known poses also fix the scale (two or more distinct centres)."""
        import torch

        from ..priors import check_pose
        from .anchor import similarity_to_known

        dev = self.cam_R.device
        ids, mats = [], []
        for k, m in known.items():
            if not 0 <= int(k) < n:
                raise PointmapError(f"Alignment options: known pose of image {k}: there are {n} images.")
            try:
                mats.append(check_pose(m, f"of image {k}"))
            except ValueError as err:
                raise PointmapError(f"Alignment options: {err}.") from None
            ids.append(int(k))
        kn_np = np.stack(mats)
        # One similarity from the initial estimate to the known poses (once, before the refinement).
        s, rot, t, fixed_scale = similarity_to_known(self.cam_R[ids].double().cpu().numpy(),
                                                     self.cam_t[ids].double().cpu().numpy(),
                                                     kn_np[:, :3, :3], kn_np[:, :3, 3])
        kn = torch.tensor(kn_np, dtype=torch.float64, device=dev)
        idx = torch.tensor(ids, device=dev)
        f64 = {"dtype": torch.float64, "device": dev}
        self.apply_similarity(torch.tensor(s, **f64), torch.tensor(rot, **f64), torch.tensor(t, **f64))
        self.cam_R[idx], self.cam_t[idx] = kn[:, :3, :3], kn[:, :3, 3]
        self.known, self.known_R, self.known_t = idx, kn[:, :3, :3], kn[:, :3, 3]
        return fixed_scale

    def normalise_gauge(self):
        """Geometric-mean edge scale 1 and the first camera at the identity."""
        import torch

        s = float(torch.exp(-torch.log(self.edge_s).mean()))
        self.apply_similarity(s, torch.eye(3, dtype=torch.float64, device=self.cam_R.device),
                              torch.zeros(3, dtype=torch.float64, device=self.cam_R.device))
        R0, t0 = self.cam_R[0].clone(), self.cam_t[0].clone()
        self.apply_similarity(1.0, R0.T, -(R0.T @ t0))
        self.cam_R[0] = torch.eye(3, dtype=torch.float64, device=self.cam_R.device)
        self.cam_t[0] = 0
        self.depth_factor = s


SOLVE_CHUNK_PIXELS = 2 ** 23


def _solve_depths(state: _State, groups, cam, opt: AlignOptions, n: int, cancel, passes: int = 3):
    """Full-resolution depth maps by IRLS (chunks of observations, no autograd) and per-view confidence.

    Returns depth list (N x (H,W) float32 tensors), conf list, and the final robust loss.
    """
    import torch

    from .init import conf_weight
    from .step import obs_affine, rays

    dev = state.cam_R.device
    cam_R, cam_t = state.cam_R.float(), state.cam_t.float()
    edge_s, edge_R, edge_t = state.edge_s.float(), state.edge_R.float(), state.edge_t.float()
    focal = state.focal.float()
    depth, conf = [None] * n, [None] * n
    # Summed on the device and read once at the end (no host sync per chunk).
    loss_num = torch.zeros((), device=dev)
    loss_den = torch.zeros((), device=dev)
    sigma = state.sigma
    for g in groups:
        h, w = g.shape
        m, nv = len(g.obs_view), len(g.views)
        u, v = g.grid(1, dev)
        ray = rays(cam, focal, g.views, u, v)                        # (nv, P, 3)
        a_all, b_all = obs_affine(g, cam_R, cam_t, edge_s, edge_R, edge_t)
        # ~8 M pixels per chunk: each float32 (c, P, 3) working tensor is then ~100 MB.
        chunk = max(1, int(SOLVE_CHUNK_PIXELS // (h * w)))
        d = None
        for it in range(passes):
            check_cancel(cancel)
            num = torch.zeros(nv, h * w, device=dev)
            den = torch.zeros(nv, h * w, device=dev)
            csum = torch.zeros(nv, h * w, device=dev) if it == 0 else None
            for s0 in range(0, m, chunk):
                sl = slice(s0, min(m, s0 + chunk))
                x, c = g.sample(1, sl)
                loc = g.obs_local[sl]
                q = torch.baddbmm(b_all[sl, None, :], x, a_all[sl].transpose(1, 2))
                r_o = ray[loc]
                wt = conf_weight(c, opt.conf_threshold)
                if it == 0:
                    csum.index_add_(0, loc, c)
                    om = wt
                else:
                    dep = d[loc]
                    res = q - dep[..., None] * r_o
                    e2 = (res * res).sum(-1) / dep.clamp_min(1e-12) ** 2
                    rel = e2 / sigma ** 2
                    om = wt / (1 + rel)
                    if it == passes - 1:
                        loss_num += (wt * torch.log1p(rel)).sum()
                        loss_den += wt.sum()
                rq = (q * r_o).sum(-1) / (r_o * r_o).sum(-1)
                num.index_add_(0, loc, om * rq)
                den.index_add_(0, loc, om)
                if it == 0:
                    # Unweighted fallback for pixels whose every observation has zero weight.
                    num.index_add_(0, loc, 1e-6 * rq)
                    den.index_add_(0, loc, torch.full_like(rq, 1e-6))
            d = num / den.clamp_min(1e-30)
            if it == 0:
                cmean = csum / torch.bincount(g.obs_local, minlength=nv).clamp_min(1)[:, None]
        for a, k in enumerate(g.views.tolist()):
            depth[k] = d[a].reshape(h, w)
            conf[k] = cmean[a].reshape(h, w)
    return depth, conf, float(loss_num) * sigma ** 2 / max(float(loss_den), 1e-30)


def _outputs(state: _State, cam, depth, conf, intrinsics=None) -> AlignResult:
    import torch

    n = state.cam_R.shape[0]
    c2w = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    u, _, vh = torch.linalg.svd(state.cam_R.cpu().double())   # exact rotations after float32 steps
    c2w[:, :3, :3] = u @ vh
    c2w[:, :3, 3] = state.cam_t.cpu()
    K = torch.zeros(n, 3, 3, dtype=torch.float64)
    f = state.focal.cpu()
    K[:, 0, 0], K[:, 1, 1] = f, f * cam.aspect.cpu()
    K[:, :2, 2], K[:, 2, 2] = cam.pp.cpu(), 1
    # Given intrinsics come back exactly as given (the steps ran in float32).
    for k, given in enumerate(intrinsics or []):
        if given is not None:
            K[k] = torch.as_tensor(np.asarray(given, np.float64))
    points = []
    for k in range(n):
        h, w = depth[k].shape
        dev = depth[k].device
        u = torch.arange(w, device=dev, dtype=torch.float64)[None, :].expand(h, w)
        v = torch.arange(h, device=dev, dtype=torch.float64)[:, None].expand(h, w)
        x = (u - K[k, 0, 2].item()) / K[k, 0, 0].item()
        y = (v - K[k, 1, 2].item()) / K[k, 1, 1].item()
        dd = depth[k].double()
        pc = torch.stack([x * dd, y * dd, dd], -1)
        pw = pc @ state.cam_R[k].to(dev).T + state.cam_t[k].to(dev)
        points.append(pw.float().cpu().numpy())
    return AlignResult(c2w.numpy(), K.numpy(), [d.float().cpu().numpy() for d in depth], points,
                       [c.float().cpu().numpy() for c in conf])


__all__ = ["AlignOptions", "AlignResult", "global_align"]
