"""The fused point cloud: gather every view's pointmap (numpy), then one vertex mesh in bpy.

Mesh layout (POINT domain): position (Blender world, after the world re-orientation), `color`
FLOAT_COLOR linear RGBA (active + render colour), `confidence` FLOAT, `view` INT (index into the
reconstruction's views). A Geometry Nodes modifier (scene.geonodes) displays it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .convention import srgb8_to_linear_rgba, transform_points
from .voxel import voxel_downsample


@dataclass
class PointData:
    """Flat, contiguous arrays ready for foreach_set. n points."""

    points: np.ndarray   # (n, 3) float32, Blender world
    rgba: np.ndarray     # (n, 4) float32, linear
    conf: np.ndarray     # (n,) float32
    view: np.ndarray     # (n,) int32

    def __len__(self) -> int:
        return len(self.points)


def gather_points(recon, W: np.ndarray, voxel_size: float = 0.0) -> PointData:
    """All views' valid pixels (finite point and confidence) as one cloud in the Blender world."""
    pts, cols, confs, views = [], [], [], []
    for i in range(recon.n_views):
        p = np.asarray(recon.points[i], np.float32).reshape(-1, 3)
        c = np.asarray(recon.conf[i], np.float32).reshape(-1)
        valid = np.isfinite(p).all(axis=1) & np.isfinite(c)
        if not valid.all():
            p, c = p[valid], c[valid]
            rgb = np.asarray(recon.colors[i]).reshape(-1, 3)[valid]
        else:
            rgb = np.asarray(recon.colors[i]).reshape(-1, 3)
        pts.append(p)
        cols.append(rgb)
        confs.append(c)
        views.append(np.full(len(p), i, np.int32))
    P = transform_points(np.concatenate(pts) if pts else np.zeros((0, 3), np.float32), W)
    rgba = srgb8_to_linear_rgba(np.concatenate(cols) if cols else np.zeros((0, 3), np.uint8))
    conf = np.concatenate(confs) if confs else np.zeros(0, np.float32)
    view = np.concatenate(views) if views else np.zeros(0, np.int32)
    if voxel_size > 0:
        P, rgba, conf, view = voxel_downsample(P, rgba, conf, view, voxel_size)
    return PointData(np.ascontiguousarray(P, np.float32), np.ascontiguousarray(rgba, np.float32),
                     np.ascontiguousarray(conf, np.float32), np.ascontiguousarray(view, np.int32))


def build_point_mesh(name: str, data: PointData, created):
    """A vertex-only mesh holding the cloud and its attributes (no per-point Python)."""
    import bpy

    me = created.add(bpy.data.meshes.new(name))
    n = len(data)
    me.vertices.add(n)
    # The generic attribute path takes the raw buffer; vertices.foreach_set("co") is ~50x slower.
    me.attributes["position"].data.foreach_set("vector", data.points.reshape(-1))
    col = me.color_attributes.new("color", "FLOAT_COLOR", "POINT")
    col.data.foreach_set("color", data.rgba.reshape(-1))
    me.color_attributes.active_color = col
    me.color_attributes.render_color_index = me.color_attributes.active_color_index
    me.attributes.new("confidence", "FLOAT", "POINT").data.foreach_set("value", data.conf)
    me.attributes.new("view", "INT", "POINT").data.foreach_set("value", data.view)
    me.update()
    return me
