"""core/weights.py: constructor parsing, every checkpoint layout, strict key checks, clear errors.

Full-size key lists are checked on the meta device (no weights needed); the tiny linear DUSt3R
(.pth and Hugging Face folder) and the tiny VGGT (.pt and .safetensors) are loaded for real.
Directories: $POINTMAP_CKPT_KEYS_DIR (default tests/fixtures/checkpoint_keys), $POINTMAP_PARITY_DIR,
$POINTMAP_VGGT_PARITY_DIR; the VGGT key list is $POINTMAP_VGGT_KEYS (default tests/fixtures/vggt/checkpoint_keys.json).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import re
import shutil

import helpers_parity as hp
import helpers_vggt as hv
import numpy as np
import pytest
import torch
from conftest import FIXTURES, fixture_dir
from helpers_recipe import recipe_state_dict
from pointmap.core.errors import CheckpointError
from pointmap.core.models import build_model
from pointmap.core.models.vggt import build_vggt
from pointmap.core.weights import checkpoint as W

KEYS_DIR = fixture_dir("POINTMAP_CKPT_KEYS_DIR", FIXTURES / "checkpoint_keys")
PARITY_DIR = fixture_dir("POINTMAP_PARITY_DIR", FIXTURES / "parity")
VGGT_PARITY_DIR = fixture_dir("POINTMAP_VGGT_PARITY_DIR", FIXTURES / "vggt" / "parity")
VGGT_KEYS = fixture_dir("POINTMAP_VGGT_KEYS", FIXTURES / "vggt" / "checkpoint_keys.json")
LINEAR_MODEL = hp.linear_model(PARITY_DIR)
LINEAR = LINEAR_MODEL.folder if LINEAR_MODEL else PARITY_DIR / "no-linear-model"
KEY_FILES = sorted(KEYS_DIR.glob("*.json"))


def _meta_state_dict(entries) -> dict[str, torch.Tensor]:
    return {e["key"]: torch.empty(e["shape"], dtype=torch.float32, device="meta") for e in entries}


def _meta_model(class_name: str, kwargs: dict) -> torch.nn.Module:
    with torch.device("meta"):
        return build_model(class_name, kwargs)


def _tiny_vggt_config() -> dict:
    return json.loads((VGGT_PARITY_DIR / "manifest.json").read_text())["tiny_model_config"]


# ------------------------------------------------------------------ constructor strings

def test_key_lists_present():
    assert KEY_FILES, f"no checkpoint key lists in {KEYS_DIR}"


@pytest.mark.parametrize("path", KEY_FILES, ids=lambda p: p.stem)
def test_parse_official_strings(path):
    """README training string + official rewrite == the string load_model instantiates."""
    d = json.loads(path.read_text())
    cls, kwargs = W.parse_constructor(d["pth"]["args_model_from_readme_training_command"])
    cls2, kwargs2 = W.parse_constructor(d["load_model_instantiation_string"], rewrite=False)
    assert cls == cls2 == d["reference_class"]
    assert kwargs == kwargs2
    assert kwargs.get("patch_embed_cls", "PatchEmbedDust3R") == "PatchEmbedDust3R" and kwargs["landscape_only"] is False
    assert kwargs["depth_mode"] == ("exp", -math.inf, math.inf)
    # The Hugging Face config.json of the same checkpoint gives the same class and (default-filled) kwargs.
    hf_cls, hf_kwargs = W.hf_config_to_constructor(d["hf"]["config_json_reconstructed"])
    assert hf_cls == cls
    assert {k: v for k, v in hf_kwargs.items() if k in kwargs} == kwargs


def test_parse_literals_and_rewrite():
    cls, kw = W.parse_constructor("AsymmetricMASt3R(a=-inf, b=np.inf, c=[1, (2,)], d={'x': -1.5}, e=None, "
                                  "patch_embed_cls='ManyAR_PatchEmbed', landscape_only=True)")
    assert cls == "AsymmetricMASt3R"
    assert kw["a"] == -math.inf and kw["b"] == math.inf and kw["c"] == (1, (2,)) and kw["d"] == {"x": -1.5}
    assert kw["e"] is None and kw["patch_embed_cls"] == "PatchEmbedDust3R" and kw["landscape_only"] is False
    assert W.parse_constructor("X(landscape_only=True)", rewrite=False)[1] == {"landscape_only": True}


@pytest.mark.parametrize("text", [
    "AsymmetricCroCo3DStereo(a=__import__('os').system('true'))",
    "AsymmetricCroCo3DStereo(a=open('/etc/passwd'))",
    "AsymmetricCroCo3DStereo(a=(lambda: 1)())",
    "AsymmetricCroCo3DStereo(1, 2)",
    "AsymmetricCroCo3DStereo(**{'a': 1})",
    "os.system('true')",
    "AsymmetricCroCo3DStereo(a=1",
    "AsymmetricCroCo3DStereo(a=-'x')",
    "",
])
def test_parse_rejects_non_literals(text):
    with pytest.raises(CheckpointError, match="constructor string"):
        W.parse_constructor(text)


# ------------------------------------------------------------------ full-size key lists on meta

@pytest.mark.parametrize("path", KEY_FILES, ids=lambda p: p.stem)
def test_official_key_list_loads_strictly(path):
    d = json.loads(path.read_text())
    cls, kwargs = W.parse_constructor(d["load_model_instantiation_string"])
    family = W.FAMILY_OF_CLASS[cls]
    model = _meta_model(cls, kwargs)
    expected = model.state_dict()
    assert list(expected) == [e["key"] for e in d["state_dict"]]
    notes = W.load_state_dict_into(model, _meta_state_dict(d["state_dict"]), family, path.name)
    assert notes == []
    assert W.count_parameters(model) == d["total_params_unique"]
    loaded = model.state_dict()
    for e in d["state_dict"]:
        assert tuple(loaded[e["key"]].shape) == tuple(e["shape"])


@pytest.mark.parametrize("path", KEY_FILES, ids=lambda p: p.stem)
def test_hf_layout_restores_dropped_aliases(path):
    d = json.loads(path.read_text())
    cls, kwargs = W.hf_config_to_constructor(d["hf"]["config_json_reconstructed"])
    model = _meta_model(cls, kwargs)
    dropped = d["hf"]["safetensors_dropped_aliases"]
    alias_of = {e["key"]: e.get("hf_safetensors_dropped_alias_of") for e in d["state_dict"]}
    sd = {k: v for k, v in _meta_state_dict(d["state_dict"]).items() if k not in dropped}
    assert len(sd) == d["hf"]["safetensors_num_tensors"]
    notes = W.load_state_dict_into(model, sd, W.FAMILY_OF_CLASS[cls], path.name)
    assert bool(dropped) == any("alias" in n for n in notes)
    loaded = model.state_dict(keep_vars=True)
    for key in dropped:
        assert loaded[key] is loaded[alias_of[key]]   # the same Parameter, as in the reference


def _dust3r_key_list() -> dict:
    """The set's first DUSt3R key list (chosen by its reference class, never by a shipped file name)."""
    for path in KEY_FILES:
        d = json.loads(path.read_text())
        if d["reference_class"] == "AsymmetricCroCo3DStereo":
            return d
    raise AssertionError(f"{KEYS_DIR}: no DUSt3R (AsymmetricCroCo3DStereo) key list")


