"""nerfstudio `transforms.json`: a shot straight into NeRF / Gaussian-splatting trainers. No bpy.

Layout (nerfstudio's "data format" for custom data, as read by its `nerfstudio` dataparser and by
splatfacto / gsplat trainers):
  camera_model "OPENCV", and the intrinsics fl_x, fl_y, cx, cy, w, h (pixels) at the top level when
  every frame shares them, else per frame; k1, k2, p1, p2 = 0 (our cameras have no distortion);
  frames: [{file_path, transform_matrix (4x4 camera-to-world, OpenGL camera axes: x right, y up,
  z backward), colmap_im_id}], plus our "frame_number" per frame when known;
  ply_file_path: the point cloud (binary PLY from `core.io.export.write_ply`), used by splatfacto to
  initialise the Gaussians.
Principal points: nerfstudio (like COLMAP) puts the top-left pixel's centre at (0.5, 0.5); ours at
(0, 0), so cx, cy move by +0.5. File paths are written relative to the json's folder when possible.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import PointmapError
from .export import write_ply

# OpenCV camera axes → OpenGL camera axes (flip y and z of the camera frame).
CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])


class TransformsError(PointmapError):
    """transforms.json cannot be written (frames without files, unwritable folder, ...)."""


def _relative(path: str, folder: Path) -> str:
    try:
        return os.path.relpath(os.path.abspath(path), folder.resolve())
    except ValueError:            # another drive on Windows
        return os.path.abspath(path)


def transforms_dict(rec, folder: str | os.PathLike, image_paths: list[str] | None = None,
                    ply_name: str | None = "points.ply") -> dict:
    """The transforms.json content for `rec` written into `folder` (see the module docstring)."""
    folder = Path(folder)
    paths = list(image_paths) if image_paths is not None else list(rec.paths)
    if len(paths) != rec.n_views:
        raise TransformsError(f"{len(paths)} image paths for {rec.n_views} views")
    missing = [rec.names[i] for i, p in enumerate(paths) if not p]
    if missing:
        raise TransformsError(f"transforms.json needs an image file for every frame; {len(missing)} views "
                              f"have none (first: {missing[0]}). Pass image_paths.")
    K = np.asarray(rec.K, np.float64)
    sizes = np.asarray(rec.image_sizes)
    intr = np.column_stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2] + 0.5, K[:, 1, 2] + 0.5, sizes[:, 1], sizes[:, 0]])
    shared = bool(np.all(np.abs(intr - intr[0]) <= 1e-9 * np.maximum(1.0, np.abs(intr[0]))))
    c2w = np.asarray(rec.cam2world, np.float64) @ CV_TO_GL
    frames_order = np.arange(rec.n_views) if rec.frame_numbers is None else \
        np.argsort(np.asarray(rec.frame_numbers), kind="stable")
    keys = ("fl_x", "fl_y", "cx", "cy", "w", "h")

    def intrinsics(row) -> dict:
        d = {k: float(v) for k, v in zip(keys[:4], row[:4], strict=True)}
        d.update(w=int(row[4]), h=int(row[5]), k1=0.0, k2=0.0, p1=0.0, p2=0.0)
        return d

    out: dict = {"camera_model": "OPENCV"}
    if shared:
        out.update(intrinsics(intr[0]))
    frames = []
    for i in frames_order:
        fr = {"file_path": _relative(paths[i], folder), "transform_matrix": c2w[i].tolist(),
              "colmap_im_id": int(i) + 1}
        if rec.frame_numbers is not None:
            fr["frame_number"] = int(rec.frame_numbers[i])
        if not shared:
            fr.update(intrinsics(intr[i]))
        frames.append(fr)
    out["frames"] = frames
    if ply_name:
        out["ply_file_path"] = ply_name
    return out


def write_transforms(rec, path: str | os.PathLike, image_paths: list[str] | None = None,
                     ply_name: str | None = "points.ply", min_conf: float = 0.0) -> Path:
    """Write transforms.json at `path` and the point cloud as `ply_name` beside it; return the json path.

    image_paths: the frame files (default `rec.paths`; a shot solved from a movie has none, so its frames are
    decoded into `images/` beside the json). ply_name None: no point cloud. Nothing is written if any check
    fails.
    """
    path = Path(path)
    folder = path.parent
    shot = rec.meta.get("shot") or {}
    extract = image_paths is None and shot.get("kind") == "movie" and not all(rec.paths)
    if extract:
        # Frames of a movie have no files: they are decoded into images/ beside the json (PNG, full size).
        stem = Path(shot["source"]).stem
        image_paths = [str(folder / "images" / f"{stem}.{int(n):04d}.png") for n in rec.frame_numbers]
    content = transforms_dict(rec, folder, image_paths, ply_name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if extract:
            from .video import write_frames

            write_frames(shot["source"], [int(n) for n in rec.frame_numbers], folder / "images",
                         shot.get("first_frame") or 1, stem)
        if ply_name:
            write_ply(rec, folder / ply_name, min_conf=min_conf)
        path.write_text(json.dumps(content, indent=2))
    except OSError as err:
        raise TransformsError(f"{path}: cannot be written ({err.strerror or err})") from err
    return path
