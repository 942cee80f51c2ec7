"""Checkpoint loading: official DUSt3R / MASt3R `.pth`, Hugging Face folders, VGGT state_dicts.

Accepted layouts (details in tests/fixtures/README.md and tests/fixtures/vggt/README.md):

* official `.pth` (download.europe.naverlabs.com): a `torch.save`d dict
  `{"model": state_dict, "args": argparse.Namespace(model="AsymmetricCroCo3DStereo(...)", ...)}`.
  The constructor string is parsed with `ast` (never evaluated) and rewritten as the official loader does.
* Hugging Face folder (`PyTorchModelHubMixin`): `config.json` (constructor kwargs, `Infinity` tokens) and
  `model.safetensors`, which lacks the 8 DPT alias keys `downstream_head{1,2}.dpt.scratch.layer_rn.{0..3}.weight`.
  One key that is not a constructor argument is ours: `"pointmap_crop": "whole"` declares a network trained
  on whole frames (long side = its size, several aspects), so the loader keeps whole photos at 224 instead
  of DUSt3R's central-square rule (absent: "square", every official and earlier demo folder). It is read and
  removed before the network is built (official code would refuse it as an unknown argument).
* VGGT: a flat state_dict (`model.pt`), `model.safetensors`, or a folder holding either; keys start with
  `aggregator.`, `camera_head.`, `depth_head.`, `point_head.` and `track_head.` (dropped: our model has none).
* DA3 (Depth Anything 3): `config.json` (`model_name`, the preset) + `model.safetensors` with keys
  `model.backbone.pretrained.*` / `model.head.*` / ... (nested: `model.da3.*`, `model.da3_metric.*`); tied
  tensors are stored once and named in the safetensors `__metadata__` (alias -> kept name), restored on
  reading.

Files are memory-mapped (`torch.load(mmap=True)`, a mapped safetensors reader) and the network is built on
the `meta` device, then the mapped tensors are assigned to it (`load_state_dict(assign=True)`), so a 2-5 GB
checkpoint is never held twice in RAM. Every load is strict: a missing, unexpected or mis-shaped key raises
`CheckpointError`. Nothing here unpickles arbitrary objects: `torch.load` runs with `weights_only=True` and
only `argparse.Namespace` allow-listed.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError

DUST3R_CLASS = "AsymmetricCroCo3DStereo"
CROP_KEY = "pointmap_crop"          # config.json: how the network's training frames were cut (see module doc)
INPUT_CROPS = ("square", "whole")
MAST3R_CLASS = "AsymmetricMASt3R"
VGGT_CLASS = "VGGT"
DA3_CLASS = "DepthAnything3Net"
FAMILY_OF_CLASS = {DUST3R_CLASS: "dust3r", MAST3R_CLASS: "mast3r", VGGT_CLASS: "vggt", DA3_CLASS: "da3"}

VGGT_AGGREGATOR = "aggregator."
DA3_PREFIXES = ("model.backbone.pretrained.", "model.da3.backbone.pretrained.")

_ZIP_MAGIC = b"PK\x03\x04"
_SHOW = 4   # how many offending keys an error message lists


@dataclass
class CheckpointInfo:
    """What `load_checkpoint` found.

    family:        "dust3r", "mast3r" or "vggt"
    class_name:    reference class: "AsymmetricCroCo3DStereo", "AsymmetricMASt3R" or "VGGT"
    kwargs:        constructor kwargs after the official rewrite (DUSt3R/MASt3R); for VGGT the config given
                   to `build_vggt` (None = the full VGGT-1B)
    source_format: "pth" (official torch file), "hf" (config.json + model.safetensors),
                   "vggt_pt" or "vggt_safetensors"
    num_params:    parameters of the built model (aliased tensors counted once)
    input_size:    the long side, in pixels, the network was trained for (224, 512 or 518)
    notes:         what the loader had to fix up (alias keys restored, dec_blocks2 copied, track head dropped)
    input_crop:    DUSt3R family at 224: "square" (the official central-square rule) or "whole" (trained on
                   whole frames: config.json `pointmap_crop`); also set as the model's `input_crop`
    """

    path: str
    family: str
    class_name: str
    kwargs: dict | None
    source_format: str
    num_params: int
    input_size: int
    notes: list[str] = field(default_factory=list)
    input_crop: str = "square"


@dataclass
class RawCheckpoint:
    """A checkpoint read from disk, before any model exists. Tensors are CPU and usually memory-mapped."""

    path: Path
    source_format: str
    family: str
    class_name: str
    kwargs: dict | None
    state_dict: dict[str, torch.Tensor]
    input_crop: str = "square"      # config.json `pointmap_crop` (CheckpointInfo.input_crop)


# --------------------------------------------------------------------------------------------------
# Constructor strings (literal parsing only)
# --------------------------------------------------------------------------------------------------

_NUMERIC_NAMES = {"inf": math.inf, "nan": math.nan}
_NUMERIC_MODULES = {"np", "numpy", "math", "torch"}


def _literal(node: ast.AST, text: str):
    """Value of a literal expression node: constants, tuples/lists/dicts, +/- numbers, `inf`, `nan`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool | type(None)):
        return node.value
    if isinstance(node, ast.Tuple | ast.List):
        return tuple(_literal(e, text) for e in node.elts)
    if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
        return {_literal(k, text): _literal(v, text) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _literal(node.operand, text)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Name) and node.id in _NUMERIC_NAMES:
        return _NUMERIC_NAMES[node.id]
    if (isinstance(node, ast.Attribute) and node.attr in _NUMERIC_NAMES
            and isinstance(node.value, ast.Name) and node.value.id in _NUMERIC_MODULES):
        return _NUMERIC_NAMES[node.attr]
    raise CheckpointError(f"The model constructor string {text!r} contains {ast.unparse(node)!r}, "
                          "which is not a plain literal; only literal arguments are accepted.")


