"""Drift-free initialisation of global alignment: averaging over all edges instead of chaining.

The tree initialisation (`init.initialise_tree`) chains per-edge frames along a spanning tree, so on a long
shot every hop adds its pair's rotation error and the far end starts degrees off; refinement, moving a
graph hop per step, does not remove such a smooth error in any affordable number of steps. Here every
edge counts at once:

1. Reference: per view k its best own-frame observation (the pointmap of view k from an edge (k, ·),
   in camera k's frame at that edge's unknown scale τ_k).
2. One batched robust Umeyama fit of every observation of view k onto that reference:
   obs ≈ s_o R_o ref + t_o. For edge e = (i, j) with observations a (view i) and b (view j) this gives
   the pair's relative rotation R_iᵀ R_j ≈ R_aᵀ R_b, its scale relation σ_e = s_a τ_i = s_b τ_j
   (σ_e: the edge's scale) and camera centres in the edge frame (t_a, t_b).
3. Rotation averaging over the view graph (`rotation_averaging.average_rotations`, robust chordal).
4. Log-scale averaging: log τ_j − log τ_i = log s_a − log s_b, least squares over the graph.
5. Position averaging: c_j − c_i = E_e (t_b − t_a) / σ_e with E_e the edge frame's rotation, least squares.
6. Edge similarities from the above and focals by Weiszfeld, as the tree initialisation does.

Steps 3–5 are Laplacian solves over N views (linear in the number of edges to assemble).
World frame: rotation gauge of the spanning-tree chain, centres with mean zero, geometric-mean
edge scale 1.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import PointmapError
from .init import INIT_SAMPLES, InitResult, ViewGroup, conf_weight, own_view_focals, robust_similarity, sample_stride
from .rotation_averaging import average_rotations, solve_differences


def initialise_global(groups: list[ViewGroup], edges: np.ndarray, n: int, min_conf: float, pp: torch.Tensor,
                      focal_group: torch.Tensor, n_focal: int) -> InitResult:
    """Averaging initialisation (module doc); same arguments and result as `init.initialise_tree`.

    pp: (N, 2) principal points; focal_group: (N,) focal index of each view; n_focal: number of focals.
    """
    dev = groups[0].device
    edges = np.asarray(edges, np.int64).reshape(-1, 2)
    ne = len(edges)
    samples = []
    for g in groups:
        stride = sample_stride(g.shape, INIT_SAMPLES)
        x, c = g.sample(stride)
        samples.append((x, conf_weight(c, min_conf), g.grid(stride, dev)))

    # Reference observation of every view: its own-frame observation with the highest mean weight.
    ref_group = torch.full((n,), -1, dtype=torch.long, device=dev)
    ref_row = torch.zeros(n, dtype=torch.long, device=dev)
    for gi, (g, (_, w, _)) in enumerate(zip(groups, samples, strict=True)):
        own = g.obs_own.nonzero()[:, 0]
        if len(own) == 0:
            continue
        score = w[own].double().mean(1)
        best = torch.full((len(g.views),), -1.0, dtype=torch.float64, device=dev)
        best.scatter_reduce_(0, g.obs_local[own], score, reduce="amax")
        hit = (score == best[g.obs_local[own]])
        # The first own observation reaching the maximum of each view.
        rows = own[hit]
        views = g.obs_view[rows]
        first = torch.full((n,), len(g.obs_view), dtype=torch.long, device=dev)
        first.scatter_reduce_(0, views, rows, reduce="amin")
        got = first < len(g.obs_view)
        ref_group[got] = gi
        ref_row[got] = first[got]
    missing = (ref_group < 0).nonzero()[:, 0].tolist()
    if missing:
        raise PointmapError(f"Global alignment: images {missing} are never the first image of a pair, so their "
                            "camera cannot be estimated; use a symmetric scene graph (both (i, j) and (j, i)).")

    # Every observation fitted onto a reference of its view: obs ≈ s R ref + t (one batched IRLS per group).
    # An edge's second view is fitted onto the reverse edge's own-frame prediction where that edge exists
    # (each pair's error then stays its own; a reference shared by all edges into a view would tie their
    # fitting errors together), else onto the view's reference; own-frame observations onto the view's
    # reference (`rev_s` then chains the reverse edge's scale to it).
    key = {(int(a), int(b)): e for e, (a, b) in enumerate(edges.tolist())}
    rev = torch.tensor([key.get((int(b), int(a)), -1) for a, b in edges.tolist()], device=dev)
    own_row = torch.zeros(ne, dtype=torch.long, device=dev)
    for g in groups:
        own_row[g.obs_edge[g.obs_own]] = g.obs_own.nonzero()[:, 0]
    obs_s = torch.zeros(ne, 2, dtype=torch.float64, device=dev)
    obs_R = torch.zeros(ne, 2, 3, 3, dtype=torch.float64, device=dev)
    obs_t = torch.zeros(ne, 2, 3, dtype=torch.float64, device=dev)
    for g, (x, w, _) in zip(groups, samples, strict=True):
        own = g.obs_own
        rev_e = rev[g.obs_edge]
        use_rev = ~own & (rev_e >= 0) & (rev_e != g.obs_edge)
        ref = torch.where(use_rev, own_row[rev_e.clamp_min(0)], ref_row[g.obs_view])
        s, r, t = robust_similarity([(x[ref], x, w[ref] * w, torch.arange(len(ref), device=dev))], len(ref))
        # An edge's first view is in its own camera frame by construction, like the reference: the two
        # differ by scale alone, so a free rotation and offset there would only add fitting noise.
        r = torch.where(own[:, None, None], torch.eye(3, dtype=r.dtype, device=dev), r)
        t = torch.where(own[:, None], torch.zeros_like(t), t)
        side = (~own).long()
        obs_s[g.obs_edge, side], obs_R[g.obs_edge, side], obs_t[g.obs_edge, side] = s, r, t
    # Second views fitted onto the reverse edge: chain that edge's own scale to the view's reference.
    has_rev = (rev >= 0) & (rev != torch.arange(ne, device=dev))
    obs_s[has_rev, 1] = obs_s[has_rev, 1] * obs_s[rev[has_rev], 0]

    pair = edges[:, 0] != edges[:, 1]
    if n > 1 and not pair.any():
        raise PointmapError("Global alignment: the scene graph has no pair of two different images.")
    pe = torch.as_tensor(np.nonzero(pair)[0], device=dev)
    ei = torch.as_tensor(edges[:, 0], device=dev)
    ej = torch.as_tensor(edges[:, 1], device=dev)
    # Pair scores (as the tree initialisation): both views' mean confidence weights.
    side_score = torch.zeros(ne, 2, dtype=torch.float64, device=dev)
    for g, (_, w, _) in zip(groups, samples, strict=True):
        side_score[g.obs_edge, (~g.obs_own).long()] = w.double().mean(1)
    score = side_score[:, 0] * side_score[:, 1]
    if n > 1:
        _check_connected(n, edges[pair])

    # Rotations: R_iᵀ R_j ≈ R_aᵀ R_b.
    rel = obs_R[pe, 0].transpose(1, 2) @ obs_R[pe, 1]
    if n > 1:
        cam_R = average_rotations(n, edges[pair], rel, weight=None, init=None)
    else:
        cam_R = torch.eye(3, dtype=torch.float64, device=dev)[None]
    # Edge frame rotation E_e from the edge's first view: its frame is that camera's (R_a ≈ I), while the
    # second view's fit carries the pair's rotation error — which would tilt the edge's translation.
    edge_R = cam_R[ei] @ obs_R[:, 0].transpose(1, 2)

    # Scales: log τ_j − log τ_i = log s_a − log s_b; then log σ_e from both observations.
    log_s = torch.log(obs_s.clamp_min(1e-30))
    if n > 1:
        log_tau = solve_differences(n, ei[pe], ej[pe], (log_s[pe, 0] - log_s[pe, 1])[:, None],
                                    torch.ones(len(pe), dtype=torch.float64, device=dev))[:, 0]
    else:
        log_tau = torch.zeros(1, dtype=torch.float64, device=dev)
    log_sigma = 0.5 * (log_s[:, 0] + log_tau[ei] + log_s[:, 1] + log_tau[ej])
    sigma = torch.exp(log_sigma)

    # Positions: c_j − c_i = E_e (t_b − t_a) / σ_e (robust: one Cauchy reweighting round).
    if n > 1:
        d = (edge_R[pe] @ (obs_t[pe, 1] - obs_t[pe, 0])[..., None])[..., 0] / sigma[pe, None]
        w = torch.ones(len(pe), dtype=torch.float64, device=dev)
        for _ in range(3):
            cam_t = solve_differences(n, ei[pe], ej[pe], d, w)
            res = (cam_t[ej[pe]] - cam_t[ei[pe]] - d).norm(dim=-1)
            scale = (2 * res.median()).clamp_min(1e-12)
            w = 1 / (1 + (res / scale) ** 2)
    else:
        cam_t = torch.zeros(1, 3, dtype=torch.float64, device=dev)
    # Edge origin: c_k − E_e t_o / σ_e, mean over the two observations.
    edge_t = 0.5 * (cam_t[ei] - (edge_R @ obs_t[:, 0, :, None])[..., 0] / sigma[:, None]
                    + cam_t[ej] - (edge_R @ obs_t[:, 1, :, None])[..., 0] / sigma[:, None])
    edge_s = 1 / sigma
    k = torch.exp(-torch.log(edge_s).mean())
    edge_s, edge_t, cam_t = edge_s * k, edge_t * k, cam_t * k

    focal = torch.zeros(n_focal, dtype=torch.float64, device=dev)
    for g, (x, w, (u_, v_)) in zip(groups, samples, strict=True):
        focal = own_view_focals(g, x, w, u_, v_, pp, focal_group, n_focal, focal)
    root = int(torch.argmax(score).item()) if ne else 0
    return InitResult(cam_R, cam_t, edge_s, edge_R, edge_t, focal[focal_group], int(edges[root, 0]))


def _check_connected(n: int, edges: np.ndarray) -> None:
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in edges.tolist():
        parent[find(a)] = find(b)
    roots = [find(k) for k in range(n)]
    main = max(set(roots), key=roots.count)
    lost = [k for k in range(n) if roots[k] != main]
    if lost:
        raise PointmapError(f"Global alignment: the scene graph is not connected; images {lost} share no "
                            "pair with the others.")
