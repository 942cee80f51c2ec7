"""DA3 network parity with the official implementation (tiny random model, float32 CPU), and the
strict key layout of every published preset.

Cases, names and configs come from $POINTMAP_DA3_PARITY_DIR/manifest.json (default: the shipped copy in
tests/fixtures/da3/parity); a folder without cases fails `test_cases_present`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers_da3 import DA3_KEYS_FILE, DA3_PARITY_DIR, manifest, tiny_model
from helpers_vggt import assert_close
from pointmap.core.errors import CheckpointError
from pointmap.core.models.da3 import build_da3
from pointmap.core.models.da3.camera import c2w_intrinsics_to_pose_encoding
from pointmap.core.models.vggt.dino import interpolate_pos_embed
from pointmap.core.weights.checkpoint import check_state_dict, prepare_state_dict, read_safetensors

MANIFEST = manifest()
CASES = sorted(MANIFEST.get("cases", {}))
PRESETS = sorted(json.loads(DA3_KEYS_FILE.read_text())["configs"]) if DA3_KEYS_FILE.is_file() else []


def test_cases_present():
    assert CASES, f"no parity cases in {DA3_PARITY_DIR / 'manifest.json'}"
    for case in CASES:
        assert (DA3_PARITY_DIR / MANIFEST["cases"][case]["file"]).is_file(), case
    assert PRESETS, f"no preset key lists in {DA3_KEYS_FILE}"


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(2)
    net, info = tiny_model()
    assert len(net.state_dict()) == MANIFEST["tiny_model_num_state_dict_keys"]
    return net


def _run(model, case: str):
    spec = MANIFEST["cases"][case]
    ref = np.load(DA3_PARITY_DIR / spec["file"])
    kwargs = {}
    if spec.get("camera_conditioned"):
        kwargs = {"world2cam": torch.from_numpy(ref["extrinsics_input_normalized"]),
                  "intrinsics": torch.from_numpy(ref["intrinsics_input"])}
    trace: dict = {}
    images = torch.from_numpy(ref["images"])
    frames = images.shape[0] * images.shape[1]   # one head chunk, so the traced head maps cover every frame
    with torch.no_grad():
        out = model(images, rays=True, trace=trace, frame_chunk=max(8, frames), **kwargs)
    return spec, ref, out, trace


@pytest.mark.parametrize("case", CASES)
def test_forward_parity(model, case):
    spec, ref, out, trace = _run(model, case)
    b, s, _, h, w = ref["images"].shape
    assert (b, s, h, w) == (spec["B"], spec["S"], spec["H"], spec["W"])
    ours = {
        "pos_embed_interp": trace["pos_embed_interp"],
        "tokens_init": trace["tokens_init"],
        "block_outputs": torch.stack(trace["block_outputs"]),
        "backbone_feats": torch.stack(trace["backbone_feats"]),
        "backbone_cam_tokens": torch.stack(trace["backbone_cam_tokens"]),
        "cam_dec_input": trace["backbone_cam_tokens"][-1],
        "depth": out["depth"], "depth_conf": out["depth_conf"], "ray": out["ray"], "ray_conf": out["ray_conf"],
        "pose_enc": out["pose_enc"], "c2w": out["cam2world"], "extrinsics": out["world2cam"],
        "intrinsics": out["intrinsics"],
        "pose_enc_roundtrip": c2w_intrinsics_to_pose_encoding(out["cam2world"], out["intrinsics"], (h, w)),
    }
    ours.update({f"head_layer{k}_rn": trace[f"head_layer{k}_rn"] for k in range(1, 5)})
    for key in ("cam_enc_pose_encoding", "cam_enc_token_norm", "cam_enc_out"):
        if key in trace:
            ours[key] = trace[key]
    gh, gw = h // 14, w // 14
    for layer in spec.get("export_feat_layers", []):
        # Exported features: final norm of the block output, in processing order (not restored).
        x = model.backbone.pretrained.norm(trace["block_outputs"][layer][:, :, 1:])
        ours[f"aux_feat_layer_{layer}"] = x.reshape(b, s, gh, gw, -1)
    if spec.get("ref_view_selection"):
        assert torch.equal(trace["ref_view_order"], torch.from_numpy(ref["ref_view_order"]))
        assert trace["ref_view_order"][:, 0].tolist() == ref["ref_view_index"].tolist()
        assert int(ref["ref_view_index"][0]) == spec["ref_view_selection"]["selected_index"]
        ours["ref_view_strategy_input_cls"] = trace["ref_view_strategy_input_cls"]
    else:
        assert "ref_view_order" not in trace
    if "camera_conditioned" in spec and spec["camera_conditioned"]:
        assert "cam_enc_out" in ours
    compared = 0
    for key, value in ours.items():
        if key in ref.files:
            assert_close(value.detach().float().numpy(), ref[key], f"{case}:{key}")
            compared += 1
    for key in ("depth", "depth_conf", "pose_enc", "extrinsics", "intrinsics", "block_outputs", "backbone_feats"):
        assert key in ref.files, f"{case}: the fixture lacks {key}"
    assert compared >= 12
    if "world_points" in ref.files:
        from pointmap.core.models.vggt.pose import unproject_depth

        pts = unproject_depth(out["depth"][0].numpy(), out["world2cam"][0].numpy(), out["intrinsics"][0].numpy())
        assert_close(pts[None], ref["world_points"], f"{case}:world_points")


@pytest.mark.parametrize("case", CASES)
def test_reference_view_strategies(model, case):
    from pointmap.core.models.da3.reference import reference_index

    spec = MANIFEST["cases"][case]
    if not spec.get("ref_view_selection"):
        return
    ref = np.load(DA3_PARITY_DIR / spec["file"])
    cls = torch.from_numpy(ref["ref_view_strategy_input_cls"])
    for strategy, index in spec["ref_view_selection"]["index_under_other_strategies"].items():
        assert reference_index(cls, strategy).tolist() == [index], strategy


def test_pos_embed_interpolation_real_size(model):
    ref = np.load(DA3_PARITY_DIR / "pos_embed_interp.npz")
    assert ref.files
    for key in ref.files:
        h, w = (int(part[1:]) for part in key.split("_"))
        got = interpolate_pos_embed(model.backbone.pretrained.pos_embed.detach(), h // 14, w // 14, 0.1, False)
        assert_close(got, ref[key], f"pos_embed {key}")


def test_tied_layernorm_restored_from_metadata():
    sd = read_safetensors(DA3_PARITY_DIR / "tiny_da3.safetensors")
    kept = sd["model.head.scratch.output_conv2_aux.0.2.weight"]
    for level in (1, 2, 3):
        assert sd[f"model.head.scratch.output_conv2_aux.{level}.2.weight"] is kept


def _meta_state_dict(preset: str) -> dict:
    keys = json.loads(DA3_KEYS_FILE.read_text())["configs"][preset]["keys"]
    return {name: torch.empty(shape, device="meta") for name, shape, *_ in keys}


@pytest.mark.parametrize("preset", PRESETS)
def test_full_size_keys_strict(preset):
    """Every published layout fits our network exactly: every key and shape, none dropped (Giant's gs_head too)."""
    sd = _meta_state_dict(preset)
    with torch.device("meta"):
        net = build_da3(preset)
    expected = net.state_dict(keep_vars=True)
    fixed, notes = prepare_state_dict(sd, "da3", expected)
    check_state_dict(fixed, expected, preset)
    assert set(fixed) == {k[len("model."):] for k in sd}
    assert ("giant" in preset) == any(".gs_head." in f".{k}" for k in fixed)
    # Anything else missing or extra is an error, never ignored.
    extra = dict(sd)
    extra["model.head.not_a_tensor"] = torch.empty(1, device="meta")
    with pytest.raises(CheckpointError, match="unexpected"):
        check_state_dict(prepare_state_dict(extra, "da3", expected)[0], expected, preset)
    short = dict(sd)
    short.pop(next(k for k in sd if ".blocks.0.norm1.weight" in k))
    with pytest.raises(CheckpointError, match="missing"):
        check_state_dict(prepare_state_dict(short, "da3", expected)[0], expected, preset)


def test_layout_detects_preset():
    from pointmap.core.models.da3.config import preset_from_keys

    for preset in PRESETS:
        shapes = {k[len("model."):]: tuple(v.shape) for k, v in _meta_state_dict(preset).items()}
        want = "da3mono-large" if preset == "da3metric-large" else preset
        assert preset_from_keys(shapes) == want, preset


def test_checkpoint_errors_name_the_file(tmp_path):
    """A DA3 file whose layout is no published preset needs a config; a config naming a preset the tensors
    do not fit, or an unknown model, is refused with the path in the message (never loaded non-strictly)."""
    import shutil

    from pointmap.core.models.da3.checkpoint import load_da3

    src = DA3_PARITY_DIR / "tiny_da3.safetensors"
    with pytest.raises(CheckpointError, match="match no published preset"):
        load_da3(src)
    folder = tmp_path / "hf"
    folder.mkdir()
    shutil.copy(src, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"model_name": "da3-small"}))
    with pytest.raises(CheckpointError, match=str(folder)):
        load_da3(folder)
    (folder / "config.json").write_text(json.dumps({"model_name": "da3-tiny-unknown"}))
    with pytest.raises(CheckpointError, match="does not know"):
        load_da3(folder)
    # With the right architecture given explicitly, the folder loads strictly.
    (folder / "config.json").write_text(json.dumps({"model_name": "da3-small"}))
    net, info = load_da3(folder, config=MANIFEST["tiny_model_config"])
    assert info.family == "da3" and info.input_size == 504 and info.source_format == "da3_safetensors"
