"""Pair engine (core/inference.py) on CPU with the tiny parity models: same numbers as the model's forward
and the official outputs, each image encoded once, cancel, forced small batches, mixed shapes."""

from __future__ import annotations

import json

import helpers_parity as hp
import numpy as np
import pytest
import torch
from conftest import FIXTURES, fixture_dir
from helpers_recipe import recipe_state_dict
from pointmap.core.errors import Cancelled, CancelToken
from pointmap.core.pairwise.engine import PairInference, infer_pairs
from pointmap.core.weights.checkpoint import parse_constructor

PARITY = hp.PARITY
MAST3R = hp.mast3r_model()
LINEAR = hp.linear_model()
PREPROC = fixture_dir("POINTMAP_PREPROC_DIR", FIXTURES / "preprocessing")

def _model(name):
    from pointmap.core.models import build_model

    folder = PARITY / name
    info = json.loads((folder / "info.json").read_text())
    model = build_model(*parse_constructor(info["load_model_instantiation_string"], rewrite=False))
    model.load_state_dict(recipe_state_dict(folder), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def mast3r():
    if MAST3R is None:
        pytest.skip("no MASt3R model in the parity set")
    return _model(MAST3R.name)


@pytest.fixture(scope="module")
def linear():
    assert LINEAR is not None, f"{PARITY}: no DUSt3R model with a linear head and a model.pth"
    return _model(LINEAR.name)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    """(3, H, W) normalised float → the (H, W, 3) uint8 image it came from (normalisation is exact)."""
    return np.round((img.transpose(1, 2, 0) * 0.5 + 0.5) * 255).astype(np.uint8)


def _images(inputs: dict) -> dict[int, np.ndarray]:
    """load_images index → uint8 image, recovered from the fixture inputs."""
    out = {}
    for i, img in hp.images(inputs).items():
        out[i] = _to_uint8(img[0])
        assert np.array_equal((out[i].astype(np.float32) / 255 - 0.5) / 0.5, img[0].transpose(1, 2, 0))
    return out


def _check_against_reference(preds, folder, case, inputs):
    with np.load(folder / f"outputs_{case}.npz") as z:
        ref = {k: z[k] for k in z.files}
    fields = {("pred1", "pts3d"): "pts_i", ("pred2", "pts3d_in_other_view"): "pts_j", ("pred1", "conf"): "conf_i",
              ("pred2", "conf"): "conf_j", ("pred1", "desc"): "desc_i", ("pred2", "desc"): "desc_j",
              ("pred1", "desc_conf"): "desc_conf_i", ("pred2", "desc_conf"): "desc_conf_j"}
    for key, e, pred, field, r in hp.edge_outputs(ref, inputs):
        got = getattr(preds, fields[pred, field])[e].numpy()
        tol = 1e-4 * np.abs(r).max() + 1e-4 * np.abs(r)
        assert (np.abs(got - r) <= tol).all(), f"{key} edge {e}: max err {np.abs(got - r).max()}"


@pytest.mark.parametrize("case", [c for name, c in hp.model_cases() if MAST3R and name == MAST3R.name])
def test_engine_matches_reference_outputs(mast3r, case):
    """Every case the MASt3R model has outputs for, whatever its name and pair count."""
    inputs = hp.load_inputs(case)
    imgs = _images(inputs)
    assert sorted(imgs) == list(range(len(imgs)))
    engine = PairInference(mast3r, device="cpu")
    assert engine.precision == "fp32"
    enc = engine.encode([imgs[i] for i in sorted(imgs)])
    edges = hp.edges(inputs)
    preds = engine.run_pairs(enc, edges)
    assert preds.n_edges == len(edges) and preds.desc_i is not None
    assert preds.image_shapes == [imgs[i].shape[:2] for i in sorted(imgs)]
    _check_against_reference(preds, MAST3R.folder, case, inputs)


def test_engine_equals_model_forward_and_small_batches(linear):
    """Three images, complete graph: engine == forward per pair, whatever the batch size."""
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    edges = [(i, j) for i in range(3) for j in range(3) if i != j]
    big = infer_pairs(linear, imgs, edges, device="cpu", max_batch=8)
    small = infer_pairs(linear, imgs, edges, device="cpu", max_batch=1)
    assert big.desc_i is None and big.n_images == 3
    norm = [torch.from_numpy((im.astype(np.float32) / 255 - 0.5) / 0.5).permute(2, 0, 1)[None] for im in imgs]
    with torch.no_grad():
        for e, (i, j) in enumerate(edges):
            r1, r2 = linear({"img": norm[i]}, {"img": norm[j]})
            for got in (big, small):
                torch.testing.assert_close(got.pts_i[e], r1["pts3d"][0], rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(got.pts_j[e], r2["pts3d_in_other_view"][0], rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(got.conf_j[e], r2["conf"][0], rtol=1e-5, atol=1e-5)
                assert got.pts_i[e].dtype == torch.float32


def test_each_image_encoded_once_and_progress(linear):
    imgs = [np.full((32, 48, 3), 40 * k, np.uint8) for k in range(4)]
    edges = [(i, j) for i in range(4) for j in range(4) if i != j]
    calls = []
    handle = linear.patch_embed.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    seen = []
    try:
        engine = PairInference(linear, device="cpu", max_batch=5)
        enc = engine.encode(imgs, progress=seen.append)
        preds = engine.run_pairs(enc, edges, progress=seen.append)
    finally:
        handle.remove()
    assert sum(calls) == 4 and preds.n_edges == 12
    pairs = [p for p in seen if p.stage == "pairs"]
    assert pairs[-1].done == pairs[-1].total == 12 and [p.done for p in pairs] == [0, 5, 10, 12]
    g = engine.global_descriptors(enc)
    assert g.shape == (4, linear.enc_embed_dim) and g.dtype == torch.float32
    torch.testing.assert_close(g.norm(dim=1), torch.ones(4))


def test_cancel_between_batches(linear):
    imgs = [np.zeros((32, 32, 3), np.uint8)] * 3
    token = CancelToken()
    engine = PairInference(linear, device="cpu", max_batch=1)
    enc = engine.encode(imgs)

    def progress(p):
        if p.stage == "pairs" and p.done >= 2:
            token.cancel()

    with pytest.raises(Cancelled):
        engine.run_pairs(enc, [(0, 1), (1, 0), (0, 2), (2, 0)], progress=progress, cancel=token)


def test_mixed_shapes_and_bad_input(linear):
    imgs = [np.zeros((32, 48, 3), np.uint8), np.zeros((48, 32, 3), np.uint8), np.ones((32, 48, 3), np.uint8)]
    preds = infer_pairs(linear, imgs, [(0, 1), (1, 2), (0, 2), (2, 1)], device="cpu")
    assert preds.pts_i[0].shape == (32, 48, 3) and preds.pts_j[0].shape == (48, 32, 3)
    assert preds.conf_i[1].shape == (48, 32) and preds.pts_j[3].shape == (48, 32, 3)
    engine = PairInference(linear, device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        engine.encode([np.zeros((32, 32), np.uint8)])
    with pytest.raises(ValueError, match="edge indices"):
        engine.run_pairs(engine.encode(imgs[:2]), [(0, 2)])


def test_uint8_normalisation_is_exact(linear):
    lut_path = PREPROC / "normalization_lut_uint8_to_float32.npy"
    if not lut_path.exists():
        pytest.skip("no normalisation LUT")
    lut = np.load(lut_path)
    img = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    got = PairInference(linear, device="cpu")._images_to_device([img])[0]
    assert np.array_equal(got.numpy(), lut[img].transpose(2, 0, 1))


def test_matmul_upsample_equals_interpolate():
    from pointmap.core.models.dpt import _up2_matmul

    x = torch.randn(2, 5, 3, 7).contiguous(memory_format=torch.channels_last)
    ref = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
    torch.testing.assert_close(_up2_matmul(x), ref, rtol=1e-5, atol=1e-5)


def test_bf16_precision_runs_close_to_fp32():
    model = _model(LINEAR.name)  # cast in place by the engine: a private copy
    rng = np.random.default_rng(2)
    imgs = [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(2)]
    ref = infer_pairs(model, imgs, [(0, 1)], device="cpu", precision="fp32")
    got = infer_pairs(model, imgs, [(0, 1)], device="cpu", precision="bf16")
    assert ref.pts_i[0].dtype == torch.float32 and got.pts_i[0].dtype == torch.float16   # storage dtype
    rel = (got.conf_i[0].float() - ref.conf_i[0]).abs().max() / ref.conf_i[0].abs().max()
    assert float(rel) < 0.05


def test_outputs_finite_flags_damaged_weights():
    """The pipeline's 'damaged weights' error rests on this flag: clear for good weights, set by one NaN."""
    model = _model(LINEAR.name)  # a private copy: one weight is damaged below
    imgs = [np.full((32, 32, 3), 50 * k, np.uint8) for k in range(2)]
    engine = PairInference(model, device="cpu")
    assert engine.outputs_finite()                      # nothing run yet
    engine.run_pairs(engine.encode(imgs), [(0, 1), (1, 0)])
    assert engine.outputs_finite()
    with torch.no_grad():
        model.downstream_head2.proj.bias[5] = float("nan")
    engine.run_pairs(engine.encode(imgs), [(0, 1), (1, 0)])
    assert not engine.outputs_finite()
