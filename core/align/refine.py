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
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import CancelToken, PointmapError, check_cancel
from ..progress import ProgressFn, report


@dataclass
class AlignOptions:
    """Settings of `global_align`. Focal lengths and intrinsics are in network pixels."""

    iterations: int | None = None          # most optimisation steps; None: 200, more for long sequences
    shared_focal: bool = False             # one focal for all views with an unknown focal
    focals: Sequence[float] | None = None  # per image known focal; NaN = unknown
    intrinsics: Sequence | None = None     # per image known 3x3 K_net, or None entries; fixed if given
    known_poses: dict[int, np.ndarray] | None = None   # image → 4x4 cam2world (OpenCV), kept fixed
    min_conf: float = 1.0                  # pixels below this confidence get no weight
    robust_scale: float | None = None      # Cauchy scale on |residual|/depth; None = from the data
    lr: float = 0.003                      # Adam step (radians, log units, scene-scale units)
    lr_final_factor: float = 0.01          # cosine decay to lr * this
    coarse_samples: int = 1024             # pixels per observation in the coarse stage
    fine_samples: int = 8192               # ... and in the fine stage
    fine_fraction: float = 0.25            # share of the iterations spent in the fine stage
    tolerance: float = 1e-5                # stop a stage when the loss fell by less than this (relative) in 10 steps
                                           # (not for long sequences when `iterations` is None, see _auto_steps)
    device: str | None = None              # default: the device of the predictions
    cuda_graph: bool = True                # on CUDA, replay each stage's step as one captured graph


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

    from .init import build_groups, initialise

    opt = options or AlignOptions()
    t0 = time.perf_counter()
    n = pred.n_images
    opt = _auto_steps(opt, n)
    if n == 0 or pred.n_edges == 0:
        raise PointmapError("Global alignment needs at least one pair prediction.")
    store_dev = pred.pts_i[0].device
    dev = torch.device(opt.device) if opt.device else store_dev
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    # Predictions kept in host memory while computing on the GPU are streamed, never copied whole.
    stream = store_dev != dev
    edges = np.asarray(pred.edges, np.int64).reshape(-1, 2)
    groups = build_groups(pred, dev, stream=stream)
    cam = _Intrinsics.build(pred.image_shapes, opt, dev)
    check_cancel(cancel)
    report(progress, "align", 0, opt.iterations + 1, "initialising")

    with torch.no_grad():
        init = initialise(groups, edges, n, opt.min_conf, cam.pp, cam.focal_group, n)
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
        steps, loss, mode = _refine(state, groups, cam, opt, fixed_scale, progress, cancel)
    check_cancel(cancel)
    t_refine = time.perf_counter()
    with torch.no_grad():
        depth, conf, full_loss = _solve_depths(state, groups, cam, opt, n, cancel)
        if not opt.known_poses:
            state.normalise_gauge()
            depth = [d * state.depth_factor for d in depth]
    out = _outputs(state, cam, depth, conf)
    report(progress, "align", opt.iterations + 1, opt.iterations + 1, "done", loss=full_loss)
    out.info = {"iterations": steps, "loss": full_loss, "coarse_loss": loss,
                "seconds": time.perf_counter() - t0, "init_seconds": t_init - t0, "refine_seconds": t_refine - t_init,
                "init": "mst-umeyama-weiszfeld", "root": init.root, "refine_mode": mode,
                "device": str(dev), "streamed": stream}
    return out


# --------------------------------------------------------------------------------------------------


_LONG_SEQUENCE = 32    # views above which the default step budget grows and the early stop is off


def _auto_steps(opt: AlignOptions, n: int) -> AlignOptions:
    """Fill in the default step budget. Around a long loop (a 200-view walk with a sparse graph) the
    initial drift is a smooth, low-frequency error that costs little loss per edge: the loss flattens
    (and the early stop fires) long before Adam, moving one graph hop per step, has spread the loop
    closure over all cameras. So long sequences get ~4 steps per view and run them all."""
    import dataclasses

    if opt.iterations is not None:
        return opt
    if n <= _LONG_SEQUENCE:
        return dataclasses.replace(opt, iterations=200)
    return dataclasses.replace(opt, iterations=min(1000, 4 * n), tolerance=0.0)


