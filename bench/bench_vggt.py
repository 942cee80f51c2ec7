"""Benchmark the VGGT-1B network (random weights) on one GPU: seconds and peak memory per frame count.

    python bench/bench_vggt.py [--frames 1,10,50,100,200] [--size 518x392] [--out vggt_bench.json]

Times the whole network forward (aggregator in bf16 with its weights cast, camera head in float32,
depth/point heads in bf16 or float32 per variant, heads chunked by 8 frames, outputs left on the
GPU) after a warm-up at each size (which also absorbs torch.compile time in the fused variant), as
the reference numbers were measured. Peak memory is torch's max allocated, weights
included. With --parity DIR it also checks the tiny fixture model on the GPU (fp32 and bf16).
Run from the repository root with the package importable as `pointmap`.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from pointmap.core.backends.vggt import fast_attention
from pointmap.core.models.vggt import build_vggt
from pointmap.core.models.vggt.blocks import set_fused
from record import stamp  # noqa: E402  (bench/ is on sys.path when run as a script)

REFERENCE = {  # official code on H200: bf16 autocast aggregator, fp32 heads, PyTorch attention
    "device": "NVIDIA H200", "frames": [1, 10, 50, 100, 200],
    "seconds": [0.056, 0.19, 1.35, 3.95, 13.0], "peak_gib": [6.8, 9.8, 17.7, 28.7, 51.2],
}
TARGET = {"seconds": [0.04, 0.13, 1.1, 3.3, 11.5], "peak_gib_200": 25.0}


VARIANTS = {
    "default-sdpa": "PyTorch's own SDPA kernel choice, eager blocks, float32 DPT heads",
    "eager": "cuDNN-first SDPA, eager blocks, float32 DPT heads",
    "eager-bf16-heads": "cuDNN-first SDPA, eager blocks, bf16 DPT heads (run_vggt's CUDA default)",
    "fused-bf16-heads": "as eager-bf16-heads with torch.compile'd fused blocks (run_vggt fused=True); "
                        "compile time excluded (warm-up)",
}


def build_bf16_model():
    """VGGT-1B with random weights on the GPU in eval mode, its aggregator cast to bf16 as run_vggt does."""
    with torch.device("cuda"):
        model = build_vggt().eval()
    model.aggregator.to(torch.bfloat16)
    return model


def gpu_seconds(fn, repeats: int) -> list[float]:
    """Seconds of `repeats` synchronised calls of fn after one untimed warm-up call (kernel selection,
    allocator, torch.compile); the peak-memory counter is reset after the warm-up. Outputs are dropped."""
    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def time_forward(model, n: int, h: int, w: int, variant: str, repeats: int) -> dict:
    x = torch.rand(1, n, 3, h, w, device="cuda")
    set_fused(model.aggregator, variant.startswith("fused"))
    head_dtype = torch.bfloat16 if variant.endswith("bf16-heads") else torch.float32
    model.depth_head.to(head_dtype)
    model.point_head.to(head_dtype)
    ctx = torch.autocast("cuda", enabled=False) if variant == "default-sdpa" else fast_attention(torch.device("cuda"))
    with torch.inference_mode(), ctx:
        times = gpu_seconds(lambda: model(x), repeats)
    return {"frames": n, "seconds": round(min(times), 4), "seconds_all": [round(t, 4) for t in times],
            "peak_gib": round(torch.cuda.max_memory_allocated() / 1024 ** 3, 2)}


def parity_on_gpu(directory: str) -> dict:
    from pathlib import Path

    import numpy as np
    from pointmap.core.models.vggt import load_vggt

    d = Path(directory)
    cfg = json.loads((d / "manifest.json").read_text())["tiny_model_config"]
    ref = np.load(d / "tiny_outputs_main.npz")
    result = {}
    for precision in ("fp32", "bf16", "bf16-fused-bf16-heads"):
        model = load_vggt(d / "tiny_vggt_state_dict.pt", device="cuda", config=cfg)
        if precision.startswith("bf16"):
            model.aggregator.to(torch.bfloat16)
        if precision.endswith("bf16-heads"):
            model.depth_head.to(torch.bfloat16)
            model.point_head.to(torch.bfloat16)
        set_fused(model.aggregator, "fused" in precision)
        with torch.inference_mode(), fast_attention(torch.device("cuda")):
            out = model(torch.from_numpy(ref["images"]).cuda())
        errs = {}
        for key in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf"):
            r = ref[key].astype(np.float64)
            g = out[key].float().cpu().numpy().astype(np.float64)
            errs[key] = float(np.abs(g - r).max() / np.abs(r).max())
        result[precision] = {"max_abs_err_over_max_ref": errs}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", default="1,10,50,100,200")
    ap.add_argument("--size", default="518x392", help="W x H, multiples of 14")
    ap.add_argument("--variants", default="eager-bf16-heads,fused-bf16-heads", help="comma list of: " + ", ".join(VARIANTS))
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per size under 100 frames (1 above)")
    ap.add_argument("--parity", default=None, help="VGGT parity fixture dir to check on the GPU first")
    ap.add_argument("--out", default="vggt_bench.json")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    frames = [int(v) for v in args.frames.split(",")]

    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "size_wh": [w, h],
              "model": "VGGT-1B architecture, random weights, no track head",
              "precision": "aggregator bf16 (weights cast), camera head float32, DPT heads per variant "
                           "(float32 weights with TF32 convs, or bf16 weights)",
              "reference": REFERENCE, "target": TARGET, "runs": {}}
    if args.parity:
        result["parity_tiny_on_gpu"] = parity_on_gpu(args.parity)
        print(json.dumps(result["parity_tiny_on_gpu"]), flush=True)

    model = build_bf16_model()
    result["weights_gib"] = round(torch.cuda.memory_allocated() / 1024 ** 3, 2)
    result["variants"] = {v: VARIANTS[v] for v in args.variants.split(",")}
    for variant in args.variants.split(","):
        rows = []
        for n in frames:
            try:
                rows.append(time_forward(model, n, h, w, variant, args.repeats if n < 100 else 1))
            except torch.cuda.OutOfMemoryError as err:
                rows.append({"frames": n, "error": f"out of memory: {err}"[:300]})
                torch.cuda.empty_cache()
            print(variant, json.dumps(rows[-1]), flush=True)
        result["runs"][variant] = rows
    with open(args.out, "w") as f:
        json.dump(stamp(result), f, indent=1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
