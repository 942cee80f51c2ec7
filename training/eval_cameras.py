"""Held-out camera accuracy of a demo model: render evaluation scenes, reconstruct them, score the cameras.

    python -m pointmap.training.eval_cameras weights/pointmap-demo-224 --scenes 12 \
        --scene-dir /tmp/eval_scenes --out training/runs/demo224/eval_cameras_v1.json

Each scene is drawn by the repository's own generator in the evaluation style (`scenes.EVAL`, seeds from
`scenes.EVAL_SEED_BASE + --first-seed`, never a training seed; the default offset also keeps these scenes
apart from the few hundred that `train.evaluate` reports the pointmap error on). It is seen by 4-6 cameras
on one arc (`cameras.sample_views`, one lens per scene, field of view of the long side 40-80 degrees),
rendered on the CPU by the torch ray caster at a photo size (default 320x240, so the loader's resize + 224
crop runs; `--size 240x320` for portrait renders),
softened like the training images and saved as PNGs with a `cameras.json` in the layout of
`samples/photos/cameras.json`. Every scene folder is then reconstructed through the normal path,
`pointmap.core.reconstruct(folder, MODEL, ReconstructOptions(device="cpu"))` with default options, and the
cameras are scored by `score_cameras.score` after a similarity fit. Scenes are a pure function of their
seed and the render settings, so two models run with the same arguments see the same images; with
`--scene-dir` they are rendered once and reused.

Prints one JSON line per scene and, last, the aggregate (mean/median/min/max over scenes of each scene's
rotation mean/max, focal error, signed focal error and centre error, plus the pooled per-view rotation
error). `--out` writes the whole result (per scene + aggregate), stamped with the command, the commit and
the model's training step, after every scene; `"complete": false` marks a run stopped before its last scene.
Two models can run at once on the same `--scene-dir` (each scene is rendered by whichever comes first).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .scenes import EVAL, EVAL_SEED_BASE

# Offset of the first scene's seed inside the evaluation range; train.evaluate uses the range's start.
DEFAULT_FIRST_SEED = 500_000
SCORED = ("rotation_deg_mean", "rotation_deg_max", "focal_pct_mean", "focal_pct_signed_mean",
          "centre_err_of_spread_mean")
RENDER_VERSION = 1   # bump when the way scenes are rendered changes, so cached scene folders are redrawn


def views_for_seed(seed: int, views: tuple[int, int]) -> int:
    """Number of views of scene `seed`, uniform in the inclusive range `views` (its own generator, so the
    scene and its cameras do not depend on it)."""
    import torch

    g = torch.Generator().manual_seed(int(seed) * 2_654_435 + 17)
    return int(torch.randint(views[0], views[1] + 1, (1,), generator=g))


def render_scene(seed: int, n_views: int, size: tuple[int, int], folder: Path, supersample: int) -> dict:
    """Render scene `seed` (EVAL style) from n_views cameras at size (H, W) into folder/view_XX.png plus
    folder/cameras.json {"cameras": {name: {"cam2world" 4x4 OpenCV, "K" 3x3, "width", "height"}}}.
    Returns the cameras.json content."""
    import torch
    from PIL import Image

    from .data import render_views, soften

    r, c2w, K = render_views([seed], n_views, size, EVAL, "cpu", supersample)
    img = soften(r.image.permute(0, 1, 4, 2, 3), seed)[0].permute(0, 2, 3, 1)       # (V, H, W, 3) in [0, 1]
    rgb = (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("view_*.png"):     # a render with other settings may have left more views
        stale.unlink()
    h, w = size
    cams = {}
    for v in range(n_views):
        name = f"view_{v:02d}.png"
        Image.fromarray(rgb[v]).save(folder / name)
        cams[name] = {"cam2world": c2w[0, v].double().numpy().round(9).tolist(),
                      "K": K[0, v].double().numpy().round(9).tolist(), "width": w, "height": h}
    truth = {"convention": "OpenCV camera axes; world z up; pixel centres at integers",
             "render": _render_key(seed, n_views, size, supersample), "cameras": cams}
    (folder / "cameras.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth


def _render_key(seed: int, n_views: int, size: tuple[int, int], supersample: int) -> dict:
    return {"seed": seed, "views": n_views, "size_hw": list(size), "supersample": supersample,
            "style": "EVAL", "version": RENDER_VERSION}


def scene_folder(root: Path, seed: int, n_views: int, size: tuple[int, int], supersample: int) -> tuple[Path, float]:
    """root/scene_<seed>, rendered unless a folder with the same render settings is already there.
    Returns the folder and the seconds spent rendering (0 when reused)."""
    import fcntl

    folder = root / f"scene_{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    # A lock per scene: two evaluations of different models sharing --scene-dir render each scene once.
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        truth_path = folder / "cameras.json"
        if truth_path.is_file():
            old = json.loads(truth_path.read_text())
            if old.get("render") == _render_key(seed, n_views, size, supersample) and \
                    all((folder / n).is_file() for n in old["cameras"]):
                return folder, 0.0
        t0 = time.perf_counter()
        render_scene(seed, n_views, size, folder, supersample)
        return folder, time.perf_counter() - t0


def score_scene(folder: Path, model: str, input_crop: str = "auto") -> dict:
    """Reconstruct folder with `model` (default options but `input_crop`, CPU) and score its cameras against
    cameras.json."""
    from ..core import reconstruct
    from ..core.options import ReconstructOptions
    from .score_cameras import score

    truth = json.loads((folder / "cameras.json").read_text())["cameras"]
    t0 = time.perf_counter()
    rec = reconstruct(folder, model, ReconstructOptions(device="cpu", input_crop=input_crop))
    seconds = time.perf_counter() - t0
    names = [Path(p).name if p else n for p, n in zip(rec.paths, rec.names, strict=True)]
    if sorted(names) != sorted(truth):
        raise RuntimeError(f"{folder}: reconstructed views {names} are not the rendered views {sorted(truth)}")
    true_c2w = np.array([truth[n]["cam2world"] for n in names], float)
    true_K = np.array([truth[n]["K"] for n in names], float)
    s = score(rec.cam2world, rec.K, true_c2w, true_K)
    f_ratio = (rec.K[:, 0, 0] + rec.K[:, 1, 1]) / (true_K[:, 0, 0] + true_K[:, 1, 1])
    # Signed focal error: negative = too short (too wide a field of view), the bias version 1 showed.
    s["focal_pct_signed_mean"] = float((f_ratio - 1).mean() * 100)
    s["true_hfov_deg"] = float(np.degrees(2 * np.arctan(0.5 * truth[names[0]]["width"] / true_K[0, 0, 0])))
    s["reconstruct_s"] = round(seconds, 2)
    s["input_crop"] = rec.meta.get("input_crop")
    return s


def aggregate(per_scene: list[dict]) -> dict:
    """Mean, median, min and max over scenes of each scored figure, and the pooled per-view rotation error."""
    out: dict = {"scenes": len(per_scene), "views": int(sum(s["views"] for s in per_scene))}
    for key in SCORED:
        vals = [s[key] for s in per_scene]
        out[key] = {"mean": float(np.mean(vals)), "median": float(statistics.median(vals)),
                    "min": float(np.min(vals)), "max": float(np.max(vals))}
    pooled = np.concatenate([s["rotation_deg"] for s in per_scene])
    out["rotation_deg_per_view"] = {"mean": float(pooled.mean()), "median": float(np.median(pooled)),
                                    "p90": float(np.percentile(pooled, 90)), "max": float(pooled.max())}
    return out


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parent).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                               cwd=Path(__file__).resolve().parent).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _training_step(model: Path) -> int | None:
    """The training step stored in a model folder's safetensors metadata (None when absent)."""
    from safetensors import safe_open

    file = model / "model.safetensors"
    if not file.is_file():
        return None
    with safe_open(str(file), "pt") as f:
        step = (f.metadata() or {}).get("training_step")
    return int(step) if step is not None else None