def official_rewrite(kwargs: Mapping) -> dict:
    """The rewrite `dust3r.model.load_model` applies before building: `ManyAR_PatchEmbed` becomes
    `PatchEmbedDust3R` and `landscape_only` is forced to False (portrait inputs are never transposed)."""
    out = dict(kwargs)
    if out.get("patch_embed_cls") == "ManyAR_PatchEmbed":
        out["patch_embed_cls"] = "PatchEmbedDust3R"
    out["landscape_only"] = False
    return out


def parse_constructor(s: str, rewrite: bool = True) -> tuple[str, dict]:
    """Parse `"ClassName(key=literal, ...)"` into `(class_name, kwargs)` without evaluating anything.

    Tuples and lists both come back as tuples. With `rewrite` (default) the official loader's rewrite is
    applied (see `official_rewrite`). Raises CheckpointError for anything but a call with keyword literals.
    """
    if not isinstance(s, str) or not s.strip():
        raise CheckpointError(f"The model constructor string {s!r} is empty or not a string.")
    try:
        tree = ast.parse(s.strip(), mode="eval")
    except SyntaxError as err:
        raise CheckpointError(f"The model constructor string {s!r} is not valid Python syntax ({err.msg}).") from None
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise CheckpointError(f"The model constructor string {s!r} is not of the form ClassName(key=value, ...).")
    if call.args or any(kw.arg is None for kw in call.keywords):
        raise CheckpointError(f"The model constructor string {s!r} has positional or ** arguments; "
                              "only key=value arguments are accepted.")
    kwargs = {kw.arg: _literal(kw.value, s) for kw in call.keywords}
    return call.func.id, (official_rewrite(kwargs) if rewrite else kwargs)


def _tuples(value):
    """JSON lists -> tuples, recursively (so HF configs compare equal to parsed constructor strings)."""
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def class_from_hf_config(config: Mapping) -> str:
    """The reference class of a DUSt3R-family Hugging Face config (config.json names no class):
    MASt3R configs carry descriptor settings, DUSt3R ones do not."""
    mast3r_keys = {"desc_mode", "two_confs", "desc_conf_mode"}
    if mast3r_keys & set(config) or "desc" in str(config.get("output_mode", "")):
        return MAST3R_CLASS
    return DUST3R_CLASS


def hf_config_to_constructor(config: Mapping) -> tuple[str, dict]:
    """(class_name, kwargs) of a DUSt3R/MASt3R Hugging Face config.json, lists as tuples, official rewrite applied."""
    return class_from_hf_config(config), official_rewrite(_tuples(dict(config)))


# --------------------------------------------------------------------------------------------------
# File readers
# --------------------------------------------------------------------------------------------------

