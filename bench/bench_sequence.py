"""Long-shot benchmark: time and peak memory of whole shots, pairwise (seq-K graph) and VGGT chunked.

    python bench/bench_sequence.py --device cuda                          # 1,000 frames 512x288, both backends
    python bench/bench_sequence.py --device cuda --frames 3000            # the 3,000-frame run
    python bench/bench_sequence.py --device cpu --cpu-case                # 120 frames at 224, pairwise, 2 cores
    python bench/bench_sequence.py --device cpu --frames 10 --size 64 --smoke   # seconds: checks it runs

Frames are made in memory (a sliding window over one large textured image, like a slow pan), so no
decoding is timed. Weights are random (pretrained ones cannot be fetched here): the geometry is
meaningless and this measures time and memory only. Pairwise: DUSt3R ViT-L 512 DPT through
`pointmap.core.reconstruct` with graph seq-K (window K + log-spaced links), shared focal. VGGT: the 1B
architecture through `backends.vggt_chunked.run_vggt_chunked` (chunk length from free GPU memory).
Prints one JSON object with the commit, GPU, torch version and command.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import _random_model  # noqa: E402
from record import stamp  # noqa: E402  (bench/ is on sys.path when run as a script)


def frames(n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    """n frames (h, w, 3) uint8 of a slow pan over one smooth random texture."""
    rng = np.random.default_rng(seed)
    big_h, big_w = h + 64, w + n * 2 + 64
    coarse = rng.integers(0, 256, (big_h // 16 + 2, big_w // 16 + 2, 3)).astype(np.float32)
    yy = np.linspace(0, coarse.shape[0] - 1.001, big_h)
    xx = np.linspace(0, coarse.shape[1] - 1.001, big_w)
    y0, x0 = yy.astype(int), xx.astype(int)
    fy, fx = (yy - y0)[:, None, None], (xx - x0)[None, :, None]
    tex = ((1 - fy) * ((1 - fx) * coarse[y0][:, x0] + fx * coarse[y0][:, x0 + 1])
           + fy * ((1 - fx) * coarse[y0 + 1][:, x0] + fx * coarse[y0 + 1][:, x0 + 1])).astype(np.uint8)
    return [np.ascontiguousarray(tex[16 + (k % 7): 16 + (k % 7) + h, 2 * k: 2 * k + w]) for k in range(n)]


def _peak(device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def _reset(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def run_pairwise(device, n: int, h: int, w: int, size: int, window: int, model=None) -> dict:
    from pointmap.core import reconstruct
    from pointmap.core.options import AlignOptions, PairwiseOptions, ReconstructOptions

    model = model if model is not None else _random_model("dust3r", device)
    shot = frames(n, h, w)
    _reset(device)
    t = time.perf_counter()
    try:
        opts = ReconstructOptions(device=str(device), image_size=size, pairwise=PairwiseOptions(graph=f"seq-{window}"),
                                  align=AlignOptions(shared_focal=True))
        rec = reconstruct(shot, model, opts)
    except Exception as err:     # an out-of-memory run is a result too
        return {"frames": n, "error": f"{type(err).__name__}: {err}"[:400], "seconds": time.perf_counter() - t}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    out = {"frames": n, "net_size_hw": list(rec.net_size(0)), "graph": f"seq-{window}",
           "seconds": round(time.perf_counter() - t, 3), "peak_gib": _peak(device),
           "stages": {k: round(v, 3) for k, v in rec.meta.get("timings", {}).items()},
           "pairs": rec.meta.get("n_pairs"), "align": {k: v for k, v in rec.meta.get("align", {}).items()
                                                       if isinstance(v, (int, float, str))}}
    return out


def run_vggt(device, n: int, h: int, w: int, chunk: int | None = None, model=None, target: int = 518) -> dict:
    from pointmap.core.backends.vggt_chunked import run_vggt_chunked
    from pointmap.core.io.images import load_images_vggt

    model = model if model is not None else _random_model("vggt", device)
    shot = frames(n, h, w)
    t_load = time.perf_counter()
    images = load_images_vggt(shot, mode="crop", target=target)
    t_load = time.perf_counter() - t_load
    _reset(device)
    t = time.perf_counter()
    try:
        rec = run_vggt_chunked(model, images, chunk=chunk, device=device)
    except Exception as err:
        return {"frames": n, "error": f"{type(err).__name__}: {err}"[:400], "seconds": time.perf_counter() - t}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    meta = rec.meta["chunked"]
    return {"frames": n, "net_size_hw": list(rec.net_size(0)), "seconds": round(time.perf_counter() - t, 3),
            "preprocess_seconds": round(t_load, 3), "peak_gib": _peak(device), "chunk": meta["chunk"],
            "chunks": len(meta["chunks"]), "run_seconds": round(meta["run_seconds"], 3),
            "join_seconds": round(meta["join_seconds"], 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--size", type=int, nargs=2, default=[288, 512], metavar=("H", "W"), help="frame size")
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--only", choices=["pairs", "vggt"], default=None)
    ap.add_argument("--chunk", type=int, default=None, help="VGGT frames per chunk (default: from free memory)")
    ap.add_argument("--cpu-case", action="store_true", help="120 frames at 224, pairwise only (2-core target)")
    ap.add_argument("--smoke", action="store_true", help="tiny run that only checks the script works")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=False).stdout.strip()
    except OSError:
        commit = ""
    report = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if argv is None else " ".join(argv),
              "commit": commit, "torch": torch.__version__, "device": str(device),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
              "threads": torch.get_num_threads(), "weights": "random (timing and memory only)"}
    h, w = args.size
    if args.cpu_case:
        report["pairs_cpu_120x224"] = run_pairwise(device, 120, h, w, 224, args.window)
    else:
        size = max(h, w)
        if args.only in (None, "pairs"):
            report["pairs"] = run_pairwise(device, args.frames, h, w, size, args.window)
        if args.only in (None, "vggt"):
            if args.smoke:   # the tiny reference VGGT (test fixture): the 1B one takes ~4 GB of host memory
                sys.path.insert(0, str(ROOT / "tests"))
                from helpers_vggt import tiny_model

                report["vggt_chunked"] = run_vggt(device, args.frames, h, w, 6, tiny_model("pt"), (w // 14) * 14)
            else:
                report["vggt_chunked"] = run_vggt(device, args.frames, h, w, args.chunk)
    print(json.dumps(stamp(report), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