def test_single_decoder_checkpoint_is_duplicated():
    """The CroCo loader copies dec_blocks.* to dec_blocks2.* when the latter are absent."""
    d = _dust3r_key_list()
    model = _meta_model(*W.parse_constructor(d["load_model_instantiation_string"]))
    sd = {k: v for k, v in _meta_state_dict(d["state_dict"]).items() if not k.startswith("dec_blocks2.")}
    notes = W.load_state_dict_into(model, sd, "dust3r", "single-decoder")
    assert any("dec_blocks2" in n for n in notes)


@pytest.mark.parametrize("change, words", [
    ("extra", ["1 unexpected", "downstream_head1.bogus.weight"]),
    ("missing", ["1 missing", "enc_norm.weight"]),
    ("shape", ["1 mis-shaped", "enc_norm.bias"]),
])
def test_wrong_model_is_named(change, words):
    d = _dust3r_key_list()
    model = _meta_model(*W.parse_constructor(d["load_model_instantiation_string"]))
    sd = _meta_state_dict(d["state_dict"])
    if change == "extra":
        sd["downstream_head1.bogus.weight"] = torch.empty(3, device="meta")
    elif change == "missing":
        del sd["enc_norm.weight"]
    else:
        sd["enc_norm.bias"] = torch.empty(7, device="meta")
    with pytest.raises(CheckpointError) as err:
        W.load_state_dict_into(model, sd, "dust3r", "model-x.pth")
    for word in ["model-x.pth", *words]:
        assert word in str(err.value)