def _safe_open(path: Path):
    """`safetensors.safe_open` (memory-mapped) with a CheckpointError naming the file for a damaged one."""
    from safetensors import SafetensorError, safe_open

    if path.stat().st_size < 8:
        raise CheckpointError(f"{path} is too short ({path.stat().st_size} bytes) to be a safetensors file.")
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a valid safetensors file or is truncated ({err}). Delete it and "
                              f"download it again.") from None


def safetensors_keys(path: str | Path) -> list[str]:
    """Tensor names in a safetensors file (header only, nothing else is read)."""
    with _safe_open(Path(path)) as f:
        return list(f.keys())


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file as CPU tensors (memory-mapped by the safetensors library).

    Tied tensors that `safetensors.torch.save_model` stored once are restored under every name from the
    metadata's alias -> kept-name entries (the same tensor object, no copy; DA3's shared LayerNorm).
    """
    path = Path(path)
    from safetensors import SafetensorError

    with _safe_open(path) as f:
        try:
            out = {name: f.get_tensor(name) for name in f.keys()}
        except (SafetensorError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"{path} is truncated or damaged ({err}). Delete it and download it again.") from None
        metadata = f.metadata() or {}
    for alias, kept in metadata.items():
        if alias not in out and kept in out:
            out[alias] = out[kept]
    return out


def _torch_load(path: Path, zip_format: bool):
    """`torch.load` with weights_only=True, `argparse.Namespace` allow-listed, memory-mapped when possible."""
    import argparse
    import pickle

    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zip_format)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if unsafe is None:   # torch reports every failure of the weights-only unpickler this way
            detail = next((line for line in lines if "error:" in line), lines[-1] if lines else "")
            raise CheckpointError(f"Cannot read {path} as a PyTorch checkpoint: it is probably truncated or "
                                  f"corrupt ({detail[:200]}). Delete it and download it again.") from None
        raise CheckpointError(f"{path} contains Python objects other than tensors and plain values, which are not "
                              f"loaded for safety (it needs {unsafe.group(1)}). Use the official checkpoint or a "
                              ".safetensors file.") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        msg = msg.split(". This is an internal", 1)[0][:200]   # miniz appends a long generic hint
        raise CheckpointError(f"Cannot read {path} as a PyTorch checkpoint: it is probably truncated or "
                              f"corrupt ({msg}). Delete it and download it again.") from None


def _sniff(path: Path) -> str:
    """'zip' (torch >= 1.6 format), 'pickle' (legacy torch format), 'safetensors' or 'unknown'."""
    with open(path, "rb") as f:
        head = f.read(9)
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    return "unknown"


def _is_vggt(keys) -> bool:
    """VGGT state_dicts hold `aggregator.*` tensors, which no DUSt3R/MASt3R key starts with. One such key is
    enough: the strict check then names any foreign key instead of calling the whole file unknown."""
    return any(k.startswith(VGGT_AGGREGATOR) for k in keys)


def _is_da3(keys) -> bool:
    return any(k.startswith(DA3_PREFIXES) for k in keys)


def _read_da3(weights: Path, config_path: Path | None) -> RawCheckpoint:
    """A DA3 checkpoint: the preset from config.json's `model_name` (checked against the key layout), else
    from the layout alone. kwargs = {"preset": name or None (layout of no published preset)}."""
    from ..models.da3.config import PRESET_NAMES, preset_from_keys

    sd = read_safetensors(weights)
    shapes = {k[len("model."):]: tuple(v.shape) for k, v in sd.items() if k.startswith("model.")}
    by_keys = preset_from_keys(shapes)
    name = None
    if config_path is not None and config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise CheckpointError(f"{config_path} could not be read as JSON ({err}).") from None
        name = config.get("model_name") if isinstance(config, dict) else None
        if name is not None and name not in PRESET_NAMES:
            raise CheckpointError(f"{config_path} names the DA3 model {name!r}, which pointmap does not know "
                                  f"(known: {', '.join(PRESET_NAMES)}).")
    if name is not None and by_keys is not None and name != by_keys and \
            {name, by_keys} != {"da3metric-large", "da3mono-large"}:
        raise CheckpointError(f"{config_path} says {name!r} but the tensors in {weights.name} have the layout of "
                              f"{by_keys!r}; the folder mixes files of two models.")
    return RawCheckpoint(weights.parent if config_path else weights, "da3_safetensors", "da3", DA3_CLASS,
                         {"preset": name or by_keys}, sd)


def _tensor_dict(obj, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(f"{path} holds no state_dict (a mapping of names to tensors).")
    return dict(obj)


def _read_file(path: Path) -> RawCheckpoint:
    kind = _sniff(path)
    if kind == "safetensors":
        if _is_da3(safetensors_keys(path)):
            config = path.parent / "config.json"
            return _read_da3(path, config if config.is_file() else None)
        if _is_vggt(safetensors_keys(path)):
            return RawCheckpoint(path, "vggt_safetensors", "vggt", VGGT_CLASS, None, read_safetensors(path))
        config = path.parent / "config.json"
        if not config.is_file():
            raise CheckpointError(f"{path} is a safetensors file without a config.json next to it, so the network "
                                  "it belongs to is unknown. Keep the Hugging Face folder together.")
        return _read_hf_folder(path.parent, path)
    if kind == "unknown":
        raise CheckpointError(f"{path} is not a checkpoint: it is neither a PyTorch file nor safetensors.")
    obj = _torch_load(path, zip_format=(kind == "zip"))
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        sd = _tensor_dict(obj["model"], path)
        args = obj.get("args")
        ctor = args.get("model") if isinstance(args, Mapping) else getattr(args, "model", None)
        if isinstance(ctor, str):
            try:
                class_name, kwargs = parse_constructor(ctor)
            except CheckpointError as err:
                raise CheckpointError(f"{path}: {err}") from None
            if class_name not in (DUST3R_CLASS, MAST3R_CLASS):
                raise CheckpointError(f"{path} is a checkpoint of {class_name!r}; supported are {DUST3R_CLASS} "
                                      f"(DUSt3R) and {MAST3R_CLASS} (MASt3R).")
            return RawCheckpoint(path, "pth", FAMILY_OF_CLASS[class_name], class_name, kwargs, sd)
        if _is_vggt(sd):
            return RawCheckpoint(path, "vggt_pt", "vggt", VGGT_CLASS, None, sd)
        raise CheckpointError(f"{path} has a 'model' state_dict but no args.model constructor string, so the "
                              "network it belongs to is unknown.")
    sd = _tensor_dict(obj, path)
    if _is_vggt(sd):
        return RawCheckpoint(path, "vggt_pt", "vggt", VGGT_CLASS, None, sd)
    raise CheckpointError(f"{path} is a bare state_dict of an unknown network (first keys: "
                          f"{', '.join(list(sd)[:_SHOW])}). DUSt3R/MASt3R need the official .pth (with its "
                          "constructor string) or a Hugging Face folder with config.json.")


def _read_hf_folder(folder: Path, weights: Path) -> RawCheckpoint:
    config_path = folder / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(f"{config_path} could not be read as JSON ({err}).") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path} is not a JSON object of constructor arguments.")
    keys = safetensors_keys(weights)
    if _is_da3(keys):
        return _read_da3(weights, config_path)
    if _is_vggt(keys):
        # VGGT's config.json records only VGGT.__init__ kwargs; the strict shape check catches other sizes.
        return RawCheckpoint(folder, "vggt_safetensors", "vggt", VGGT_CLASS, None, read_safetensors(weights))
    if "enc_embed_dim" not in config:
        raise CheckpointError(f"{config_path} does not describe a DUSt3R/MASt3R network (no enc_embed_dim).")
    crop = config.pop(CROP_KEY, "square")
    if crop not in INPUT_CROPS:
        raise CheckpointError(f"{config_path}: {CROP_KEY} must be one of {', '.join(map(repr, INPUT_CROPS))}, "
                              f"not {crop!r}.")
    class_name, kwargs = hf_config_to_constructor(config)
    return RawCheckpoint(folder, "hf", FAMILY_OF_CLASS[class_name], class_name, kwargs, read_safetensors(weights),
                         input_crop=crop)


def read_checkpoint(path: str | Path) -> RawCheckpoint:
    """Read a checkpoint file or folder without building a model (cheap: tensors are memory-mapped).

    Also serves as the integrity check after a download. Raises CheckpointError naming the path.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"Checkpoint {p} does not exist.")
    if p.is_dir():
        if (p / "model.safetensors").is_file():
            if (p / "config.json").is_file():
                return _read_hf_folder(p, p / "model.safetensors")
            return _read_file(p / "model.safetensors")
        candidates = sorted(q for q in p.iterdir() if q.suffix in (".pt", ".pth") and q.is_file())
        if len(candidates) == 1:
            return _read_file(candidates[0])
        found = ", ".join(q.name for q in candidates) if candidates else "none"
        raise CheckpointError(f"The folder {p} holds no usable checkpoint: expected config.json + model.safetensors "
                              f"(Hugging Face layout) or exactly one .pth/.pt file (found: {found}).")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p} is empty (0 bytes), probably an interrupted download. Delete it and try again.")
    return _read_file(p)


