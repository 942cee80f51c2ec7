"""The pairwise memory plan: what goes where for given run sizes and budgets (CPU only, no allocation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pointmap.core.errors import PointmapError
from pointmap.core.pairwise.graph import make_pairs
from pointmap.core.pairwise.memory import (
    DEVICE_PREDICTIONS_MAX,
    MIN_FINE_SAMPLES,
    estimate_pairwise_memory,
    plan_pairwise_memory,
)
from pointmap.core.pairwise.predictions import PairStorage

GIB = 2 ** 30
H200_FREE = 125 * GIB      # what cuda_free_bytes reports on an idle H200 (139 GiB, 10 % headroom)


def _shot(n: int, hw=(288, 512)):
    return estimate_pairwise_memory([hw] * n, make_pairs(n, "seq-4").edges)


def test_storage_allocates_what_the_estimate_says():
    """The estimate's prediction bytes are the bytes PairStorage really allocates (float16, 4 per pixel)."""
    shapes = [(32, 48)] * 20 + [(48, 32)] * 5
    edges = make_pairs(25, "seq-4").edges
    store = PairStorage(edges, shapes, torch.float16)
    est = estimate_pairwise_memory(shapes, edges, torch.float16)
    assert store.nbytes == est.predictions == sum(2 * 4 * (32 * 48) for _ in range(2 * len(edges)))


def test_thousand_frame_shot_figures():
    """The 1,000-frame 512x288 seq-4 shot of the GPU benchmark: 13,868 pairs, 30.5 GiB of predictions,
    and an alignment estimate above the ~21 GiB measured on the H200 (so the plan is conservative)."""
    est = _shot(1000)
    assert est.n_pairs == 13868
    assert est.predictions == 13868 * 2 * 288 * 512 * 4 * 2
    assert 21 * GIB < est.alignment < 32 * GIB


def test_long_shot_keeps_predictions_in_host_memory():
    """Large predictions go to pinned host memory even when the GPU could hold them (bounded peak),
    silently: it is the normal long-shot path, the alignment still runs on the GPU with every sample."""
    est = _shot(1000)
    assert est.predictions > DEVICE_PREDICTIONS_MAX and est.total < H200_FREE
    plan = plan_pairwise_memory(est, "cuda", host_available=120 * GIB, device_free=H200_FREE, graph="seq-4")
    assert plan.mode == "offload" and plan.storage_device.type == "cpu" and plan.align_device.type == "cuda"
    assert plan.warning is None and plan.fine_samples is None
    # The GPU then holds the alignment, not the predictions: the 40 GiB target has room.
    assert est.alignment + est.inference < 40 * GIB


def test_long_shot_stays_on_device_when_host_memory_is_short():
    est = _shot(1000)
    plan = plan_pairwise_memory(est, "cuda", host_available=16 * GIB, device_free=H200_FREE)
    assert plan.mode == "device" and plan.warning is None


@pytest.mark.parametrize("n,graph,hw", [(8, "complete", (384, 512)), (50, "complete", (384, 512)),
                                         (50, "swin-4", (384, 512)), (120, "seq-4", (224, 224))])
def test_photo_sets_stay_on_the_gpu(n, graph, hw):
    """The usual 8-50 photo runs (and a short shot) keep everything on the GPU: no streaming cost."""
    est = estimate_pairwise_memory([hw] * n, make_pairs(n, graph).edges)
    assert est.predictions <= DEVICE_PREDICTIONS_MAX
    for free in (H200_FREE, 20 * GIB):
        plan = plan_pairwise_memory(est, "cuda", host_available=64 * GIB, device_free=free)
        assert plan.mode == "device" and plan.fine_samples is None and plan.warning is None


def test_explicit_budget_decides_alone():
    """A user budget large enough keeps even a long shot on the device (the default cap is not applied)."""
    est = _shot(1000)
    plan = plan_pairwise_memory(est, "cuda", budget=int(est.total) + GIB, host_available=120 * GIB)
    assert plan.mode == "device"
    small = plan_pairwise_memory(est, "cuda", budget=40 * GIB, host_available=120 * GIB)
    assert small.mode == "offload" and small.align_device.type == "cuda" and "host memory" in small.warning


def test_3000_frames_on_an_80_gb_gpu_lowers_fine_samples_before_the_cpu():
    """3,000 frames on an 80 GB card: predictions in host memory, the fine stage sampled less so the
    alignment fits on the GPU (the CPU would take far longer)."""
    est = _shot(3000)
    free = 72 * GIB
    plan = plan_pairwise_memory(est, "cuda", host_available=200 * GIB, device_free=free)
    assert plan.mode == "offload" and plan.align_device.type == "cuda"
    assert plan.fine_samples is not None and MIN_FINE_SAMPLES <= plan.fine_samples < est.fine_samples
    assert est.with_fine_samples(plan.fine_samples).alignment + est.inference <= free
    assert "fine stage" in plan.warning
    # On the H200 the full fine stage fits.
    h200 = plan_pairwise_memory(est, "cuda", host_available=120 * GIB, device_free=H200_FREE)
    assert h200.mode == "offload" and h200.align_device.type == "cuda" and h200.fine_samples is None


def test_tiny_gpu_aligns_on_cpu_and_too_little_host_memory_is_refused():
    est = _shot(1000)
    plan = plan_pairwise_memory(est, "cuda", host_available=120 * GIB, device_free=2 * GIB)
    assert plan.mode == "offload" and plan.align_device.type == "cpu" and "CPU" in plan.warning
    with pytest.raises(PointmapError, match="host memory.*seq-4"):
        plan_pairwise_memory(est, "cuda", host_available=8 * GIB, device_free=2 * GIB, graph="seq-4")


def test_cpu_plans_are_unchanged_by_the_gpu_cap():
    """On the CPU (CI) the predictions live in host memory and the alignment runs there, as before."""
    est = _shot(1000)
    plan = plan_pairwise_memory(est, "cpu", host_available=120 * GIB)
    assert plan.mode == "device" and plan.storage_device.type == "cpu" and plan.fine_samples is None


def test_storage_writes_consecutive_and_scattered_rows_alike():
    """Batches of consecutive rows take the direct-copy path; others index_copy: same stored values."""
    rng = np.random.default_rng(0)
    edges = make_pairs(6, "swin-2").edges
    shapes = [(8, 12)] * 6
    pts = torch.from_numpy(rng.normal(size=(len(edges), 8, 12, 3)).astype(np.float32)) * 1e3
    pts[0, 0, 0, 0] = 1e6   # beyond float16: clamped, never infinite
    conf = torch.from_numpy(rng.uniform(1, 5, size=(len(edges), 8, 12)).astype(np.float32))
    a = PairStorage(edges, shapes, torch.float16)
    b = PairStorage(edges, shapes, torch.float16)
    for side in "ij":
        a.write(side, np.arange(len(edges)), pts, conf)
        order = rng.permutation(len(edges))
        b.write(side, order, pts[order], conf[order])
    for shape in a.buffers:
        for x, y in zip(a.buffers[shape], b.buffers[shape], strict=True):
            assert torch.equal(x, y) and torch.isfinite(x).all()
    assert float(a.row("i", 0)[0][0, 0, 0]) == float(torch.finfo(torch.float16).max)
