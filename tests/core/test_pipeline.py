"""End to end in core: `reconstruct()` from image files to a `Reconstruction`, on tiny random-weight models.

Random weights make the geometry meaningless; these tests check the plumbing a user relies on: every
stage runs on CPU, the result honours the Reconstruction contract, progress covers the whole run, bad
images are skipped or reported, cancel and missing weights give clear errors.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import FIXTURES
from PIL import Image
from pointmap.core import Cancelled, CancelToken, CheckpointError, InputError, reconstruct
from pointmap.core.options import AlignOptions, PairwiseOptions, ReconstructOptions, VGGTOptions
from pointmap.core.priors import focal_mm_to_net_px

PARITY = FIXTURES / "parity"
IMAGES = [PARITY / "images" / n for n in ("view_a_150x100.png", "view_b_150x100.png",
                                          "view_c_portrait_100x150.png")]


@pytest.fixture(scope="module")
def tiny_dust3r():
    from pointmap.core.weights.checkpoint import load_checkpoint

    model, _ = load_checkpoint(PARITY / "dust3r_tiny_linear" / "model.pth")
    return model


def _check_contract(rec, n):
    rec.validate()
    assert rec.n_views == n
    np.testing.assert_allclose(rec.K, rec.net_to_orig @ rec.K_net, rtol=1e-12)
    np.testing.assert_allclose(rec.cam2world[:, 3], np.tile([0, 0, 0, 1], (n, 1)))
    for i in range(n):
        assert np.isfinite(rec.points[i]).all() and np.isfinite(rec.depth[i]).all()
        assert rec.colors[i].dtype == np.uint8



def _opts(image_size: int, iterations: int | None = None, **top) -> ReconstructOptions:
    """Options of a tiny run: network size `image_size`, at most `iterations` alignment steps."""
    return ReconstructOptions(image_size=image_size, align=AlignOptions(iterations=iterations), **top)


def test_pairwise_end_to_end_with_progress(tiny_dust3r):
    events = []
    rec = reconstruct([str(p) for p in IMAGES], tiny_dust3r, _opts(80, iterations=20), progress=events.append)
    _check_contract(rec, 3)
    assert rec.names == ["view_a_150x100", "view_b_150x100", "view_c_portrait_100x150"]
    assert tuple(rec.image_sizes[2]) == (150, 100)          # original (H0, W0) of the portrait view
    assert rec.depth[2].shape == (80, 48)                    # portrait stays portrait at network size
    assert rec.meta["n_pairs"] == 6 and rec.meta["graph"] == "complete"
    assert {"load", "encode", "pairs", "align", "total"} <= set(rec.meta["timings"])
    stages = [e.stage for e in events]
    assert stages.index("load") < stages.index("encode") < stages.index("pairs") < stages.index("align")
    overall = [e.overall for e in events]
    assert all(0.0 <= o <= 1.0 for o in overall)
    assert overall == sorted(overall) and overall[-1] > 0.99


def test_sliding_window_graph_and_single_image(tiny_dust3r):
    rec = reconstruct([str(p) for p in IMAGES[:2]] * 2, tiny_dust3r,
                      _opts(64, iterations=10, pairwise=PairwiseOptions(graph="swin-1")))
    _check_contract(rec, 4)
    assert rec.meta["n_pairs"] == 8
    mono = reconstruct([str(IMAGES[0])], tiny_dust3r, _opts(64))
    _check_contract(mono, 1)
    np.testing.assert_allclose(mono.cam2world[0], np.eye(4), atol=1e-9)


def test_bad_image_skipped_or_reported(tiny_dust3r, tmp_path):
    for p in IMAGES:
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    rec = reconstruct(str(tmp_path), tiny_dust3r, _opts(64, iterations=5))
    _check_contract(rec, 3)
    assert any("broken.jpg" in w for w in rec.warnings)
    with pytest.raises(InputError, match="broken.jpg"):
        reconstruct(str(tmp_path), tiny_dust3r, _opts(64, on_bad_image="raise"))


def test_cancel_and_missing_weights(tiny_dust3r, tmp_path):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        reconstruct([str(p) for p in IMAGES], tiny_dust3r, _opts(64), cancel=token)

    # Cancel from inside the run (as the Blender Cancel button does from another thread).
    token = CancelToken()

    def cancel_during_pairs(p):
        if p.stage == "pairs":
            token.cancel()

    with pytest.raises(Cancelled):
        reconstruct([str(p) for p in IMAGES], tiny_dust3r, _opts(64), progress=cancel_during_pairs, cancel=token)

    with pytest.raises(CheckpointError, match="not downloaded"):
        reconstruct([str(p) for p in IMAGES], "DUSt3R_ViTLarge_BaseDecoder_512_dpt",
                    ReconstructOptions(cache_dir=tmp_path))


def test_known_focal_is_used(tiny_dust3r):
    from pointmap.core.io.images import load_images

    im = load_images([str(IMAGES[0])], size=80)[0]
    f_net = focal_mm_to_net_px(50.0, 36.0, im)
    # 150 px long side: f_orig = 50/36*150; network pixels are 150/80 original pixels wide.
    assert f_net == pytest.approx(50 / 36 * 150 / (150 / 80))
    rec = reconstruct([str(p) for p in IMAGES[:2]], tiny_dust3r, _opts(80, iterations=10, known_focal_mm=50.0))
    np.testing.assert_allclose(rec.K[:, 0, 0], 50 / 36 * 150, rtol=1e-3)


def test_vggt_backend_end_to_end(tmp_path):
    from helpers_vggt import tiny_inputs, tiny_model

    frames = [str(p) for p in tiny_inputs()]
    Image.open(frames[0]).save(tmp_path / "extra.png")
    rec = reconstruct(frames, tiny_model("pt"), ReconstructOptions(image_size=56, vggt=VGGTOptions(points="depth")))
    _check_contract(rec, len(frames))
    assert rec.family == "vggt"
    np.testing.assert_allclose(rec.cam2world[0], np.eye(4), atol=1e-5)


def test_broken_weights_give_a_clear_error():
    """A model whose outputs are NaN (a damaged checkpoint) must not hand NaN cameras to Blender."""
    import torch
    from pointmap.core import PointmapError
    from pointmap.core.weights.checkpoint import load_checkpoint

    model, _ = load_checkpoint(PARITY / "dust3r_tiny_linear" / "model.pth")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    with pytest.raises(PointmapError, match="invalid cameras|NaN"):
        reconstruct([str(p) for p in IMAGES], model, _opts(64, iterations=5))


def test_offloaded_predictions_give_the_same_result(tiny_dust3r):
    """offload=True keeps the predictions in host storage (pinned when CUDA exists): same cameras."""
    paths = [str(p) for p in IMAGES]
    ref = reconstruct(paths, tiny_dust3r, _opts(64, iterations=20))
    off = reconstruct(paths, tiny_dust3r, _opts(64, iterations=20, pairwise=PairwiseOptions(offload=True)))
    assert ref.meta["memory"]["plan"] == "device" and off.meta["memory"]["plan"] == "offload"
    np.testing.assert_allclose(off.cam2world, ref.cam2world, atol=1e-6)
    np.testing.assert_allclose(off.K, ref.K, rtol=1e-6)
    for a, b in zip(off.depth, ref.depth, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_memory_estimate_is_sane():
    from pointmap.core.pairwise.graph import make_pairs
    from pointmap.core.pairwise.memory import estimate_pairwise_memory

    shapes = [(384, 512)] * 32
    full = estimate_pairwise_memory(shapes, make_pairs(32, "complete").edges)
    # 992 pairs x 2 views x (3 + 1) float16 x 196,608 px
    assert full.n_pairs == 992 and full.predictions == 992 * 2 * 4 * 2 * 384 * 512
    assert 0.5 * 2**30 < full.alignment < 8 * 2**30 and full.inference > 0
    sparse = estimate_pairwise_memory(shapes, make_pairs(32, "swin-4").edges)
    assert sparse.predictions < full.predictions / 3 and sparse.alignment < full.alignment
    f32 = estimate_pairwise_memory(shapes, make_pairs(32, "complete").edges, torch_dtype("float32"))
    # float32 storage means an fp32 network: twice the bytes stored and twice the activations.
    assert f32.predictions == 2 * full.predictions and f32.inference == 2 * full.inference
    mast3r = estimate_pairwise_memory(shapes, make_pairs(32, "complete").edges, desc_dim=24)
    assert mast3r.predictions == full.predictions * (4 + 25) // 4


def torch_dtype(name):
    import torch

    return getattr(torch, name)


def test_memory_plan_decisions():
    from pointmap.core import PointmapError
    from pointmap.core.pairwise.graph import make_pairs
    from pointmap.core.pairwise.memory import estimate_pairwise_memory, plan_pairwise_memory

    gib = 2**30
    est = estimate_pairwise_memory([(384, 512)] * 32, make_pairs(32, "complete").edges)
    on_gpu = plan_pairwise_memory(est, "cuda", budget=80 * gib, host_available=64 * gib)
    assert on_gpu.mode == "device" and on_gpu.warning is None
    small = plan_pairwise_memory(est, "cuda", budget=est.alignment + est.inference + gib // 2, host_available=64 * gib)
    assert small.mode == "offload" and small.storage_device.type == "cpu" and small.align_device.type == "cuda"
    assert "host memory" in small.warning and "swin-K" in small.warning
    tiny = plan_pairwise_memory(est, "cuda", budget=gib // 4, host_available=64 * gib)
    assert tiny.mode == "offload" and tiny.align_device.type == "cpu"
    forced = plan_pairwise_memory(est, "cuda", budget=80 * gib, offload=True, host_available=64 * gib)
    assert forced.mode == "offload" and "as requested" in forced.warning
    with pytest.raises(PointmapError, match=r"swin-\d.*GiB|GiB.*swin"):
        plan_pairwise_memory(est, "cuda", budget=gib, host_available=2 * gib)
    assert plan_pairwise_memory(est, "cpu", host_available=64 * gib).mode == "device"
    with pytest.raises(PointmapError, match="Not enough memory"):
        plan_pairwise_memory(est, "cpu", host_available=2 * gib)


def test_memory_budget_too_small_on_cpu_is_a_clear_error(tiny_dust3r):
    from pointmap.core import PointmapError

    with pytest.raises(PointmapError, match="scene graph"):
        reconstruct([str(p) for p in IMAGES], tiny_dust3r, _opts(64, pairwise=PairwiseOptions(memory_budget=1000)))


def test_vggt_refuses_pairwise_only_options():
    """Options VGGT cannot honour are refused with a message naming them, not silently dropped."""
    from helpers_vggt import tiny_inputs, tiny_model
    from pointmap.core import UnsupportedOption

    frames = [str(p) for p in tiny_inputs()[:2]]
    asks = {"scene graph": ReconstructOptions(pairwise=PairwiseOptions(graph="swin-2")),
            "alignment iterations": ReconstructOptions(align=AlignOptions(iterations=5)),
            "shared focal": ReconstructOptions(align=AlignOptions(shared_focal=True)),
            "known intrinsics with the point head": ReconstructOptions(known_focal_mm=35.0,
                                                                       vggt=VGGTOptions(points="head"))}
    for what, options in asks.items():
        options.image_size = 56
        with pytest.raises(UnsupportedOption, match=what):
            reconstruct(frames, tiny_model("pt"), options)


def test_options_with_unknown_values_are_rejected(tiny_dust3r):
    for bad in (ReconstructOptions(backend="colmap"), ReconstructOptions(on_bad_image="ignore"),
                ReconstructOptions(vggt=VGGTOptions(points="mesh"))):
        with pytest.raises(ValueError, match="must be one of"):
            reconstruct([str(IMAGES[0])], tiny_dust3r, bad)
