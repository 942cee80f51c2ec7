"""Benchmark the pair engine on the full-size DUSt3R 512 DPT architecture (random weights). Prints JSON.

N images of W x H (default 512 x 384), complete symmetric graph (N(N-1) directed pairs); per N: seconds
for encode + all pairs after a warm-up, ms per pair, peak GPU memory (model weights included).

    python bench/bench_pairs.py                          # GPU, N = 8, 16, 32
    python bench/bench_pairs.py --device cpu --sizes 2 --height 64 --width 64   # smoke run
Run from the directory that contains the package `pointmap` on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from record import stamp  # noqa: E402  (bench/ is on sys.path when run as a script)

REFERENCE = {
    "what": "official dust3r inference on H200, fp32, batch 8, both views encoded for every pair",
    "pairs": {"8": 56, "16": 240, "32": 992},
    "seconds": {"8": 1.10, "16": 4.70, "32": 19.3},
    "ms_per_pair": 19.5,
    "peak_gib": {"8": 4.9, "16": 9.8, "32": 33.1},
}
CONFIG = Path(__file__).resolve().parent.parent / "tests/fixtures/checkpoint_keys/DUSt3R_ViTLarge_BaseDecoder_512_dpt.json"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sizes", default="8,16,32", help="comma-separated image counts N")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    ap.add_argument("--max-batch", default="", help="comma-separated max batch sizes to compare (default: engine's)")
    ap.add_argument("--height", type=int, default=384)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per N (the best is reported)")
    ap.add_argument("--upsample", default="auto", help="comma-separated DPT upsampling modes to compare "
                    "(auto, interpolate, nchw, matmul)")
    args = ap.parse_args()

    from pointmap.core.models import build_model, dpt
    from pointmap.core.pairwise.engine import PairInference

    device = torch.device(args.device)
    cfg = json.loads(CONFIG.read_text())["hf"]["config_json_reconstructed"]
    torch.manual_seed(0)
    with torch.device(device):  # random init directly on the device (much faster than on the CPU)
        model = build_model("AsymmetricCroCo3DStereo", cfg)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    batches = [int(b) for b in args.max_batch.split(",") if b] or [None]
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8) for _ in range(max(sizes))]

    result = {"gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "image_wh": [args.width, args.height], "runs": [], "reference": REFERENCE}
    combos = [(up, mb) for up in args.upsample.split(",") if up for mb in batches]
    for up, mb in combos:
        dpt.UPSAMPLE = up
        engine = PairInference(model, device=device, precision=args.precision, max_batch=mb)
        result["precision"] = engine.precision
        # Warm-up: kernels, autotuning, allocator.
        n0 = min(sizes)
        warm_edges = [(i, j) for i in range(n0) for j in range(n0) if i != j]
        engine.run_pairs(engine.encode(images[:n0]), warm_edges)
        for n in sizes:
            edges = [(i, j) for i in range(n) for j in range(n) if i != j]
            best = None
            for _ in range(args.repeat):
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats(device)
                _sync(device)
                t0 = time.perf_counter()
                enc = engine.encode(images[:n])
                _sync(device)
                t1 = time.perf_counter()
                preds = engine.run_pairs(enc, edges)
                _sync(device)
                t2 = time.perf_counter()
                peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
                del preds, enc
                run = {"upsample": up, "max_batch": engine.max_batch, "n_images": n, "pairs": len(edges),
                       "seconds": round(t2 - t0, 4), "encode_seconds": round(t1 - t0, 4),
                       "ms_per_pair": round(1000 * (t2 - t0) / len(edges), 3),
                       "peak_gib": None if peak is None else round(peak, 3), "outputs_finite": engine.outputs_finite()}
                if best is None or run["seconds"] < best["seconds"]:
                    best = run
            result["runs"].append(best)
    print(json.dumps(stamp(result), indent=1))


if __name__ == "__main__":
    main()
