"""Benchmark Depth Anything 3 (random full-size weights): our network vs the reference implementation,
seconds and peak GPU memory per frame count, measured in the same process on the same GPU.

    python bench/bench_da3.py --ref-src .gpujobs/da3ref/src [--models da3-large,da3-base]
        [--frames 1,10,50,100,200] [--size 504x378] [--impls ours,ref] [--out da3_bench.json]
        [--max-seconds 170] [--skip da3-large:ref:200]
    python bench/bench_da3.py --ref-src SRC --smoke          # CPU, seconds: every code path on DA3-Small
    python bench/bench_da3.py --ref-src ... --check-only --device cpu --models da3-small --size 70x56 --frames 2,3

The reference is the official `depth_anything_3` package (the `src/depth_anything_3` tree of
ByteDance-Seed/Depth-Anything-3, with addict/omegaconf/einops/PyYAML importable), imported from --ref-src,
never from this repository. Each preset is built once by the reference code (its own random init) and
the same tensors are loaded strictly into ours (core.weights.checkpoint.load_state_dict_into), so both
networks hold identical weights. Only the model being timed is on the GPU (moved there for each size).

Sizes run in increasing order and, per size, every implementation (ours then ref) before the next size, so
a run cut short still holds matched pairs. --out is rewritten after every measurement (a time cap or a kill
leaves what was measured). --max-seconds: before each measurement its cost is predicted from the previous
size of the same implementation (time x (frames ratio)^2 x (1 + repeats): attention is quadratic in
frames, so this over-estimates) and the measurement is skipped, with a note, when it would end past the cap.
A size that runs out of memory is recorded as such, and the larger sizes of that implementation are
skipped with a note. --skip MODEL:IMPL:FRAMES[,...] leaves chosen measurements out (recorded as skipped).

Timed (after one untimed warm-up per size; the best of --repeats synchronised calls; outputs stay on the GPU):
  ref:  the reference API's forward, `DepthAnything3Net(x)` under torch.no_grad and bf16 autocast (fp16 on
        GPUs without bf16), float32 weights — what `DepthAnything3.forward` does.
  ours: `DA3Net(x)` as run_da3 runs it: backbone weights cast to bf16, head in bf16 (last convs and exp
        in float32), camera decoder float32, the unused ray branch not run, cuDNN-first SDPA.
  ours-fused (opt-in, --impls ours,ref,ours-fused): as ours with VGGT's torch.compile'd blocks
        (run_da3 fused=True); compile time is in the warm-up, not timed.
Peak memory is torch's max allocated during the timed calls, weights included.
`--check` (default on) first compares both networks in float32 on 2 and 3 frames at --check-size
(depth, depth_conf, cameras; max error relative to the reference's max) and records it.
Prints JSON; records commit, GPU, torch version and the exact command; `elapsed_s` says how long each part took.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from pointmap.core.backends.da3 import prepare_model
from pointmap.core.backends.vggt import fast_attention
from pointmap.core.models.da3 import build_da3
from pointmap.core.weights.checkpoint import load_state_dict_into
from record import stamp  # noqa: E402  (bench/ is on sys.path when run as a script)


def commit() -> str:
    if os.environ.get("POINTMAP_COMMIT"):
        return os.environ["POINTMAP_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (set POINTMAP_COMMIT)"


def build_reference(preset: str, ref_src: str):
    """The reference DepthAnything3Net of `preset`, random-initialised by its own code, on the CPU, eval."""
    sys.path.insert(0, str(Path(ref_src).resolve()))
    from depth_anything_3.cfg import create_object, load_config
    from depth_anything_3.registry import MODEL_REGISTRY

    return create_object(load_config(MODEL_REGISTRY[preset])).eval()


def ours_from(ref_net, preset: str):
    """Our network with exactly the reference's tensors (strict key check; gs_head ignored)."""
    with torch.device("meta"):
        net = build_da3(preset)
    load_state_dict_into(net, {k: v.detach() for k, v in ref_net.state_dict().items()}, "da3", f"reference {preset}")
    net.name = preset
    return net.eval()


def run_ref(net, x, autocast_dtype):
    with torch.no_grad(), torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        return net(x, None, None, [])


def run_ours(net, x):
    with torch.inference_mode(), fast_attention(x.device):
        return net(x, rays=False)


def run_ours_fused(net, x):
    from pointmap.core.models.vggt.blocks import set_fused

    set_fused(net.backbone, True)
    try:
        return run_ours(net, x)
    finally:
        set_fused(net.backbone, False)


