"""Sparse TSDF fusion in torch: voxels exist only in 8^3 blocks near the observed surface.

Grid: voxel (i, j, k) has its centre at `origin + (i, j, k) * voxel` (world units, OpenCV world);
block (a, b, c) holds voxels (8a..8a+7, 8b.., 8c..). Blocks are allocated along each confident
pixel's ray within +-truncation of its depth, so memory follows the surface, not the bounding box.

Each view updates every allocated voxel it sees: sdf = depth(pixel) - z(voxel) along the camera's
optical axis; voxels in front of the surface (sdf > truncation) are carved (tsdf = +1, i.e. free
space, which removes floaters other views disagree with), voxels within the band get sdf/truncation,
voxels more than one truncation behind the surface are not touched (unobserved). Updates are
weighted running means with the pixel confidence as weight. Colour is not stored per voxel: the
vertices are coloured from the images afterwards (`colour.vertex_colours`), which is sharper and
costs no voxel memory.
The same code runs on CPU and GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .views import FusionViews

BLOCK = 8
CHUNK_VOXELS = {"cuda": 1 << 22, "cpu": 1 << 15}   # voxels per kernel batch: the GPU wants big
#                              launches, the CPU wants temporaries that stay in its caches (128 KB)


@dataclass
class SparseTSDF:
    """Fused volume. B allocated blocks; per-voxel arrays are (B, 8, 8, 8[, 3]) float32 on `device`.

    origin: (3,) world position of voxel (0, 0, 0)'s centre; voxel: edge length; truncation: band
    half-width (world units); n_blocks: (3,) blocks per axis; blocks: (B, 3) int64 block coordinates.
    tsdf in [-1, 1] (positive = free space, in front of the surface); weight = summed confidences
    (0 = never observed).
    """

    origin: np.ndarray
    voxel: float
    truncation: float
    n_blocks: np.ndarray
    blocks: object
    tsdf: object
    weight: object
    work: dict = field(default_factory=dict)   # counts of what fusion did (benchmarks report them)


STEP_PIXELS = 1 << 22        # (ray step, pixel) pairs back-projected at once (bounds temporaries)
DENSE_GRID_LIMIT = 1 << 28   # block-occupancy grids up to this many cells (bytes) are dense, else sparse keys
VIEWS_PER_CULL = {"cuda": 1 << 24, "cpu": 1 << 22}   # (view, block) pairs per batched frustum cull


def upload_views(views: FusionViews, device) -> tuple[list, list]:
    """Per view, (H_i, W_i) float32 depth and weight tensors on `device`: one copy each, shared by
    block allocation and integration (each copy from pageable memory waits for the GPU)."""
    import torch

    return ([torch.as_tensor(d, device=device) for d in views.depth],
            [torch.as_tensor(w, device=device) for w in views.weight])


def _pixel_grid(h: int, w: int, device):
    """(3, h*w) float64 homogeneous pixel coordinates (u, v, 1), row-major like the depth map."""
    import torch

    v, u = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float64),
                          torch.arange(w, device=device, dtype=torch.float64), indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1), torch.ones(h * w, device=device, dtype=torch.float64)])


def allocate_blocks(views: FusionViews, origin: np.ndarray, voxel: float, truncation: float,
                    n_blocks: np.ndarray, device, uploaded: tuple[list, list] | None = None,
                    dense_limit: int = DENSE_GRID_LIMIT):
    """(B, 3) int64 tensor of the blocks within +-truncation of some confident pixel, along its ray,
    sorted by key (a, b, c) lexicographically.

    Back-projection runs on `device` from the uploaded depth maps, all pixels at once (invalid ones
    go to a discard slot, so no boolean compaction), at `n_steps` ray samples over the band. Blocks
    are marked in a dense occupancy grid (one byte per block; no sort, no host sync per view) and
    collected with one nonzero; a grid over `dense_limit` cells falls back to per-view sorted keys.
    """
    import torch

    bsize = voxel * BLOCK
    n_steps = int(np.ceil(2 * truncation / (0.5 * bsize))) + 1
    steps = torch.linspace(-truncation, truncation, n_steps, device=device, dtype=torch.float64)[:, None, None]
    nb = torch.as_tensor(n_blocks, device=device)
    n_total = int(np.prod(n_blocks))
    org = torch.as_tensor(origin, device=device) - 0.5 * voxel
    depths, weights = uploaded if uploaded is not None else upload_views(views, device)
    dense = n_total <= dense_limit
    occ = torch.zeros(n_total + 1, dtype=torch.bool, device=device) if dense else None   # last = discard
    keys, grids = [], {}
    # All views' matrices in one copy: a copy from pageable host memory waits for the queued GPU work.
    Kinv_all = torch.as_tensor(views.K_inv, device=device)                        # (N, 3, 3) float64
    c2w_all = torch.as_tensor(views.cam2world, device=device)                     # (N, 4, 4) float64
    for i in range(views.n_views):
        if not views.valid(i).any():
            continue
        h, w = depths[i].shape
        if (h, w) not in grids:
            grids[h, w] = _pixel_grid(h, w, device)
        z = depths[i].reshape(-1).double()
        ok = weights[i].reshape(-1) > 0
        Kinv, R, centre = Kinv_all[i], c2w_all[i, :3, :3], c2w_all[i, :3, 3]
        pts = (R @ ((Kinv @ grids[h, w]) * z)).T + centre                        # (h*w, 3) world
        unit = (pts - centre) / torch.where(ok, z, 1.0)[:, None]                   # X at z-depth 1
        per = max(1, STEP_PIXELS // (h * w))                                       # steps at once
        for s0 in range(0, n_steps, per):
            b = torch.floor((pts + unit * steps[s0:s0 + per] - org) / bsize).long()   # (s, h*w, 3)
            inside = ok & ((b >= 0) & (b < nb)).all(-1)
            key = (b[..., 0] * nb[1] + b[..., 1]) * nb[2] + b[..., 2]
            if dense:
                occ[torch.where(inside, key, n_total).reshape(-1)] = True
            else:
                keys.append(torch.unique(key[inside]))
    if dense:
        k = torch.nonzero(occ[:-1]).reshape(-1)
    elif keys:
        k = torch.unique(torch.cat(keys))
    else:
        k = torch.zeros(0, dtype=torch.long, device=device)
    return torch.stack([k // (nb[1] * nb[2]), (k // nb[2]) % nb[1], k % nb[2]], 1)


def visible_blocks(views: FusionViews, centres, radius: float, w2c_all, device) -> list:
    """Per view, the rows of the blocks (bounding spheres: `centres` (B, 3), `radius`) that may lie
    in its frustum: an int64 tensor, increasing, on `device` (None for views without depth).

    All views are culled in batches with one nonzero and one host read of the counts per batch,
    instead of one host sync per view.
    """
    import torch

    B = len(centres)
    out = [None] * views.n_views
    use = [i for i in range(views.n_views) if views.valid(i).any()]
    if not use or B == 0:
        return [torch.zeros(0, dtype=torch.long, device=device) if i in use else None for i in range(views.n_views)]
    per = max(1, VIEWS_PER_CULL.get(torch.device(device).type, 1 << 24) // B)
    for g0 in range(0, len(use), per):
        g = use[g0:g0 + per]
        gi = torch.as_tensor(g, device=device)
        R, t = w2c_all[gi, :3, :3], w2c_all[gi, :3, 3]                               # (G, 3, 3), (G, 3)
        intr = torch.as_tensor(np.array([[views.K[i, 0, 0], views.K[i, 1, 1], views.K[i, 0, 2], views.K[i, 1, 2],
                                          views.depth[i].shape[1], views.depth[i].shape[0]] for i in g]),
                               dtype=torch.float32, device=device)[:, :, None]      # (G, 6, 1)
        fx, fy, cx, cy, w, h = intr.unbind(1)
        cc = torch.einsum("gij,bj->gbi", R, centres) + t[:, None]                   # (G, B, 3)
        zc = cc[..., 2]
        zs = zc.clamp_min(1e-6)
        mu, mv = radius * fx / zs, radius * fy / zs
        uc, vc = cc[..., 0] / zs * fx + cx, cc[..., 1] / zs * fy + cy
        vis = (zc > -radius) & ((zc <= radius) | ((uc > -mu - 1) & (uc < w + mu) & (vc > -mv - 1) & (vc < h + mv)))
        counts = vis.sum(1).tolist()
        rows = torch.nonzero(vis)[:, 1]
        for i, part in zip(g, torch.split(rows, counts), strict=True):
            out[i] = part
    return out


def fuse_tsdf(views: FusionViews, origin: np.ndarray, voxel: float, truncation: float,
              n_blocks: np.ndarray, device, dense_limit: int = DENSE_GRID_LIMIT) -> SparseTSDF:
    """Allocate the blocks and integrate every view (see the module docstring).

    Per view, the blocks inside its frustum are updated in chunks of whole blocks: voxel camera
    coordinates are one (b, 3) block-corner transform plus a shared (512, 3) offset table, and the
    running means are updated with `torch.where` on block rows (no boolean compaction). Depth maps
    are uploaded once, the frustum culls of all views are batched (`visible_blocks`), so the view
    loop queues GPU work without waiting for it.
    """
    import torch

    uploaded = upload_views(views, device)
    blocks = allocate_blocks(views, origin, voxel, truncation, n_blocks, device, uploaded, dense_limit)
    B = len(blocks)
    nvb = BLOCK ** 3
    tsdf = torch.ones((B, nvb), device=device)
    weight = torch.zeros((B, nvb), device=device)
    r = torch.arange(BLOCK, device=device)
    local = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)   # (512, 3)
    org = torch.as_tensor(origin, device=device, dtype=torch.float32)
    corner = org + blocks.float() * (BLOCK * voxel)                                 # (B, 3) voxel (0,0,0)
    offset = local.float() * voxel                                                  # (512, 3)
    centres = corner + 0.5 * (BLOCK - 1) * voxel
    radius = 0.5 * np.sqrt(3.0) * BLOCK * voxel
    w2c_all = torch.as_tensor(views.world2cam, dtype=torch.float32, device=device)   # (N, 4, 4)
    visible = visible_blocks(views, centres, radius, w2c_all, device)
    blocks_per_chunk = max(1, CHUNK_VOXELS.get(torch.device(device).type, 1 << 22) // nvb)
    for i in range(views.n_views):
        sel = visible[i]
        if sel is None:
            continue
        R, t = w2c_all[i, :3, :3], w2c_all[i, :3, 3]
        fx, fy, cx, cy = (float(x) for x in (views.K[i, 0, 0], views.K[i, 1, 1], views.K[i, 0, 2], views.K[i, 1, 2]))
        depth, pw = uploaded[0][i], uploaded[1][i]
        cam_corner = corner @ R.T + t                                               # (B, 3)
        cam_offset = offset @ R.T                                                   # (512, 3)
        for c0 in range(0, len(sel), blocks_per_chunk):
            bs = sel[c0:c0 + blocks_per_chunk]
            cam = cam_corner[bs, None, :] + cam_offset[None]                        # (b, 512, 3)
            z = cam[..., 2]
            inv = 1.0 / z.clamp_min(1e-6)
            d, pwt, seen = _sample_depth(depth, pw, cam[..., 0] * inv * fx + cx, cam[..., 1] * inv * fy + cy)
            sdf = d - z
            add = torch.where(seen & (z > 1e-6) & (sdf > -truncation), pwt, 0.0)
            W0, T0 = weight[bs], tsdf[bs]
            wn = W0 + add
            tv = (sdf * (1.0 / truncation)).clamp(max=1.0)
            tsdf[bs] = torch.where(add > 0, (T0 * W0 + tv * add) / wn.clamp_min(1e-12), T0)
            weight[bs] = wn
    shape = (B, BLOCK, BLOCK, BLOCK)
    pairs = sum(len(v) for v in visible if v is not None)
    work = {"blocks": B, "view_block_pairs": pairs, "voxel_updates": pairs * nvb,
            "views": sum(v is not None for v in visible), "ray_steps": int(np.ceil(2 * truncation / (0.5 * BLOCK * voxel))) + 1,
            "chunks": sum(-(-len(v) // blocks_per_chunk) for v in visible if v is not None)}
    return SparseTSDF(np.asarray(origin, np.float64), float(voxel), float(truncation),
                      np.asarray(n_blocks, np.int64), blocks, tsdf.reshape(shape), weight.reshape(shape), work)


def _sample_depth(depth, pw, uf, vf):
    """Depth, weight and an in-image flag at float pixel coordinates (uf, vf) (any shape).

    Depth is bilinear where the 4 surrounding pixels are valid and agree within 10 % (a smooth
    surface: nearest-pixel lookup would put a staircase of depth steps into slanted surfaces seen at
    grazing angles), else the nearest pixel's. Weight is the nearest pixel's.
    """
    import torch

    h, w = depth.shape
    seen = (uf > -0.5) & (uf < w - 0.5) & (vf > -0.5) & (vf < h - 0.5)
    u0 = torch.floor(uf).clamp_(0, w - 2)
    v0 = torch.floor(vf).clamp_(0, h - 2)
    a = (uf - u0).clamp_(0, 1)
    b = (vf - v0).clamp_(0, 1)
    i00 = (v0 * w + u0).long()
    flat = depth.reshape(-1)
    d00, d01, d10, d11 = flat[i00], flat[i00 + 1], flat[i00 + w], flat[i00 + (w + 1)]
    near = i00 + (a >= 0.5) + (b >= 0.5) * w
    d = flat[near]
    pwt = pw.reshape(-1)[near]
    lo = torch.minimum(torch.minimum(d00, d01), torch.minimum(d10, d11))
    hi = torch.maximum(torch.maximum(d00, d01), torch.maximum(d10, d11))
    smooth = (lo > 0) & (hi <= 1.1 * lo)
    bil = torch.lerp(torch.lerp(d00, d01, a), torch.lerp(d10, d11, a), b)
    return torch.where(smooth, bil, d), pwt, seen
