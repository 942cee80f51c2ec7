"""Scoring of a mesh / point cloud against a meshing fixture's true surface (fixtures/meshing/README.md).

accuracy = mean distance prediction -> GT, completeness = mean GT -> prediction, Chamfer = their mean;
precision / recall / F-score at tau = 0.5 % and 1 % of `bbox_diag`. Mesh predictions are 200,000
points drawn uniformly by area (fixed seed) from the triangles, restricted to `score_box`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

N_SAMPLES = 200_000
MESH_KEYS = ("images", "depth", "conf", "K", "cam2world")


def load_case(path: str | Path) -> dict:
    """All arrays of one case file; `meta` parsed from JSON."""
    with np.load(path, allow_pickle=False) as z:
        case = {k: z[k] for k in z.files}
    case["meta"] = json.loads(str(case["meta"])) if "meta" in case else {}
    return case


def _inside(p: np.ndarray, box: np.ndarray) -> np.ndarray:
    return np.all((p >= box[0]) & (p <= box[1]), axis=1)


def sample_mesh(vertices: np.ndarray, faces: np.ndarray, box: np.ndarray, n: int = N_SAMPLES,
                seed: int = 0) -> np.ndarray:
    """(<= n, 3) points uniform by area on the parts of the triangles inside `box` ((2, 3), may be inf)."""
    rng = np.random.default_rng(seed)
    v = np.asarray(vertices, np.float64)
    tri = v[np.asarray(faces, np.int64)]
    tmin, tmax = tri.min(1), tri.max(1)
    touch = np.all((tmax >= box[0]) & (tmin <= box[1]), axis=1)
    tri = tri[touch]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    if not len(tri) or area.sum() <= 0:
        return np.zeros((0, 3))
    out, have = [], 0
    for _ in range(20):
        k = rng.choice(len(tri), size=n, p=area / area.sum())
        r1, r2 = rng.random(n), rng.random(n)
        s = np.sqrt(r1)
        p = (1 - s)[:, None] * tri[k, 0] + (s * (1 - r2))[:, None] * tri[k, 1] + (s * r2)[:, None] * tri[k, 2]
        p = p[_inside(p, box)]
        out.append(p)
        have += len(p)
        if have >= n:
            break
    return np.concatenate(out)[:n]


def score_points(pred: np.ndarray, gt: np.ndarray, diag: float) -> dict:
    """The README's scores of prediction samples `pred` against `gt` (both (n, 3) world)."""
    from scipy.spatial import cKDTree

    if not len(pred):
        return {"f1": 0.0, "f05": 0.0, "chamfer_pct": float("inf"), "accuracy_pct": float("inf"),
                "completeness_pct": float("inf"), "n_pred": 0}
    d_pred = cKDTree(gt).query(pred, workers=1)[0]
    d_gt = cKDTree(pred).query(gt, workers=1)[0]
    out = {"n_pred": int(len(pred))}
    for name, frac in (("f05", 0.005), ("f1", 0.01)):
        tau = frac * diag
        p, r = float((d_pred < tau).mean()), float((d_gt < tau).mean())
        out[name] = 0.0 if p + r == 0 else 2 * p * r / (p + r)
        out[f"precision_{name[1:]}"], out[f"recall_{name[1:]}"] = p, r
    acc, comp = float(d_pred.mean()), float(d_gt.mean())
    out.update(accuracy_pct=100 * acc / diag, completeness_pct=100 * comp / diag,
               chamfer_pct=100 * 0.5 * (acc + comp) / diag)
    return out


def score_mesh(vertices, faces, case: dict) -> dict:
    box = np.asarray(case["score_box"], np.float64)
    return score_points(sample_mesh(vertices, faces, box), case["gt_points"], float(case["bbox_diag"]))


def score_cloud(points: np.ndarray, case: dict, seed: int = 0) -> dict:
    box = np.asarray(case["score_box"], np.float64)
    p = np.asarray(points, np.float64)
    p = p[_inside(p, box)]
    if len(p) > N_SAMPLES:
        p = p[np.random.default_rng(seed).choice(len(p), N_SAMPLES, replace=False)]
    return score_points(p, case["gt_points"], float(case["bbox_diag"]))


def targets(case: dict) -> dict:
    """The bar for a case: clean vs noisy limits (issue #12), by the case's perturbation settings.

    F-score at 0.5 % >= 0.9 is asked "wherever depth noise allows": here, cases with depth noise
    <= 0.5 % (at 1 %, one view's depth error at ~3 m is about twice that tolerance)."""
    m = case.get("meta", {})
    noisy = m.get("noise", 0) > 0.015 or m.get("outliers", 0) > 0.05 or m.get("pose_noise_deg", 0) > 0.3
    if noisy:
        return {"f1_min": 0.85, "chamfer_max_pct": 0.7, "f05_min": None}
    return {"f1_min": 0.97, "chamfer_max_pct": 0.35, "f05_min": 0.9 if m.get("noise", 0) <= 0.005 else None}
