"""Run global alignment on every alignment case file (*.npz, fixture format) in a directory.

    python bench/align_cases.py DIR --out results.json [--device cuda] [--iterations N]

Writes {case file name: {"cam2world": N×4×4 (OpenCV axes), "focal": N, "seconds": s}} and prints the
scores of tests/fixtures/alignment/README.md per case and their mean. Any N, H, W and graph.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # helpers_synth: reader + scores

from helpers_synth import TARGETS, load_npz_case, passes, score  # noqa: E402
from pointmap.core.align.refine import global_align
from pointmap.core.options import AlignOptions  # noqa: E402
from record import stamp  # noqa: E402  (bench/ is on sys.path when run as a script)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iterations", type=int, default=None, help="default: the aligner's (by view count)")
    args = ap.parse_args(argv)
    cases = sorted(args.dir.glob("*.npz"))
    if not cases:
        print(f"no *.npz cases in {args.dir}", file=sys.stderr)
        return 2
    results, table = {}, []
    for path in cases:
        pred, truth = load_npz_case(path, device=args.device)
        t0 = time.perf_counter()
        res = global_align(pred, AlignOptions(iterations=args.iterations))
        dt = time.perf_counter() - t0
        results[path.name] = {"cam2world": res.cam2world.tolist(), "focal": res.focals.tolist(), "seconds": dt}
        s = score(res.cam2world, res.focals, truth)
        table.append(s)
        print(f"{path.name}: " + ", ".join(f"{k} {v:.4g}" for k, v in s.items())
              + f", seconds {dt:.3f}, {'PASS' if passes(s) else 'FAIL'}")
    mean = {k: sum(t[k] for t in table) / len(table) for k in table[0]}
    print("mean: " + ", ".join(f"{k} {v:.4g}" for k, v in mean.items()) + f"  (targets {TARGETS})")
    args.out.write_text(json.dumps(stamp(results), indent=1))
    return 0 if all(passes(t) for t in table) else 1


if __name__ == "__main__":
    raise SystemExit(main())
