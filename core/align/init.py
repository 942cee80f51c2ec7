"""Data layout and deterministic initialisation for global alignment.

Layout: every directed edge e = (i, j) contributes two *observations*: view i's pointmap and view j's
pointmap, both in the edge's frame (camera i's, at the edge's unknown scale). Observations are stacked
per image shape (`ViewGroup`), so each step is a few batched tensor ops per distinct shape — never a
Python loop over edges.

Storage: the predictions' per-shape buffers (`pairwise.predictions.PairStorage`) are the groups'
pointmaps and confidences as they are (no second copy); they may live in (pinned) host memory while the
alignment runs on the GPU: `ViewGroup.sample` streams the pixels it needs to the compute device.

Initialisation (no randomness; `initialise.initialise`): by default averaging over all edges (`global_init`);
the older tree initialisation (`initialise_tree`): score each edge by its confidence, take a maximum spanning tree over
the images, chain the per-edge frames along it with confidence-weighted Umeyama fits between two
predictions of the same view, then fit every edge's similarity to the chained world pointmaps, every
camera pose to its own-frame prediction, and every focal by Weiszfeld (principal point at the centre).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import PointmapError
from ..pairwise.predictions import PairPredictions, observation_rows
from .geometry import maximum_spanning_tree, similarity_stats, umeyama_from_stats, weiszfeld_focal


@dataclass
class ViewGroup:
    """All observations of the views sharing one image shape (H, W).

    views:     (n,) global ids of the views of this shape
    obs_local: (M,) index into `views` of each observation
    obs_view:  (M,) global view id;  obs_edge: (M,) edge id;  obs_own: (M,) True when the observation
               is the edge's first view (its pointmap is then in that view's own camera frame)
    pts:       (M, H, W, 3) pointmaps in the edge frame (storage dtype and device of the predictions)
    conf:      (M, H, W) confidences (>= 1)
    The index tensors live on the compute device; `pts` / `conf` may live elsewhere (host memory).
    """

    shape: tuple[int, int]
    views: torch.Tensor
    obs_local: torch.Tensor
    obs_view: torch.Tensor
    obs_edge: torch.Tensor
    obs_own: torch.Tensor
    pts: torch.Tensor
    conf: torch.Tensor

    @property
    def device(self) -> torch.device:
        """Compute device (where `sample` delivers)."""
        return self.views.device

    def grid(self, stride: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel coordinates (u, v) of the strided samples, each (P,) float32, row-major."""
        h, w = self.shape
        off = stride // 2
        us = torch.arange(off, w, stride, device=device, dtype=torch.float32)
        vs = torch.arange(off, h, stride, device=device, dtype=torch.float32)
        return us.repeat(len(vs)), vs.repeat_interleave(len(us))

    def sample(self, stride: int, obs=slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """Strided pointmaps (M', P, 3) and confidences (M', P) in float32 on the compute device.

        Only the sampled pixels are converted (never a float32 copy of the full-size maps); from host
        storage they travel in the storage dtype (half the bytes for float16) and are converted there.
        """
        off = stride // 2
        x = self.pts[obs, off::stride, off::stride]
        c = self.conf[obs, off::stride, off::stride]
        dev = self.device
        if x.device != dev:
            x = x.to(dev, non_blocking=True)
            c = c.to(dev, non_blocking=True)
        x, c = x.float(), c.float()
        return x.reshape(x.shape[0], -1, 3), c.reshape(c.shape[0], -1)


def conf_weight(conf: torch.Tensor, min_conf: float) -> torch.Tensor:
    """Per-pixel weight log(conf) (as the reference), zero below `min_conf` and for non-finite input."""
    w = torch.log(conf.clamp_min(1.0))
    return torch.where((conf >= min_conf) & torch.isfinite(conf), w, torch.zeros_like(w))


def build_groups(pred: PairPredictions, device, stream: bool = False) -> list[ViewGroup]:
    """Group the predictions' observations by image shape; index tensors on `device`.

    Each group's pointmaps / confidences are the storage's buffers of that shape, moved to `device`
    unless `stream` (then they stay where they are and `ViewGroup.sample` brings pixels over on demand);
    buffers already on `device` are used without a copy.
    """
    store = pred.storage
    edges = store.edges
    n = pred.n_images
    groups = []
    for shape, rows in observation_rows(edges, store.shapes).items():
        views = [k for k in range(n) if store.shapes[k] == shape]
        local = {k: a for a, k in enumerate(views)}
        pts, conf = store.buffers[shape]
        if not stream:
            pts, conf = pts.to(device), conf.to(device)
        lt = lambda xs: torch.tensor(xs, dtype=torch.long, device=device)  # noqa: E731
        groups.append(ViewGroup(shape, lt(views), lt([local[k] for _, k, _ in rows]), lt([k for _, k, _ in rows]),
                                lt([e for e, _, _ in rows]),
                                torch.tensor([own for _, _, own in rows], device=device), pts, conf))
    return groups


INIT_SAMPLES = 1024   # pixels per observation the initialisation samples (it needs few)


def sample_stride(shape: tuple[int, int], target: int) -> int:
    """Pixel stride giving about `target` samples of an (H, W) image (`ViewGroup.sample` / `grid`)."""
    return max(1, int(round((shape[0] * shape[1] / target) ** 0.5)))


@dataclass
class InitResult:
    """Initial state, float64 on the alignment device. World = the root edge's frame.

    cam_R (N,3,3), cam_t (N,3): cam2world; edge_s (E,), edge_R (E,3,3), edge_t (E,3): edge frame → world
    (y = s R x + t); focal (N,) (NaN for views without an own-frame prediction); root: the root view.
    """

    cam_R: torch.Tensor
    cam_t: torch.Tensor
    edge_s: torch.Tensor
    edge_R: torch.Tensor
    edge_t: torch.Tensor
    focal: torch.Tensor
    root: int


def initialise_tree(groups: list[ViewGroup], edges: np.ndarray, n: int, min_conf: float, pp: torch.Tensor,
                    focal_group: torch.Tensor, n_focal: int, gpa_rounds: int = 3) -> InitResult:
    """MST + Umeyama chaining + Weiszfeld (see module doc).

    pp: (N, 2) principal points; focal_group: (N,) index of the focal each view estimates into (views
    sharing a focal share an index); n_focal: number of focal groups.
    """
    dev = groups[0].device
    ne = len(edges)
    samples = []
    for g in groups:
        stride = sample_stride(g.shape, INIT_SAMPLES)
        x, c = g.sample(stride)
        samples.append((x, conf_weight(c, min_conf), g.grid(stride, dev)))

    # Edge score: product of the two views' mean confidence weights (both must be trustworthy).
    side_score = torch.zeros(ne, 2, dtype=torch.float64, device=dev)
    for g, (_, w, _) in zip(groups, samples, strict=True):
        side_score[g.obs_edge, (~g.obs_own).long()] = w.double().mean(1)
    score = (side_score[:, 0] * side_score[:, 1]).cpu().numpy()

    # Where each (view, edge) observation lives: obs_at[(view, edge)] = (group, row).
    obs_at = {}
    for gi, g in enumerate(groups):
        for row, (k, e) in enumerate(zip(g.obs_view.tolist(), g.obs_edge.tolist(), strict=True)):
            obs_at.setdefault((k, e), (gi, row))
    own_best = {}
    for e in np.argsort(-score, kind="stable"):
        own_best.setdefault(int(edges[e, 0]), int(e))
    missing = [k for k in range(n) if k not in own_best]
    if missing:
        raise PointmapError(f"Global alignment: images {missing} are never the first image of a pair, so their "
                            "camera cannot be estimated; use a symmetric scene graph (both (i, j) and (j, i)).")
    try:
        root, tree = maximum_spanning_tree(n, edges, score)
    except ValueError as err:
        raise PointmapError(f"Global alignment: the scene graph is not connected; images {err.args[0]} share no "
                            "pair with the others.") from None

    # Placing edge of every view: the root uses its best own-frame edge, others the best edge to the parent.
    between = {}
    for e, (i, j) in enumerate(edges.tolist()):
        key = (min(i, j), max(i, j))
        if key not in between or score[e] > score[between[key]]:
            between[key] = e
    place = {root: own_best[root]}
    for a, b in tree:
        place[b] = between[(min(a, b), max(a, b))]

    # Frame change between two edges observing the same view: fit edge e_b's prediction of view a to
    # edge e_a's prediction of view a (one batched Umeyama per shape group).
    links = [(a, place[b], place[a]) for a, b in tree]
    link_fit = {}
    for gi, (x, w, _) in enumerate(samples):
        mine = [(a, eb, ea) for a, eb, ea in links if obs_at[(a, eb)][0] == gi]
        if not mine:
            continue
        src = torch.tensor([obs_at[(a, eb)][1] for a, eb, _ in mine], device=dev)
        dst = torch.tensor([obs_at[(a, ea)][1] for a, _, ea in mine], device=dev)
        s, r, t = robust_similarity([(x[src], x[dst], w[src] * w[dst], torch.arange(len(mine), device=dev))],
                                    len(mine))
        for k, key in enumerate(mine):
            link_fit[key] = _mat(s[k], r[k], t[k])
    to_world = {place[root]: np.eye(4)}
    for a, b in tree:
        to_world[place[b]] = to_world[place[a]] @ link_fit[(a, place[b], place[a])]

    # Chained world pointmaps of every view (at the init stride), then every edge fitted onto them.
    world = {}
    for k in range(n):
        gi, row = obs_at[(k, place[k])]
        m = torch.from_numpy(to_world[place[k]]).to(dev)
        world[k] = samples[gi][0][row].double() @ m[:3, :3].T + m[:3, 3]
    parts = [(x, torch.stack([world[k] for k in g.obs_view.tolist()]), w, g.obs_edge)
             for g, (x, w, _) in zip(groups, samples, strict=True)]
    edge_s, edge_R, edge_t = robust_similarity(parts, ne)
    # Generalised Procrustes rounds: replace each chained world pointmap by the robust consensus of all
    # its edges' predictions and refit the edges, which spreads the tree's accumulated drift over all
    # edges instead of letting it sit on the views far from the root.
    for _ in range(gpa_rounds):
        for g, (x, w, _) in zip(groups, samples, strict=True):
            e = g.obs_edge
            y = edge_s[e, None, None] * (x.double() @ edge_R[e].transpose(1, 2)) + edge_t[e, None, :]
            cons = _robust_consensus(y, w.double(), g.obs_local, len(g.views))
            for a, k in enumerate(g.views.tolist()):
                world[k] = cons[a]
        parts = [(x, torch.stack([world[k] for k in g.obs_view.tolist()]), w, g.obs_edge)
                 for g, (x, w, _) in zip(groups, samples, strict=True)]
        edge_s, edge_R, edge_t = robust_similarity(parts, ne, iters=3)
        # Keep the scale gauge where the chain put it (consensus fitting can drift it slowly).
        k = torch.exp(-torch.log(edge_s).mean())
        edge_s, edge_t = edge_s * k, edge_t * k
        world = {v: p * k for v, p in world.items()}

    # Cameras: own-frame prediction of the best own edge → world pointmap; focal from all own-frame ones.
    cam_R = torch.zeros(n, 3, 3, dtype=torch.float64, device=dev)
    cam_t = torch.zeros(n, 3, dtype=torch.float64, device=dev)
    focal = torch.zeros(n_focal, dtype=torch.float64, device=dev)
    for g, (x, w, (u, v)) in zip(groups, samples, strict=True):
        rows = torch.tensor([obs_at[(k, own_best[k])][1] for k in g.views.tolist()], device=dev)
        tgt = torch.stack([world[k] for k in g.views.tolist()])
        _, r, t = robust_similarity([(x[rows], tgt, w[rows], torch.arange(len(rows), device=dev))], len(rows))
        cam_R[g.views], cam_t[g.views] = r, t
        focal = own_view_focals(g, x, w, u, v, pp, focal_group, n_focal, focal)
    return InitResult(cam_R, cam_t, edge_s, edge_R, edge_t, focal[focal_group], root)


def own_view_focals(g: ViewGroup, x: torch.Tensor, w: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                    pp: torch.Tensor, focal_group: torch.Tensor, n_focal: int, focal: torch.Tensor) -> torch.Tensor:
    """`focal` (n_focal,) updated by a Weiszfeld fit on group g's own-frame observations.

    x (M, S, 3) sampled points of g's observations, w (M, S) their weights, u / v (S,) their pixel columns /
    rows; pp (N, 2) principal points. Groups accumulate over image shapes through the shared focal index."""
    own = g.obs_own.nonzero()[:, 0]
    if not len(own):
        return focal
    ov = g.obs_view[own]
    du = u[None, :] - pp[ov, 0, None].float()
    dv = v[None, :] - pp[ov, 1, None].float()
    f = weiszfeld_focal(x[own], du, dv, w[own], focal_group[ov], n_focal)
    return torch.where(torch.isfinite(f), f, focal)


def robust_similarity(parts, n_out: int, iters: int = 10):
    """Confidence-weighted similarity fits made robust by IRLS with a Cauchy kernel.

    parts: list of (src (M,P,3), dst (M,P,3), w (M,P), index (M,)) — correspondence sets, several of which
    may belong to one fit (index in [0, n_out)). Each round refits with weights w / (1 + (r/σ)²), σ being
    twice the median residual of the set, so far-off points (network outliers) stop pulling.
    Returns s (n_out,), R (n_out,3,3), t (n_out,3) in float64.
    """
    dev = parts[0][0].device
    # float64 copies made once: converting the point sets again in every round cost as much as the fits.
    parts = [(src.double(), dst.double(), w.double(), idx) for src, dst, w, idx in parts]
    psi = [p[2] for p in parts]
    for it in range(iters + 1):
        stats = [torch.zeros(n_out, dtype=torch.float64, device=dev),
                 torch.zeros(n_out, 3, dtype=torch.float64, device=dev),
                 torch.zeros(n_out, 3, dtype=torch.float64, device=dev),
                 torch.zeros(n_out, 3, 3, dtype=torch.float64, device=dev),
                 torch.zeros(n_out, dtype=torch.float64, device=dev)]
        for (src, dst, _, idx), wt in zip(parts, psi, strict=True):
            for acc, part in zip(stats, similarity_stats(src, dst, wt), strict=True):
                acc.index_add_(0, idx, part)
        s, r, t = umeyama_from_stats(stats)
        if it == iters:
            break
        for k, (src, dst, w, idx) in enumerate(parts):
            sr = s[idx, None, None] * r[idx].transpose(1, 2)
            res = torch.baddbmm(t[idx, None, :] - dst, src, sr).norm(dim=-1)
            masked = torch.where(w > 0, res, torch.full_like(res, float("nan")))
            sigma = 2 * torch.nanmedian(masked, dim=1).values.clamp_min(1e-12)
            sigma = torch.where(torch.isfinite(sigma), sigma, torch.ones_like(sigma))
            psi[k] = w / (1 + (res / sigma[:, None]) ** 2)
    return s, r, t


def _robust_consensus(y: torch.Tensor, w: torch.Tensor, local: torch.Tensor, n: int, iters: int = 3):
    """Per-pixel robust mean of several predictions of the same views.

    y: (M, P, 3) world points of M observations; w: (M, P) weights; local: (M,) view of each, in [0, n).
    Returns (n, P, 3). Cauchy IRLS with a scale of twice the median distance to the current mean.
    """
    wt = w
    for it in range(iters + 1):
        num = torch.zeros(n, y.shape[1], 3, dtype=y.dtype, device=y.device).index_add_(0, local, wt[..., None] * y)
        den = torch.zeros(n, y.shape[1], dtype=y.dtype, device=y.device).index_add_(0, local, wt)
        mean = num / den.clamp_min(1e-30)[..., None]
        if it == iters:
            return mean
        res = (y - mean[local]).norm(dim=-1)
        masked = torch.where(w > 0, res, torch.full_like(res, float("nan")))
        sigma = 2 * torch.nanmedian(masked.reshape(-1)).clamp_min(1e-12)
        sigma = sigma if torch.isfinite(sigma) else torch.ones_like(sigma)
        wt = w / (1 + (res / sigma) ** 2)
    return mean


def _mat(s, r, t) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = (s * r).cpu().numpy()
    m[:3, 3] = t.cpu().numpy()
    return m
