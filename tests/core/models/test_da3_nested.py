"""The nested DA3 model (any-view + metric network, any-view depth aligned to metric scale): parity with the
official `NestedDepthAnything3Net` on tiny random models (float32 CPU), the metric model's DPT head with its
sky branch included, and the alignment's own rules.

Cases, configs and files come from $POINTMAP_DA3_NESTED_DIR/manifest.json (default: the shipped copy in
tests/fixtures/da3_nested, written by its generate.py from the official code); a folder without cases fails.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import FIXTURES, fixture_dir
from helpers_vggt import assert_close
from pointmap.core.models.da3 import DA3Nested
from pointmap.core.models.da3.checkpoint import load_da3
from pointmap.core.models.da3.metric import QUANTILE_SAMPLES, align_to_metric

NESTED_DIR = fixture_dir("POINTMAP_DA3_NESTED_DIR", FIXTURES / "da3_nested")
MANIFEST = json.loads((NESTED_DIR / "manifest.json").read_text()) if (NESTED_DIR / "manifest.json").is_file() else {}
CASES = sorted(MANIFEST.get("cases", {}))


def test_cases_present():
    assert CASES, f"no nested DA3 cases in {NESTED_DIR / 'manifest.json'}"
    for case in CASES:
        assert (NESTED_DIR / MANIFEST["cases"][case]["file"]).is_file(), case


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(2)
    net, info = load_da3(NESTED_DIR / "tiny_nested.safetensors", config=MANIFEST["model"])
    assert isinstance(net, DA3Nested) and info.family == "da3"
    return net


@pytest.mark.parametrize("case", CASES)
def test_nested_forward_parity(model, case):
    spec = MANIFEST["cases"][case]
    ref = np.load(NESTED_DIR / spec["file"])
    kwargs = {}
    if spec.get("camera_conditioned"):
        kwargs = {"world2cam": torch.from_numpy(ref["extrinsics_input_normalized"]),
                  "intrinsics": torch.from_numpy(ref["intrinsics_input"])}
    trace: dict = {}
    with torch.no_grad():
        out = model(torch.from_numpy(ref["images"]), trace=trace, **kwargs)
    # The two networks, before alignment: the any-view result and the metric model's raw depth and sky map.
    assert_close(trace["anyview_depth"], ref["anyview_depth"], f"{case}:anyview_depth")
    assert_close(trace["anyview_depth_conf"], ref["anyview_depth_conf"], f"{case}:anyview_depth_conf")
    assert_close(trace["metric_raw_depth"], ref["metric_raw_depth"], f"{case}:metric_raw_depth")
    assert_close(trace["metric_sky"], ref["metric_sky"], f"{case}:metric_sky")
    non_sky = ref["metric_sky"] < 0.3
    assert 10 < non_sky.sum() < non_sky.size, "the case must have both sky and non-sky pixels"
    np.testing.assert_array_equal(out["non_sky"].numpy(), non_sky)
    # The alignment.
    assert abs(float(out["metric_scale"]) - float(ref["scale_factor"])) <= 1e-4 * abs(float(ref["scale_factor"]))
    assert_close(out["depth"], ref["depth"], f"{case}:depth")
    assert_close(out["depth_conf"], ref["depth_conf"], f"{case}:depth_conf")
    assert_close(out["world2cam"], ref["extrinsics"][..., :3, :], f"{case}:extrinsics")
    assert_close(out["intrinsics"], ref["intrinsics"], f"{case}:intrinsics")
    c2w = out["cam2world"].double()
    w2c = out["world2cam"].double()
    np.testing.assert_allclose((c2w[..., :3, :3] @ w2c[..., :3, 3:])[..., 0], -c2w[..., :3, 3], atol=1e-5)


def test_alignment_rules():
    """Sky pixels take the capped 0.99 quantile and the lowest confidence; the fit is least squares over the
    confident non-sky pixels; large inputs are subsampled reproducibly; all-sky input is refused."""
    g = torch.Generator().manual_seed(1)
    shape = (1, 2, 200, 300)   # 120,000 pixels: above the subsampling threshold
    assert np.prod(shape) > QUANTILE_SAMPLES
    depth = torch.rand(shape, generator=g) + 0.5
    conf = torch.rand(shape, generator=g) + 1
    sky = torch.zeros(shape)
    sky[..., :20, :] = 1.0
    k = torch.tensor([[300.0, 0, 150], [0, 300.0, 100], [0, 0, 1]]).expand(1, 2, 3, 3)
    raw = 2.5 * depth   # metric = raw * 300/300: exactly 2.5x the any-view depth
    a = align_to_metric(depth, conf, raw, sky, k)
    b = align_to_metric(depth, conf, raw, sky, k)
    assert torch.equal(a["depth"], b["depth"])
    assert abs(float(a["scale"]) - 2.5) < 1e-5
    top = a["depth"][..., :20, :]
    assert torch.all(top == top.flatten()[0]) and torch.all(a["depth_conf"][..., :20, :] == 1)
    exact = torch.quantile((2.5 * depth[..., 20:, :]).flatten()[:QUANTILE_SAMPLES], 0.99)
    assert abs(float(top.flatten()[0]) - float(exact)) < 0.01
    far = align_to_metric(depth * 1000, conf, raw * 1000, sky, k)
    assert float(far["depth"][0, 0, 0, 0]) == 200.0          # sky depth capped at 200
    with pytest.raises(ValueError, match="sky"):
        align_to_metric(depth, conf, raw, torch.ones(shape), k)
