"""Per-stage timing of VGGT-1B (random weights) on one GPU, to see where time goes.

    python bench/sections_vggt.py [--frames 10,200] [--compile]

Stages: aggregator (bf16 weights, cuDNN-first SDPA), camera head, one DPT head with float32 weights
(TF32 convs) vs under bf16 autocast, and frame chunks 8 vs 32. Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

import torch
from pointmap.core.models.vggt import build_vggt
from pointmap.core.models.vggt.blocks import use_compiled_qk_prep
from pointmap.core.vggt_backend import fast_attention


def timed(fn, repeats=2):
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return round(best, 4)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", default="10,200")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    h, w = 392, 518
    with torch.device("cuda"):
        model = build_vggt().eval()
    model.aggregator.to(torch.bfloat16)
    agg, start = model.aggregator, model.aggregator.patch_start_idx
    for n in (int(v) for v in args.frames.split(",")):
        x = torch.rand(1, n, 3, h, w, device="cuda")
        with torch.inference_mode(), fast_attention(torch.device("cuda")):
            res = {"frames": n}
            res["dino"] = timed(partial(agg.patch_tokens, x))
            res["aggregator"] = timed(partial(agg, x, keep=model.head_layers))
            layers = agg(x, keep=model.head_layers)
            res["camera_head"] = timed(partial(model.camera_head, layers[-1].float()))
            for chunk in (8, 32):
                res[f"dpt_fp32_chunk{chunk}"] = timed(partial(model.depth_head, layers, h, w, start, chunk))
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    res[f"dpt_bf16_chunk{chunk}"] = timed(partial(model.depth_head, layers, h, w, start, chunk))
            print(json.dumps(res), flush=True)
            if args.compile and n == max(int(v) for v in args.frames.split(",")):
                use_compiled_qk_prep(True)
                t0 = time.perf_counter()
                agg(x, keep=model.head_layers)
                torch.cuda.synchronize()
                print(json.dumps({"frames": n, "compile_seconds": round(time.perf_counter() - t0, 1),
                                  "aggregator_compiled": timed(partial(agg, x, keep=model.head_layers))}), flush=True)


if __name__ == "__main__":
    main()