def test_vggt_key_list_loads_without_track_head():
    """Our VGGT has no track head: exactly the official track_head.* keys are ignored (with a note)."""
    d = json.loads(VGGT_KEYS.read_text())
    with torch.device("meta"):
        model = build_vggt(None)
    sd = _meta_state_dict(d["keys"])
    ours = set(model.state_dict())
    assert set(sd) - ours == {k for k in sd if k.startswith("track_head.")}
    assert ours <= set(sd)
    notes = W.load_state_dict_into(model, sd, "vggt", VGGT_KEYS.name)
    assert any("track_head" in n for n in notes)
    assert W.count_parameters(model) == d["total_parameters"] - d["numel_by_top_module"]["track_head"]


# ------------------------------------------------------------------ real tiny checkpoints

def _linear_facts() -> tuple[int, int]:
    """(parameter count, input size) of the set's linear model, from its recipe and constructor string."""
    entries = json.loads((LINEAR / "weights_recipe.json").read_text())["entries"]
    n = sum(int(np.prod(e["shape"])) for e in entries)       # the tiny linear model has no buffers
    size = re.search(r"img_size=\((\d+), (\d+)\)", LINEAR_MODEL.constructor)
    return n, max(int(size.group(1)), int(size.group(2)))


def test_tiny_linear_pth_and_hf_load_identically():
    assert LINEAR_MODEL is not None, f"{PARITY_DIR}: no DUSt3R model with a linear head and a model.pth"
    recipe = recipe_state_dict(LINEAR)
    m_pth, info_pth = W.load_checkpoint(LINEAR / "model.pth")
    m_hf, info_hf = W.load_checkpoint(LINEAR / "hf")
    assert (info_pth.source_format, info_hf.source_format) == ("pth", "hf")
    assert info_pth.family == info_hf.family == "dust3r" and info_pth.class_name == "AsymmetricCroCo3DStereo"
    n_params, input_size = _linear_facts()
    assert info_pth.num_params == info_hf.num_params == n_params and info_pth.input_size == input_size
    for model in (m_pth, m_hf):
        sd = model.state_dict()
        assert list(sd) == list(recipe)
        for k, v in recipe.items():
            assert sd[k].dtype == torch.float32 and torch.equal(sd[k], v), k
        assert not any(t.is_meta for t in sd.values()) and not model.training
    # The model file inside the .hf folder's safetensors also loads on its own when named directly.
    assert W.load_checkpoint(LINEAR / "hf" / "model.safetensors")[1].source_format == "hf"


def test_meta_assign_load_gives_reference_outputs():
    """Built on meta + memory-mapped tensors assigned: the forward pass matches an ordinary load and the
    official outputs."""
    model, info = W.load_checkpoint(LINEAR / "model.pth")
    plain = build_model(info.class_name, info.kwargs)
    plain.load_state_dict(recipe_state_dict(LINEAR, check=False))
    plain.eval()
    case = next(c for name, c in hp.model_cases(PARITY_DIR) if name == LINEAR_MODEL.name)
    inputs = hp.load_inputs(case, PARITY_DIR)
    with np.load(LINEAR / f"outputs_{case}.npz") as z:
        ref = {k: z[k] for k in z.files}
    results = []
    for fw in hp.forwards(inputs):
        v1, v2 = ({"img": torch.from_numpy(fw[f"view{i}_img"])} for i in (1, 2))
        with torch.no_grad():
            r1, r2 = model(v1, v2)
            p1, p2 = plain(v1, v2)
        assert torch.equal(r1["pts3d"], p1["pts3d"]) and \
            torch.equal(r2["pts3d_in_other_view"], p2["pts3d_in_other_view"])
        results.append((r1, r2))
    for key, want in ref.items():
        f, pred, field = hp.split_output_key(key, inputs)
        got = results[f][0 if pred == "pred1" else 1][field].numpy()
        got = got if hp.is_batched(inputs) else got[0]
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max() + 1e-6, key


