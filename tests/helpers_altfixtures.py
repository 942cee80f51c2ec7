"""An alternative fixture set, generated from the shipped one: same documented layouts, other names and counts.

`make_alternative_sets(out)` writes
  out/parity/         DUSt3R/MASt3R: models `lin_alpha` (linear DUSt3R, with model.pth and hf/) and `m3_beta`
                      (MASt3R); cases `batched_two` (batched layout), `each_one` (per-pair layout, two pairs)
                      and `first_only` (per-pair, one pair: the first pair of `each_one` with its outputs and the
                      intermediates of that forward) — 2 models instead of 3, 3 cases instead of 2.
  out/vggt/parity/    VGGT: frames renamed and shuffled (shot_c/shot_a/shot_b.png), weights renamed
                      (net_weights.pt, net.safetensors), cases `three_views` and `two_by_two` (no single-frame
                      case); manifest.json rewritten to match; out/vggt/checkpoint_keys.json beside it.
  out/preprocessing/  three of the DUSt3R preprocessing cases under other names (photo_*), summary.json filtered.
Every array is the reference's own (copied or sliced), so the parity bounds hold unchanged.

Run as a script to write a set: python tests/helpers_altfixtures.py OUT_DIR
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures"
PARITY_MODELS = {"dust3r_tiny_linear": "lin_alpha", "mast3r_tiny_catmlp_dpt": "m3_beta"}
PARITY_CASES = {"pair": "batched_two", "mixed": "each_one"}
VGGT_FRAMES = {"tiny_frame0.png": "shot_c.png", "tiny_frame1.png": "shot_a.png", "tiny_frame2.png": "shot_b.png"}
VGGT_FILES = {"tiny_vggt_state_dict.pt": "net_weights.pt", "tiny_vggt.safetensors": "net.safetensors",
              "tiny_outputs_main.npz": "tiny_outputs_three_views.npz",
              "tiny_outputs_batch2.npz": "tiny_outputs_two_by_two.npz"}
PREPROC_STEMS = {"land_640x480": "photo_one", "odd_517x389": "photo_two", "rgba_400x300": "photo_three"}


def _save(path: Path, arrays: dict) -> None:
    np.savez(path, **arrays)


def _load(path: Path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def make_parity(src: Path, out: Path) -> Path:
    out.mkdir(parents=True)
    for case, new in PARITY_CASES.items():
        shutil.copy(src / f"inputs_{case}.npz", out / f"inputs_{new}.npz")
    mixed = _load(src / "inputs_mixed.npz")
    _save(out / "inputs_first_only.npz", {k: v for k, v in mixed.items() if k.startswith("pair0_")})
    for name, new in PARITY_MODELS.items():
        folder = out / new
        shutil.copytree(src / name, folder, ignore=shutil.ignore_patterns("*_pair.npz", "*_mixed.npz"))
        info = json.loads((folder / "info.json").read_text())
        info["name"] = new
        info["cases"] = {PARITY_CASES[c]: v for c, v in info.get("cases", {}).items()}
        (folder / "info.json").write_text(json.dumps(info, indent=1))
        for case, new_case in PARITY_CASES.items():
            for kind in ("outputs", "intermediates"):
                shutil.copy(src / name / f"{kind}_{case}.npz", folder / f"{kind}_{new_case}.npz")
        outputs = _load(src / name / "outputs_mixed.npz")
        _save(folder / "outputs_first_only.npz", {k: v for k, v in outputs.items() if k.startswith("pair0_")})
        mids = _load(src / name / "intermediates_mixed.npz")
        _save(folder / "intermediates_first_only.npz",
              {k: v for k, v in mids.items() if k.startswith("encoder_img") or k.rsplit(".", 2)[1] == "call0"})
    shutil.copytree(src / "images", out / "images")
    return out


def make_vggt(src: Path, out: Path) -> Path:
    out.mkdir(parents=True)
    (out / "images").mkdir()
    manifest = json.loads((src / "manifest.json").read_text())
    images, files = {}, {}
    for name, spec in manifest["images"].items():
        new = VGGT_FRAMES.get(name, name)
        shutil.copy(src / "images" / name, out / "images" / new)
        images[new] = spec
    for name, spec in manifest["files"].items():
        base = name.removeprefix("images/")
        if name.startswith("images/"):
            new = "images/" + VGGT_FRAMES.get(base, base)
        elif name.startswith("tiny_outputs_") and name not in VGGT_FILES:
            continue                                # a case left out: the set holds fewer cases
        else:
            new = VGGT_FILES.get(name, name)
            shutil.copy(src / name, out / new)
        files[new] = spec
    manifest["images"], manifest["files"] = images, files
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.copy(src.parent / "checkpoint_keys.json", out.parent / "checkpoint_keys.json")
    return out


def make_preprocessing(src: Path, out: Path) -> Path:
    out.mkdir(parents=True)
    (out / "images").mkdir()
    for stem, new in PREPROC_STEMS.items():
        (image,) = list((src / "images").glob(stem + ".*"))
        shutil.copy(image, out / "images" / (new + image.suffix))
        for npz in src.glob(f"{stem}_s*.npz"):
            shutil.copy(npz, out / npz.name.replace(stem, new, 1))
    summary = json.loads((src / "summary.json").read_text())
    kept = []
    for case in summary["cases"]:
        stem = next((s for s in PREPROC_STEMS if case["npz"].startswith(s + "_s")), None)
        if stem:
            new = PREPROC_STEMS[stem]
            kept.append(dict(case, npz=case["npz"].replace(stem, new, 1), file=case["file"].replace(stem, new, 1)))
    summary["cases"] = kept
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    shutil.copy(src / "normalization_lut_uint8_to_float32.npy", out)
    return out


def make_alternative_sets(out: Path, src: Path = FIXTURES) -> dict[str, Path]:
    """Write the three alternative sets under `out`; returns {environment variable: directory}."""
    return {"POINTMAP_PARITY_DIR": make_parity(src / "parity", out / "parity"),
            "POINTMAP_VGGT_PARITY_DIR": make_vggt(src / "vggt" / "parity", out / "vggt" / "parity"),
            "POINTMAP_PREPROC_DIR": make_preprocessing(src / "preprocessing", out / "preprocessing")}


if __name__ == "__main__":
    for env, path in make_alternative_sets(Path(sys.argv[1])).items():
        print(f"{env}={path}")
