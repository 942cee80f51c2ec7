"""Speed and memory of depth-map fusion (core.meshing) on synthetic object scenes. Prints JSON.

    python bench/bench_mesh.py --device cuda      # 100 views of 512x384 at 512^3-equivalent (target <= 3 s, <= 8 GiB)
    python bench/bench_mesh.py --device cpu       # 20 views of 256x192 at 256^3-equivalent (target <= 30 s, 2 cores)
    python bench/bench_mesh.py --smoke            # 4 views of 64x48 at 64^3 on the CPU: checks the script runs (seconds)
    ... --no-refine-views                         # without the per-view depth fields (MeshOptions.depth_fields)

Inputs come from tests/helpers_meshgen.py (ray-cast spheres/boxes on a floor, README perturbations).
"N^3-equivalent" = `MeshOptions.max_resolution` N: voxels no finer than the robust bounds' longest side / N.
Timing covers `fuse_mesh` end to end (fusion, marching cubes, clean-up), after one warm-up call;
fusion is split into `prepare` (host: input checks, bounds, voxel size, truncation) and `integrate`
(device: block allocation and TSDF updates), with fusion's work counts (`fusion_work`).

PyMCubes: when `import mcubes` fails, a PyMCubes wheel from `--wheel-dir` (default .gpujobs/whl, where
the GPU jobs carry wheels) is unpacked into a temporary folder and put on sys.path, so the GPU machine
(no PyMCubes installed) runs the case in one command.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))   # helpers_meshgen: the synthetic scene generator

from helpers_meshgen import make_case  # noqa: E402
from pointmap.core.meshing import MeshOptions, fuse_mesh  # noqa: E402
from record import commit, stamp  # noqa: E402  (bench/ is on sys.path when run as a script)

CONFIGS = {"gpu": {"views": 100, "W": 512, "H": 384, "resolution": 512, "target_s": 3.0, "target_gib": 8.0},
           "cpu": {"views": 20, "W": 256, "H": 192, "resolution": 256, "target_s": 30.0},
           "smoke": {"views": 4, "W": 64, "H": 48, "resolution": 64, "target_s": None}}


def _ensure_mcubes(wheel_dir: Path) -> str:
    """Make `import mcubes` work; returns where it came from ('installed' or the unpacked wheel)."""
    try:
        import mcubes  # noqa: F401

        return "installed"
    except ImportError:
        pass
    wheels = sorted(wheel_dir.glob("PyMCubes-*.whl")) if wheel_dir.is_dir() else []
    if not wheels:
        raise SystemExit(f"bench_mesh: PyMCubes is not installed and no PyMCubes-*.whl is in {wheel_dir} "
                         "(pip install PyMCubes, or pass --wheel-dir).")
    target = Path(tempfile.mkdtemp(prefix="bench_mesh_whl_"))
    with zipfile.ZipFile(wheels[-1]) as z:   # a wheel is a zip of the site-packages tree
        z.extractall(target)
    sys.path.insert(0, str(target))
    import mcubes  # noqa: F401

    return str(wheels[-1].name)


SYNC_OPS = ("aten::nonzero", "aten::_unique2", "aten::unique_dim", "aten::item", "aten::is_nonzero",
            "aten::_local_scalar_dense", "aten::masked_select")


def _count_ops(inputs, opts) -> dict:
    """Top-level torch ops of one `fuse_mesh` call (each about one kernel launch on a GPU), the ops
    that make the host wait for the device (their result size or value is read back), and the
    tensors made from host data (a copy that, from pageable memory, waits for queued GPU work)."""
    from collections import Counter

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fuse_mesh(*inputs, opts)
    top = Counter(e.name for e in prof.events() if e.name.startswith("aten::")
                  and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")))
    return {"top_level_ops": sum(top.values()), "sync_ops": {k: top[k] for k in SYNC_OPS if top[k]},
            "tensors_from_host": top["aten::lift_fresh"],
            "note": "whole fuse_mesh (fusion, extraction, clean-up, colours); boolean-mask indexing "
                    "also syncs and is counted inside aten::index, not here"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--config", choices=list(CONFIGS), default=None, help="default: gpu on CUDA, else cpu")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run (config 'smoke', one repeat)")
    ap.add_argument("--wheel-dir", type=Path, default=ROOT / ".gpujobs" / "whl",
                    help="where a PyMCubes wheel is looked for when PyMCubes is not installed")
    ap.add_argument("--count-ops", action="store_true",
                    help="also profile one call: torch ops (~ kernel launches on a GPU) and host-sync ops")
    ap.add_argument("--no-refine-views", action="store_true",
                    help="MeshOptions(depth_fields=False): fuse the views as given (no per-view depth fields)")
    args = ap.parse_args(argv)
    mcubes_from = _ensure_mcubes(args.wheel_dir)
    if args.smoke:
        args.device, args.config, args.repeats = "cpu", "smoke", 1
    cfg_name = args.config or ("gpu" if args.device.startswith("cuda") else "cpu")
    cfg = CONFIGS[cfg_name]
    case = make_case(seed=5, views=cfg["views"], W=cfg["W"], H=cfg["H"], gt_factor=0)
    opts = MeshOptions(device=args.device, max_resolution=cfg["resolution"], depth_fields=not args.no_refine_views)
    inputs = (list(case["depth"]), list(case["conf"]), case["K"], case["cam2world"], list(case["images"]))
    cuda = args.device.startswith("cuda")
    fuse_mesh(*inputs, opts)   # warm-up (CUDA context, kernels)
    times, cpu_times, mesh = [], [], None
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.repeats):
        if cuda:
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        mesh = fuse_mesh(*inputs, opts)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    ops = _count_ops(inputs, opts) if args.count_ops else None
    report = {
        "command": " ".join([sys.executable, *sys.argv]), "commit": commit(), "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if cuda else (platform.processor() or platform.machine()),
        "threads": torch.get_num_threads(), "config": cfg_name, **cfg,
        "seconds": times, "seconds_best": min(times), "seconds_fusion_last": mesh.info["seconds_fuse"],
        "seconds_prepare_last": mesh.info.get("seconds_prepare"),
        "seconds_refine_views_last": mesh.info.get("seconds_refine_views"),   # part of prepare
        "depth_fields": opts.depth_fields,
        "seconds_integrate_last": mesh.info.get("seconds_integrate"),
        "seconds_extract_last": mesh.info["seconds_extract"],
        "seconds_after_extract_last": mesh.info["seconds_total"] - mesh.info["seconds_fuse"] - mesh.info["seconds_extract"],
        "cpu_seconds": cpu_times,   # process CPU time: the honest figure on a shared, loaded machine
        "voxel_size": mesh.info["voxel_size"], "truncation": mesh.info["truncation"],
        "blocks": mesh.info["blocks"], "fusion_work": mesh.info.get("fusion_work"),
        "faces": mesh.n_faces, "vertices": mesh.n_vertices, "mcubes": mcubes_from,
    }
    if ops is not None:
        report["ops"] = ops
    if cuda:
        report["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    print(json.dumps(stamp(report), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