def test_tiny_vggt_pt_and_safetensors(tmp_path):
    config = _tiny_vggt_config()
    m_pt, i_pt = W.load_checkpoint(hv.weights_file("pt"), vggt_config=config)
    m_st, i_st = W.load_checkpoint(hv.weights_file("safetensors"), vggt_config=config)
    assert (i_pt.source_format, i_st.source_format) == ("vggt_pt", "vggt_safetensors")
    assert i_pt.family == "vggt" and i_pt.num_params == hv.manifest()["tiny_model_num_params"] and i_pt.input_size == config["img_size"]
    a, b = m_pt.state_dict(), m_st.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    # A Hugging Face style VGGT folder (config.json + model.safetensors).
    (tmp_path / "hf").mkdir()
    shutil.copy(hv.weights_file("safetensors"), tmp_path / "hf" / "model.safetensors")
    (tmp_path / "hf" / "config.json").write_text('{"img_size": 518, "patch_size": 14, "embed_dim": 32}')
    assert W.load_checkpoint(tmp_path / "hf", vggt_config=config)[1].source_format == "vggt_safetensors"
    with pytest.raises(CheckpointError, match="mis-shaped"):          # built as VGGT-1B: shapes differ
        W.load_checkpoint(tmp_path / "hf")
    # The official model.pt carries track_head.* tensors: they are ignored with a note.
    sd = dict(torch.load(hv.weights_file("pt"), weights_only=True))
    sd["track_head.tracker.fake.weight"] = torch.zeros(2)
    torch.save(sd, tmp_path / "model.pt")
    _, info = W.load_checkpoint(tmp_path, vggt_config=config)     # a folder holding model.pt
    assert info.source_format == "vggt_pt" and any("track_head" in n for n in info.notes)
    assert W.load_checkpoint(tmp_path, vggt_config=config)[0].checkpoint_notes == info.notes
    # ...but any other foreign key is an error naming it, whatever its prefix.
    sd["aggregator.bogus"] = torch.zeros(2)
    sd["foo.bar"] = torch.zeros(1)
    torch.save(sd, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="2 unexpected keys: aggregator.bogus, foo.bar"):
        W.load_checkpoint(tmp_path / "model.pt", vggt_config=config)


def test_load_vggt_is_the_vggt_front_of_load_checkpoint(tmp_path):
    """load_vggt gives the same weights as load_checkpoint and refuses a DUSt3R file with a clear error."""
    from pointmap.core.models.vggt import VGGT, load_vggt, read_state_dict

    config = _tiny_vggt_config()
    path = hv.weights_file("safetensors")
    model = load_vggt(path, config=config)
    ref = W.load_checkpoint(path, vggt_config=config)[0].state_dict()
    assert isinstance(model, VGGT) and not model.training and model.checkpoint_notes == []
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())
    assert not model.aggregator.patch_embed.mask_token.requires_grad     # as the module declares it
    assert list(read_state_dict(path)) == W.safetensors_keys(path)
    for fn in (load_vggt, read_state_dict):
        with pytest.raises(CheckpointError, match="dust3r checkpoint.*not a VGGT"):
            fn(LINEAR / "model.pth")


def test_input_size_defaults_to_the_reference_constructor(tmp_path):
    """A config.json without img_size builds the reference default (224), and that is the input size."""
    shutil.copytree(LINEAR / "hf", tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    del config["img_size"]
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config))
    assert W.load_checkpoint(tmp_path / "hf")[1].input_size == 224
    assert W.load_checkpoint(LINEAR / "hf")[1].input_size == 64


def test_vggt_with_wrong_config_is_rejected():
    with pytest.raises(CheckpointError, match="mis-shaped"):
        W.load_checkpoint(hv.weights_file("safetensors"), vggt_config=dict(_tiny_vggt_config(), depth=4,
                                                                                         embed_dim=48))


# ------------------------------------------------------------------ broken files

def _expect(path, *words):
    with pytest.raises(CheckpointError) as err:
        W.load_checkpoint(path)
    for word in (str(path), *words):
        assert word in str(err.value), str(err.value)


def test_missing_and_empty(tmp_path):
    _expect(tmp_path / "nope.pth", "does not exist")
    (tmp_path / "empty.pth").write_bytes(b"")
    _expect(tmp_path / "empty.pth", "empty")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("hi")
    _expect(tmp_path / "folder", "no usable checkpoint", "config.json")


