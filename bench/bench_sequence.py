"""Long-shot benchmark: time and peak memory of whole shots, pairwise (seq-K graph) and VGGT chunked.

    python bench/bench_sequence.py --device cuda --out sequence.json      # the GPU run (see below)
    python bench/bench_sequence.py --device cuda --pairs-big --out s.json # ... plus pairwise on 3,000 frames
    python bench/bench_sequence.py --device cpu --cpu-case --out cpu.json # 120 frames at 224, pairwise, 2 cores
    python bench/bench_sequence.py --device cpu --cpu-case --smoke        # ... 12 frames: checks that it runs
    python bench/bench_sequence.py --device cpu --smoke                   # seconds: checks that it runs
    python bench/bench_sequence.py --device cuda --pairs-big --gpu-gib 79 --max-seconds 560 --out s.json
                                       # everything, as on an 80 GB GPU, inside one 10-minute command

The GPU run does, in one process and in this order: pairwise on `--frames` (1,000) frames, VGGT chunked
on 1,000, VGGT chunked on `--big-frames` (3,000), and with `--pairs-big` pairwise on 3,000 (about three
minutes on its own on an H200, so it is off by default). `--max-seconds` bounds the whole run: a case is
run even when the time it is expected to take (scaled from the smaller run) exceeds what is left, and an
alarm stops a running case at the cap (recorded as an error, with how far it got). The JSON is written
to `--out` after every case (and before it, marking it as running), so a run that is killed still leaves
its results.

Frames are made in memory (a sliding window over one large textured image, like a slow pan), so no
decoding is timed. Weights are random (pretrained ones cannot be fetched here): the geometry is
meaningless and this measures time and memory only. Pairwise: DUSt3R ViT-L 512 DPT through
`pointmap.core.reconstruct` with graph seq-K (window K + log-spaced links), shared focal, end to end
(image loading included). VGGT: the 1B architecture through `backends.vggt_chunked.run_vggt_chunked`
(chunk length from free GPU memory, at most `MAX_CHUNK`); its image preprocessing is timed apart.
GPU memory per case: `torch.cuda.max_memory_allocated` and `max_memory_reserved` after a reset (reserved
is what the process really takes from the GPU: the caching allocator's segments), and the same two per
stage of the case (`stages_memory`: encode, pairs, align; chunks), from the progress callback; the host's
peak resident memory (pinned prediction buffers included) is the process's so far. `--gpu-gib G` caps
the allocator at G GiB (`torch.cuda.set_per_process_memory_fraction`; the memory plans see the cap), so
a run on the H200 shows what a smaller GPU (80 GB: `--gpu-gib 79`) would do. A case stopped by the time
guard (`--max-seconds`, alias `--time-cap`) still records how far it got (`progress`: stage, done,
total, seconds) and the memory of the stages it went through.
`--cpu-case` is the 2-core target instead: a 120-frame movie (MPEG-4, written by PyAV to a temporary folder
and deleted after) of a slow pan, solved end to end by `reconstruct()` from the movie file (decoding, the
shipped demo network at 224, the seq-K graph, the shot's alignment schedule, the Reconstruction) on the CPU;
it records the stages' times, the pair count, the process's CPU time and the load average.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import _random_model  # noqa: E402
from record import stamp  # noqa: E402  (bench/ is on sys.path when run as a script)

_GIB = 2 ** 30
# Targets of issue #10 (1,000 frames of 512x288 on one GPU).
TARGETS = {"pairs": {"seconds": 90.0, "peak_gib": 40.0}, "vggt": {"seconds": 40.0, "peak_gib": 40.0}}


class TimeCap(BaseException):
    """The run's total time cap was reached while a case ran (a BaseException: library code that catches
    Exception must not swallow it)."""


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


def _reset(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _memory(device, watch: StageWatch | None = None) -> dict:
    """GPU peaks since the last `_reset` (GiB; the largest of the stages when `watch` reset them), the
    host's peak resident memory so far, and `watch`'s stages."""
    staged = watch.report() if watch is not None else {}
    out = {"process_cpu_seconds_so_far": round(sum(os.times()[:2]), 1),
           "host_peak_rss_gib_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / _GIB, 2)}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        st = staged.get("stages_memory", {}).values()
        out.update(peak_gib=max([round(torch.cuda.max_memory_allocated(device) / _GIB, 2)]
                                + [v["peak_gib"] for v in st]),
                   peak_reserved_gib=max([round(torch.cuda.max_memory_reserved(device) / _GIB, 2)]
                                         + [v["peak_reserved_gib"] for v in st]))
    return {**out, **staged}


class StageWatch:
    """Progress callback of a case: per stage its seconds and GPU peaks (allocated / reserved, GiB, peaks
    reset when a stage starts), and the last report (how far a stopped case got)."""

    def __init__(self, device):
        self.device = device
        self.t0 = time.perf_counter()
        self.stage: str | None = None
        self.t_stage = self.t0
        self.stages: dict = {}
        self.last: dict = {}

    def _close(self) -> None:
        if self.stage is None:
            return
        rec = {"seconds": round(time.perf_counter() - self.t_stage, 3)}
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            rec.update(peak_gib=round(torch.cuda.max_memory_allocated(self.device) / _GIB, 2),
                       peak_reserved_gib=round(torch.cuda.max_memory_reserved(self.device) / _GIB, 2))
        self.stages[self.stage] = rec
        print(f"  stage {self.stage}: {json.dumps(rec)}", file=sys.stderr, flush=True)

    def __call__(self, p) -> None:
        if p.stage == "warning":
            return
        if p.stage != self.stage:
            self._close()
            self.stage, self.t_stage = p.stage, time.perf_counter()
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
        self.last = {"stage": p.stage, "done": p.done, "total": p.total,
                     "seconds": round(time.perf_counter() - self.t0, 2)}

    def report(self) -> dict:
        """Closes the stage in progress; the stages so far and the last progress report."""
        self._close()
        self.stage = None
        return {"stages_memory": self.stages, "progress": self.last}


def run_pairwise(device, n: int, h: int, w: int, size: int, window: int, model, watch: StageWatch) -> dict:
    from pointmap.core import reconstruct
    from pointmap.core.options import AlignOptions, PairwiseOptions, ReconstructOptions

    shot = frames(n, h, w)
    _reset(device)
    t = time.perf_counter()
    opts = ReconstructOptions(device=str(device), image_size=size, pairwise=PairwiseOptions(graph=f"seq-{window}"),
                              align=AlignOptions(shared_focal=True))
    rec = reconstruct(shot, model, opts, progress=watch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t
    return {"frames": n, "net_size_hw": list(rec.net_size(0)), "graph": f"seq-{window}",
            "seconds": round(seconds, 3), **_memory(device, watch),
            "stages": {k: round(v, 3) for k, v in rec.meta.get("timings", {}).items()},
            "pairs": rec.meta.get("n_pairs"), "memory_plan": rec.meta.get("memory"),
            "align": {k: v for k, v in rec.meta.get("align", {}).items() if isinstance(v, (int, float, str))}}


def run_movie_cpu(n: int, h: int, w: int, window: int, threads: int | None) -> dict:
    """A movie of `frames(n, h, w)` through `reconstruct()` with the shipped demo network (module doc)."""
    import tempfile

    import av
    from pointmap.core import reconstruct
    from pointmap.core.options import ReconstructOptions, SequenceOptions

    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="pointmap_bench_") as tmp:
        movie = Path(tmp) / f"pan{n}.mp4"
        with av.open(str(movie), "w") as box:
            st = box.add_stream("mpeg4", rate=24)
            st.width, st.height, st.pix_fmt, st.bit_rate = w, h, "yuv420p", 4_000_000
            for rgb in frames(n, h, w):
                for pkt in st.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    box.mux(pkt)
            for pkt in st.encode():
                box.mux(pkt)
        t, c = time.perf_counter(), time.process_time()
        rec = reconstruct(str(movie), "demo", ReconstructOptions(device="cpu", sequence=SequenceOptions(window=window)))
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
    return {"frames": n, "movie_hw": [h, w], "net_size_hw": list(rec.net_size(0)), "model": "demo (shipped, 224)",
            "graph": rec.meta.get("graph", f"seq-{window}"), "pairs": rec.meta.get("n_pairs"),
            "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "threads": torch.get_num_threads(),
            "cameras": int(len(rec.cam2world)),
            "stages": {k: round(v, 3) for k, v in rec.meta.get("timings", {}).items()},
            "align": {k: v for k, v in rec.meta.get("align", {}).items() if isinstance(v, (int, float, str))}}


def run_vggt(device, n: int, h: int, w: int, chunk: int | None, model, watch: StageWatch, target: int = 518) -> dict:
    from pointmap.core.backends.vggt_chunked import run_vggt_chunked
    from pointmap.core.io.images import load_images_vggt

    shot = frames(n, h, w)
    t_load = time.perf_counter()
    images = load_images_vggt(shot, mode="crop", target=target)
    t_load = time.perf_counter() - t_load
    del shot
    _reset(device)
    t = time.perf_counter()
    rec = run_vggt_chunked(model, images, chunk=chunk, device=device, progress=watch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t
    meta = rec.meta["chunked"]
    return {"frames": n, "net_size_hw": list(rec.net_size(0)), "seconds": round(seconds, 3),
            "preprocess_seconds": round(t_load, 3), **_memory(device, watch), "chunk": meta["chunk"],
            "chunks": len(meta["chunks"]), "loop_chunks": len(meta.get("loop_chunks", [])), "run_seconds": round(meta["run_seconds"], 3),
            "join_seconds": round(meta["join_seconds"], 3),
            "worker_seconds": round(meta.get("worker_seconds", 0.0), 3)}


def _write(report: dict, out: Path | None) -> None:
    if out is None:
        return
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(stamp(report), indent=1))
    os.replace(tmp, out)


def _verdict(kind: str, res: dict) -> dict:
    goal = TARGETS[kind]
    ok = {"seconds": res["seconds"] <= goal["seconds"]}
    if res.get("peak_gib") is not None:
        ok["peak_gib"] = res["peak_gib"] <= goal["peak_gib"]
    return {"targets": goal, "met": ok}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--big-frames", type=int, default=3000, help="frames of the long runs (0: none)")
    ap.add_argument("--pairs-big", action="store_true", help="also pairwise on --big-frames (~3 min on an H200)")
    ap.add_argument("--size", type=int, nargs=2, default=[288, 512], metavar=("H", "W"), help="frame size")
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--only", choices=["pairs", "vggt"], default=None)
    ap.add_argument("--chunk", type=int, default=None, help="VGGT frames per chunk (default: from free memory)")
    ap.add_argument("--cpu-case", action="store_true", help="120 frames at 224, pairwise only (2-core target)")
    ap.add_argument("--smoke", action="store_true", help="tiny run that only checks the script works")
    ap.add_argument("--max-seconds", "--time-cap", dest="time_cap", type=float, default=None,
                    help="seconds for the whole run; a case still running then is stopped and recorded as far "
                         "as it got (default: none)")
    ap.add_argument("--gpu-gib", type=float, default=None,
                    help="cap the CUDA allocator at this many GiB (e.g. 79: an 80 GB GPU); plans see the cap")
    ap.add_argument("--threads", type=int, default=None, help="--cpu-case: torch CPU threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file, rewritten after every case")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    device = torch.device(args.device)
    if args.gpu_gib and device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.gpu_gib * _GIB / total),
                                                   device.index if device.index is not None else 0)
    report = {"device": str(device), "threads": torch.get_num_threads(), "gpu_cap_gib": args.gpu_gib,
              "gpu_total_gib": round(torch.cuda.get_device_properties(device).total_memory / _GIB, 1)
              if device.type == "cuda" else None,
              "weights": "random (timing and memory only)", "time_cap_s": args.time_cap,
              "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "cases": {}}
    h, w = args.size
    vggt_target = 518
    if args.smoke:
        args.frames, args.big_frames, h, w = min(args.frames, 10), min(args.big_frames, 14), 64, 64
        vggt_target = 56

    models: dict = {}

    def model(kind: str):
        if kind not in models:
            if args.smoke:   # the tiny test-fixture networks: the real architectures take ~4 GB on a CPU
                sys.path.insert(0, str(ROOT / "tests"))
                if kind == "vggt":
                    from helpers_vggt import tiny_model

                    models[kind] = tiny_model("pt")
                else:
                    from conftest import tiny_checkpoint
                    from pointmap.core.weights.checkpoint import load_checkpoint

                    models[kind] = load_checkpoint(tiny_checkpoint())[0]
            else:
                models[kind] = _random_model(kind, device)
        return models[kind]

    watch = StageWatch(device)   # re-initialised for every case
    cases = []   # (name, kind, frames, run)
    if args.cpu_case:
        n_cpu = 12 if args.smoke else 120
        cases.append((f"pairs_cpu_movie{n_cpu}_demo224", "pairs", n_cpu,
                      lambda: run_movie_cpu(n_cpu, 288, 512, args.window, args.threads)))
    else:
        size = max(h, w)
        pair_frames = [args.frames] + ([args.big_frames] if args.pairs_big and args.big_frames else [])
        vggt_frames = [args.frames] + ([args.big_frames] if args.big_frames else [])
        if args.only in (None, "pairs"):
            cases += [(f"pairs_{n}", "pairs", n, lambda n=n: run_pairwise(device, n, h, w, size, args.window,
                                                                          model("dust3r"), watch))
                      for n in pair_frames[:1]]
        if args.only in (None, "vggt"):
            chunk = args.chunk or (6 if args.smoke else None)
            cases += [(f"vggt_chunked_{n}", "vggt", n, lambda n=n: run_vggt(device, n, h, w, chunk, model("vggt"),
                                                                            watch, vggt_target))
                      for n in vggt_frames]
        if args.only in (None, "pairs"):   # the long pairwise run last: optional and the slowest
            cases += [(f"pairs_{n}", "pairs", n, lambda n=n: run_pairwise(device, n, h, w, size, args.window,
                                                                          model("dust3r"), watch))
                      for n in pair_frames[1:]]

    def on_alarm(signum, frame):
        raise TimeCap(f"time cap of {args.time_cap:.0f} s reached")

    if args.time_cap and hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, on_alarm)
    done: dict = {}   # kind -> (frames, seconds) of its last finished run, for the next estimate
    for name, kind, n, run in cases:
        left = None if args.time_cap is None else args.time_cap - (time.perf_counter() - t_start)
        # Run even when it is expected to take longer than what is left: the guard stops it and its
        # record says how far it got (stages, progress), which a skipped case would not.
        guess = done[kind][1] * n / done[kind][0] if kind in done else None
        if left is not None and left <= 1:
            report["cases"][name] = {"frames": n, "skipped": "time cap reached"}
            _write(report, args.out)
            continue
        report["cases"][name] = {"frames": n, "running": True}
        _write(report, args.out)
        watch.__init__(device)
        t = time.perf_counter()
        try:
            if left is not None and hasattr(signal, "SIGALRM"):
                signal.alarm(max(1, int(left)))
            res = run()
        except (Exception, TimeCap) as err:   # an out-of-memory or capped run is a result too
            res = {"frames": n, "error": f"{type(err).__name__}: {err}"[:400],
                   "seconds": round(time.perf_counter() - t, 3), **_memory(device, watch)}
        finally:
            if hasattr(signal, "SIGALRM"):
                signal.alarm(0)
        if guess is not None:
            res["expected_seconds"] = round(guess, 1)
        if "error" not in res:
            done[kind] = (n, res["seconds"])
            if n == 1000 and device.type == "cuda" and not args.smoke:
                res.update(_verdict(kind, res))
        report["cases"][name] = res
        report["total_seconds"] = round(time.perf_counter() - t_start, 3)
        _write(report, args.out)
        print(f"{name}: " + json.dumps({k: v for k, v in res.items() if k not in ("align", "stages")}),
              file=sys.stderr, flush=True)
    report["total_seconds"] = round(time.perf_counter() - t_start, 3)
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    _write(report, args.out)
    print(json.dumps(stamp(report), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
