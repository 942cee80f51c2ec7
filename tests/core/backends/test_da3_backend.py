"""DA3 backend end to end on the tiny reference model and the parity images (float32 CPU):
preprocessing -> network -> Reconstruction (OpenCV cameras, K in original pixels, world points)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers_da3 import DA3_PARITY_DIR, manifest, tiny_model
from helpers_vggt import assert_close
from pointmap.core.backends.da3 import normalize_world2cam, run_da3
from pointmap.core.errors import InputError
from pointmap.core.io.da3_images import load_images_da3

MANIFEST = manifest()
CASES = MANIFEST.get("cases", {})
# Cases by what they are, never by the shipped names: the largest uncalibrated multi-view case, a one-view case.
UNPOSED = sorted((c for c in CASES if not CASES[c].get("camera_conditioned")), key=lambda c: -CASES[c]["S"])
MULTI = next((c for c in UNPOSED if CASES[c]["S"] >= 2), None)
SINGLE = next((c for c in UNPOSED if CASES[c]["S"] == 1), None)


def test_the_set_has_a_multi_view_and_a_single_view_case():
    assert MULTI and SINGLE, f"{DA3_PARITY_DIR / 'manifest.json'}: needs an unposed case of S >= 2 and one of S = 1"


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(2)
    return tiny_model()[0]


def _images(case: str):
    spec = CASES[case]
    paths = [str(DA3_PARITY_DIR / "images" / name) for name in spec["source_images"]]
    return load_images_da3(paths, spec["process_res"], spec["process_res_method"])


def _reprojects(rec) -> None:
    """World points project back onto their own pixel centres through cam2world and K_net."""
    for i in range(rec.n_views):
        pts = rec.points[i].reshape(-1, 3).astype(np.float64)
        w2c = np.linalg.inv(rec.cam2world[i])
        cam = pts @ w2c[:3, :3].T + w2c[:3, 3]
        uv = cam @ rec.K_net[i].T
        uv = uv[:, :2] / uv[:, 2:]
        h, w = rec.depth[i].shape
        grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).reshape(-1, 2)
        np.testing.assert_allclose(uv, grid, atol=1e-3)
        np.testing.assert_allclose(cam[:, 2], rec.depth[i].reshape(-1), rtol=1e-4)


@pytest.mark.parametrize("case", sorted(c for c in CASES if not CASES[c].get("camera_conditioned")))
def test_reconstruction_matches_network(model, case):
    ref = np.load(DA3_PARITY_DIR / CASES[case]["file"])
    ims = _images(case)
    from pointmap.core.io.da3_images import to_tensor_da3

    assert torch.equal(to_tensor_da3(list(ims))[None], torch.from_numpy(ref["images"])), "preprocessing"
    rec = run_da3(model, ims, device="cpu")
    assert rec.family == "da3" and not rec.metric_scale
    assert_close(np.stack(rec.depth), ref["depth"][0], f"{case}:depth")
    assert_close(np.stack(rec.conf), ref["depth_conf"][0], f"{case}:conf")
    # Cameras: the network's cam2world re-expressed in camera 0's frame.
    c2w = np.tile(np.eye(4), (rec.n_views, 1, 1))
    c2w[:, :3] = ref["c2w"][0]
    want = np.linalg.inv(c2w[0]) @ c2w
    np.testing.assert_allclose(rec.cam2world, want, atol=1e-4)
    np.testing.assert_allclose(rec.cam2world[0], np.eye(4), atol=1e-12)
    assert_close(rec.K_net, ref["intrinsics"][0], f"{case}:K_net")
    np.testing.assert_allclose(rec.K, rec.net_to_orig @ rec.K_net)
    _reprojects(rec)
    # The reference view the backbone chose (the chunked join anchors its weights there).
    want_ref = int(ref["ref_view_index"][0]) if "ref_view_index" in ref.files else 0
    assert rec.meta["reference_view"] == want_ref


def test_known_intrinsics_are_used(model):
    ims = _images(MULTI)
    h0, w0 = ims[0].original_size
    K = np.array([[90.0, 0, w0 / 2 - 0.5], [0, 88.0, h0 / 2 - 0.5], [0, 0, 1]])
    rec = run_da3(model, ims, device="cpu", intrinsics=np.stack([K] * len(ims)))
    np.testing.assert_allclose(rec.K, np.stack([K] * len(ims)), atol=1e-9)
    _reprojects(rec)


@pytest.mark.parametrize("case", sorted(c for c in CASES if CASES[c].get("camera_conditioned")))
def test_posed_mode(model, case):
    ref = np.load(DA3_PARITY_DIR / CASES[case]["file"])
    raw = ref["extrinsics_input_raw"][0].astype(np.float64)
    normed, scale = normalize_world2cam(raw)
    np.testing.assert_allclose(normed, ref["extrinsics_input_normalized"][0], atol=1e-5)
    ims = _images(case)
    k_orig = ref["intrinsics_input_original"][0].astype(np.float64)
    k_net = np.linalg.inv(np.stack([im.net_to_orig for im in ims])) @ k_orig
    np.testing.assert_allclose(k_net[:, [0, 1], [0, 1]], ref["intrinsics_input"][0][:, [0, 1], [0, 1]], rtol=1e-5)
    rec = run_da3(model, ims, device="cpu", intrinsics=k_orig, world2cam=raw)
    # The given cameras are kept; depth is the camera-conditioned network's, brought to the caller's scale.
    np.testing.assert_allclose(rec.cam2world, np.linalg.inv(raw), atol=1e-9)
    assert_close(np.stack(rec.depth) / scale, ref["depth"][0], f"{case}:depth")
    _reprojects(rec)


def test_bad_inputs(model):
    ims = _images(MULTI)
    with pytest.raises(InputError, match="intrinsics"):
        run_da3(model, ims, device="cpu", world2cam=np.stack([np.eye(4)] * len(ims)))
    with pytest.raises(InputError, match="3 images"):
        run_da3(model, ims, device="cpu", intrinsics=np.eye(3)[None])
    mixed = list(ims) + list(_images(SINGLE))
    with pytest.raises(InputError, match="one size"):
        run_da3(model, mixed, device="cpu")


def test_mono_and_metric_model():
    from pointmap.core.models.da3 import DA3Config, build_da3

    torch.manual_seed(0)
    cfg = DA3Config(embed_dim=32, depth=4, num_heads=2, out_layers=(0, 1, 2, 3), alt_start=-1, qknorm_start=-1,
                    rope_start=-1, cat_token=False, head="dpt", features=8, out_channels=(4, 8, 12, 16),
                    cam_enc_depth=0)
    net = build_da3(cfg).eval()
    ims = _images(SINGLE)
    rec = run_da3(net, ims, device="cpu")
    assert not rec.metric_scale and rec.meta["assumed_fov_deg"] == 60.0 and rec.warnings
    _reprojects(rec)
    net.name = "da3metric-large"
    K = np.array([[60.0, 0, 30], [0, 62.0, 45], [0, 0, 1]])
    metric = run_da3(net, ims, device="cpu", intrinsics=K[None])
    assert metric.metric_scale
    k_net = metric.K_net[0]
    np.testing.assert_allclose(metric.depth[0], rec.depth[0] * (k_net[0, 0] + k_net[1, 1]) / 2 / 300, rtol=1e-5)
    with pytest.raises(InputError, match="one image at a time"):
        run_da3(net, list(_images(MULTI)), device="cpu")


def test_reconstruct_selects_da3(model, tmp_path):
    """core.reconstruct: backend "auto" picks DA3 from the model's family; files in, Reconstruction out; a broken
    file is skipped with a warning; other backends and pairwise-only options are refused."""
    from pointmap.core import reconstruct
    from pointmap.core.errors import CheckpointError, UnsupportedOption
    from pointmap.core.options import DA3Options, PairwiseOptions, ReconstructOptions

    spec = CASES[MULTI]
    paths = [str(DA3_PARITY_DIR / "images" / name) for name in spec["source_images"]]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    opt = ReconstructOptions(device="cpu", image_size=spec["process_res"],
                             da3=DA3Options(method=spec["process_res_method"]))
    rec = reconstruct(paths + [str(bad)], model, opt)
    assert rec.family == "da3" and rec.n_views == len(paths) and any("broken.png" in w for w in rec.warnings)
    _reprojects(rec)
    focal = reconstruct(paths, model, ReconstructOptions(device="cpu", image_size=spec["process_res"],
                                                         known_focal_mm=50.0, sensor_width_mm=36.0))
    h0, w0 = focal.image_sizes[0]
    np.testing.assert_allclose(focal.K[:, 0, 0], 50.0 / 36.0 * max(h0, w0), rtol=1e-9)
    with pytest.raises(CheckpointError, match="cannot run a da3"):
        reconstruct(paths, model, ReconstructOptions(device="cpu", backend="pairs"))
    with pytest.raises(UnsupportedOption, match="Depth Anything 3"):
        reconstruct(paths, model, ReconstructOptions(device="cpu", pairwise=PairwiseOptions(graph="swin-2")))
    with pytest.raises(ValueError, match="da3.method"):
        reconstruct(paths, model, ReconstructOptions(da3=DA3Options(method="nearest")))


def test_nested_model_gives_metres():
    """The nested model through the backend: the official nested forward's depth, confidence and scale (its
    parity fixture, whose inputs are this parity set's images), cameras with translations in metres; with known
    poses the poses set the scale and the metric network is not run."""
    import json

    from conftest import FIXTURES, fixture_dir
    from pointmap.core.io.da3_images import to_tensor_da3
    from pointmap.core.models.da3.checkpoint import load_da3

    nested_dir = fixture_dir("POINTMAP_DA3_NESTED_DIR", FIXTURES / "da3_nested")
    nested_manifest = json.loads((nested_dir / "manifest.json").read_text())
    net, _ = load_da3(nested_dir / "tiny_nested.safetensors", config=nested_manifest["model"])
    # A nested case's inputs are a parity case's network input: paired by those arrays, not by case names.
    inputs = {c: np.load(DA3_PARITY_DIR / spec["file"])["images"] for c, spec in CASES.items()}

    def parity_case(nested_case: str) -> str | None:
        images = np.load(nested_dir / nested_manifest["cases"][nested_case]["file"])["images"]
        return next((c for c, x in inputs.items() if x.shape == images.shape and np.array_equal(x, images)), None)

    pairs = {c: parity_case(c) for c in nested_manifest["cases"]}
    cases = [c for c, spec in nested_manifest["cases"].items() if not spec["camera_conditioned"] and pairs[c]]
    assert cases, f"{nested_dir}: no unposed case whose images are a case of {DA3_PARITY_DIR}"
    for case in cases:
        ref = np.load(nested_dir / nested_manifest["cases"][case]["file"])
        ims = _images(pairs[case])
        assert torch.equal(to_tensor_da3(list(ims))[None], torch.from_numpy(ref["images"])), "preprocessing"
        rec = run_da3(net, ims, device="cpu")
        assert rec.metric_scale
        scale = rec.meta["metric_scale_factor"]
        assert abs(scale - float(ref["scale_factor"])) <= 1e-4 * abs(float(ref["scale_factor"]))
        assert_close(np.stack(rec.depth), ref["depth"][0], f"{case}:depth")
        assert_close(np.stack(rec.conf), ref["depth_conf"][0], f"{case}:conf")
        w2c = np.tile(np.eye(4), (rec.n_views, 1, 1))
        w2c[:, :3] = ref["extrinsics"][0]
        c2w = np.linalg.inv(w2c)
        np.testing.assert_allclose(rec.cam2world, np.linalg.inv(c2w[0]) @ c2w, atol=1e-4)
        _reprojects(rec)
    posed = [pairs[c] for c, spec in nested_manifest["cases"].items() if spec["camera_conditioned"] and pairs[c]]
    for case in posed:
        ref = np.load(DA3_PARITY_DIR / CASES[case]["file"])
        raw = ref["extrinsics_input_raw"][0].astype(np.float64)
        rec = run_da3(net, _images(case), device="cpu", intrinsics=ref["intrinsics_input_original"][0], world2cam=raw)
        assert not rec.metric_scale and any("metric network was not used" in w for w in rec.warnings)
        np.testing.assert_allclose(rec.cam2world, np.linalg.inv(raw), atol=1e-9)


def test_retrieval_descriptors(model):
    """Per-frame loop-closure descriptors: one unit row per frame, and asking for them changes nothing else."""
    ims = _images(MULTI)
    plain = run_da3(model, ims, device="cpu")
    with_desc = run_da3(model, ims, device="cpu", descriptors=True)
    desc = with_desc.meta["frame_descriptors"]
    assert desc.shape[0] == len(ims) and desc.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(desc, axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(with_desc.cam2world, plain.cam2world)
    np.testing.assert_array_equal(np.stack(with_desc.depth), np.stack(plain.depth))
    assert "frame_descriptors" not in plain.meta


def test_shot_that_returns_gets_a_loop_chunk(model):
    """A shot that comes back to where it started: retrieval on the backbone's pooled tokens finds the revisit
    and a loop chunk joins the two ends; without loops no loop chunk is run."""
    from PIL import Image
    from pointmap.core.backends.da3 import run_da3_chunked
    from pointmap.core.options import ReconstructOptions

    rng = np.random.default_rng(3)
    # 12 distinct smooth images, then the same places again in reverse: frame 23 revisits frame 0.
    base = [Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize((64, 48), Image.BILINEAR)
            for _ in range(12)]
    ims = load_images_da3([np.asarray(b) for b in base + base[::-1]], 56, "upper_bound_resize")
    opts = ReconstructOptions(device="cpu")
    rec = run_da3_chunked(model, ims, opts, chunk=6, overlap=2)
    loops = rec.meta["chunked"]["loop_chunks"]
    assert loops, "no revisit found"
    assert any(min(c) <= 2 and max(c) >= 21 for c in loops), loops
    assert np.isfinite(rec.cam2world).all()
    assert run_da3_chunked(model, ims, opts, chunk=6, overlap=2, loops=False).meta["chunked"]["loop_chunks"] == []
