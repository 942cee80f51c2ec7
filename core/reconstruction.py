"""`Reconstruction`: the one dataclass that crosses from `core/` to the Blender side.

Conventions (every backend produces exactly these):

* Camera axes are OpenCV's: x right, y down, z forward (the camera looks down +z).
* `cam2world[i]` maps camera-i coordinates to world coordinates (4x4, rotation | translation).
  The world frame is arbitrary up to a similarity (scale-free networks); backends put the first
  camera at the identity unless poses were given.
* Pixel coordinates put the *centre* of pixel (column u, row v) at (u, v) (OpenCV). Intrinsics map
  camera points to these coordinates: u = fx·x/z + cx, v = fy·y/z + cy.
* "Network" pixels are those of the resized/cropped/padded image the network saw (H, W per view);
  "original" pixels are those of the image file after its EXIF orientation is applied (H0, W0).
  `net_to_orig[i]` is the 3x3 affine taking homogeneous network pixel coords to original ones, so
  `K[i] = net_to_orig[i] @ K_net[i]`.
* Per-pixel maps (`depth`, `points`, `conf`, `colors`) are at network resolution, one array per
  view (views may differ in shape, e.g. portrait and landscape mixed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Reconstruction:
    """N views reconstructed together. Shapes: N views, (H_i, W_i) network size of view i."""

    names: list[str]                 # display names, usually the file stem
    paths: list[str | None]          # source file of each view (None for in-memory images)
    image_sizes: np.ndarray          # (N, 2) int32, original (H0, W0) after EXIF orientation
    cam2world: np.ndarray            # (N, 4, 4) float64, OpenCV camera axes
    K: np.ndarray                    # (N, 3, 3) float64, intrinsics in original-image pixels
    K_net: np.ndarray                # (N, 3, 3) float64, intrinsics in network pixels
    net_to_orig: np.ndarray          # (N, 3, 3) float64, network px -> original px (homogeneous)
    depth: list[np.ndarray]          # N x (H_i, W_i) float32, z-depth in camera i
    points: list[np.ndarray]         # N x (H_i, W_i, 3) float32, world coordinates
    conf: list[np.ndarray]           # N x (H_i, W_i) float32, confidence (higher is better, >= 0)
    colors: list[np.ndarray]         # N x (H_i, W_i, 3) uint8, sRGB colour of each network pixel
    family: str = ""                 # model family: "dust3r", "mast3r", "vggt", "synthetic", ...
    model: str = ""                  # checkpoint name or path
    frame_numbers: np.ndarray | None = None   # (N,) int64 frame number of each view in its clip / image
                                              # sequence (e.g. 1001, 1003, ...); None for unordered photos
    fps: float | None = None         # frame rate of the clip the views came from, when known
    metric_scale: bool = False       # True when world units are metres (metric models); else arbitrary scale
    warnings: list[str] = field(default_factory=list)   # things the user should be told
    meta: dict = field(default_factory=dict)             # timings, graph, options (JSON-able)

    @classmethod
    def from_views(cls, views, cam2world: np.ndarray, K_net: np.ndarray, depth, points, conf,
                   **fields) -> Reconstruction:
        """A Reconstruction of loaded views (objects with name, path, original_size, net_to_orig, rgb: the
        loaders' `LoadedImage`) and the per-view results of a backend; `K` follows from `net_to_orig @ K_net`.
        depth / points / conf: sequences (or arrays) of the N per-view maps; `fields`: family, model, meta, ...
        """
        n = len(views)
        net_to_orig = np.stack([np.asarray(v.net_to_orig, dtype=np.float64) for v in views])
        K_net = np.ascontiguousarray(K_net, dtype=np.float64)
        return cls(
            names=[v.name for v in views], paths=[v.path for v in views],
            image_sizes=np.array([v.original_size for v in views], dtype=np.int32).reshape(n, 2),
            cam2world=np.asarray(cam2world, dtype=np.float64), K=net_to_orig @ K_net, K_net=K_net,
            net_to_orig=net_to_orig,
            depth=[np.ascontiguousarray(d, dtype=np.float32) for d in depth],
            points=[np.ascontiguousarray(p, dtype=np.float32) for p in points],
            conf=[np.ascontiguousarray(c, dtype=np.float32) for c in conf],
            colors=[np.ascontiguousarray(v.rgb, dtype=np.uint8) for v in views], **fields)

    @property
    def n_views(self) -> int:
        return len(self.names)

    def net_size(self, i: int) -> tuple[int, int]:
        """(H, W) of view i at network resolution."""
        h, w = self.depth[i].shape
        return int(h), int(w)

    def validate(self) -> None:
        """Raise ValueError if shapes/dtypes disagree with the documented layout."""
        n = self.n_views
        checks = [
            (len(self.paths) == n, "paths"),
            (self.image_sizes.shape == (n, 2), "image_sizes"),
            (self.cam2world.shape == (n, 4, 4), "cam2world"),
            (self.K.shape == (n, 3, 3), "K"),
            (self.K_net.shape == (n, 3, 3), "K_net"),
            (self.net_to_orig.shape == (n, 3, 3), "net_to_orig"),
            (len(self.depth) == n and len(self.points) == n, "depth/points"),
            (len(self.conf) == n and len(self.colors) == n, "conf/colors"),
            (self.frame_numbers is None or np.shape(self.frame_numbers) == (n,), "frame_numbers"),
        ]
        for ok, name in checks:
            if not ok:
                raise ValueError(f"Reconstruction.{name} does not match {n} views")
        for i in range(n):
            h, w = self.depth[i].shape
            if self.points[i].shape != (h, w, 3) or self.conf[i].shape != (h, w) \
                    or self.colors[i].shape != (h, w, 3):
                raise ValueError(f"Reconstruction view {i} ({self.names[i]}): per-pixel maps differ in shape")

    # -- persistence: lets scripts hand a Reconstruction to Blender without re-running models --

    def save(self, path: str | Path) -> None:
        """Write to one .npz file (no pickles)."""
        import json

        arrays = {
            "names": np.array(self.names),
            "paths": np.array(["" if p is None else p for p in self.paths]),
            "image_sizes": self.image_sizes, "cam2world": self.cam2world, "K": self.K,
            "K_net": self.K_net, "net_to_orig": self.net_to_orig,
            "meta_json": np.array(json.dumps({"family": self.family, "model": self.model,
                                              "fps": self.fps, "metric_scale": self.metric_scale,
                                              "warnings": self.warnings, "meta": self.meta})),
        }
        if self.frame_numbers is not None:
            arrays["frame_numbers"] = np.asarray(self.frame_numbers, dtype=np.int64)
        for i in range(self.n_views):
            arrays[f"depth_{i}"] = self.depth[i]
            arrays[f"points_{i}"] = self.points[i]
            arrays[f"conf_{i}"] = self.conf[i]
            arrays[f"colors_{i}"] = self.colors[i]
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Reconstruction:
        import json

        with np.load(path, allow_pickle=False) as z:
            names = [str(s) for s in z["names"]]
            n = len(names)
            extra = json.loads(str(z["meta_json"]))
            return cls(
                names=names,
                paths=[str(p) or None for p in z["paths"]],
                image_sizes=z["image_sizes"], cam2world=z["cam2world"], K=z["K"],
                K_net=z["K_net"], net_to_orig=z["net_to_orig"],
                depth=[z[f"depth_{i}"] for i in range(n)],
                points=[z[f"points_{i}"] for i in range(n)],
                conf=[z[f"conf_{i}"] for i in range(n)],
                colors=[z[f"colors_{i}"] for i in range(n)],
                # files written before the rename stored the family under "backend"
                family=extra.get("family", extra.get("backend", "")), model=extra["model"],
                frame_numbers=z["frame_numbers"] if "frame_numbers" in z.files else None,
                fps=extra.get("fps"), metric_scale=bool(extra.get("metric_scale", False)),
                warnings=list(extra["warnings"]), meta=dict(extra["meta"]),
            )


def load_reconstruction(path: str | os.PathLike) -> Reconstruction:
    """`Reconstruction.load` with a user-facing error naming the file."""
    from .errors import InputError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"The saved reconstruction {path} does not exist.", path)
    try:
        rec = Reconstruction.load(path)
        rec.validate()
    except (OSError, KeyError, ValueError) as err:
        raise InputError(f"{path} is not a saved pointmap reconstruction ({err}).", path) from err
    return rec
