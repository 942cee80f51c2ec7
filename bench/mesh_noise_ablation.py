"""Which perturbation keeps the fused mesh from F-score 0.9 at 0.5 % of the diagonal (issue #12, point 4)?

    python bench/mesh_noise_ablation.py [--seeds 7 8] [--out results.json]

Generates object cases like the shared 8-view example (`tests/helpers_meshgen.py`: 8 views of 96 x 72, 1 % depth
noise half per pixel and half a smooth field per view, 0.3 % per-view scale error, 0.2 deg camera rotation error,
3 % outliers, flying pixels at edges) and switches the perturbations off one group at a time, fusing each with the
default `MeshOptions`. Prints JSON rows of the fused mesh's scores per case and seed, stamped by `record.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers_meshgen import make_case  # noqa: E402
from helpers_meshscore import score_mesh  # noqa: E402
from mesh_cases import fuse_case  # noqa: E402
from pointmap.core.meshing import MeshOptions  # noqa: E402
from record import stamp  # noqa: E402

VARIANTS = {
    "example-like": {},
    "depth noise only": {"pose_noise_deg": 0.0, "scale_noise": 0.0},
    "per-pixel half of the depth noise only": {"pose_noise_deg": 0.0, "scale_noise": 0.0,
                                               "noise": 0.01 / np.sqrt(2)},
    "cameras and scale only": {"noise": 0.0},
    "depth noise 0.5 %": {"noise": 0.005},
    "no noise (outliers and flying pixels only)": {"noise": 0.0, "pose_noise_deg": 0.0, "scale_noise": 0.0},
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 8])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    rows = []
    for name, kw in VARIANTS.items():
        for seed in args.seeds:
            case = make_case(seed=seed, kind="object", views=8, W=96, H=72, gt_factor=4, **kw)
            mesh = fuse_case(case, MeshOptions())
            scores = score_mesh(mesh.vertices, mesh.faces, case)
            rows.append({"variant": name, "seed": seed, "settings": json.loads(case["meta"]),
                         **{k: round(float(v), 4) for k, v in scores.items() if isinstance(v, float)}})
            print(json.dumps({k: rows[-1][k] for k in ("variant", "seed", "f05", "f1", "chamfer_pct")}), flush=True)
    result = stamp({"rows": rows})
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
