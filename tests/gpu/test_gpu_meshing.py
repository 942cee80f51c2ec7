"""GPU tier, meshing: TSDF fusion on CUDA gives the CPU's blocks and volume (float rounding apart)."""

import numpy as np
import torch
from helpers_meshgen import make_case
from pointmap.core.meshing.tsdf import fuse_tsdf
from pointmap.core.meshing.views import check_views


def test_cuda_fusion_equals_cpu_fusion():
    case = make_case(seed=3, views=6, W=96, H=72, gt_factor=0)
    views = check_views(list(case["depth"]), list(case["conf"]), case["K"], case["cam2world"],
                        list(case["images"]), 3.0)
    origin, voxel, trunc, n_blocks = np.array([-1.6, -1.6, -0.4]), 0.03, 0.18, np.array([14, 14, 6])
    cpu = fuse_tsdf(views, origin, voxel, trunc, n_blocks, "cpu")
    gpu = fuse_tsdf(views, origin, voxel, trunc, n_blocks, "cuda")
    assert torch.equal(gpu.blocks.cpu(), cpu.blocks) and len(cpu.blocks) > 50
    # Chunk sizes follow each device's memory budget; the work itself does not.
    assert {k: v for k, v in gpu.work.items() if k != "chunks"} == {k: v for k, v in cpu.work.items() if k != "chunks"}
    observed = cpu.weight > 0
    # A voxel at the edge of a pixel or of the band may flip with rounding: allow a few in a million.
    w_off = (gpu.weight.cpu() - cpu.weight).abs() > 1e-4
    t_off = ((gpu.tsdf.cpu() - cpu.tsdf).abs() > 1e-4) & observed
    assert int(w_off.sum()) <= 1e-4 * observed.numel() and int(t_off.sum()) <= 1e-4 * observed.numel()


def test_cuda_depth_fields_equal_cpu_depth_fields():
    """The per-view depth fields (rows, Gram blocks and fields on the fusion device) give the CPU's
    corrected depths and cameras on CUDA, float rounding apart."""
    import copy

    from pointmap.core.meshing.depth_fields import correct_depth_fields

    case = make_case(seed=4, views=12, W=128, H=96, gt_factor=0)
    views = check_views(list(case["depth"]), list(case["conf"]), case["K"], case["cam2world"],
                        list(case["images"]), 0.0)
    on_gpu = copy.deepcopy(views)
    worst_cpu = correct_depth_fields(views, device="cpu")
    worst_gpu = correct_depth_fields(on_gpu, device="cuda")
    assert worst_cpu > 0 and abs(worst_cpu - worst_gpu) < 1e-5
    np.testing.assert_allclose(on_gpu.cam2world, views.cam2world, atol=1e-8)
    for a, b in zip(views.depth, on_gpu.depth, strict=True):
        assert isinstance(b, np.ndarray) and b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
