"""Run global alignment on every alignment case file (*.npz, fixture format) in a directory.

    python bench/align_cases.py DIR --out results.json [--device cuda] [--iterations N] [--threads T] [--table]

Writes {case file name: {"cam2world": N×4×4 (OpenCV axes), "focal": N, "seconds": s, "cpu_seconds": s,
"load_seconds": s}} (with --table the poses are left out) plus the process's wall and CPU time from its start
(imports and loading included) and the machine's load average, and prints the scores of tests/fixtures/alignment/README.md per case and their mean. Any N, H, W and graph.
Shot cases (meta "path": "shot") are also scored as sequences against the README's drift floor and
targets, and solved with one shared focal where their meta says the shot has one (as a user would).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

T_START, CPU_START = time.perf_counter(), time.process_time()   # "loading included": the imports count too

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # helpers_synth: reader + scores

from helpers_shot import drift_floor, sequence_scores, shot_passes, shot_targets  # noqa: E402
from helpers_synth import TARGETS, load_npz_case, passes, score  # noqa: E402
from pointmap.core.align.refine import global_align  # noqa: E402
from pointmap.core.align.schedule import for_shot  # noqa: E402
from pointmap.core.options import AlignOptions  # noqa: E402
from record import stamp  # noqa: E402  (bench/ is on sys.path when run as a script)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iterations", type=int, default=None, help="default: the aligner's (by view count)")
    ap.add_argument("--lr", type=float, default=None, help="Adam step of the refinement (default: the aligner's)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--table", action="store_true", help="scores and times only, no poses in the JSON")
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    cases = sorted(args.dir.glob("*.npz"))
    if not cases:
        print(f"no *.npz cases in {args.dir}", file=sys.stderr)
        return 2
    results, table = {}, []
    ok = True
    for path in cases:
        t0 = time.perf_counter()
        pred, truth = load_npz_case(path, device=args.device)
        t_load = time.perf_counter() - t0
        meta = truth["meta"]
        shot = meta.get("path") == "shot"
        opts = AlignOptions(iterations=args.iterations, shared_focal=bool(shot and meta.get("shared_focal")),
                            **({"lr": args.lr} if args.lr else {}))
        if shot:   # the schedule the pipeline's shot path uses
            opts = for_shot(opts)
        t0, c0 = time.perf_counter(), time.process_time()
        res = global_align(pred, opts)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        results[path.name] = {"seconds": dt, "cpu_seconds": dc, "load_seconds": t_load,
                              "frames": pred.n_images, "edges": pred.n_edges,
                              **{k: res.info[k] for k in ("iterations", "init_seconds", "refine_seconds")}}
        if not args.table:
            results[path.name].update(cam2world=res.cam2world.tolist(), focal=res.focals.tolist())
        s = score(res.cam2world, res.focals, truth)
        table.append(s)
        good = passes(s)
        line = f"{path.name}: " + ", ".join(f"{k} {v:.4g}" for k, v in s.items())
        if shot:
            floor = drift_floor(pred.edges, pred.n_images, meta.get("pose_noise_deg", 0.5))
            seq = sequence_scores(res.cam2world, res.focals, truth)
            good = shot_passes(seq, shot_targets(floor))
            results[path.name].update(sequence=seq, floor=floor, targets=shot_targets(floor))
            line += "\n  shot: " + ", ".join(f"{k} {v:.4g}" for k, v in seq.items()) + \
                f"\n  floor mean {floor['mean_deg']:.3f} max {floor['max_deg']:.3f} deg"
        ok &= good
        results[path.name]["pass"] = bool(good)
        print(line + f"\n  seconds {dt:.2f} (cpu {dc:.2f}; + {t_load:.2f} loading), {res.info['iterations']} steps, "
              f"{'PASS' if good else 'FAIL'}", flush=True)
    mean = {k: sum(t[k] for t in table) / len(table) for k in table[0]}
    print("mean: " + ", ".join(f"{k} {v:.4g}" for k, v in mean.items()) + f"  (targets {TARGETS})")
    results["process"] = {"wall_seconds": time.perf_counter() - T_START, "cpu_seconds": time.process_time() - CPU_START,
                          "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                          "load_average_start": [round(x, 2) for x in load_start],
                          "load_average_end": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps(results["process"]))
    args.out.write_text(json.dumps(stamp(results), indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