# --------------------------------------------------------------------------------------------------
# Fitting a state_dict to a model
# --------------------------------------------------------------------------------------------------

def _fill_dpt_aliases(sd: dict, expected: Mapping, notes: list[str]) -> None:
    """safetensors drops `dpt.scratch.layer_rn.{i}.weight`: the same tensor as `dpt.scratch.layer{i+1}_rn.weight`."""
    restored = 0
    for key in expected:
        if key in sd or ".dpt.scratch.layer_rn." not in key:
            continue
        head, rest = key.split(".dpt.scratch.layer_rn.", 1)
        index, _, suffix = rest.partition(".")
        if index.isdigit():
            source = f"{head}.dpt.scratch.layer{int(index) + 1}_rn.{suffix}"
            if source in sd:
                sd[key] = sd[source]
                restored += 1
    if restored:
        notes.append(f"restored {restored} DPT alias keys (dpt.scratch.layer_rn.*) dropped by safetensors")


def _prepare_da3(sd: dict) -> None:
    """Strip the API wrapper's `model.` prefix (every other key is the network's own name)."""
    if sd and all(k.startswith("model.") for k in sd):
        for k in list(sd):
            sd[k[len("model."):]] = sd.pop(k)


def prepare_state_dict(state_dict: Mapping[str, torch.Tensor], family: str,
                       expected: Mapping[str, torch.Tensor]) -> tuple[dict, list[str]]:
    """Apply the official loaders' key fix-ups so `state_dict` can be loaded strictly into a model whose own
    state_dict is `expected`. Returns (new dict, notes). Tensors are not copied."""
    sd = dict(state_dict)
    notes: list[str] = []
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
        notes.append("stripped the 'module.' prefix of a DataParallel checkpoint")
    if family in ("dust3r", "mast3r"):
        if not any(k.startswith("dec_blocks2.") for k in sd) and any(k.startswith("dec_blocks2.") for k in expected):
            # As CroCo's loader does: a checkpoint with one decoder serves both views.
            sd.update({"dec_blocks2." + k[len("dec_blocks."):]: v for k, v in list(sd.items())
                       if k.startswith("dec_blocks.")})
            notes.append("copied dec_blocks.* to dec_blocks2.* (checkpoint has a single decoder)")
        _fill_dpt_aliases(sd, expected, notes)
    if family == "da3":
        _prepare_da3(sd)
    if family == "vggt":   # our VGGT has no track head (point tracking is not implemented)
        dropped = [k for k in sd if k.startswith("track_head.")]
        for k in dropped:
            del sd[k]
        if dropped:
            notes.append(f"ignored {len(dropped)} track_head.* tensors (point tracking is not used)")
    return sd, notes


