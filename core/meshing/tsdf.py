"""Sparse TSDF fusion in torch: voxels exist only in 8^3 blocks near the observed surface.

Grid: voxel (i, j, k) has its centre at `origin + (i, j, k) * voxel` (world units, OpenCV world);
block (a, b, c) holds voxels (8a..8a+7, 8b.., 8c..). Blocks are allocated along each confident
pixel's ray within +-truncation of its depth, so memory follows the surface, not the bounding box.

Each view updates every allocated voxel it sees: sdf = depth(pixel) - z(voxel) along the camera's
optical axis; voxels in front of the surface (sdf > truncation) are carved (tsdf = +1, i.e. free
space, which removes floaters other views disagree with), voxels within the band get sdf/truncation,
voxels more than one truncation behind the surface are not touched (unobserved). Updates are
weighted running means with the pixel confidence as weight; colour is fused in the band only.
The same code runs on CPU and GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .views import FusionViews

BLOCK = 8
CHUNK_VOXELS = 1 << 22      # voxels updated per kernel batch (bounds temporaries to ~100 MB)


@dataclass
class SparseTSDF:
    """Fused volume. B allocated blocks; per-voxel arrays are (B, 8, 8, 8[, 3]) float32 on `device`.

    origin: (3,) world position of voxel (0, 0, 0)'s centre; voxel: edge length; truncation: band
    half-width (world units); n_blocks: (3,) blocks per axis; blocks: (B, 3) int64 block coordinates.
    tsdf in [-1, 1] (positive = free space, in front of the surface); weight = summed confidences
    (0 = never observed); color = weighted mean sRGB in [0, 255].
    """

    origin: np.ndarray
    voxel: float
    truncation: float
    n_blocks: np.ndarray
    blocks: object
    tsdf: object
    weight: object
    color: object


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
    """Allocate the blocks and integrate every view (see the module docstring)."""
    import torch

    blocks = allocate_blocks(views, origin, voxel, truncation, n_blocks, device)
    B = len(blocks)
    n_vox = B * BLOCK ** 3
    tsdf = torch.ones(n_vox, device=device)
    weight = torch.zeros(n_vox, device=device)
    csum = torch.zeros((n_vox, 3), device=device)
    cw = torch.zeros(n_vox, device=device)
    r = torch.arange(BLOCK, device=device)
    local = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)   # (512, 3)
    org = torch.as_tensor(origin, device=device, dtype=torch.float32)
    view_data = []
    for i in range(views.n_views):
        if not views.valid(i).any():
            continue
        w2c = np.linalg.inv(views.cam2world[i])
        view_data.append((
            torch.as_tensor(w2c[:3, :3], dtype=torch.float32, device=device),
            torch.as_tensor(w2c[:3, 3], dtype=torch.float32, device=device),
            [float(x) for x in (views.K[i, 0, 0], views.K[i, 1, 1], views.K[i, 0, 2], views.K[i, 1, 2])],
            torch.as_tensor(views.depth[i], device=device),
            torch.as_tensor(views.weight[i], device=device),
            torch.as_tensor(views.colors[i], device=device).float(),
        ))
    blocks_per_chunk = max(1, CHUNK_VOXELS // BLOCK ** 3)
    nvb = BLOCK ** 3
    centres = org + (blocks.float() * BLOCK + 0.5 * (BLOCK - 1)) * voxel             # (B, 3) world
    radius = 0.5 * np.sqrt(3.0) * BLOCK * voxel
    for R, t, (fx, fy, cx, cy), depth, pw, col in view_data:
        h, w = depth.shape
        # Cull whole blocks outside this view's frustum (a block is a sphere of `radius`).
        cc = centres @ R.T + t
        zc = cc[:, 2]
        zs = zc.clamp_min(1e-6)
        mu = radius * fx / zs
        mv = radius * fy / zs
        uc = cc[:, 0] / zs * fx + cx
        vc = cc[:, 1] / zs * fy + cy
        vis = (zc > -radius) & ((zc <= radius) | ((uc > -mu - 1) & (uc < w + mu) & (vc > -mv - 1) & (vc < h + mv)))
        sel = torch.nonzero(vis).reshape(-1)
        for c0 in range(0, len(sel), blocks_per_chunk):
            bs = sel[c0:c0 + blocks_per_chunk]
            vox = (bs[:, None] * nvb + torch.arange(nvb, device=device)[None]).reshape(-1)
            idx = (blocks[bs, None, :] * BLOCK + local[None]).reshape(-1, 3)
            X = org + idx.float() * voxel                                           # (n, 3) world
            cam = X @ R.T + t
            z = cam[:, 2]
            zs = z.clamp_min(1e-6)
            uf = cam[:, 0] / zs * fx + cx
            vf = cam[:, 1] / zs * fy + cy
            d, pwt, pix, seen = _sample_depth(depth, pw, uf, vf)
            sdf = d - z
            upd = seen & (z > 1e-6) & (pwt > 0) & (sdf > -truncation)
            if not bool(upd.any()):
                continue
            vox, sdf, pwt, pix = vox[upd], sdf[upd], pwt[upd], pix[upd]
            tv = (sdf / truncation).clamp(max=1.0)
            W0 = weight[vox]
            wn = W0 + pwt
            tsdf[vox] = (tsdf[vox] * W0 + tv * pwt) / wn
            weight[vox] = wn
            band = sdf < truncation
            vb = vox[band]
            csum[vb] += col.reshape(-1, 3)[pix[band]] * pwt[band, None]
            cw[vb] += pwt[band]
    color = csum / cw.clamp_min(1e-12)[:, None]
    shape = (B, BLOCK, BLOCK, BLOCK)
    return SparseTSDF(np.asarray(origin, np.float64), float(voxel), float(truncation),
                      np.asarray(n_blocks, np.int64), blocks, tsdf.reshape(shape),
                      weight.reshape(shape), color.reshape(*shape, 3))


def _sample_depth(depth, pw, uf, vf):
    """Depth, weight and nearest flat pixel index at float pixel coordinates (uf, vf).

    Depth is bilinear where the 4 surrounding pixels are valid and agree within 10 % (a smooth
    surface: nearest-pixel lookup would put a staircase of depth steps into slanted surfaces seen at
    grazing angles), else the nearest pixel's. Weight is the nearest pixel's.
    """
    import torch

    h, w = depth.shape
    seen = (uf > -0.5) & (uf < w - 0.5) & (vf > -0.5) & (vf < h - 0.5)
    un = torch.round(uf).long().clamp(0, w - 1)
    vn = torch.round(vf).long().clamp(0, h - 1)
    pix = vn * w + un
    flat = depth.reshape(-1)
    d = flat[pix]
    pwt = pw.reshape(-1)[pix]
    u0 = torch.floor(uf).long().clamp(0, w - 2)
    v0 = torch.floor(vf).long().clamp(0, h - 2)
    a = (uf - u0).clamp(0, 1)
    b = (vf - v0).clamp(0, 1)
    i00 = v0 * w + u0
    d00, d01, d10, d11 = flat[i00], flat[i00 + 1], flat[i00 + w], flat[i00 + w + 1]
    lo = torch.minimum(torch.minimum(d00, d01), torch.minimum(d10, d11))
    hi = torch.maximum(torch.maximum(d00, d01), torch.maximum(d10, d11))
    smooth = (lo > 0) & (hi <= 1.1 * lo)
    bil = (d00 * (1 - a) + d01 * a) * (1 - b) + (d10 * (1 - a) + d11 * a) * b
    d = torch.where(smooth, bil, d)
    return d, pwt, pix, seen
