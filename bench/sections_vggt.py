"""Per-stage timing and kernel profile of VGGT-1B (random weights) on one GPU, to see where time goes.

    python bench/sections_vggt.py [--frames 10,200] [--profile] [--no-fused]

For each frame count, one JSON line: DINOv2, aggregator eager and fused (blocks.set_fused; the first
fused call's compile time is reported separately), camera head, one DPT head with float32 weights
(TF32 convs) and with bf16 weights, and the bf16 head's relative error against the float32 head on
the same aggregator tokens (max |Δ| / max |ref| and the 99.9th percentile of |Δ|/|ref|).
With --profile, also the top 25 CUDA kernels (torch.profiler, one aggregator forward) eager and fused.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from functools import partial

import torch
from bench_vggt import build_bf16_model, gpu_seconds  # run as a script: bench/ is on sys.path
from pointmap.core.backends.vggt import fast_attention
from pointmap.core.models.vggt.blocks import set_fused
from record import stamp  # noqa: E402  (bench/ is on sys.path when run as a script)


def timed(fn, repeats=2):
    """Best of `repeats` synchronised calls after a warm-up, in seconds."""
    return round(min(gpu_seconds(fn, repeats)), 4)


def kernel_table(fn, title: str) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    print(f"--- {title}", flush=True)
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70),
          flush=True)


def rel_errors(got: torch.Tensor, ref: torch.Tensor) -> dict:
    got, ref = got.double(), ref.double()
    diff = (got - ref).abs()
    ratio = (diff / ref.abs().clamp_min(1e-12)).flatten()
    q = torch.quantile(ratio[torch.randperm(ratio.numel(), device=ratio.device)[:1_000_000]], 0.999)
    return {"max_over_max": float(diff.max() / ref.abs().max()), "p999_rel": float(q)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", default="10,200")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--no-fused", action="store_true")
    ap.add_argument("--no-eager", action="store_true", help="skip the eager aggregator timing/profile")
    args = ap.parse_args()
    h, w = 392, 518
    model = build_bf16_model()
    head16 = copy.deepcopy(model.depth_head).to(torch.bfloat16)
    agg, start = model.aggregator, model.aggregator.patch_start_idx
    for n in (int(v) for v in args.frames.split(",")):
        x = torch.rand(1, n, 3, h, w, device="cuda")
        reps = 2 if n < 100 else 1
        run_agg = partial(agg, x, keep=model.head_layers)
        with torch.inference_mode(), fast_attention(torch.device("cuda")):
            res = {"frames": n}
            res["dino"] = timed(partial(agg.patch_tokens, x), reps)
            if not args.no_eager:
                res["aggregator_eager"] = timed(run_agg, reps)
                if args.profile:
                    kernel_table(run_agg, f"aggregator eager, {n} frames")
            if not args.no_fused:
                set_fused(agg, True)
                t0 = time.perf_counter()
                run_agg()
                torch.cuda.synchronize()
                res["fused_first_call_seconds"] = round(time.perf_counter() - t0, 1)
                res["aggregator_fused"] = timed(run_agg, reps)
                if args.profile:
                    kernel_table(run_agg, f"aggregator fused, {n} frames")
                set_fused(agg, False)
            layers = run_agg()
            res["camera_head"] = timed(partial(model.camera_head, layers[-1].float()), reps)
            res["dpt_fp32"] = timed(partial(model.depth_head, layers, h, w, start, 8), reps)
            res["dpt_bf16"] = timed(partial(head16, layers, h, w, start, 8), reps)
            d32, c32 = model.depth_head(layers, h, w, start, 8)
            d16, c16 = head16(layers, h, w, start, 8)
            res["dpt_bf16_err_depth"] = rel_errors(d16, d32)
            res["dpt_bf16_err_conf"] = rel_errors(c16, c32)
            del layers, d32, c32, d16, c16
            print(json.dumps(stamp(res)), flush=True)


if __name__ == "__main__":
    main()