def compare(ref_net, our_net, device, h: int, w: int, frames=(2, 3)) -> dict:
    """float32 outputs of both on the same random images: max |ours - ref| / max |ref| per output."""
    ref_net.to(device).float()
    prepare_model(our_net, device, "fp32", "fp32")
    out = {}
    g = torch.Generator().manual_seed(0)
    for s in frames:
        x = torch.randn(1, s, 3, h, w, generator=g).to(device)
        a = run_ref(ref_net, x, None)
        b = run_ours(our_net, x)
        pairs = {"depth": (b["depth"], a["depth"]), "depth_conf": (b["depth_conf"], a["depth_conf"]),
                 "extrinsics": (b["world2cam"], a["extrinsics"][..., :3, :]), "intrinsics": (b["intrinsics"], a["intrinsics"])}
        out[f"{s}_frames"] = {k: float((o.float() - r.float()).abs().max() / r.float().abs().max().clamp_min(1e-30))
                              for k, (o, r) in pairs.items()}
    ref_net.cpu()
    our_net.cpu()
    return out


def timed(fn, repeats: int, device) -> tuple[list[float], float]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 1024 ** 3 if device.type == "cuda" else None
    return times, peak


class Runner:
    """Places one model at a time on the device and measures one (implementation, frame count)."""

    def __init__(self, ref_net, our_net, device, h: int, w: int, repeats: int):
        self.ref_net, self.our_net, self.device, self.h, self.w, self.repeats = ref_net, our_net, device, h, w, repeats
        self.on_device = None
        self.autocast = None
        if device.type == "cuda":
            self.autocast = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"

    def _place(self, impl: str) -> None:
        want = "ref" if impl == "ref" else "ours"
        if self.on_device == want:
            return
        self.release()
        if want == "ref":
            self.ref_net.to(self.device).float()
        else:
            prepare_model(self.our_net, self.device, self.precision)
        self.on_device = want

    def release(self) -> None:
        self.ref_net.cpu()
        self.our_net.cpu()
        self.on_device = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def measure(self, impl: str, n: int) -> dict:
        self._place(impl)
        x = torch.rand(1, n, 3, self.h, self.w, device=self.device)
        if impl == "ref":
            fn = functools.partial(run_ref, self.ref_net, x, self.autocast)
        else:
            fn = functools.partial(run_ours_fused if impl == "ours-fused" else run_ours, self.our_net, x)
        t0 = time.perf_counter()
        try:
            times, peak = timed(fn, self.repeats, self.device)
            row = {"frames": n, "seconds": round(min(times), 4), "seconds_all": [round(t, 4) for t in times],
                   "peak_gib": None if peak is None else round(peak, 2),
                   "frames_per_second": round(n / min(times), 2)}
        except torch.OutOfMemoryError:
            row = {"frames": n, "error": "out of memory"}
        row["wall_s"] = round(time.perf_counter() - t0, 2)   # warm-up and repeats
        del x, fn
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        return row


def predicted_seconds(rows: list[dict], n: int, repeats: int) -> float | None:
    """Upper estimate of measuring `n` frames from the largest smaller size measured (None: nothing to go on)."""
    done = [r for r in rows if "seconds_all" in r and r["frames"] < n]
    if not done:
        return None
    last = max(done, key=lambda r: r["frames"])
    return max(last["seconds_all"]) * (n / last["frames"]) ** 2 * (1 + repeats)


def paired(entry: dict, a: str, b: str, key) -> list:
    """key(row_a, row_b) per frame count both have measured (None where either is missing)."""
    by_b = {r["frames"]: r for r in entry.get(b, [])}
    out = []
    for ra in entry.get(a, []):
        rb = by_b.get(ra["frames"])
        ok = rb is not None and "seconds" in ra and "seconds" in rb
        out.append({"frames": ra["frames"], "value": key(ra, rb) if ok else None})
    return out


def summarise(entry: dict) -> None:
    if "ref" not in entry:
        return
    for impl, name in (("ours", "speedup"), ("ours-fused", "speedup_fused")):
        if impl in entry:
            entry[name] = paired(entry, impl, "ref", lambda o, r: round(r["seconds"] / o["seconds"], 3))
    if "ours" in entry:
        entry["memory_ratio"] = paired(entry, "ours", "ref", lambda o, r: round(o["peak_gib"] / r["peak_gib"], 3)
                                       if o.get("peak_gib") and r.get("peak_gib") else None)