@dataclass
class _Intrinsics:
    """Per-view intrinsics constraints (float64 tensors on the device)."""

    pp: object           # (N, 2) principal point
    aspect: object       # (N,) fy / fx
    known_f: object      # (N,) known fx, NaN = unknown
    focal_group: object  # (N,) index of the focal estimate a view uses (shared focal: the same one)

    @staticmethod
    def build(shapes, opt: AlignOptions, dev):
        import torch

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
        return _Intrinsics(pp.to(dev), aspect.to(dev), known.to(dev), group.to(dev))


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

        dev = self.cam_R.device
        ids, mats = [], []
        for k, m in known.items():
            m = np.asarray(m, np.float64)
            if not (0 <= int(k) < n) or m.shape != (4, 4) or not np.isfinite(m).all():
                raise PointmapError(f"Alignment options: known pose of image {k} is not a finite 4x4 matrix "
                                    f"of one of the {n} images.")
            r = m[:3, :3]
            if abs(np.linalg.det(r) - 1) > 1e-3 or np.abs(r.T @ r - np.eye(3)).max() > 1e-3:
                raise PointmapError(f"Alignment options: known pose of image {k} has no proper rotation.")
            ids.append(int(k))
            mats.append(m)
        kn = torch.tensor(np.stack(mats), dtype=torch.float64, device=dev)
        idx = torch.tensor(ids, device=dev)
        # Rotation: chordal mean of R_known R_initᵀ; then scale/translation from the camera centres.
        u, _, vh = torch.linalg.svd((kn[:, :3, :3] @ self.cam_R[idx].transpose(1, 2)).sum(0))
        rot = u @ vh
        if torch.linalg.det(rot) < 0:
            rot = u @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64, device=dev)) @ vh
        ci, ck = self.cam_t[idx] @ rot.T, kn[:, :3, 3]
        a, b = ci - ci.mean(0), ck - ck.mean(0)
        spread = (a * a).sum()
        fixed_scale = bool(spread > 1e-12 * (1 + (ci * ci).sum())) and len(ids) >= 2
        s = (a * b).sum() / spread if fixed_scale else torch.tensor(1.0, dtype=torch.float64, device=dev)
        if fixed_scale and s <= 0:
            s = torch.tensor(1.0, dtype=torch.float64, device=dev)
        self.apply_similarity(s, rot, ck.mean(0) - s * ci.mean(0))
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


_GRAPH_WARMUP = 3   # eager steps (on a side stream) before a stage's step is captured


def _rays(cam: _Intrinsics, focal, views, u, v):
    """Rays (n, P, 3) of pixels (u, v) (P,) in cameras `views`; z component 1 (so depth = z)."""
    import torch

    fx = focal.index_select(0, views)[:, None]
    fy = fx * cam.aspect.index_select(0, views)[:, None].float()
    pp = cam.pp.index_select(0, views).float()
    x = (u[None, :] - pp[:, 0:1]) / fx
    y = (v[None, :] - pp[:, 1:2]) / fy
    return torch.stack([x, y, torch.ones_like(x)], -1)


def _obs_affine(g, cam_R, cam_t, edge_s, edge_R, edge_t):
    """Per observation (A (M,3,3), b (M,3)): edge-frame point → camera-frame point, q = A x + b."""
    # index_select, not advanced indexing: its backward (index_add) can be captured in a CUDA graph.
    rvt = cam_R.index_select(0, g.obs_view).transpose(1, 2)
    a = edge_s.index_select(0, g.obs_edge)[:, None, None] * (rvt @ edge_R.index_select(0, g.obs_edge))
    b = (rvt @ (edge_t.index_select(0, g.obs_edge) - cam_t.index_select(0, g.obs_view))[..., None])[..., 0]
    return a, b


def _depth_solve(q, r_o, om, local, n_views):
    """Closed-form per-pixel depth: weighted mean of the observations' projections on the ray.

    q: (M,P,3) camera-frame points; r_o: (M,P,3) rays; om: (M,P) weights; local: (M,) view of each.
    Returns d (n_views, P) and the weight sum (n_views, P).
    """
    import torch

    rq = (q * r_o).sum(-1) / (r_o * r_o).sum(-1)
    num = torch.zeros(n_views, q.shape[1], dtype=q.dtype, device=q.device).index_add_(0, local, om * rq)
    den = torch.zeros_like(num).index_add_(0, local, om)
    return num / den.clamp_min(1e-30), den