def _size(text: str) -> tuple[int, int]:
    """'WxH' -> (H, W)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 320x240, not {text!r}") from None
    return h, w


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="model folder (config.json + model.safetensors) or checkpoint file")
    ap.add_argument("--scenes", type=int, default=12)
    ap.add_argument("--views", type=int, nargs=2, default=(4, 6), metavar=("MIN", "MAX"),
                    help="views per scene, drawn per scene from this inclusive range")
    ap.add_argument("--size", type=_size, default=(240, 320), help="photo size WxH (default 320x240)")
    ap.add_argument("--supersample", type=int, default=2, help="rays per pixel side (anti-aliasing)")
    ap.add_argument("--first-seed", type=int, default=DEFAULT_FIRST_SEED,
                    help="offset of the first scene inside the evaluation seed range")
    ap.add_argument("--scene-dir", type=Path, default=None,
                    help="keep the rendered scenes here and reuse them (default: a temporary folder)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--out", type=Path, default=None, help="write the result JSON here")
    ap.add_argument("--input-crop", choices=["auto", "square", "whole"], default="auto",
                    help="what the network sees of each render at 224 (auto: what the model declares; "
                         "ReconstructOptions.input_crop)")
    ap.add_argument("--smoke", action="store_true", help="1 scene, 2 views, 64x48, no supersampling (tests)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.scenes, args.views, args.size, args.supersample = 1, (2, 2), (48, 64), 1
    if not 2 <= args.views[0] <= args.views[1]:
        ap.error(f"--views needs 2 <= MIN <= MAX, not {args.views[0]} {args.views[1]}")
    if not (args.model.is_dir() or args.model.is_file()):
        ap.error(f"{args.model}: no such model folder or file")

    import tempfile

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    command = " ".join(["python -m pointmap.training.eval_cameras", *(argv if argv is not None else sys.argv[1:])])
    first = EVAL_SEED_BASE + args.first_seed
    result: dict = {
        "model": str(args.model), "training_step": _training_step(args.model) if args.model.is_dir() else None,
        "command": command, "commit": _commit(), "device": "cpu", "torch_threads": torch.get_num_threads(),
        "settings": {"scenes": args.scenes, "views": list(args.views), "size_wh": [args.size[1], args.size[0]],
                     "supersample": args.supersample, "style": "EVAL", "seeds": [first, first + args.scenes - 1],
                     "reconstruct_options": "defaults, device=cpu"
                     + ("" if args.input_crop == "auto" else f", input_crop={args.input_crop}")},
    }
    with tempfile.TemporaryDirectory(prefix="eval_cameras_") as tmp:
        root = args.scene_dir or Path(tmp)
        per_scene: list[dict] = []
        for i in range(args.scenes):
            seed = first + i
            n_views = views_for_seed(seed, tuple(args.views))
            folder, render_s = scene_folder(root, seed, n_views, args.size, args.supersample)
            s = {"seed": seed, **score_scene(folder, str(args.model), args.input_crop), "render_s": round(render_s, 2)}
            per_scene.append(s)
            print(json.dumps(s), flush=True)
            result.update(complete=i + 1 == args.scenes, aggregate=aggregate(per_scene), per_scene=per_scene,
                          wall_s=round(time.perf_counter() - t_all, 1))
            if args.out:   # after every scene, so a run stopped early still leaves its finished scenes
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_scene"}, indent=1))
    return result

if __name__ == "__main__":
    main()
