"""DUSt3R / MASt3R parity fixture set ($POINTMAP_PARITY_DIR, default tests/fixtures/parity), read by layout only.

Layout (tests/fixtures/parity/README.md): model folders holding `info.json` + `weights_recipe.json` (and
`outputs_<case>.npz`, `intermediates_<case>.npz`, optionally `model.pth` and `hf/`), and `inputs_<case>.npz`
beside them. Model and case names are whatever the set holds: tests pick models by what `info.json` says (class,
head type) and cases by the files present, never by the names of the shipped copy.

Two input layouts exist: a *batched* case holds `view1_img` (B, 3, H, W), `view1_idx` (B,), ... — one forward of
B pairs, outputs `pred1_pts3d` (B, H, W, 3)...; a *per-pair* case holds `pair<p>_view1_img` (3, H, W),
`pair<p>_view1_idx` () ... — one batch-of-1 forward per pair p, outputs `pair<p>_pred1_pts3d` (H, W, 3)...
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from conftest import FIXTURES, fixture_dir

PARITY = fixture_dir("POINTMAP_PARITY_DIR", FIXTURES / "parity")
_PAIR_KEY = re.compile(r"pair(\d+)_(view[12])_(\w+)")
_OUT_KEY = re.compile(r"(?:pair(\d+)_)?(pred[12])_(\w+)")


@dataclass(frozen=True)
class ParityModel:
    name: str
    folder: Path
    info: dict

    @property
    def constructor(self) -> str:
        return self.info["load_model_instantiation_string"]

    @property
    def head_type(self) -> str:
        m = re.search(r"head_type='(\w+)'", self.constructor)
        return m.group(1) if m else ""

    @property
    def is_mast3r(self) -> bool:
        return self.constructor.startswith("AsymmetricMASt3R")


def models(parity: Path = PARITY) -> list[ParityModel]:
    """Every model folder of the set (sorted by name)."""
    return [ParityModel(p.name, p, json.loads((p / "info.json").read_text()))
            for p in sorted(parity.iterdir()) if (p / "weights_recipe.json").exists() and (p / "info.json").exists()]


def cases(parity: Path = PARITY) -> list[str]:
    """Every case of the set: the <case> of each inputs_<case>.npz (sorted)."""
    return sorted(p.name[len("inputs_"):-len(".npz")] for p in parity.glob("inputs_*.npz"))


def model_cases(parity: Path = PARITY) -> list[tuple[str, str]]:
    """(model name, case) for every case input that the model folder has reference outputs for."""
    return [(m.name, c) for m in models(parity) for c in cases(parity) if (m.folder / f"outputs_{c}.npz").exists()]


def model(name: str, parity: Path = PARITY) -> ParityModel:
    return next(m for m in models(parity) if m.name == name)


def linear_model(parity: Path = PARITY) -> ParityModel | None:
    """The first DUSt3R model with a linear head and a stored model.pth (the tiny end-to-end checkpoint)."""
    return next((m for m in models(parity) if m.head_type == "linear" and not m.is_mast3r
                 and (m.folder / "model.pth").exists()), None)


def mast3r_model(parity: Path = PARITY) -> ParityModel | None:
    return next((m for m in models(parity) if m.is_mast3r), None)


def load_inputs(case: str, parity: Path = PARITY) -> dict[str, np.ndarray]:
    with np.load(parity / f"inputs_{case}.npz") as z:
        return {k: z[k] for k in z.files}


def is_batched(inputs: dict) -> bool:
    return "view1_img" in inputs


def forwards(inputs: dict) -> list[dict[str, np.ndarray]]:
    """One dict per recorded forward: view1_img / view2_img (B, 3, H, W) and view1_idx / view2_idx (B,)."""
    if is_batched(inputs):
        return [{k: (inputs[k] if k.endswith("_img") else np.atleast_1d(inputs[k]))
                 for k in ("view1_img", "view2_img", "view1_idx", "view2_idx")}]
    pairs: dict[int, dict] = {}
    for key, val in inputs.items():
        m = _PAIR_KEY.fullmatch(key)
        if m and m.group(3) in ("img", "idx"):
            pairs.setdefault(int(m.group(1)), {})[f"{m.group(2)}_{m.group(3)}"] = val[None] if m.group(3) == "img" \
                else np.atleast_1d(val)
    return [pairs[p] for p in sorted(pairs)]


def images(inputs: dict) -> dict[int, np.ndarray]:
    """load_images index → (1, 3, H, W) normalised image, recovered from the pair inputs."""
    out = {}
    for fw in forwards(inputs):
        for v in ("view1", "view2"):
            for b, i in enumerate(fw[f"{v}_idx"]):
                out[int(i)] = fw[f"{v}_img"][b:b + 1]
    return out


def edges(inputs: dict) -> np.ndarray:
    """(E, 2) edges in recorded order (forward by forward, batch row by row)."""
    return np.concatenate([np.stack([fw["view1_idx"], fw["view2_idx"]], 1) for fw in forwards(inputs)]).astype(int)


def split_output_key(key: str, inputs: dict) -> tuple[int, str, str]:
    """'pred1_pts3d' / 'pair1_pred2_conf' → (forward index, 'pred1' | 'pred2', field)."""
    m = _OUT_KEY.fullmatch(key)
    assert m, f"unexpected reference output key {key!r}"
    fw = 0 if is_batched(inputs) else int(m.group(1))
    return fw, m.group(2), m.group(3)


def edge_outputs(ref: dict, inputs: dict) -> list[tuple[str, int, str, str, np.ndarray]]:
    """Every reference output per edge: (key, edge index into edges(inputs), 'pred1' | 'pred2', field, array)."""
    fws = forwards(inputs)
    first_edge = np.cumsum([0] + [len(fw["view1_idx"]) for fw in fws])
    out = []
    for key in ref:
        fw, pred, field = split_output_key(key, inputs)
        arr = ref[key] if is_batched(inputs) else ref[key][None]
        for b in range(len(fws[fw]["view1_idx"])):
            out.append((key, int(first_edge[fw] + b), pred, field, arr[b]))
    return out
