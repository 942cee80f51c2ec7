"""Benchmark Depth Anything 3 (random full-size weights): our network vs the reference implementation,
seconds and peak GPU memory per frame count, measured in the same process on the same GPU.

    python bench/bench_da3.py --ref-src .gpujobs/da3ref/src [--models da3-large,da3-base]
        [--frames 1,10,50,100,200] [--size 504x378] [--impls ours,ref] [--out da3_bench.json]
        [--max-seconds 170] [--skip da3-large:ref:200] [--frame-chunk 8]
        [--attn-probe] [--profile-frames 100]
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
  Variants (--impls, names are a base and dash-separated flags, e.g. ours-fused-chead, ours-flash, ref-cudnnonly):
        fused   ours with VGGT's torch.compile'd blocks (run_da3 fused=True); compile time is in the warm-up;
        chead   ours with the DPT head's per-chunk forward torch.compile'd (one compile per chunk size);
        cudnn | cudnnonly | flash | efficient | default   the SDPA kernels allowed (core.backends.vggt.
                fast_attention): ours defaults to cudnn (cuDNN first, then the others), ref to default (torch's
                own priority as this process started, what the reference API gets: set explicitly per call,
                because a priority left behind by an earlier row once put the reference on cuDNN); the
                single-kernel choices fail loudly (recorded as an error row) where that kernel cannot take
                the shape.
        Every ours* variant gets a speedup / memory ratio against "ref" (`speedups`, `memory_ratios`).
--frame-chunk: frames per DPT-head call for ours (run_da3's frame_chunk; the reference chunks by 8 itself).
--attn-probe: SDPA alone at the exact global (1, heads, S*(1+h*w), 64) and local (S, heads, 1+h*w, 64)
  attention shapes of each model, bf16, per kernel (cudnn-only, flash, efficient, default) and q/k/v layout
  (token-major as ours feeds it, head-major contiguous as the reference does): seconds and TFLOP/s, plus the
  kernel name torch's default choice runs. Answers which kernel both implementations hit and what is left.
--profile-frames N: at N frames, for every implementation, one forward under torch.profiler (top CUDA kernels
  by self time) and, for ours*, CUDA-event sections (local blocks, global blocks, DPT head, camera decoder).
Peak memory is torch's max allocated during the timed calls, weights included.
`--check` (default on) first compares both networks in float32 on 2 and 3 frames at --check-size
(depth, depth_conf, cameras; max error relative to the reference's max) and records it.
Prints JSON; records commit, GPU, torch version and the exact command; `elapsed_s` says how long each part took.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import sys
import time
from pathlib import Path

import torch
from pointmap.core.backends.da3 import prepare_model
from pointmap.core.backends.vggt import fast_attention
from pointmap.core.models.da3 import PRESETS, build_da3
from pointmap.core.weights.checkpoint import load_state_dict_into
from record import commit, stamp  # noqa: E402  (bench/ is on sys.path when run as a script)


def build_reference(preset: str, ref_src: str):
    """The reference DepthAnything3Net of `preset`, random-initialised by its own code, on the CPU, eval."""
    sys.path.insert(0, str(Path(ref_src).resolve()))
    from depth_anything_3.cfg import create_object, load_config
    from depth_anything_3.registry import MODEL_REGISTRY

    return create_object(load_config(MODEL_REGISTRY[preset])).eval()


def ours_from(ref_net, preset: str):
    """Our network with exactly the reference's tensors (strict key check)."""
    with torch.device("meta"):
        net = build_da3(preset)
    load_state_dict_into(net, {k: v.detach() for k, v in ref_net.state_dict().items()}, "da3", f"reference {preset}")
    net.name = preset
    return net.eval()


SDPA_TOKENS = {"cudnn": "cudnn", "cudnnonly": "cudnn-only", "flash": "flash", "efficient": "efficient",
               "default": "default"}


def parse_impl(name: str) -> dict:
    """'ours-fused-flash' -> {"base": "ours", "fused": True, "chead": False, "sdpa": "flash"} (see the docstring)."""
    base, *tokens = name.split("-")
    if base not in ("ours", "ref"):
        raise SystemExit(f"--impls: {name!r} must start with 'ours' or 'ref'")
    spec = {"base": base, "fused": False, "chead": False, "sdpa": "cudnn" if base == "ours" else "default"}
    for t in tokens:
        if t in SDPA_TOKENS:
            spec["sdpa"] = SDPA_TOKENS[t]
        elif base == "ours" and t in ("fused", "chead"):
            spec[t] = True
        else:
            raise SystemExit(f"--impls: unknown flag {t!r} in {name!r} (flags: fused, chead, "
                             f"{', '.join(SDPA_TOKENS)}; fused/chead for ours only)")
    return spec