def check_state_dict(sd: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], where: str) -> None:
    """Raise CheckpointError unless `sd` has exactly the keys of `expected`, with the same shapes."""
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
        if items:
            more = f" and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
            problems.append(f"{len(items)} {label} keys: {', '.join(items[:_SHOW])}{more}")
    if problems:
        raise CheckpointError(f"{where} does not fit the network built from its configuration ("
                              + "; ".join(problems) + ").")


def load_state_dict_into(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], family: str,
                         where: str) -> list[str]:
    """Fix up keys (`prepare_state_dict`), check them strictly (`check_state_dict`) and assign the tensors to
    `model` (no copy; works for a model built on `meta`). Floating tensors are cast to the model's dtype.
    Returns the fix-up notes."""
    expected = model.state_dict(keep_vars=True)
    sd, notes = prepare_state_dict(state_dict, family, expected)
    check_state_dict(sd, expected, where)
    for k, v in expected.items():
        if sd[k].dtype != v.dtype and sd[k].is_floating_point() and v.is_floating_point():
            sd[k] = sd[k].to(v.dtype)
    model.load_state_dict(sd, strict=True, assign=True)
    return notes


# --------------------------------------------------------------------------------------------------
# Building and loading
# --------------------------------------------------------------------------------------------------

def _build(raw: RawCheckpoint, vggt_config: dict | None, da3_config=None) -> torch.nn.Module:
    """The network `raw` describes, built on the meta device (no memory, no random init)."""
    # Imported before entering the meta context so that nothing created at import time lands on meta.
    from ..models import build_model
    from ..models.da3 import build_da3
    from ..models.vggt.model import build_vggt

    if raw.family == "da3" and da3_config is None and not (raw.kwargs or {}).get("preset"):
        raise CheckpointError(f"{raw.path}: a DA3 checkpoint whose tensors match no published preset and "
                              "with no config.json model_name; its architecture is unknown.")
    try:
        with torch.device("meta"):
            if raw.family == "da3":
                model = build_da3(da3_config if da3_config is not None else raw.kwargs["preset"])
                model.name = "" if da3_config is not None else raw.kwargs["preset"]
                return model
            if raw.family == "vggt":
                return build_vggt(vggt_config)
            return build_model(raw.class_name, dict(raw.kwargs))
    except CheckpointError as err:
        raise CheckpointError(f"{raw.path}: {err}") from None
    except (TypeError, ValueError, AssertionError, KeyError, NotImplementedError) as err:
        raise CheckpointError(f"{raw.path}: the network described by this checkpoint cannot be built "
                              f"({type(err).__name__}: {err}).") from None


