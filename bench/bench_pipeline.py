"""End-to-end GPU check: `pointmap.core.reconstruct` on the bundled sample photos, full-size networks.

Runs the whole user path (load → encode → pairs → align, and load → VGGT) on the device with the
DUSt3R 512 DPT and VGGT-1B architectures. The weights are random (pretrained ones cannot be fetched
here), so the geometry is meaningless: this measures the stages' time and memory and proves the GPU
path works end to end; it is not a reconstruction result. Prints one JSON object.

Run: python bench/bench_pipeline.py [--photos samples/photos] [--device cuda] [--graph complete]
     python bench/bench_pipeline.py --only dust3r --views 32 64 [--offload]   # photos repeated to N views

`peak_gib` is the peak of torch's allocator over one run (reset before each), model weights included.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from record import stamp  # noqa: E402  (bench/ is on sys.path when run as a script)

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

        model = build_vggt().eval()
        # The camera head's field of view passes a ReLU: random weights put it at 0 for some frames, an
        # infinite focal length the pipeline rightly refuses. A positive bias on those two outputs (added at
        # each of the head's refinement steps) keeps the random network's focal lengths finite; the timing
        # and memory are the same.
        with torch.no_grad():
            model.camera_head.pose_branch.fc2.bias[7:9] += 0.3
        return model


def _photos(photos: str, views: int | None, tmp: Path) -> str:
    """The photo folder, or a folder of `views` files cycling through its photos (symlinks)."""
    if not views:
        return photos
    src = sorted(p for p in Path(photos).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    out = tmp / f"views{views}"
    out.mkdir(parents=True, exist_ok=True)
    for k in range(views):
        link = out / f"v{k:03d}{src[k % len(src)].suffix}"
        if not link.exists():
            link.symlink_to(src[k % len(src)].resolve())
    return str(out)


def _run(kind: str, photos: str, device: torch.device, graph: str, repeats: int, size: int | None,
         model=None, **extra) -> dict:
    from pointmap.core import PairwiseOptions, ReconstructOptions, reconstruct

    model = model if model is not None else _random_model(kind, device)
    runs = []
    for _ in range(repeats):   # the first run includes one-time costs (cuDNN autotuning, lazy init)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        t = time.perf_counter()
        try:
            options = ReconstructOptions(device=str(device), image_size=size,
                                         pairwise=PairwiseOptions(graph=graph, **extra))
            rec = reconstruct(photos, model, options)
        except Exception as err:   # an out-of-memory "before" run is a result too
            runs.append({"error": f"{type(err).__name__}: {err}"[:300]})
            continue
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        run = {"seconds": round(time.perf_counter() - t, 3),
               "stages": {k: round(v, 3) for k, v in rec.meta["timings"].items()}}
        if device.type == "cuda":
            run["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        runs.append(run)
    out = {"options": {k: v for k, v in extra.items()}, "runs": runs}
    if not any("error" not in r for r in runs):
        return out
    out.update(views=rec.n_views, net_size_hw=list(rec.net_size(0)),
               points=int(sum(p.shape[0] * p.shape[1] for p in rec.points)), warnings=rec.warnings[:3])
    if kind == "dust3r":
        out["pairs"] = rec.meta["n_pairs"]
        out["align_iterations"] = rec.meta["align"].get("iterations")
        out["memory_estimate"] = rec.meta.get("memory")
    if device.type == "cuda":
        out["peak_gib"] = max(r.get("peak_gib", 0) for r in runs)
    del rec
    return out


def _run_views(photos: str, device: torch.device, graph: str, repeats: int, size: int | None, views: list,
               offload: bool, tmp: Path) -> list:
    """DUSt3R on N repeated photos for each N, one model for all runs."""
    model = _random_model("dust3r", device)
    out = []
    for n in views:
        extra = {"offload": True} if offload else {}
        out.append({"n": n, **_run("dust3r", _photos(photos, n, tmp), device, graph, repeats, size, model, **extra)})
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
    ap.add_argument("--views", type=int, nargs="*", default=None, help="DUSt3R only: repeat the photos to N views")
    ap.add_argument("--offload", action="store_true", help="with --views: keep predictions in host memory")
    args = ap.parse_args()
    device = torch.device(args.device)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "photos": args.photos,
              "note": "random weights: timings and memory only, the geometry is meaningless"}
    if args.views:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            result["dust3r_views"] = _run_views(args.photos, device, args.graph, args.repeats, args.image_size,
                                                args.views, args.offload, Path(tmp))
        print(json.dumps(stamp(result), indent=1))
        return
    for kind in ("dust3r", "vggt"):
        if args.only in (None, kind):
            result[kind] = _run(kind, args.photos, device, args.graph, args.repeats, args.image_size)
    print(json.dumps(stamp(result), indent=1))


if __name__ == "__main__":
    main()
