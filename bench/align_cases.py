"""Run global alignment on every alignment case file (*.npz, fixture format) in a directory.

    python bench/align_cases.py DIR --out results.json [--device cuda] [--iterations N]

Writes {case file name: {"cam2world": N×4×4 (OpenCV axes), "focal": N, "seconds": s, "load_seconds": s}} and
prints the scores of tests/fixtures/alignment/README.md per case and their mean. Any N, H, W and graph.
Shot cases (meta "path": "shot") are also scored as sequences against the README's drift floor and
targets, and solved with one shared focal where their meta says the shot has one (as a user would).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # helpers_synth: reader + scores

from helpers_shot import drift_floor, sequence_scores, shot_passes, shot_targets  # noqa: E402
from helpers_synth import TARGETS, load_npz_case, passes, score  # noqa: E402
from pointmap.core.align.refine import global_align  # noqa: E402
from pointmap.core.options import AlignOptions  # noqa: E402
from record import stamp  # noqa: E402  (bench/ is on sys.path when run as a script)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iterations", type=int, default=None, help="default: the aligner's (by view count)")
    ap.add_argument("--lr", type=float, default=None, help="Adam step of the refinement (default: the aligner's)")
    args = ap.parse_args(argv)
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
        t0 = time.perf_counter()
        res = global_align(pred, opts)
        dt = time.perf_counter() - t0
        results[path.name] = {"cam2world": res.cam2world.tolist(), "focal": res.focals.tolist(), "seconds": dt,
                              "load_seconds": t_load}
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
        print(line + f"\n  seconds {dt:.2f} (+ {t_load:.2f} loading), {'PASS' if good else 'FAIL'}", flush=True)
    mean = {k: sum(t[k] for t in table) / len(table) for k in table[0]}
    print("mean: " + ", ".join(f"{k} {v:.4g}" for k, v in mean.items()) + f"  (targets {TARGETS})")
    args.out.write_text(json.dumps(stamp(results), indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
