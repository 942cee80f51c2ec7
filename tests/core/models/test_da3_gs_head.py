"""DA3-Giant's Gaussian-splatting head (head.GSDPT, the checkpoints' `gs_head.*`): parity of its network with
the official `GSDPT` on a tiny seeded head (float32 CPU), and that it runs only when asked for.

Cases, the head config and files come from $POINTMAP_DA3_GS_DIR/manifest.json (default: the shipped copy in
tests/fixtures/da3_gs, written by its generate.py from the official code); a folder without cases fails.
The reference's GaussianAdapter (raw parameters -> world-space Gaussians) is not implemented or tested.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import FIXTURES, fixture_dir
from helpers_vggt import assert_close
from pointmap.core.models.da3 import build_da3
from pointmap.core.models.da3.head import GS_PARAMS, GSDPT
from pointmap.core.weights.checkpoint import read_safetensors

GS_DIR = fixture_dir("POINTMAP_DA3_GS_DIR", FIXTURES / "da3_gs")
MANIFEST = json.loads((GS_DIR / "manifest.json").read_text()) if (GS_DIR / "manifest.json").is_file() else {}
CASES = sorted(MANIFEST.get("cases", {}))


def test_cases_present():
    assert CASES, f"no DA3 Gaussian-head cases in {GS_DIR / 'manifest.json'}"


@pytest.fixture(scope="module")
def head():
    cfg = MANIFEST["head"]
    assert cfg["output_dim"] == GS_PARAMS + 1
    net = GSDPT(cfg["dim_in"], cfg["features"], cfg["out_channels"], cfg["patch_size"]).eval()
    sd = {k.removeprefix("gs_head."): v for k, v in read_safetensors(GS_DIR / "tiny_gs_head.safetensors").items()}
    net.load_state_dict(sd, strict=True)
    return net


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("frame_chunk", [1, 8])
def test_gs_head_parity(head, case, frame_chunk):
    ref = np.load(GS_DIR / MANIFEST["cases"][case]["file"])
    feats = [torch.from_numpy(f) for f in ref["backbone_feats"]]
    with torch.no_grad():
        out = head(feats, torch.from_numpy(ref["images"]), frame_chunk)
    assert_close(out["raw_gs"], ref["raw_gs"], f"{case} raw_gs")
    assert_close(out["raw_gs_conf"], ref["raw_gs_conf"], f"{case} raw_gs_conf")


def test_gs_head_runs_only_on_request():
    torch.manual_seed(0)
    cfg = {"embed_dim": 32, "depth": 4, "num_heads": 2, "out_layers": [0, 1, 2, 3], "alt_start": 2,
           "qknorm_start": 2, "rope_start": 2, "cat_token": True, "head": "dualdpt", "features": 8,
           "out_channels": [4, 8, 12, 16], "cam_enc_depth": 1, "cam_enc_heads": 2, "gs_head": True}
    net = build_da3(cfg).eval()
    x = torch.randn(1, 2, 3, 28, 42)
    with torch.no_grad():
        plain = net(x)
        both = net(x, gs=True)
        assert "raw_gs" not in plain
        assert both["raw_gs"].shape == (1, 2, 28, 42, GS_PARAMS) and both["raw_gs_conf"].shape == (1, 2, 28, 42)
        assert torch.equal(plain["depth"], both["depth"])
        with pytest.raises(ValueError, match="no Gaussian-splatting head"):
            build_da3({**cfg, "gs_head": False}).eval()(x, gs=True)
