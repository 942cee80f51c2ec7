"""The optimised TSDF fusion (device-side block allocation into an occupancy grid, batched frustum
culls) gives the same volume and mesh as a straightforward one: every valid pixel back-projected in
numpy and stepped along its ray, every allocated block updated by every view (no culling)."""

import numpy as np
import pytest
import torch
from helpers_meshgen import make_case
from pointmap.core.meshing import MeshOptions, fuse_mesh
from pointmap.core.meshing.extract import extract_surface
from pointmap.core.meshing.tsdf import BLOCK, _sample_depth, allocate_blocks, fuse_tsdf
from pointmap.core.meshing.views import check_views


def _reference_blocks(views, origin, voxel, trunc, n_blocks):
    """Sorted (B, 3) blocks within +-trunc of a confident pixel along its ray (numpy, per pixel)."""
    bsize = voxel * BLOCK
    n_steps = int(np.ceil(2 * trunc / (0.5 * bsize))) + 1
    keys = set()
    for i in range(views.n_views):
        v, u = np.nonzero(views.weight[i] > 0)
        z = views.depth[i][v, u].astype(np.float64)
        cam = (np.linalg.inv(views.K[i]) @ np.stack([u, v, np.ones_like(u)]).astype(np.float64)) * z
        pts = (views.cam2world[i, :3, :3] @ cam).T + views.cam2world[i, :3, 3]
        unit = (pts - views.cam2world[i, :3, 3]) / z[:, None]
        for s in np.linspace(-trunc, trunc, n_steps):
            b = np.floor((pts + unit * s - (origin - 0.5 * voxel)) / bsize).astype(np.int64)
            b = b[((b >= 0) & (b < n_blocks)).all(1)]
            keys.update(map(tuple, b))
    return np.array(sorted(keys), np.int64).reshape(-1, 3)


def _reference_fuse(views, origin, voxel, trunc, blocks):
    """(B, 512) tsdf and weight: every view updates every block (sequential running means)."""
    r = torch.arange(BLOCK)
    offset = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3).float() * voxel
    corner = torch.as_tensor(origin, dtype=torch.float32) + torch.as_tensor(blocks).float() * (BLOCK * voxel)
    tsdf = torch.ones((len(blocks), BLOCK ** 3))
    weight = torch.zeros((len(blocks), BLOCK ** 3))
    for i in range(views.n_views):
        w2c = torch.as_tensor(np.linalg.inv(views.cam2world[i]), dtype=torch.float32)
        R, t = w2c[:3, :3], w2c[:3, 3]
        # The same float32 arithmetic as the kernel (block corner + offset in camera coordinates), so
        # that only culling, allocation and batching are compared, not rounding at the band's edges.
        cam = (corner @ R.T + t)[:, None] + (offset @ R.T)[None]
        z = cam[..., 2]
        inv = 1.0 / z.clamp_min(1e-6)
        K = views.K[i]
        d, pwt, seen = _sample_depth(torch.as_tensor(views.depth[i]), torch.as_tensor(views.weight[i]),
                                     cam[..., 0] * inv * float(K[0, 0]) + float(K[0, 2]),
                                     cam[..., 1] * inv * float(K[1, 1]) + float(K[1, 2]))
        sdf = d - z
        add = torch.where(seen & (z > 1e-6) & (sdf > -trunc), pwt, 0.0)
        wn = weight + add
        tsdf = torch.where(add > 0, (tsdf * weight + (sdf * (1.0 / trunc)).clamp(max=1.0) * add) / wn.clamp_min(1e-12), tsdf)
        weight = wn
    return tsdf, weight


@pytest.fixture(scope="module")
def setup():
    case = make_case(seed=7, views=5, W=48, H=36, gt_factor=0)
    views = check_views(list(case["depth"]), list(case["conf"]), case["K"], case["cam2world"],
                        list(case["images"]), 3.0)
    views.weight[2] = np.zeros_like(views.weight[2])   # a view without depth is skipped by both
    views.depth[2] = np.zeros_like(views.depth[2])
    voxel, trunc = 0.05, 0.2
    origin = np.array([-1.6, -1.6, -0.4])
    n_blocks = np.array([9, 9, 5])
    return case, views, origin, voxel, trunc, n_blocks


def test_allocation_matches_per_pixel_reference_dense_and_sparse(setup):
    _, views, origin, voxel, trunc, n_blocks = setup
    ref = _reference_blocks(views, origin, voxel, trunc, n_blocks)
    assert len(ref) > 20
    dense = allocate_blocks(views, origin, voxel, trunc, n_blocks, "cpu").numpy()
    sparse = allocate_blocks(views, origin, voxel, trunc, n_blocks, "cpu", dense_limit=0).numpy()
    np.testing.assert_array_equal(dense, ref)
    np.testing.assert_array_equal(sparse, ref)


def test_fused_volume_and_mesh_match_the_unculled_reference(setup):
    _, views, origin, voxel, trunc, n_blocks = setup
    vol = fuse_tsdf(views, origin, voxel, trunc, n_blocks, "cpu")
    ref_t, ref_w = _reference_fuse(views, origin, voxel, trunc, vol.blocks.numpy())
    assert vol.work["view_block_pairs"] < 4 * len(vol.blocks)     # culling skipped some (view, block) pairs
    assert vol.work["views"] == 4
    torch.testing.assert_close(vol.weight.reshape(len(ref_w), -1), ref_w, rtol=0, atol=1e-6)
    torch.testing.assert_close(vol.tsdf.reshape(len(ref_t), -1), ref_t, rtol=0, atol=1e-5)
    assert float((ref_w > 0).float().mean()) > 0.2
    ref_vol = type(vol)(vol.origin, vol.voxel, vol.truncation, vol.n_blocks, vol.blocks,
                        ref_t.reshape(vol.tsdf.shape), ref_w.reshape(vol.weight.shape))
    v, f = extract_surface(vol, 0.5, 1.0)
    rv, rf = extract_surface(ref_vol, 0.5, 1.0)
    assert len(f) > 100 and f.shape == rf.shape and torch.equal(f, rf)
    torch.testing.assert_close(v, rv, rtol=0, atol=1e-5)


def test_dense_and_sparse_allocation_give_the_same_mesh(setup):
    case = setup[0]
    args = (list(case["depth"]), list(case["conf"]), case["K"], case["cam2world"], list(case["images"]))
    opts = MeshOptions(device="cpu", max_resolution=48)
    a = fuse_mesh(*args, opts)
    import pointmap.core.meshing.tsdf as tsdf_mod

    limit = tsdf_mod.DENSE_GRID_LIMIT
    try:
        tsdf_mod.DENSE_GRID_LIMIT = 0
        b = fuse_mesh(*args, opts)
    finally:
        tsdf_mod.DENSE_GRID_LIMIT = limit
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.faces, b.faces)
    assert a.info["fusion_work"]["blocks"] == b.info["fusion_work"]["blocks"] > 0
