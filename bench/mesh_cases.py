"""Fuse every meshing case file (*.npz, tests/fixtures/meshing/README.md format) in a directory.

    python bench/mesh_cases.py DIR --out OUTDIR [--device cuda] [--voxel-size S] [--no-compare]

Reads only images, depth, conf, K and cam2world for fusion; writes OUTDIR/<case>.ply (binary,
triangles, vertex colours). Where a case holds the scoring keys (gt_points, bbox_diag, score_box) it
prints JSON scores of the fused mesh and, for comparison, of the raw point cloud (every pixel with
conf >= 3, back-projected) and of per-view grid meshes (scene/meshes.py's triangle rule).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # helpers_meshscore: scores

from helpers_meshscore import load_case, score_cloud, score_mesh, targets  # noqa: E402
from pointmap.core.meshing import MeshingError, MeshOptions, fuse_mesh  # noqa: E402
from pointmap.core.meshing.views import check_views  # noqa: E402
from pointmap.scene.meshes import grid_triangles  # noqa: E402
from record import stamp  # noqa: E402  (bench/ is on sys.path when run as a script)

PER_VIEW_MAX_JUMP = 0.05   # per-view meshes: no triangle across a depth step above 5 %


def fuse_case(case: dict, options: MeshOptions):
    return fuse_mesh(list(case["depth"]), list(case["conf"]), case["K"], case["cam2world"],
                     list(case["images"]), options)


def baselines(case: dict, min_conf: float = 3.0) -> dict:
    """Scores of the raw confident cloud and of the per-view grid meshes (all views together)."""
    views = check_views(list(case["depth"]), list(case["conf"]), case["K"], case["cam2world"],
                        list(case["images"]), min_conf)
    cloud = np.concatenate([views.points_world(i) for i in range(views.n_views)])
    verts, faces, n = [], [], 0
    for i in range(views.n_views):
        h, w = views.depth[i].shape
        v, u = np.mgrid[0:h, 0:w]
        pix = np.stack([u.ravel(), v.ravel(), np.ones(h * w)], 0)
        cam = (np.linalg.inv(views.K[i]) @ pix) * views.depth[i].reshape(-1)
        world = (views.cam2world[i, :3, :3] @ cam).T + views.cam2world[i, :3, 3]
        tris = grid_triangles(views.depth[i], views.valid(i), PER_VIEW_MAX_JUMP)
        verts.append(world)
        faces.append(tris + n)
        n += h * w
    return {"raw_cloud": score_cloud(cloud, case),
            "per_view_meshes": score_mesh(np.concatenate(verts), np.concatenate(faces), case)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--voxel-size", type=float, default=0.0)
    ap.add_argument("--no-compare", action="store_true", help="skip the raw-cloud / per-view baselines")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    options = MeshOptions(device=args.device, voxel_size=args.voxel_size)
    results = {}
    for path in sorted(args.dir.glob("*.npz")):
        case = load_case(path)
        t0 = time.perf_counter()
        try:
            mesh = fuse_case(case, options)
        except MeshingError as err:
            results[path.stem] = {"error": str(err)}
            continue
        seconds = time.perf_counter() - t0
        mesh.write_ply(args.out / f"{path.stem}.ply")
        row = {"seconds": seconds, "faces": mesh.n_faces, "voxel_size": mesh.info["voxel_size"],
               "truncation": mesh.info["truncation"]}
        if "gt_points" in case:
            row["fused"] = score_mesh(mesh.vertices, mesh.faces, case)
            t = targets(case)
            row["targets"] = t
            row["pass"] = (row["fused"]["f1"] >= t["f1_min"] and row["fused"]["chamfer_pct"] <= t["chamfer_max_pct"]
                           and (t["f05_min"] is None or row["fused"]["f05"] >= t["f05_min"]))
            if not args.no_compare:
                row.update(baselines(case))
        results[path.stem] = row
        print(json.dumps({path.stem: row}), flush=True)
    print(json.dumps(stamp({"cases": results}), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
