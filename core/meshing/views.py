"""Checked fusion inputs: per-view depth, confidence, intrinsics, cameras and colours.

Views may differ in size. Pixel centres are at integer coordinates (OpenCV): pixel (row v, column u)
back-projects to `depth[v, u] * inv(K) @ (u, v, 1)` in camera coordinates (x right, y down, z forward).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .errors import MeshingError


@dataclass
class FusionViews:
    """N views ready for fusion. valid[i] marks pixels with a finite depth > 0 and conf >= threshold.

    depth:     N x (H_i, W_i) float32 z-depth (camera z), 0 where not measured.
    weight:    N x (H_i, W_i) float32 fusion weight (the confidence where valid, else 0).
    colors:    N x (H_i, W_i, 3) uint8 sRGB.
    K:         (N, 3, 3) float64 intrinsics of these pixel grids.
    cam2world: (N, 4, 4) float64 camera -> world, OpenCV camera axes.
    names:     display name of each view (for messages).
    warnings:  views skipped and why.
    """

    depth: list[np.ndarray]
    weight: list[np.ndarray]
    colors: list[np.ndarray]
    K: np.ndarray
    cam2world: np.ndarray
    names: list[str]
    warnings: list[str] = field(default_factory=list)
    _valid: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_views(self) -> int:
        return len(self.depth)

    @cached_property
    def world2cam(self) -> np.ndarray:
        """(N, 4, 4) float64 inverses of `cam2world`, computed once (LAPACK calls on 4 x 4 matrices
        cost more in call overhead than in arithmetic; every stage needs them)."""
        return np.linalg.inv(self.cam2world)

    @cached_property
    def K_inv(self) -> np.ndarray:
        """(N, 3, 3) float64 inverses of `K`, computed once."""
        return np.linalg.inv(self.K)

    def valid(self, i: int) -> np.ndarray:
        """(H_i, W_i) bool mask of view i's usable pixels (read-only: computed once per weight array;
        stages that drop pixels assign a new weight array, which invalidates it)."""
        w = self.weight[i]
        hit = self._valid.get(i)
        if hit is None or hit[0] is not w:
            mask = w > 0
            mask.flags.writeable = False
            hit = self._valid[i] = (w, mask)
        return hit[1]

    def points_world(self, i: int, stride: int = 1) -> np.ndarray:
        """(n, 3) float64 world points of the valid pixels of view i (every `stride`-th row/column)."""
        d = self.depth[i][::stride, ::stride]
        ok = self.weight[i][::stride, ::stride] > 0
        v, u = np.nonzero(ok)
        z = d[v, u].astype(np.float64)
        Kinv = self.K_inv[i]
        pix = np.stack([u * stride, v * stride, np.ones_like(u)], 0).astype(np.float64)
        cam = (Kinv @ pix) * z
        R, t = self.cam2world[i, :3, :3], self.cam2world[i, :3, 3]
        return (R @ cam).T + t


def check_views(depth, conf, K, cam2world, images, min_confidence: float,
                names: list[str] | None = None) -> FusionViews:
    """Validate raw arrays (see `fuse_mesh`) and build `FusionViews`; raise `MeshingError` on bad input.

    A view without one confident pixel is skipped with a warning; when no view is left the error
    says why (no depth at all, or every confidence below `min_confidence`).
    """
    n = len(depth)
    if n == 0:
        raise MeshingError("Cannot build a mesh from zero views.")
    names = list(names) if names is not None else [f"view {i}" for i in range(n)]
    K = np.array(K, np.float64)                 # copies: fusion may refine the cameras (depth_fields), and
    cam2world = np.array(cam2world, np.float64)  # the caller's arrays (a Reconstruction's) must stay as they are
    if len(conf) != n or len(images) != n or K.shape != (n, 3, 3) or cam2world.shape != (n, 4, 4):
        raise MeshingError(
            f"Mesh inputs disagree: {n} depth maps, {len(conf)} confidence maps, {len(images)} images, "
            f"intrinsics of shape {K.shape} and cameras of shape {cam2world.shape} (expected ({n}, 3, 3) "
            f"and ({n}, 4, 4)).")
    if not (np.isfinite(K).all() and np.isfinite(cam2world).all()):
        raise MeshingError("Mesh inputs: some camera intrinsics or poses are not finite numbers.")
    depths, weights, colors, warnings = [], [], [], []
    n_finite = n_conf = 0
    for i in range(n):
        d = np.asarray(depth[i], np.float32)
        c = np.asarray(conf[i], np.float32)
        im = np.asarray(images[i])
        if d.ndim != 2 or c.shape != d.shape or im.shape != (*d.shape, 3):
            raise MeshingError(
                f"Mesh inputs, {names[i]}: depth {d.shape}, confidence {c.shape} and image {im.shape} "
                "must be (H, W), (H, W) and (H, W, 3).")
        if im.dtype != np.uint8:
            im = np.clip(np.asarray(im, np.float64), 0, 255).astype(np.uint8)
        has_depth = np.isfinite(d) & (d > 0)
        ok = has_depth & np.isfinite(c) & (c >= min_confidence)
        n_finite += int(has_depth.any())
        n_conf += int(ok.any())
        if not ok.any():
            why = "no valid depth" if not has_depth.any() else f"no pixel with confidence >= {min_confidence:g}"
            warnings.append(f"{names[i]} was left out of the mesh: {why}.")
        depths.append(np.where(ok, d, np.float32(0)).astype(np.float32, copy=False))
        weights.append(np.where(ok, c, np.float32(0)).astype(np.float32, copy=False))
        colors.append(im)
    if n_conf == 0:
        if n_finite == 0:
            raise MeshingError(f"Cannot build a mesh: none of the {n} views has a valid depth (all zero or not finite).")
        raise MeshingError(
            f"Cannot build a mesh: no pixel of the {n} views has a confidence >= {min_confidence:g} "
            "(lower the minimum confidence).")
    return FusionViews(depths, weights, colors, K, cam2world, names, warnings)
