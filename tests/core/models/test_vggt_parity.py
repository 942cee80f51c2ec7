"""VGGT network parity with the official implementation (tiny random model, float32 CPU).

Loops over every tiny_outputs_*.npz in $POINTMAP_VGGT_PARITY_DIR (default tests/fixtures/vggt/parity).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_vggt import VGGT_PARITY_DIR, assert_close, cases, tiny_model, weights_file
from pointmap.core.errors import CheckpointError
from pointmap.core.models.vggt import (
    build_vggt,
    extri_intri_to_pose_encoding,
    load_vggt,
    pose_encoding_to_extri_intri,
    unproject_depth,
)

CASES = cases()


def test_cases_present():
    assert CASES, f"no tiny_outputs_*.npz in {VGGT_PARITY_DIR}"


@pytest.fixture(scope="module", params=["pt", "safetensors"])
def model(request):
    return tiny_model(request.param)


@pytest.mark.parametrize("case", CASES)
def test_forward_parity(model, case):
    ref = np.load(VGGT_PARITY_DIR / f"tiny_outputs_{case}.npz")
    images = torch.from_numpy(ref["images"])
    b, s, _, h, w = images.shape
    with torch.no_grad():
        dino = model.aggregator.patch_tokens(images).reshape(b, s, -1, model.aggregator.patch_embed.norm.weight.shape[0])
        out = model(images, keep_all_layers=True)
    assert_close(dino, ref["dino_patch_tokens"], "dino_patch_tokens")
    for i, layer in enumerate(out["aggregated_tokens"]):
        assert_close(layer, ref["aggregated_tokens"][i], f"aggregated_tokens[{i}]")
    for i, pose in enumerate(out["pose_enc_list"]):
        assert_close(pose, ref["pose_enc_list"][i], f"pose_enc_list[{i}]")
    for key in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf"):
        assert_close(out[key], ref[key], key)

    extrinsic, intrinsic = pose_encoding_to_extri_intri(out["pose_enc"], (h, w))
    assert_close(extrinsic, ref["extrinsic"], "extrinsic")
    assert_close(intrinsic, ref["intrinsic"], "intrinsic")
    assert_close(extri_intri_to_pose_encoding(extrinsic, intrinsic, (h, w)), ref["pose_enc_roundtrip"],
                 "pose_enc_roundtrip")
    pts = np.stack([unproject_depth(out["depth"][i].numpy(), extrinsic[i].numpy(), intrinsic[i].numpy())
                    for i in range(b)])
    assert str(ref["unprojected_points_float64dtype"]) == str(pts.dtype)
    assert_close(pts, ref["unprojected_points"], "unprojected_points")


def test_dino_pos_embed_interpolation(model):
    ref = np.load(VGGT_PARITY_DIR / "dino_pos_embed_interp.npz")
    assert ref.files
    for key in ref.files:
        h, w = (int(part[1:]) for part in key.split("_"))
        with torch.no_grad():
            got = model.aggregator.patch_embed.interpolate_pos_encoding(h, w)
        assert_close(got, ref[key], f"pos_embed {key}")


def test_full_model_keys_match_official_layout():
    keys = json.loads((VGGT_PARITY_DIR.parent / "checkpoint_keys.json").read_text())["keys"]
    official = {k["key"]: tuple(k["shape"]) for k in keys if not k["key"].startswith("track_head.")}
    with torch.device("meta"):
        net = build_vggt()
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert list(ours) == list(official)
    assert ours == official


def test_tiny_keys_match_manifest():
    manifest = json.loads((VGGT_PARITY_DIR / "manifest.json").read_text())
    model = tiny_model("pt")
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == \
        {k: tuple(s) for k, s in manifest["tiny_model_state_dict_keys"]}
    assert sum(p.numel() for p in model.parameters()) == manifest["tiny_model_num_params"]


def test_checkpoint_errors(tmp_path: Path):
    from helpers_vggt import tiny_config

    sd = torch.load(weights_file("pt"), weights_only=True)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_vggt(tmp_path / "nope.pt", config=tiny_config())
    bad = tmp_path / "truncated.pt"
    bad.write_bytes((weights_file("pt")).read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="Cannot read"):
        load_vggt(bad, config=tiny_config())
    missing = dict(sd)
    missing.pop("camera_head.embed_pose.bias")
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="1 missing keys: camera_head.embed_pose.bias"):
        load_vggt(tmp_path / "missing.pt", config=tiny_config())
    extra = dict(sd, **{"foo.bar": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match="unexpected keys: foo.bar"):
        load_vggt(tmp_path / "extra.pt", config=tiny_config())
    shaped = dict(sd, **{"camera_head.embed_pose.bias": torch.zeros(3)})
    torch.save(shaped, tmp_path / "shaped.pt")
    with pytest.raises(CheckpointError, match="mis-shaped"):
        load_vggt(tmp_path / "shaped.pt", config=tiny_config())
    with pytest.raises(CheckpointError, match="does not fit"):
        load_vggt(weights_file("pt"))  # full-size config, tiny weights
    # track_head.* is accepted and ignored with a note; a folder resolves to its model file.
    tracked = dict(sd, **{"track_head.tracker.w": torch.zeros(2)})
    (tmp_path / "folder").mkdir()
    torch.save(tracked, tmp_path / "folder" / "model.pt")
    loaded = load_vggt(tmp_path / "folder", config=tiny_config())
    assert loaded.checkpoint_notes and "track_head" in loaded.checkpoint_notes[0]


def test_fused_block_path_matches_eager(model):
    """The GPU fused path's two functions (run uncompiled here) equal the eager blocks in float32."""
    from pointmap.core.models.vggt.rope import rope_tables

    agg = model.aggregator
    torch.manual_seed(0)
    x = torch.randn(2, agg.patch_start_idx + 6, agg.frame_blocks[0].norm1.weight.shape[0])
    cos, sin = rope_tables(agg.rope, 2, 3, agg.patch_start_idx, agg.head_dim, x.device)
    with torch.no_grad():
        for blk, rope in ((agg.frame_blocks[0], (cos, sin)), (agg.patch_embed.blocks[0], None)):
            ref = blk(x, rope)
            got = blk._forward_fused(x, rope, compiled=False)
            assert_close(got, ref, "fused block", tol=1e-5)