# torch's own SDPA priority before this process made any attention call: what the reference gets when
# run as published. "default" rows run under exactly this order, whatever state earlier rows left behind.
START_PRIORITY = list(torch._C._get_sdp_priority_order()) if hasattr(torch._C, "_get_sdp_priority_order") else None


def as_published(device):
    """SDPA context of a "default" row: torch's start-of-process priority, every backend enabled."""
    if START_PRIORITY is None or getattr(device, "type", device) != "cuda":
        return contextlib.nullcontext()
    from pointmap.core.backends.vggt import keeping_sdpa_priority
    from torch.nn.attention import SDPBackend, sdpa_kernel

    by_value = {int(v): v for v in SDPBackend.__members__.values()}
    return keeping_sdpa_priority(sdpa_kernel([by_value[b] for b in START_PRIORITY], set_priority=True))


def run_ref(net, x, autocast_dtype, sdpa: str = "default"):
    kernels = as_published(x.device) if sdpa == "default" else fast_attention(x.device, sdpa)
    with torch.no_grad(), torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None), \
            kernels:
        return net(x, None, None, [])


@contextlib.contextmanager
def variant(net, fused: bool = False, chead: bool = False):
    """Our network with the compiled block path and/or a compiled DPT head for the duration."""
    from pointmap.core.models.vggt.blocks import set_fused

    set_fused(net.backbone, fused)
    if chead:
        if getattr(net, "_compiled_head", None) is None:
            import torch._dynamo

            torch._dynamo.config.recompile_limit = max(64, getattr(torch._dynamo.config, "recompile_limit", 8))
            net._compiled_head = torch.compile(net.head.forward_frames, dynamic=False)
        net.head.forward_frames = net._compiled_head
    try:
        yield net
    finally:
        set_fused(net.backbone, False)
        net.head.__dict__.pop("forward_frames", None)


def run_ours(net, x, sdpa: str = "cudnn", fused: bool = False, chead: bool = False, frame_chunk: int = 8):
    with torch.inference_mode(), fast_attention(x.device, sdpa), variant(net, fused, chead):
        return net(x, rays=False, frame_chunk=frame_chunk)


