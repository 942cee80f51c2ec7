"""run_vggt with the tiny reference VGGT: Reconstruction contract, geometry, reference parity, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers_vggt import VGGT_PARITY_DIR, assert_close, images_for, main_case, tiny_inputs, tiny_model
from pointmap.core.backends.vggt import estimate_activation_bytes, run_vggt
from pointmap.core.errors import Cancelled, CancelToken, InputError
from pointmap.core.io.images import load_images, load_images_vggt, to_tensor_vggt

# Names and counts come from the set's manifest ($POINTMAP_VGGT_PARITY_DIR), never from the shipped copy.
TINY_FRAMES = [str(p) for p in tiny_inputs()]
PP_IMAGES = [str(p) for p in images_for("preprocessing")]


@pytest.fixture(scope="module")
def model():
    return tiny_model("pt")


def _reproject(rec, i):
    """Pixel coordinates (H, W, 2) and z (H, W) of view i's points through cam2world/K_net."""
    world2cam = np.linalg.inv(rec.cam2world[i])
    cam = rec.points[i].astype(np.float64) @ world2cam[:3, :3].T + world2cam[:3, 3]
    uv = cam @ rec.K_net[i].T
    return uv[..., :2] / uv[..., 2:], cam[..., 2]


def test_reconstruction_contract_and_geometry(model):
    images = load_images_vggt(PP_IMAGES[:2], mode="crop", target=70)
    rec = run_vggt(model, images, device="cpu")
    rec.validate()
    assert rec.family == "vggt" and rec.n_views == 2 and rec.meta["precision"] == "fp32"
    np.testing.assert_array_equal(rec.cam2world[0], np.eye(4))
    for i, im in enumerate(images):
        h, w = im.true_shape
        uv, z = _reproject(rec, i)
        grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), axis=-1)
        assert np.abs(uv - grid).max() < 1e-3
        np.testing.assert_allclose(z, rec.depth[i], rtol=1e-5)
        np.testing.assert_allclose(rec.K[i], im.net_to_orig @ rec.K_net[i])
        np.testing.assert_array_equal(rec.colors[i], im.rgb)
        assert rec.image_sizes[i].tolist() == list(im.original_size)
        # Crop mode pads the shorter (landscape) view to the batch's common size: conf 0 there.
        assert (rec.conf[i][im.valid_mask] >= 1).all() and (rec.conf[i][~im.valid_mask] == 0).all()
        r = rec.cam2world[i][:3, :3]
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-5)


def test_matches_reference_outputs(model):
    """The tiny frames preprocess to exactly the fixture's input; cameras/depth/points follow the reference."""
    case, frames = main_case()
    ref = np.load(VGGT_PARITY_DIR / f"tiny_outputs_{case}.npz")
    images = load_images_vggt([str(f) for f in frames], mode="crop", target=70)
    np.testing.assert_array_equal(to_tensor_vggt(images).numpy(), ref["images"][0])
    for points in ("depth", "head"):
        rec = run_vggt(model, images, device="cpu", points=points, frame_chunk=2)
        e = np.tile(np.eye(4), (len(frames), 1, 1))
        e[:, :3] = ref["extrinsic"][0]
        assert_close(rec.cam2world, e[0] @ np.linalg.inv(e), "cam2world")
        assert_close(rec.K_net, ref["intrinsic"][0], "K_net")
        assert_close(np.stack(rec.depth), ref["depth"][0, ..., 0], "depth")
        src = ref["unprojected_points"][0] if points == "depth" else ref["world_points"][0]
        expect = src.astype(np.float64) @ e[0][:3, :3].T + e[0][:3, 3]
        assert_close(np.stack(rec.points), expect, f"points ({points})")
        conf = ref["depth_conf"][0] if points == "depth" else ref["world_points_conf"][0]
        assert_close(np.stack(rec.conf), conf, f"conf ({points})")


def test_pad_mode_zero_confidence_on_padding(model):
    images = load_images_vggt(PP_IMAGES, mode="pad", target=70)
    rec = run_vggt(model, images, points="head", device="cpu")
    rec.validate()
    for i, im in enumerate(images):
        assert im.pad_mask is not None and im.pad_mask.any()
        assert (rec.conf[i][im.pad_mask] == 0).all()
        assert (rec.conf[i][~im.pad_mask] >= 1).all()


def test_progress_cancel_and_errors(model):
    images = load_images_vggt(TINY_FRAMES[:2], mode="crop", target=70)
    seen = []
    run_vggt(model, images, device="cpu", frame_chunk=1, progress=seen.append)
    assert {p.stage for p in seen} == {"vggt"}
    done = [p.done for p in seen]
    assert done == sorted(done) and seen[-1].done == seen[-1].total

    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_vggt(model, images, device="cpu", cancel=token)

    other = next(im for p in PP_IMAGES for im in load_images_vggt([p], mode="crop", target=70)
                 if im.true_shape != images[0].true_shape)
    mixed = list(images) + [other]
    sizes = ", ".join(f"{im.true_shape[1]}x{im.true_shape[0]} \\({im.name}\\)" for im in (images[0], other))
    with pytest.raises(InputError, match=rf"one size .*; got {sizes}"):
        run_vggt(model, mixed, device="cpu")
    dust3r_sized = load_images([np.zeros((120, 160, 3), np.uint8)], size=64)  # 64x48: multiples of 16, not of 14
    with pytest.raises(InputError, match="multiples of 14 pixels; got 64x48"):
        run_vggt(model, dust3r_sized.images, device="cpu")
    with pytest.raises(InputError, match="at least one"):
        run_vggt(model, [], device="cpu")


def test_memory_estimate_is_sane():
    sizes = [estimate_activation_bytes(n, 392, 518) for n in (1, 10, 100, 200)]
    assert sizes == sorted(sizes)
    assert sizes[-1] < 20 * 1024 ** 3  # VGGT-1B at 200 frames, bf16 aggregator: activations well under 20 GiB


def test_bf16_aggregator_runs_on_cpu():
    """The bf16 path (aggregator cast in place, float32 heads) stays close to float32 on the tiny model."""
    images = load_images_vggt(TINY_FRAMES, mode="crop", target=70)
    ref = run_vggt(tiny_model("pt"), images, device="cpu", precision="fp32")
    net = tiny_model("pt")
    rec = run_vggt(net, images, device="cpu", precision="bf16")
    assert net.aggregator.camera_token.dtype == torch.bfloat16 and net.depth_head.norm.weight.dtype == torch.float32
    rel = np.abs(np.stack(rec.depth) - np.stack(ref.depth)).max() / np.abs(np.stack(ref.depth)).max()
    assert rel < 0.05


def test_head_precision_argument(model):
    images = load_images_vggt(TINY_FRAMES[:1], mode="crop", target=70)
    with pytest.raises(ValueError, match="head_precision"):
        run_vggt(model, images, device="cpu", head_precision="fp8")
    rec = run_vggt(model, images, device="cpu", precision="bf16")
    assert rec.meta["head_precision"] == "fp32" and rec.meta["fused"] is False  # CPU keeps float32 heads
