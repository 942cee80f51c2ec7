"""Write synthetic shot cases (fixture format, `path: shot`) for `bench/align_cases.py`.

    python bench/shot_cases.py DIR --frames 60 120 300 [--size 32 48] [--window 4] [--seed 0]

One file `shot<N>_swin<K>.npz` per frame count, made by `tests/helpers_shot.make_shot_case` (the recipe of
the alignment fixture README's "shots" section), with the drift floor in its meta.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # generator + floor

from helpers_shot import drift_floor, make_shot_case  # noqa: E402
from helpers_synth import case_to_npz  # noqa: E402
from record import stamp  # noqa: E402  (bench/ is on sys.path when run as a script)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--frames", type=int, nargs="+", default=[60, 120, 300])
    ap.add_argument("--size", type=int, nargs=2, default=[32, 48], metavar=("H", "W"))
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    for n in args.frames:
        pred, truth = make_shot_case(n, size=tuple(args.size), window=args.window, seed=args.seed + n)
        truth["meta"]["drift_floor"] = drift_floor(pred.edges, n, truth["meta"]["pose_noise_deg"])
        out = args.dir / f"shot{n}_swin{args.window}.npz"
        np.savez_compressed(out, **case_to_npz(pred, truth))
        print(json.dumps(stamp({"file": str(out), "frames": n, "edges": pred.n_edges, **truth["meta"]["drift_floor"]})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