def kernel_profile(fn, top: int = 15) -> dict:
    """One call of fn under torch.profiler (CUDA activity): total kernel milliseconds and the `top` kernels
    by self device time as [name (at most 110 characters), milliseconds, calls]."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        us = getattr(e, "self_device_time_total", None)
        if us is None:
            us = getattr(e, "self_cuda_time_total", 0)
        if us > 0:
            rows.append([e.key[:110], round(us / 1000, 3), e.count])
    rows.sort(key=lambda r: -r[1])
    return {"kernel_ms_total": round(sum(r[1] for r in rows), 2), "top": rows[:top]}


def sections_ours(net, x, spec: dict, frame_chunk: int) -> dict:
    """CUDA-event milliseconds of one forward of ours: local and global blocks (block 0 includes the patch
    embedding; the reference-view choice sits in block alt_start-1), the DPT head and the camera decoder."""
    marks = []

    def mark(i=None):
        e = torch.cuda.Event(enable_timing=True)
        e.record()
        marks.append((i, e))

    h, w = x.shape[-2:]
    with torch.inference_mode(), fast_attention(x.device, spec["sdpa"]), \
            variant(net, spec["fused"], spec["chead"]):
        mark()
        feats = net.encode(x, step=mark)
        net.head([f for f, _ in feats], h, w, frame_chunk, rays=False)
        mark("head")
        net.decode_cameras(feats[-1][1], (h, w))
        mark("cameras")
    torch.cuda.synchronize()
    out = {"local_blocks_ms": 0.0, "global_blocks_ms": 0.0}
    for (_, a), (i, b) in zip(marks, marks[1:], strict=False):
        ms = a.elapsed_time(b)
        if isinstance(i, int):
            out["global_blocks_ms" if net.backbone.is_global(i) else "local_blocks_ms"] += ms
        else:
            out[f"{i}_ms"] = ms
    return {k: round(v, 2) for k, v in out.items()}


def _sdpa_inputs(b: int, heads: int, t: int, d: int, layout: str, device):
    """bf16 q, k, v (b, heads, t, d): token-major as ours feeds SDPA (q, k their own (b, t, heads, d) tensors,
    v a view of the packed qkv projection), or head-major contiguous (the reference's q and k)."""
    if layout == "token-major":
        qkv = torch.randn(b, t, 3, heads, d, device=device, dtype=torch.bfloat16)
        q, k = (torch.randn(b, t, heads, d, device=device, dtype=torch.bfloat16).transpose(1, 2) for _ in range(2))
        return q, k, qkv[:, :, 2].transpose(1, 2)
    return tuple(torch.randn(b, heads, t, d, device=device, dtype=torch.bfloat16) for _ in range(3))


def _sdpa_call(q, k, v, backend: str):
    import torch.nn.functional as F

    with fast_attention(q.device, backend):
        return F.scaled_dot_product_attention(q, k, v)


def attention_probe(preset: str, frames, h: int, w: int, device, repeats: int = 3) -> list[dict]:
    """SDPA alone at the model's global and local attention shapes, per kernel and layout (see the docstring)."""
    cfg = PRESETS[preset]
    heads, d = cfg.num_heads, cfg.embed_dim // cfg.num_heads
    n_tok = 1 + (h // cfg.patch_size) * (w // cfg.patch_size)
    rows = []
    for n in frames:
        for scope, (b, t) in (("global", (1, n * n_tok)), ("local", (n, n_tok))):
            if scope == "global" and n == 1:
                continue
            flops = 4 * b * heads * t * t * d
            for layout in ("token-major", "head-major"):
                q, k, v = _sdpa_inputs(b, heads, t, d, layout, device)
                for backend in ("cudnn-only", "flash", "efficient", "default"):
                    row = {"frames": n, "scope": scope, "shape_bhtd": [b, heads, t, d], "layout": layout,
                           "sdpa": backend}
                    call = functools.partial(_sdpa_call, q, k, v, backend)
                    try:
                        times, _ = timed(call, repeats, device)
                        row.update(seconds=round(min(times), 5), tflops=round(flops / min(times) / 1e12, 1))
                        if backend == "default":
                            row["kernel"] = (kernel_profile(call, top=1)["top"] or [["?"]])[0][0]
                    except RuntimeError as e:
                        row["error"] = str(e).splitlines()[0][:160]
                    rows.append(row)
                    print(preset, "attn", json.dumps(row), flush=True)
                del q, k, v
                torch.cuda.empty_cache()
    return rows


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

    def __init__(self, ref_net, our_net, device, h: int, w: int, repeats: int, frame_chunk: int = 8):
        self.ref_net, self.our_net, self.device, self.h, self.w, self.repeats = ref_net, our_net, device, h, w, repeats
        self.frame_chunk = frame_chunk
        self.on_device = None
        self.autocast = None
        if device.type == "cuda":
            self.autocast = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"

    def _place(self, base: str) -> None:
        if self.on_device == base:
            return
        self.release()
        if base == "ref":
            self.ref_net.to(self.device).float()
        else:
            prepare_model(self.our_net, self.device, self.precision)
        self.on_device = base

    def call(self, impl: str, x):
        """A no-argument callable running `impl` (a --impls name) on x, its network placed on the device."""
        spec = parse_impl(impl)
        self._place(spec["base"])
        if spec["base"] == "ref":
            return functools.partial(run_ref, self.ref_net, x, self.autocast, spec["sdpa"])
        return functools.partial(run_ours, self.our_net, x, spec["sdpa"], spec["fused"], spec["chead"],
                                 self.frame_chunk)

    def profile(self, impl: str, n: int) -> dict:
        """Kernel table (and for ours*, CUDA-event sections) of one forward of `impl` on n frames (CUDA only)."""
        x = torch.rand(1, n, 3, self.h, self.w, device=self.device)
        fn = self.call(impl, x)
        try:
            fn()   # warm-up (kernel choice, compile)
            out = {"frames": n, **kernel_profile(fn)}
            spec = parse_impl(impl)
            if spec["base"] == "ours":
                out["sections"] = sections_ours(self.our_net, x, spec, self.frame_chunk)
        except (torch.OutOfMemoryError, RuntimeError) as e:
            out = {"frames": n, "error": str(e).splitlines()[0][:160]}
        del x, fn
        torch.cuda.empty_cache()
        return out

    def release(self) -> None:
        self.ref_net.cpu()
        self.our_net.cpu()
        self.on_device = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def measure(self, impl: str, n: int) -> dict:
        x = torch.rand(1, n, 3, self.h, self.w, device=self.device)
        fn = self.call(impl, x)
        t0 = time.perf_counter()
        priority = sdpa_priority()   # the global order a "default" variant runs under (no leak from another row)
        try:
            times, peak = timed(fn, self.repeats, self.device)
            row = {"frames": n, "seconds": round(min(times), 4), "seconds_all": [round(t, 4) for t in times],
                   "peak_gib": None if peak is None else round(peak, 2),
                   "frames_per_second": round(n / min(times), 2)}
        except torch.OutOfMemoryError:
            row = {"frames": n, "error": "out of memory"}
        except RuntimeError as e:   # e.g. a single-kernel SDPA choice that cannot take the shape
            row = {"frames": n, "error": str(e).splitlines()[0][:160]}
        row["wall_s"] = round(time.perf_counter() - t0, 2)   # warm-up and repeats
        row["sdpa_priority_before"] = priority
        del x, fn
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        return row


def sdpa_priority(order=None) -> list[str] | None:
    """An SDPA backend order (default: torch's current global one) by name; None where torch cannot say."""
    try:
        from torch.nn.attention import SDPBackend

        names = {int(v): k for k, v in SDPBackend.__members__.items()}
        return [names.get(int(b), str(b)) for b in (torch._C._get_sdp_priority_order() if order is None else order)]
    except (ImportError, AttributeError):
        return None


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
    """Speedup and peak-memory ratio of every ours* variant against "ref" ("speedup" / "memory_ratio" for
    plain ours, `speedups` / `memory_ratios` by variant name for all of them)."""
    if "ref" not in entry:
        return
    speed = lambda o, r: round(r["seconds"] / o["seconds"], 3)  # noqa: E731
    memory = lambda o, r: (round(o["peak_gib"] / r["peak_gib"], 3)  # noqa: E731
                           if o.get("peak_gib") and r.get("peak_gib") else None)
    variants = [k for k in entry if k.split("-")[0] == "ours" and isinstance(entry[k], list)]
    entry["speedups"] = {k: paired(entry, k, "ref", speed) for k in variants}
    entry["memory_ratios"] = {k: paired(entry, k, "ref", memory) for k in variants}
    if "ours" in entry:
        entry["speedup"] = entry["speedups"]["ours"]
        entry["memory_ratio"] = entry["memory_ratios"]["ours"]
    # Against the reference given another kernel choice too (e.g. ref-cudnn: the reference on our kernel).
    others = [k for k in entry if k.split("-")[0] == "ref" and k != "ref" and isinstance(entry[k], list)]
    if others:
        entry["speedups_vs"] = {r: {k: paired(entry, k, r, speed) for k in variants} for r in others}
        entry["memory_ratios_vs"] = {r: {k: paired(entry, k, r, memory) for k in variants} for r in others}


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
    ap.add_argument("--frame-chunk", type=int, default=8, help="frames per DPT-head call (ours)")
    ap.add_argument("--attn-probe", action="store_true",
                    help="time SDPA alone at each model's attention shapes per kernel and layout (CUDA)")
    ap.add_argument("--profile-frames", type=int, default=0,
                    help="N > 0: kernel table (+ ours' sections) of one forward per implementation at N frames (CUDA)")
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
    for impl in impls:
        parse_impl(impl)   # a typo fails here, not after minutes of measuring
    skips = parse_skips(args.skip)
    result = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "commit": commit(),
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "size_wh": [w, h], "frames": frames, "repeats": args.repeats,
              "max_seconds": args.max_seconds, "frame_chunk": args.frame_chunk,
              "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
              "reference": "ByteDance-Seed/Depth-Anything-3 src/depth_anything_3 from " + args.ref_src,
              "target": "ours >= 1.3x the reference's frames/s at equal or lower peak memory at every size",
              "complete": False, "models": {}}

    def save() -> None:
        result["elapsed_s"] = round(time.perf_counter() - t_start, 1)
        result["sdpa_default_priority"] = sdpa_priority()   # at the end; each row records it before its run too
        if START_PRIORITY is not None:
            result["sdpa_start_priority"] = sdpa_priority(START_PRIORITY)   # what the "default" rows ran under
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
        if args.attn_probe and device.type == "cuda" and not args.check_only:
            try:
                entry["attention_probe"] = attention_probe(preset, frames, h, w, device)
            except Exception as e:   # a diagnostic: never lose the measurements to it
                entry["attention_probe"] = {"error": f"{type(e).__name__}: {e}"[:300]}
            save()
        if not args.check_only:
            runner = Runner(ref_net, our_net, device, h, w, args.repeats, args.frame_chunk)
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
            if args.profile_frames and device.type == "cuda":
                entry["profile"] = {}
                for impl in impls:
                    try:
                        entry["profile"][impl] = runner.profile(impl, args.profile_frames)
                    except Exception as e:   # a diagnostic: never lose the measurements to it
                        entry["profile"][impl] = {"error": f"{type(e).__name__}: {e}"[:300]}
                    print(preset, "profile", impl, json.dumps(entry["profile"][impl])[:600], flush=True)
                    save()
            runner.release()
        del ref_net, our_net
        gc.collect()
    result["complete"] = True
    save()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
