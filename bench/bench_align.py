"""Global-alignment benchmark on synthetic scenes generated on the device; prints one JSON document.

    python bench/bench_align.py --device cuda                 # 8/16/32 views 512x384 complete + 200-view sparse
    python bench/bench_align.py --device cpu --cpu-case       # 8 views of 96x64 on this machine

Reference (DUSt3R PointCloudOptimizer, 300 iterations): 4.3 s / 9.7 s / 35.1 s for 8 / 16 / 32 views
at 512x384 on an H200, and 73 s for 8 views of 96x64 on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # helpers_synth: generator + scores

import torch  # noqa: E402
from helpers_synth import make_case, passes, score  # noqa: E402
from pointmap.core.align.refine import global_align
from pointmap.core.options import AlignOptions  # noqa: E402
from record import stamp  # noqa: E402  (bench/ is on sys.path when run as a script)

REFERENCE = {"h200_512x384_complete_s": {"8": 4.3, "16": 9.7, "32": 35.1}, "cpu2_8x96x64_s": 73.0}
TARGETS_S = {"gpu": {"8": 0.4, "16": 1.0, "32": 3.0}, "cpu2_8x96x64_s": 5.0}


def run_case(device: str, n: int, size, graph: str, path: str, seed: int, repeats: int = 1, storage: str = "fp16",
             **options) -> dict:
    pred, truth = make_case(n_views=n, size=size, graph=graph, path=path, seed=seed, device=device)
    if storage == "fp16":   # what the inference engine hands over: float16, one buffer per image shape
        pred = pred.converted(torch.float16)
    cuda = device.startswith("cuda")
    times, res = [], None
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        res = global_align(pred, AlignOptions(**options))
        times.append(time.perf_counter() - t0)         # results are numpy: already synchronised
    out = {"views": n, "size": list(size), "graph": graph, "edges": pred.n_edges, "storage": storage,
           "seconds": min(times),
           "seconds_all": times, "iterations": res.info["iterations"],
           "init_seconds": res.info["init_seconds"], "refine_seconds": res.info["refine_seconds"],
           "refine_mode": res.info["refine_mode"]}
    if cuda:
        out["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    s = score(res.cam2world, res.focals, truth)
    out.update(accuracy=s, accurate=passes(s))
    del pred, res
    if cuda:
        torch.cuda.empty_cache()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sizes", type=int, nargs="*", default=[8, 16, 32])
    ap.add_argument("--sparse", type=int, default=200, help="views of the sparse-graph memory check (0: skip)")
    ap.add_argument("--sparse-graph", default="logwin-4")
    ap.add_argument("--sparse-path", default="loop", help="camera path of the sparse scene (loop: a full circle, "
                    "so neighbours see parallax and the cyclic graph closes it)")
    ap.add_argument("--eager", action="store_true", help="also time the 8-view case without CUDA graphs")
    ap.add_argument("--cpu-case", action="store_true", help="only the 8-view 96x64 CPU case")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--storage", choices=["fp16", "lists32"], default="fp16",
                    help="fp16: engine layout (float16 group buffers); lists32: per-edge float32 tensors (as before)")
    args = ap.parse_args(argv)
    report = {"device": args.device, "torch": torch.__version__, "reference": REFERENCE, "targets": TARGETS_S}
    if args.device.startswith("cuda"):
        report["gpu"] = torch.cuda.get_device_name()
        run_case(args.device, 4, (64, 96), "complete", "orbit", 0, storage=args.storage)   # CUDA / cuSOLVER warm-up
    else:
        report["threads"] = torch.get_num_threads()
    if args.cpu_case:
        report["cpu_8x96x64"] = run_case(args.device, 8, (64, 96), "complete", "orbit", 1, args.repeats, args.storage)
    else:
        report["complete_512x384"] = [run_case(args.device, n, (384, 512), "complete", "orbit", 10 + n, args.repeats,
                                               args.storage) for n in args.sizes]
        if args.eager and args.device.startswith("cuda"):
            report["eager_8_512x384"] = run_case(args.device, 8, (384, 512), "complete", "orbit", 18, args.repeats,
                                                 args.storage, cuda_graph=False)
        if args.sparse:
            report["sparse"] = run_case(args.device, args.sparse, (384, 512), args.sparse_graph, args.sparse_path, 7,
                                        storage=args.storage)
    print(json.dumps(stamp(report), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
