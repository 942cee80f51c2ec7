"""DA3 preprocessing bit-exact against the reference InputProcessor ($POINTMAP_DA3_PARITY_DIR/preprocess.npz;
names, sizes and methods from its manifest)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers_da3 import DA3_PARITY_DIR, manifest
from pointmap.core.io.da3_images import da3_plan, load_images_da3, normalize_u8, prepare_da3

PRE = manifest().get("preprocess", {})
SINGLE = sorted(k for k in PRE if not k.startswith("batch_"))
BATCH = sorted(k for k in PRE if k.startswith("batch_"))


def _split(key: str):
    method_res, image = key.split("__")
    method, res = method_res.rsplit("_", 1)
    return method, int(res), image


def _png(image: str) -> str:
    return str(DA3_PARITY_DIR / "images" / f"{image}.png")


def test_preprocess_cases_present():
    assert SINGLE and BATCH, f"no preprocessing cases in {DA3_PARITY_DIR / 'manifest.json'}"


@pytest.mark.parametrize("key", SINGLE)
def test_single_image_bit_exact(key):
    ref = np.load(DA3_PARITY_DIR / "preprocess.npz")
    method, res, image = _split(key)
    spec = PRE[key]
    stage1, stage2, crop = da3_plan(*spec["orig_wh"], res, method)
    if stage1 is not None:
        assert list(stage1[:2]) == spec["stage1_wh"]
    ims = load_images_da3([_png(image)], res, method)
    got = ims[0].rgb.transpose(2, 0, 1)
    want = ref[f"u8__{key}"]
    assert got.shape == want.shape and np.array_equal(got, want), key
    assert [got.shape[2], got.shape[1]] == spec["final_wh"]
    # Intrinsics: the focal lengths follow the resize exactly (the principal point follows our pixel-centre
    # convention, K_net = orig_to_net @ K, half a pixel apart from the reference's plain scaling).
    k_net = np.linalg.inv(ims[0].net_to_orig) @ ref[f"K_in__{image}"].astype(np.float64)
    np.testing.assert_allclose(np.diag(k_net)[:2], np.diag(ref[f"K__{key}"])[:2], rtol=1e-6)
    name = f"normalized_f32_first_rows__{key}"
    if name in ref.files:
        x = normalize_u8(torch.from_numpy(np.ascontiguousarray(want)))
        assert torch.equal(x[:, :4], torch.from_numpy(ref[name]))


@pytest.mark.parametrize("key", BATCH)
def test_batch_crop(key):
    ref = np.load(DA3_PARITY_DIR / "preprocess.npz")
    spec = PRE[key]
    method, res = key.removeprefix("batch_").rsplit("_", 1)
    ims = load_images_da3([_png(i) for i in spec["images"]], int(res), method)
    for im, image, (top, left) in zip(ims, spec["images"], spec["crop_top_left"], strict=True):
        single = ref[f"u8__{method}_{res}__{image}"]
        h, w = spec["tensor_shape"][2:]
        assert np.array_equal(im.rgb.transpose(2, 0, 1), single[:, top:top + h, left:left + w])
    k_batch = ref[f"K__{key}"]
    for i, image in enumerate(spec["images"]):
        k_net = np.linalg.inv(ims[i].net_to_orig) @ ref[f"K_in__{image}"].astype(np.float64)
        np.testing.assert_allclose(np.diag(k_net)[:2], np.diag(k_batch[i])[:2], rtol=1e-6)


def test_prepare_rejects_unknown_method():
    with pytest.raises(ValueError, match="unknown DA3 preprocessing method"):
        prepare_da3(np.zeros((20, 20, 3), np.uint8), 70, "nearest")
