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
  out/alignment/      `ring4` (views 0-3 of the orbit example, its edges among them) and `walk20` (the first 20
                      frames of the shot example): other names, view counts and edge counts.
  out/checkpoint_keys/ three of the four DUSt3R/MASt3R key lists under other file names (keys_*.json).
  out/vggt_keys.json  the VGGT-1B key list under another name and folder.
  out/meshing/        one generated object case (`bowl_s21`, 7 views of 80x60, helpers_meshgen).
  out/da3/parity/     DA3: cases renamed (trio, solo, duo_posed) with their images and output files, the
                      preprocessing images renamed (img_*) and one of the five methods left out; manifest and
                      preprocess.npz keys rewritten to match; out/da3/checkpoint_keys.json holds 3 of the 7 presets.
  out/da3_nested/     nested DA3: cases renamed (n_trio, n_duo_posed), the single-view case left out.
  out/da3_gs/         DA3 Gaussian head: the multi-view case renamed (gs_pair), the single-view case left out.
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
ALIGN_CASES = {"example_orbit6": ("ring4", 4), "example_shot60_swin3": ("walk20", 20)}   # new name, views kept
KEY_LISTS = {"DUSt3R_ViTLarge_BaseDecoder_224_linear": "keys_low", "DUSt3R_ViTLarge_BaseDecoder_512_dpt": "keys_dpt",
             "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric": "keys_metric"}
DA3_CASES = {"multiview": "trio", "single": "solo", "posed": "duo_posed"}
DA3_IMAGES = {"pp_a_120x75": "img_east", "pp_b_90x140": "img_tall", "pp_c_210x90_rgba": "img_alpha",
              "pp_d_112x73": "img_odd", "mv_0_100x80": "trio_c", "mv_1_100x80": "trio_a", "mv_2_100x80": "trio_b",
              "single_0_66x98": "solo_x", "posed_0_96x80": "duo_l", "posed_1_96x80": "duo_r"}
DA3_DROPPED_METHOD = "lower_bound_crop_70"
DA3_PRESETS = ("da3-small", "da3metric-large", "da3nested-giant-large")
NESTED_CASES = {"multiview": "n_trio", "posed": "n_duo_posed"}          # the single-view case left out
GS_CASES = {"multiview": "gs_pair"}                                       # the single-view case left out


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


def make_alignment(src: Path, out: Path) -> Path:
    """Each case cut to its first views: the edges among them, their ground truth, meta['views'] updated."""
    out.mkdir(parents=True)
    for stem, (new, views) in ALIGN_CASES.items():
        case = _load(src / f"{stem}.npz")
        keep = np.all(case["edges"] < views, axis=1)
        cut = {k: case[k][keep] for k in ("edges", "pts_i", "pts_j", "conf_i", "conf_j")}
        meta = dict(json.loads(str(case["meta"])), views=views)
        np.savez_compressed(out / f"{new}.npz", **cut, gt_cam2world=case["gt_cam2world"][:views],
                            gt_K=case["gt_K"][:views], image_size=case["image_size"], meta=json.dumps(meta))
    return out


def make_checkpoint_keys(src: Path, out: Path) -> Path:
    out.mkdir(parents=True)
    for stem, new in KEY_LISTS.items():
        shutil.copy(src / f"{stem}.json", out / f"{new}.json")
    return out


def make_meshing(out: Path) -> Path:
    """One generated case (not the shipped example): another seed, view count and image size."""
    sys.path.insert(0, str(Path(__file__).parent))
    from helpers_meshgen import write_case

    out.mkdir(parents=True)
    write_case(out / "bowl_s21.npz", seed=21, views=7, W=80, H=60, gt_factor=5, gt_points=60_000)
    return out


def _renamed(name: str, table: dict) -> str:
    for old, new in table.items():
        name = name.replace(old, new)
    return name


