"""End-to-end GPU check: `pointmap.core.reconstruct` on the bundled sample photos, full-size networks.

Runs the whole user path (load → encode → pairs → align, and load → VGGT) on the device with the
DUSt3R 512 DPT and VGGT-1B architectures. The weights are random (pretrained ones cannot be fetched
here), so the geometry is meaningless: this measures the stages' time and memory and proves the GPU
path works end to end; it is not a reconstruction result. Prints one JSON object.

Run: python bench/bench_pipeline.py [--photos samples/photos] [--device cuda] [--graph complete]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
DUST3R_CONFIG = ROOT / "tests/fixtures/checkpoint_keys/DUSt3R_ViTLarge_BaseDecoder_512_dpt.json"


def _random_model(kind: str, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    with torch.device(device):
        if kind == "dust3r":
            from pointmap.core.models import build_model

            cfg = json.loads(DUST3R_CONFIG.read_text())["hf"]["config_json_reconstructed"]
            return build_model("AsymmetricCroCo3DStereo", cfg).eval()
        from pointmap.core.models.vggt import build_vggt

        return build_vggt().eval()


def _run(kind: str, photos: str, device: torch.device, graph: str, repeats: int, size: int | None) -> dict:
    from pointmap.core import reconstruct

    model = _random_model(kind, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    runs = []
    for _ in range(repeats):   # the first run includes one-time costs (cuDNN autotuning, lazy init)
        t = time.perf_counter()
        rec = reconstruct(photos, model, device=str(device), graph=graph, image_size=size)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        runs.append({"seconds": round(time.perf_counter() - t, 3),
                     "stages": {k: round(v, 3) for k, v in rec.meta["timings"].items()}})
    out = {"views": rec.n_views, "net_size_hw": list(rec.net_size(0)), "runs": runs,
           "points": int(sum(p.shape[0] * p.shape[1] for p in rec.points))}
    if kind == "dust3r":
        out["pairs"] = rec.meta["n_pairs"]
        out["align_iterations"] = rec.meta["align"].get("iterations")
    if device.type == "cuda":
        out["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default=str(ROOT / "samples/photos"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--graph", default="complete")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", choices=["dust3r", "vggt"], default=None)
    ap.add_argument("--image-size", type=int, default=None, help="network input size (smoke tests on CPU)")
    args = ap.parse_args()
    device = torch.device(args.device)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "photos": args.photos,
              "note": "random weights: timings and memory only, the geometry is meaningless"}
    for kind in ("dust3r", "vggt"):
        if args.only in (None, kind):
            result[kind] = _run(kind, args.photos, device, args.graph, args.repeats, args.image_size)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