def parse_skips(text: str) -> set[tuple[str, str, int]]:
    out = set()
    for item in filter(None, (t.strip() for t in text.split(","))):
        parts = item.split(":")
        if len(parts) != 3 or not parts[2].isdigit():
            raise SystemExit(f"--skip wants MODEL:IMPL:FRAMES items, got {item!r}")
        out.add((parts[0], parts[1], int(parts[2])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref-src", required=True, help="folder holding the reference depth_anything_3 package")
    ap.add_argument("--models", default="da3-large,da3-base")
    ap.add_argument("--frames", default="1,10,50,100,200")
    ap.add_argument("--size", default="504x378", help="W x H of the network input (multiples of 14)")
    ap.add_argument("--impls", default="ours,ref")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default=None)
    ap.add_argument("--check", type=int, default=1, help="compare both in float32 first (1) or not (0)")
    ap.add_argument("--check-size", default="182x140")
    ap.add_argument("--check-only", action="store_true")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="total wall-time cap: measurements predicted to end past it are skipped")
    ap.add_argument("--skip", default="", help="MODEL:IMPL:FRAMES[,...] measurements to leave out")
    ap.add_argument("--smoke", action="store_true",
                    help="CPU, DA3-Small, 70x56, frames 1,2,3, one repeat: every code path in seconds")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.smoke:
        args.device, args.models, args.size, args.frames = "cpu", "da3-small", "70x56", "1,2,3"
        args.check_size, args.repeats = "70x56", 1
    t_start = time.perf_counter()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    w, h = (int(v) for v in args.size.lower().split("x"))
    cw, ch = (int(v) for v in args.check_size.lower().split("x"))
    frames = sorted(int(f) for f in args.frames.split(","))
    impls = args.impls.split(",")
    skips = parse_skips(args.skip)
    result = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "commit": commit(),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "size_wh": [w, h], "frames": frames, "repeats": args.repeats,
              "max_seconds": args.max_seconds,
              "reference": "ByteDance-Seed/Depth-Anything-3 src/depth_anything_3 from " + args.ref_src,
              "target": "ours >= 1.3x the reference's frames/s at equal or lower peak memory at every size",
              "complete": False, "models": {}}

    def save() -> None:
        result["elapsed_s"] = round(time.perf_counter() - t_start, 1)
        stamp(result)
        if args.out:
            tmp = f"{args.out}.tmp"
            with open(tmp, "w") as f:
                json.dump(result, f, indent=1)
            os.replace(tmp, args.out)

    for preset in args.models.split(","):
        t0 = time.perf_counter()
        torch.manual_seed(0)
        ref_net = build_reference(preset, args.ref_src)
        our_net = ours_from(ref_net, preset)
        entry: dict = {"notes": list(getattr(our_net, "checkpoint_notes", [])), "skipped": [],
                       "build_s": round(time.perf_counter() - t0, 1)}
        result["models"][preset] = entry
        if args.check or args.check_only:
            entry["fp32_check_rel_err"] = compare(ref_net, our_net, device, ch, cw,
                                                  tuple(frames[:2]) if args.check_only else (2, 3))
            print(preset, "check", json.dumps(entry["fp32_check_rel_err"]), flush=True)
        save()
        if not args.check_only:
            runner = Runner(ref_net, our_net, device, h, w, args.repeats)
            stopped: dict[str, str] = {}   # impl -> why its larger sizes are not run
            for n in frames:
                for impl in impls:
                    rows = entry.setdefault(impl, [])
                    why = stopped.get(impl)
                    if why is None and (preset, impl, n) in skips:
                        why = "left out by --skip"
                    guess = predicted_seconds(rows, n, args.repeats)
                    if why is None and args.max_seconds is not None and guess is not None and \
                            time.perf_counter() - t_start + guess > args.max_seconds:
                        why = f"time cap: predicted {guess:.0f} s would pass --max-seconds {args.max_seconds:g}"
                    if why is not None:
                        entry["skipped"].append({"impl": impl, "frames": n, "why": why})
                        print(preset, impl, n, "skipped:", why, flush=True)
                        continue
                    row = runner.measure(impl, n)
                    rows.append(row)
                    if "error" in row:
                        stopped[impl] = f"{row['error']} at {n} frames"
                    print(preset, impl, json.dumps(row), flush=True)
                    summarise(entry)
                    save()
            runner.release()
        del ref_net, our_net
        gc.collect()
    result["complete"] = True
    save()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
