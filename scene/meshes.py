"""Per-view meshes: each view's pointmap triangulated on its pixel grid, textured with its photo.

Grid cell (r, c) with corners a=(r, c), b=(r, c+1), d=(r+1, c), e=(r+1, c+1) gives triangles
(a, d, b) and (b, d, e); in the image (y down) these run clockwise, which makes them face the camera
once the OpenCV → Blender flip is applied. A triangle is dropped when a corner is invalid (non-finite
or below the confidence threshold) or when its depths differ by more than `max_jump` × the nearest
depth (a depth discontinuity: foreground/background must not be bridged).
"""

from __future__ import annotations

import numpy as np

from .convention import pixel_uv, transform_points


def grid_triangles(depth: np.ndarray, valid: np.ndarray, max_jump: float) -> np.ndarray:
    """Kept triangles (m, 3) as flat pixel indices (row-major) into an (h, w) grid."""
    h, w = depth.shape
    idx = np.arange(h * w, dtype=np.int64).reshape(h, w)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    d, e = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    tris = np.concatenate([np.stack([a, d, b], 1), np.stack([b, d, e], 1)])
    z = depth.reshape(-1)[tris]
    ok = valid.reshape(-1)[tris].all(axis=1)
    zmin = z.min(axis=1)
    ok &= zmin > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        ok &= (z.max(axis=1) - zmin) <= max_jump * zmin
    return tris[ok]


def view_mesh_arrays(recon, i: int, W: np.ndarray, min_conf: float, max_jump: float):
    """Vertices (n, 3) float32 (Blender world), triangles (m, 3) int32 and per-corner UVs (3m, 2).

    Only pixels used by a kept triangle become vertices.
    """
    h, w = recon.net_size(i)
    pts = np.asarray(recon.points[i], np.float32).reshape(-1, 3)
    depth = np.asarray(recon.depth[i], np.float32)
    conf = np.asarray(recon.conf[i], np.float32).reshape(-1)
    valid = np.isfinite(pts).all(axis=1) & np.isfinite(depth.reshape(-1)) & (conf >= min_conf)
    tris = grid_triangles(depth, valid, max_jump)
    used = np.zeros(h * w, bool)
    used[tris.ravel()] = True
    remap = np.cumsum(used) - 1
    verts = transform_points(pts[used], W)
    H0, W0 = (int(s) for s in recon.image_sizes[i])
    uv = pixel_uv(recon.net_to_orig[i], h, w, H0, W0).reshape(-1, 2)
    corner_uv = uv[tris.ravel()]
    return (np.ascontiguousarray(verts, np.float32), remap[tris].astype(np.int32),
            np.ascontiguousarray(corner_uv, np.float32))


def build_mesh(name: str, verts: np.ndarray, tris: np.ndarray, corner_uv: np.ndarray, created):
    """A triangle mesh from flat arrays (foreach_set only) with one UV map."""
    import bpy

    me = created.add(bpy.data.meshes.new(name))
    m = len(tris)
    me.vertices.add(len(verts))
    me.attributes["position"].data.foreach_set("vector", verts.reshape(-1))
    me.loops.add(3 * m)
    me.loops.foreach_set("vertex_index", tris.reshape(-1).astype(np.int32))
    me.polygons.add(m)
    me.polygons.foreach_set("loop_start", np.arange(0, 3 * m, 3, dtype=np.int32))
    uvl = me.uv_layers.new(name="UVMap")
    uvl.uv.foreach_set("vector", corner_uv.reshape(-1))
    me.update(calc_edges=True)
    return me