def test_truncated_and_garbage_files(tmp_path):
    data = (LINEAR / "model.pth").read_bytes()
    for n, cut in enumerate((len(data) // 2, len(data) - 30, 100)):
        (tmp_path / f"cut{n}.pth").write_bytes(data[:cut])
        _expect(tmp_path / f"cut{n}.pth", "truncated or corrupt")
    (tmp_path / "garbage.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    _expect(tmp_path / "garbage.pth", "not a checkpoint")
    (tmp_path / "page.pth").write_bytes(b"<html><body>Not found</body></html>")
    _expect(tmp_path / "page.pth", "not a checkpoint")

    st = (LINEAR / "hf" / "model.safetensors").read_bytes()
    hf = tmp_path / "hf"
    hf.mkdir()
    shutil.copy(LINEAR / "hf" / "config.json", hf / "config.json")
    (hf / "model.safetensors").write_bytes(st[: len(st) // 3])
    _expect(hf, "truncated")
    (hf / "model.safetensors").write_bytes(st[:8] + b"[1, 2]" + st[14:])
    _expect(hf, "not a valid safetensors")
    (hf / "config.json").write_text("{not json")
    (hf / "model.safetensors").write_bytes(st)
    _expect(hf, "config.json", "JSON")


def test_safetensors_without_config(tmp_path):
    shutil.copy(LINEAR / "hf" / "model.safetensors", tmp_path / "model.safetensors")
    _expect(tmp_path / "model.safetensors", "config.json")
    _expect(tmp_path, "config.json")


def test_pth_problems(tmp_path):
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(LINEAR / "model.pth", weights_only=True)
    sd, ctor = ckpt["model"], ckpt["args"].model

    def save(name, obj):
        torch.save(obj, tmp_path / name)
        return tmp_path / name

    _expect(save("bigger.pth", {"model": sd, "args": argparse.Namespace(model=ctor.replace("enc_embed_dim=48",
                                                                                           "enc_embed_dim=96"))}),
            "does not fit", "mis-shaped")
    _expect(save("other.pth", {"model": sd, "args": argparse.Namespace(model="CroCoNet(enc_depth=2)")}),
            "CroCoNet", "supported")
    _expect(save("badarg.pth", {"model": sd, "args": argparse.Namespace(model=ctor[:-1] + ", colour='red')")}),
            "colour")
    _expect(save("evil.pth", {"model": sd, "args": argparse.Namespace(model="AsymmetricCroCo3DStereo(a=exit())")}),
            "not a plain literal")
    _expect(save("noargs.pth", {"model": sd}), "no args.model")
    _expect(save("bare.pth", dict(sd)), "unknown network")
    _expect(save("unsafe.pth", {"model": sd, "args": argparse.Namespace(model=ctor, out=pathlib.PurePosixPath("/x"))}),
            "not loaded for safety", "PurePosixPath")
    # args stored as a plain dict (some conversions do that) works like the Namespace.
    _, info = W.load_checkpoint(save("dictargs.pth", {"model": sd, "args": {"model": ctor}}))
    assert info.family == "dust3r"
    # A single-decoder checkpoint: dec_blocks2 is recreated from dec_blocks.
    single = {k: v for k, v in sd.items() if not k.startswith("dec_blocks2.")}
    model, info = W.load_checkpoint(save("single.pth", {"model": single, "args": argparse.Namespace(model=ctor)}))
    assert any("dec_blocks2" in n for n in info.notes)
    assert torch.equal(model.state_dict()["dec_blocks2.0.norm1.weight"], sd["dec_blocks.0.norm1.weight"])


def test_read_checkpoint_is_light():
    raw = W.read_checkpoint(LINEAR / "hf")
    assert raw.source_format == "hf" and raw.class_name == "AsymmetricCroCo3DStereo"
    assert W.safetensors_keys(LINEAR / "hf" / "model.safetensors") == list(W.read_safetensors(
        LINEAR / "hf" / "model.safetensors"))


def test_in_place_changes_never_reach_the_file(tmp_path):
    """Weights are private memory maps: engines may cast/scale them in place without touching the checkpoint."""
    shutil.copytree(LINEAR / "hf", tmp_path / "hf")
    shutil.copy(LINEAR / "model.pth", tmp_path / "model.pth")
    before = {p: p.read_bytes() for p in (tmp_path / "hf" / "model.safetensors", tmp_path / "model.pth")}
    for path in (tmp_path / "hf", tmp_path / "model.pth"):
        model, _ = W.load_checkpoint(path)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(0)
    assert all(p.read_bytes() == data for p, data in before.items())
    assert torch.equal(W.load_checkpoint(tmp_path / "hf")[0].state_dict()["enc_norm.weight"],
                       recipe_state_dict(LINEAR, check=False)["enc_norm.weight"])
