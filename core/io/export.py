"""Export a `Reconstruction` for other tools: a PLY point cloud and a COLMAP text model.

Both are written with numpy in bulk (no per-point Python loops) and need neither torch nor bpy.

PLY (binary little-endian): one vertex per kept pixel with x, y, z (float32, world), red, green, blue
(uint8, sRGB), confidence (float32) and view (int32). Pixels with non-finite points or a confidence
below `min_conf` are left out.

COLMAP (the text format of `colmap model_converter` / `read_write_model.py`):
  cameras.txt   one PINHOLE camera per image at its original resolution: fx fy cx cy
  images.txt    world-to-camera pose (qw qx qy qz tx ty tz, OpenCV axes as ours), camera id, file name,
                and an empty 2-D point line
  points3D.txt  optional: a subsample of the point cloud with colours and an empty track
COLMAP puts the centre of the top-left pixel at (0.5, 0.5), ours at (0, 0): principal points move by
+0.5 px on the way out.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..reconstruction import Reconstruction


def point_cloud(rec: Reconstruction, min_conf: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flattened (points (P,3) float32, colours (P,3) uint8, confidence (P,) float32, view (P,) int32)."""
    pts, cols, confs, views = [], [], [], []
    for i in range(rec.n_views):
        p = rec.points[i].reshape(-1, 3)
        c = rec.conf[i].reshape(-1)
        keep = np.isfinite(p).all(axis=1) & (c >= min_conf)
        pts.append(p[keep].astype(np.float32, copy=False))
        cols.append(rec.colors[i].reshape(-1, 3)[keep])
        confs.append(c[keep].astype(np.float32, copy=False))
        views.append(np.full(int(keep.sum()), i, np.int32))
    return np.concatenate(pts), np.concatenate(cols), np.concatenate(confs), np.concatenate(views)


def write_ply(rec: Reconstruction, path: str | os.PathLike, min_conf: float = 0.0) -> int:
    """Write the point cloud as binary PLY; returns the number of points written."""
    pts, cols, conf, view = point_cloud(rec, min_conf)
    vertex = np.empty(len(pts), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"),
                                       ("blue", "u1"), ("confidence", "<f4"), ("view", "<i4")])
    vertex["x"], vertex["y"], vertex["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = cols[:, 0], cols[:, 1], cols[:, 2]
    vertex["confidence"], vertex["view"] = conf, view
    header = "\n".join([
        "ply", "format binary_little_endian 1.0",
        f"comment pointmap {rec.family} {rec.model}".rstrip(),
        f"element vertex {len(vertex)}",
        "property float x", "property float y", "property float z",
        "property uchar red", "property uchar green", "property uchar blue",
        "property float confidence", "property int view",
        "end_header",
    ]) + "\n"
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        vertex.tofile(f)
    return len(vertex)


def write_colmap(rec: Reconstruction, folder: str | os.PathLike, points: int = 100_000,
                 min_conf: float = 0.0, seed: int = 0) -> Path:
    """Write cameras.txt, images.txt and points3D.txt (at most `points` points, 0 = none) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = rec.n_views
    K = np.asarray(rec.K, dtype=np.float64)
    world2cam = np.linalg.inv(np.asarray(rec.cam2world, dtype=np.float64))
    from ..align.geometry import rotation_to_quaternion  # lazily: geometry imports torch

    q = rotation_to_quaternion(world2cam[:, :3, :3])
    t = world2cam[:, :3, 3]
    names = [os.path.basename(p) if p else f"{name}.png" for p, name in zip(rec.paths, rec.names, strict=True)]

    cams = ["# Camera list with one line of data per camera:",
            "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]", f"# Number of cameras: {n}"]
    imgs = ["# Image list with two lines of data per image:",
            "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME", "#   POINTS2D[] as (X, Y, POINT3D_ID)",
            f"# Number of images: {n}"]
    for i in range(n):
        h0, w0 = (int(v) for v in rec.image_sizes[i])
        fx, fy, cx, cy = K[i, 0, 0], K[i, 1, 1], K[i, 0, 2] + 0.5, K[i, 1, 2] + 0.5
        cams.append(f"{i + 1} PINHOLE {w0} {h0} {fx:.10g} {fy:.10g} {cx:.10g} {cy:.10g}")
        imgs.append(f"{i + 1} " + " ".join(f"{v:.12g}" for v in (*q[i], *t[i])) + f" {i + 1} {names[i]}")
        imgs.append("")
    (folder / "cameras.txt").write_text("\n".join(cams) + "\n")
    (folder / "images.txt").write_text("\n".join(imgs) + "\n")

    pts, cols, _, _ = point_cloud(rec, min_conf) if points else (np.zeros((0, 3)), np.zeros((0, 3)), None, None)
    if len(pts) > points:
        pick = np.sort(np.random.default_rng(seed).choice(len(pts), points, replace=False))
        pts, cols = pts[pick], cols[pick]
    ids = np.arange(1, len(pts) + 1)
    table = np.column_stack([ids, pts.astype(np.float64), cols.astype(np.float64), np.zeros(len(pts))])
    with open(folder / "points3D.txt", "w") as f:
        f.write("# 3D point list with one line of data per point:\n"
                "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
                f"# Number of points: {len(pts)}\n")
        np.savetxt(f, table, fmt=["%d", "%.7g", "%.7g", "%.7g", "%d", "%d", "%d", "%g"])
    return folder
