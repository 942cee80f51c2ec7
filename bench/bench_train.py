"""Training throughput of the demo network (pairs per second) with each speed option of `training/train.py`.

    python bench/bench_train.py                  # GPU: the demo model, batch 48, 224x160 frames
    python bench/bench_train.py --smoke          # CPU: a tiny model, seconds; checks the script runs

Variants, each a real `train.main` run of `--steps` steps in this process (scratch folders), in this order:
`dense` (every ray against every object slot, the renderer before session 9), `cull` (only rays meeting an
object's bounding sphere; the default), `cull+draw` (`--draw-workers`: scenes and cameras drawn in worker
processes), `cull+draw+compile` (`--compile-render`; last, since compiling changes the renderer for the rest
of the process). The figure is the median of the `pairs_per_s` log records after the first (warm-up, and for
the compiled variant the compilation). Also timed apart, on one batch: drawing (CPU), rendering, and the
model's forward+backward, so the split of a step is visible.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
from record import stamp  # noqa: E402  (bench/ is on sys.path when run as a script)

VARIANTS = ("dense", "cull", "cull+draw", "cull+draw+compile")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def split_of_a_step(batch: int, frame: tuple[int, int], device: torch.device, config: dict) -> dict:
    """Seconds for one batch: draw (CPU), render (device), model forward+backward (device); the renderer as
    the process has it (culled; compiled only after a compiled variant ran, so this runs first)."""
    from pointmap.training.data import draw_views, make_pairs_batch
    from pointmap.training.loss import conf_regression_loss
    from pointmap.training.train import forward_pair, new_model

    seeds = list(range(700_000_000, 700_000_000 + batch))
    out = {}
    for _ in range(2):                                            # the first is a warm-up
        t = time.perf_counter()
        drawn = draw_views(seeds, 2, frame, fov_deg=(25.0, 80.0))
        t_draw = time.perf_counter() - t
        _sync(device)
        t = time.perf_counter()
        b = make_pairs_batch(seeds, frame, device=device, supersample=1, fov_deg=(25.0, 80.0), drawn=drawn)
        _sync(device)
        t_render = time.perf_counter() - t
        out = {"draw_s": t_draw, "render_s": t_render}
    model = new_model(device, config)
    for _ in range(3):                                            # the first two warm up
        _sync(device)
        t = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            p1, c1, p2, c2 = forward_pair(model, b.img1, b.img2)
        loss, _ = conf_regression_loss(p1, c1, p2, c2, b.pts1, b.pts2)
        loss.backward()
        _sync(device)
        out["model_s"] = time.perf_counter() - t
    return out


def run_variant(name: str, args, config: dict, scratch: Path) -> dict:
    import pointmap.training.render as render
    from pointmap.training.train import main

    dense_cast = functools.partial(render.cast, cull=False) if name == "dense" else None
    original = render.cast
    if dense_cast is not None:
        render.cast = dense_cast
    run = scratch / name.replace("+", "_")
    argv = ["--rundir", str(run), "--size", str(args.size), "--batch", str(args.batch), "--supersample", "1",
            "--accumulate", str(args.accumulate), "--total-steps", "100000", "--max-steps", str(args.steps),
            "--warmup", "10", "--log-every", str(args.log_every), "--eval-every", "1000000", "--eval-pairs", "2",
            "--aspects", args.aspect, "--fov-deg", "25", "80", "--model-config", json.dumps(config)]
    if "draw" in name:
        argv += ["--draw-workers", str(args.draw_workers)]
    if "compile" in name:
        argv += ["--compile-render"]
    t = time.perf_counter()
    try:
        main(argv)
    finally:
        render.cast = original
    wall = time.perf_counter() - t
    rates = [r["pairs_per_s"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())
             if "pairs_per_s" in r]
    steady = rates[1:] or rates
    return {"pairs_per_s": statistics.median(steady), "pairs_per_s_records": rates, "wall_s": wall}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--accumulate", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--aspect", default="4:3", help="training frame (4:3 at 224: 224x160, the most drawn)")
    ap.add_argument("--draw-workers", type=int, default=4)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    from pointmap.training.cameras import aspect_shape, parse_aspect
    from pointmap.training.config import DEMO_CONFIG

    config = dict(DEMO_CONFIG)
    if args.smoke:
        config.update(enc_embed_dim=32, enc_depth=1, enc_num_heads=2, dec_embed_dim=16, dec_depth=1,
                      dec_num_heads=1, img_size=[32, 32])
        args.size, args.batch, args.steps, args.log_every, args.draw_workers = 32, 2, 4, 2, 1
        args.variants = "dense,cull,cull+draw"
    names = args.variants.split(",")
    for name in names:                   # before the split of a step, which takes minutes on the demo model
        if name not in VARIANTS:
            ap.error(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    frame = aspect_shape(parse_aspect(args.aspect)[0], args.size, int(config.get("patch_size", 16)))
    report = {"what": "demo-network training throughput (pairs/s) per speed option", "device": device.type,
              "frame_hw": list(frame), "batch": args.batch, "accumulate": args.accumulate, "steps": args.steps,
              "draw_workers": args.draw_workers, "smoke": args.smoke, "cpu_threads": torch.get_num_threads(),
              "split_of_a_step_s": split_of_a_step(args.batch, frame, device, config), "variants": {}}
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            report["variants"][name] = run_variant(name, args, config, Path(scratch))
            print(name, json.dumps(report["variants"][name]), file=sys.stderr, flush=True)
            # written after every variant: a run stopped by a time limit keeps what it measured, stamped
            text = _finish(report, complete=name == names[-1], out=args.out)
    print(text)
    return json.loads(text)


def _finish(report: dict, complete: bool, out: Path | None) -> str:
    base = report["variants"].get("dense", {}).get("pairs_per_s")
    if base:
        report["speedup_vs_dense"] = {k: v["pairs_per_s"] / base for k, v in report["variants"].items()}
    text = json.dumps(stamp({**report, "complete": complete}), indent=1)
    if out:
        part = out.with_name(out.name + ".part")
        part.write_text(text + "\n")
        part.replace(out)
    return text


if __name__ == "__main__":
    main()
