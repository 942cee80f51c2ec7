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

from dataclasses import dataclass

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


def allocate_blocks(views: FusionViews, origin: np.ndarray, voxel: float, truncation: float,
                    n_blocks: np.ndarray, device):
    """(B, 3) int64 tensor of the blocks within +-truncation of some confident pixel, along its ray."""
    import torch

    bsize = voxel * BLOCK
    n_steps = int(np.ceil(2 * truncation / (0.5 * bsize))) + 1
    steps = torch.linspace(-truncation, truncation, n_steps, device=device, dtype=torch.float64)
    nb = torch.as_tensor(n_blocks, device=device)
    org = torch.as_tensor(origin, device=device) - 0.5 * voxel
    keys = []
    for i in range(views.n_views):
        pts = torch.as_tensor(views.points_world(i), device=device)            # (n, 3) float64
        if not len(pts):
            continue
        centre = torch.as_tensor(views.cam2world[i, :3, 3], device=device)
        ray = pts - centre
        depth = torch.as_tensor(views.depth[i][views.valid(i)], device=device, dtype=torch.float64)
        unit = ray / depth[:, None]                                              # X at z-depth 1
        for s in steps:
            b = torch.floor((pts + unit * s - org) / bsize).long()
            ok = ((b >= 0) & (b < nb)).all(1)
            b = b[ok]
            keys.append(torch.unique((b[:, 0] * nb[1] + b[:, 1]) * nb[2] + b[:, 2]))
    if not keys:
        return torch.zeros((0, 3), dtype=torch.long, device=device)
    k = torch.unique(torch.cat(keys))
    return torch.stack([k // (nb[1] * nb[2]), (k // nb[2]) % nb[1], k % nb[2]], 1)


def fuse_tsdf(views: FusionViews, origin: np.ndarray, voxel: float, truncation: float,
              n_blocks: np.ndarray, device) -> SparseTSDF:
    """Allocate the blocks and integrate every view (see the module docstring).

    Per view, the blocks inside its frustum are updated in chunks of whole blocks: voxel camera
    coordinates are one (b, 3) block-corner transform plus a shared (512, 3) offset table, and the
    running means are updated with `torch.where` on block rows (no boolean compaction, no host sync).
    """
    import torch

    blocks = allocate_blocks(views, origin, voxel, truncation, n_blocks, device)
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
    blocks_per_chunk = max(1, CHUNK_VOXELS.get(torch.device(device).type, 1 << 22) // nvb)
    for i in range(views.n_views):
        if not views.valid(i).any():
            continue
        w2c = np.linalg.inv(views.cam2world[i])
        R = torch.as_tensor(w2c[:3, :3], dtype=torch.float32, device=device)
        t = torch.as_tensor(w2c[:3, 3], dtype=torch.float32, device=device)
        fx, fy, cx, cy = (float(x) for x in (views.K[i, 0, 0], views.K[i, 1, 1], views.K[i, 0, 2], views.K[i, 1, 2]))
        depth = torch.as_tensor(views.depth[i], device=device)
        pw = torch.as_tensor(views.weight[i], device=device)
        h, w = depth.shape
        # Cull whole blocks outside this view's frustum (a block is a sphere of `radius`).
        cc = centres @ R.T + t
        zc = cc[:, 2]
        zs = zc.clamp_min(1e-6)
        mu, mv = radius * fx / zs, radius * fy / zs
        uc, vc = cc[:, 0] / zs * fx + cx, cc[:, 1] / zs * fy + cy
        vis = (zc > -radius) & ((zc <= radius) | ((uc > -mu - 1) & (uc < w + mu) & (vc > -mv - 1) & (vc < h + mv)))
        sel = torch.nonzero(vis).reshape(-1)
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
            W0 = weight[bs]
            wn = W0 + add
            tv = (sdf * (1.0 / truncation)).clamp(max=1.0)
            tsdf[bs] = torch.where(add > 0, (tsdf[bs] * W0 + tv * add) / wn.clamp_min(1e-12), tsdf[bs])
            weight[bs] = wn
    shape = (B, BLOCK, BLOCK, BLOCK)
    return SparseTSDF(np.asarray(origin, np.float64), float(voxel), float(truncation),
                      np.asarray(n_blocks, np.int64), blocks, tsdf.reshape(shape), weight.reshape(shape))


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