def model_input_size(model: torch.nn.Module) -> int:
    """Long side the network was trained for, from the built model's resolved settings (defaults filled in)."""
    if getattr(model, "family", None) == "da3":
        from ..models.da3.config import DA3_INPUT_SIZE

        return int(getattr(getattr(model, "cfg", None), "input_size", DA3_INPUT_SIZE))
    size = model.config["img_size"] if model.family == "vggt" else model.settings["img_size"]
    return int(max(size) if isinstance(size, tuple | list) else size)


def count_parameters(model: torch.nn.Module) -> int:
    """Parameters of `model`, each shared tensor counted once (meta tensors count too)."""
    return sum(p.numel() for p in model.parameters())


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", *,
                    vggt_config: dict | None = None, da3_config=None) -> tuple[torch.nn.Module, CheckpointInfo]:
    """Load a DUSt3R / MASt3R / VGGT checkpoint (file or folder, any layout above) into a new model in eval mode.

    vggt_config: config for `build_vggt` (None = full VGGT-1B); VGGT files record no architecture.
    da3_config: a DA3 preset name / DA3Config / dict overriding the checkpoint's own preset (tiny test models).
    The model also gets `checkpoint_notes` (= info.notes). Raises CheckpointError naming the path for
    missing, unreadable or non-matching checkpoints.
    """
    return load_raw_checkpoint(read_checkpoint(path), device, vggt_config=vggt_config, da3_config=da3_config)


def load_raw_checkpoint(raw: RawCheckpoint, device: str | torch.device = "cpu", *,
                        vggt_config: dict | None = None, da3_config=None) -> tuple[torch.nn.Module, CheckpointInfo]:
    """`load_checkpoint` for a checkpoint already read by `read_checkpoint` (same arguments and errors)."""
    where = str(raw.path)
    model = _build(raw, vggt_config, da3_config)
    notes = load_state_dict_into(model, raw.state_dict, raw.family, where)
    model.eval()
    model.checkpoint_notes = list(notes)   # read by the backends to tell the user (e.g. track head ignored)
    model.input_crop = raw.input_crop      # read by core.pipeline to pick the 224 rule (square or whole frame)
    if torch.device(device) != torch.device("cpu"):
        model.to(device)
    info = CheckpointInfo(path=where, family=raw.family, class_name=raw.class_name,
                          kwargs=dict(vggt_config) if raw.family == "vggt" and vggt_config else raw.kwargs,
                          source_format=raw.source_format, num_params=count_parameters(model),
                          input_size=model_input_size(model), notes=notes, input_crop=raw.input_crop)
    return model, info