def _refine(state: _State, groups, cam: _Intrinsics, opt: AlignOptions, fixed_scale: bool, progress, cancel):
    """Adam on poses / edge similarities / focals with depths eliminated in closed form (module doc).

    Returns (steps, last loss, how the steps ran: "eager", "cuda-graph" or "eager (graph failed: ...)").
    """
    import torch

    from .geometry import axis_angle_to_matrix
    from .init import conf_weight, sample_stride

    dev = state.cam_R.device
    n, ne = state.cam_R.shape[0], state.edge_s.shape[0]
    f32 = dict(dtype=torch.float32, device=dev)
    cam_R0, cam_t0 = state.cam_R.float(), state.cam_t.float()
    edge_R0, edge_t0, log_s0 = state.edge_R.float(), state.edge_t.float(), torch.log(state.edge_s).float()
    log_f0 = torch.log(state.focal).float()
    # Rotation updates of views and edges share one Rodrigues evaluation (fewer kernels per step).
    w_all = torch.zeros(n + ne, 3, **f32, requires_grad=True)
    t_v = torch.zeros(n, 3, **f32, requires_grad=True)
    t_e = torch.zeros(ne, 3, **f32, requires_grad=True)
    ls_e = torch.zeros(ne, **f32, requires_grad=True)
    lf = torch.zeros(n, **f32, requires_grad=True)
    pose_free = torch.ones(n, 1, **f32)
    if state.known is not None:
        pose_free[state.known] = 0
    rot_free = torch.cat([pose_free, torch.ones(ne, 1, **f32)])
    f_free = torch.isnan(cam.known_f).float()
    fgroup = cam.focal_group
    params = [w_all, t_v, t_e, ls_e, lf]
    graphs = dev.type == "cuda" and opt.cuda_graph
    # CUDA: fused (one kernel) and capturable, with the step size a device tensor that the graph reads.
    lr_t = torch.tensor(opt.lr, **f32) if graphs else None
    adam = torch.optim.Adam(params, lr=lr_t if graphs else opt.lr, betas=(0.9, 0.9),
                            fused=dev.type == "cuda", capturable=graphs)
    total = max(int(opt.iterations), 1)
    n_fine = int(round(total * opt.fine_fraction)) if opt.fine_fraction > 0 else 0
    # Each stage decays its own step size (cosine); an early stop in the coarse stage moves on to the
    # fine one, whose small steps anneal the estimate, so stopping never leaves a large-step jitter.
    lr_mid = opt.lr * max(opt.lr_final_factor, 0.1)
    stages = [("coarse", total - n_fine, opt.coarse_samples, opt.lr, lr_mid),
              ("fine", n_fine, opt.fine_samples, lr_mid, opt.lr * opt.lr_final_factor)]
    scene = torch.ones((), **f32)    # translation step unit: median depth, measured before the first step
    step, loss_val = 0, float("nan")
    mode = "cuda-graph" if graphs else "eager"

    def current():
        rot = axis_angle_to_matrix(w_all * rot_free)
        cam_R = cam_R0 @ rot[:n]
        edge_R = edge_R0 @ rot[n:]
        cam_t = cam_t0 + scene * t_v * pose_free
        edge_t = edge_t0 + scene * t_e
        ls = ls_e if fixed_scale else ls_e - ls_e.mean()
        edge_s = torch.exp(log_s0 + ls)
        focal = torch.exp(log_f0 + lf.index_select(0, fgroup) * f_free)
        return cam_R, cam_t, edge_s, edge_R, edge_t, focal

    def residuals(data, params_now):
        """Per group: squared relative residuals e2 (M,P), validity (M,P) and depths (nv,P)."""
        out = []
        for g, x, _w, u, v, om in data:
            a, b = _obs_affine(g, *params_now[:5])
            q = torch.baddbmm(b[:, None, :], x, a.transpose(1, 2))
            r_o = _rays(cam, params_now[5], g.views, u, v).index_select(0, g.obs_local)
            with torch.no_grad():
                depth, den = _depth_solve(q, r_o, om, g.obs_local, len(g.views))
                dep_o = depth.index_select(0, g.obs_local)
                ok = (den.index_select(0, g.obs_local) > 0) & (dep_o > 0)
                inv_d = torch.where(ok, 1 / dep_o.clamp_min(1e-12), torch.zeros_like(dep_o))
            res = q - dep_o[..., None] * r_o
            out.append(((res * res).sum(-1) * inv_d * inv_d, ok, depth))
        return out

    def step_once(data, sigma, wsum):
        """Loss, gradient and Adam update with no host synchronisation (CUDA-graph capturable)."""
        loss = 0
        for (_, _, w, _, _, om), (e2, _, _) in zip(data, residuals(data, current()), strict=True):
            rel = e2 / (sigma * sigma)
            loss = loss + (w * torch.log1p(rel)).sum()
            with torch.no_grad():
                om.copy_(w / (1 + rel))        # IRLS weights of the next depth solve
        loss = loss * (sigma * sigma / max(wsum, 1e-30))
        loss.backward()
        adam.step()
        return loss.detach()

    def set_lr(it, iters, lr_hi, lr_lo):
        frac = it / max(iters - 1, 1)
        lr = lr_lo + (lr_hi - lr_lo) * 0.5 * (1 + math.cos(math.pi * frac))
        if graphs:
            lr_t.fill_(lr)
        else:
            for pg in adam.param_groups:
                pg["lr"] = lr

    for si, (name, iters, samples, lr_hi, lr_lo) in enumerate(stages):
        if iters <= 0:
            continue
        data = []
        for g in groups:
            stride = sample_stride(g.shape, samples)
            x, c = g.sample(stride)
            w = conf_weight(c, opt.min_conf)
            u, v = g.grid(stride, dev)
            data.append((g, x, w, u, v, w.clone()))       # last: IRLS weights of the depth solve
        wsum = sum(float(d[2].sum()) for d in data)
        # Robust scale (and on the first stage the translation unit) from the stage's starting residuals.
        with torch.no_grad():
            parts = residuals(data, current())
            allr = torch.cat([e2[(d[2] > 0) & ok].sqrt() for d, (e2, ok, _) in zip(data, parts, strict=True)])
            med = float(allr.median()) if allr.numel() else 0.01
            sigma = opt.robust_scale or min(max(2.0 * med, 1e-3), 0.3)
            state.sigma = sigma
            if si == 0:
                deps = torch.cat([dp[dp > 0] for _, _, dp in parts])
                if deps.numel():
                    scene.copy_(deps.median().clamp_min(1e-12))
            del parts, allr
        graph = static_loss = None
        prev = None
        for it in range(iters):
            check_cancel(cancel)
            set_lr(it, iters, lr_hi, lr_lo)
            if graph is not None:
                graph.replay()
                loss = static_loss
            elif graphs and it == _GRAPH_WARMUP and iters - it > 2 * _GRAPH_WARMUP:
                # Capture one whole step (forward, backward, Adam) and replay it: at these sizes a step
                # is bound by kernel launches and Python, not arithmetic. Capture does not run the step.
                try:
                    graph = torch.cuda.CUDAGraph()
                    adam.zero_grad(set_to_none=True)
                    with torch.cuda.graph(graph):
                        static_loss = step_once(data, sigma, wsum)
                except Exception as err:   # any capture problem: the eager step is always correct
                    graphs, graph, mode = False, None, f"eager (graph failed: {type(err).__name__}: {err})"[:300]
                    lr_now = float(lr_t)
                    for pg in adam.param_groups:
                        pg["lr"] = lr_now
                    adam.zero_grad(set_to_none=True)
                    loss = step_once(data, sigma, wsum)
                else:
                    graph.replay()
                    loss = static_loss
            elif graphs:
                # Warm-up steps run on a side stream before capture (as CUDA-graph capture requires).
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    adam.zero_grad(set_to_none=True)
                    loss = step_once(data, sigma, wsum)
                torch.cuda.current_stream().wait_stream(side)
            else:
                adam.zero_grad(set_to_none=True)
                loss = step_once(data, sigma, wsum)
            step += 1
            if it % 10 == 9 or it == iters - 1:
                loss_val = float(loss)
                report(progress, "align", step, total + 1, f"{name} iteration {step}, loss {loss_val:.4g}", loss=loss_val)
                if opt.tolerance > 0 and prev is not None and prev - loss_val < opt.tolerance * abs(prev):
                    break
                prev = loss_val
        del graph, static_loss
        adam.zero_grad(set_to_none=True)
    with torch.no_grad():
        cam_R, cam_t, edge_s, edge_R, edge_t, focal = current()
    state.cam_R, state.cam_t = cam_R.double(), cam_t.double()
    state.edge_R, state.edge_t, state.edge_s = edge_R.double(), edge_t.double(), edge_s.double()
    state.focal = focal.double()
    if state.known is not None:
        state.cam_R[state.known], state.cam_t[state.known] = state.known_R, state.known_t   # exact, not float32
    return step, loss_val, mode


_SOLVE_CHUNK_PIXELS = 2 ** 23


def _solve_depths(state: _State, groups, cam: _Intrinsics, opt: AlignOptions, n: int, cancel, passes: int = 3):
    """Full-resolution depth maps by IRLS (chunks of observations, no autograd) and per-view confidence.

    Returns depth list (N x (H,W) float32 tensors), conf list, and the final robust loss.
    """
    import torch

    from .init import conf_weight

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
        rays = _rays(cam, focal, g.views, u, v)                        # (nv, P, 3)
        a_all, b_all = _obs_affine(g, cam_R, cam_t, edge_s, edge_R, edge_t)
        # ~8 M pixels per chunk: each float32 (c, P, 3) working tensor is then ~100 MB.
        chunk = max(1, int(_SOLVE_CHUNK_PIXELS // (h * w)))
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
                r_o = rays[loc]
                wt = conf_weight(c, opt.min_conf)
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


def _outputs(state: _State, cam: _Intrinsics, depth, conf) -> AlignResult:
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
