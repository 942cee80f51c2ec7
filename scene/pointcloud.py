"""The fused point cloud: gather every view's pointmap (numpy), then one vertex mesh in bpy.

Mesh layout (POINT domain): position (Blender world, after the world re-orientation), `Color`
FLOAT_COLOR linear RGBA (active + render colour), `confidence` FLOAT, `view` INT (index into the
reconstruction's views) and, for a shot (views with frame numbers), `frame` INT (the clip frame of the
point's view, e.g. 1001). A Geometry Nodes modifier (scene.geonodes) displays it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .convention import srgb8_to_linear_rgba, transform_points
from .voxel import voxel_downsample

# Not "color": Cycles treats that attribute name specially and renders it black.
COLOR_ATTRIBUTE = "Color"


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
    masks, counts = [], []
    for i in range(recon.n_views):
        p = np.asarray(recon.points[i]).reshape(-1, 3)
        c = np.asarray(recon.conf[i]).reshape(-1)
        valid = np.isfinite(p).all(axis=1) & np.isfinite(c)
        masks.append(None if valid.all() else valid)
        counts.append(int(valid.sum()))
    n = int(sum(counts))
    # Fill preallocated outputs view by view: no concatenation of all views at 10 M-point scale.
    P = np.empty((n, 3), np.float32)
    rgba = np.empty((n, 4), np.float32)
    conf = np.empty(n, np.float32)
    view = np.empty(n, np.int32)
    s = 0
    for i, (valid, k) in enumerate(zip(masks, counts, strict=True)):
        e = s + k
        p = np.asarray(recon.points[i], np.float32).reshape(-1, 3)
        rgb = np.asarray(recon.colors[i]).reshape(-1, 3)
        c = np.asarray(recon.conf[i], np.float32).reshape(-1)
        if valid is not None:
            p, rgb, c = p[valid], rgb[valid], c[valid]
        P[s:e] = transform_points(p, W)
        rgba[s:e] = srgb8_to_linear_rgba(rgb)
        conf[s:e] = c
        view[s:e] = i
        s = e
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
    col = me.color_attributes.new(COLOR_ATTRIBUTE, "FLOAT_COLOR", "POINT")
    col.data.foreach_set("color", data.rgba.reshape(-1))
    me.color_attributes.active_color = col
    me.color_attributes.render_color_index = me.color_attributes.active_color_index
    me.attributes.new("confidence", "FLOAT", "POINT").data.foreach_set("value", data.conf)
    me.attributes.new("view", "INT", "POINT").data.foreach_set("value", data.view)
    me.update()
    return me


def add_frame_attribute(me, view: np.ndarray, frame_numbers: np.ndarray) -> None:
    """The `frame` INT point attribute: the clip frame number of each point's view (bulk)."""
    frames = np.asarray(frame_numbers, np.int64)[np.asarray(view)].astype(np.int32)
    me.attributes.new("frame", "INT", "POINT").data.foreach_set("value", np.ascontiguousarray(frames))