def make_da3(src: Path, out: Path) -> Path:
    """`src` is the DA3 parity folder; its sibling checkpoint_keys.json is cut to DA3_PRESETS beside `out`."""
    out.mkdir(parents=True)
    (out / "images").mkdir()
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["images"] = {_renamed(n, DA3_IMAGES): spec for n, spec in manifest["images"].items()}
    for name in (src / "images").iterdir():
        shutil.copy(name, out / "images" / _renamed(name.name, DA3_IMAGES))
    pre = {}
    for key, spec in manifest["preprocess"].items():
        if not key.startswith(DA3_DROPPED_METHOD + "__"):
            spec = dict(spec, images=[_renamed(i, DA3_IMAGES) for i in spec["images"]]) if "images" in spec else spec
            pre[_renamed(key, DA3_IMAGES)] = spec
    manifest["preprocess"] = pre
    arrays = {_renamed(k, DA3_IMAGES): v for k, v in _load(src / "preprocess.npz").items()
              if f"__{DA3_DROPPED_METHOD}__" not in k}
    _save(out / "preprocess.npz", arrays)
    cases = {}
    for case, spec in manifest["cases"].items():
        new = DA3_CASES[case]
        spec = dict(spec, file=f"reference_{new}.npz", source_images=[_renamed(i, DA3_IMAGES)
                                                                       for i in spec["source_images"]])
        shutil.copy(src / f"tiny_outputs_{case}.npz", out / spec["file"])
        cases[new] = spec
    manifest["cases"] = cases
    manifest["files"] = {}                                  # sizes and digests of the shipped files: not these
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for name in ("tiny_da3.safetensors", "pos_embed_interp.npz"):
        shutil.copy(src / name, out / name)
    keys = json.loads((src.parent / "checkpoint_keys.json").read_text())
    keys["configs"] = {p: c for p, c in keys["configs"].items() if p in DA3_PRESETS}
    (out.parent / "checkpoint_keys.json").write_text(json.dumps(keys))
    return out


def _renamed_case_set(src: Path, out: Path, renames: dict[str, str], prefix: str, weights: str) -> Path:
    """A copy of the manifest-described set `src` in `out` keeping only the cases in `renames` (old -> new
    name), their files renamed `prefix<new>.npz`, the shipped file sizes dropped, and the weight file `weights`."""
    out.mkdir(parents=True)
    manifest = json.loads((src / "manifest.json").read_text())
    cases = {}
    for case, new in renames.items():
        spec = dict(manifest["cases"][case], file=f"{prefix}{new}.npz")
        shutil.copy(src / manifest["cases"][case]["file"], out / spec["file"])
        cases[new] = spec
    manifest["cases"], manifest["files"] = cases, {}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.copy(src / weights, out / weights)
    return out


def make_da3_nested(src: Path, out: Path) -> Path:
    return _renamed_case_set(src, out, NESTED_CASES, "nested_ref_", "tiny_nested.safetensors")


def make_da3_gs(src: Path, out: Path) -> Path:
    return _renamed_case_set(src, out, GS_CASES, "head_ref_", "tiny_gs_head.safetensors")


def make_alternative_sets(out: Path, src: Path = FIXTURES) -> dict[str, Path]:
    """Write the DUSt3R/MASt3R, VGGT and preprocessing sets under `out`; returns {environment variable: path}."""
    return {"POINTMAP_PARITY_DIR": make_parity(src / "parity", out / "parity"),
            "POINTMAP_VGGT_PARITY_DIR": make_vggt(src / "vggt" / "parity", out / "vggt" / "parity"),
            "POINTMAP_PREPROC_DIR": make_preprocessing(src / "preprocessing", out / "preprocessing")}


def make_other_sets(out: Path, src: Path = FIXTURES) -> dict[str, Path]:
    """Write every other set read from an environment variable; returns {environment variable: path}."""
    keys = out / "vggt_keys.json"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "vggt" / "checkpoint_keys.json", keys)
    return {"POINTMAP_ALIGN_DIR": make_alignment(src / "alignment", out / "alignment"),
            "POINTMAP_CKPT_KEYS_DIR": make_checkpoint_keys(src / "checkpoint_keys", out / "checkpoint_keys"),
            "POINTMAP_VGGT_KEYS": keys,
            "POINTMAP_MESH_DIR": make_meshing(out / "meshing"),
            "POINTMAP_DA3_PARITY_DIR": make_da3(src / "da3" / "parity", out / "da3" / "parity"),
            "POINTMAP_DA3_NESTED_DIR": make_da3_nested(src / "da3_nested", out / "da3_nested"),
            "POINTMAP_DA3_GS_DIR": make_da3_gs(src / "da3_gs", out / "da3_gs")}


if __name__ == "__main__":
    target = Path(sys.argv[1])
    for env, path in {**make_alternative_sets(target), **make_other_sets(target / "other")}.items():
        print(f"{env}={path}")
