"""The fused mesh (`core.meshing.Mesh`) as a Blender object: vertex colours shown by its material.

Vertices and normals go through `convention.transform_points` (the world re-orientation W, a pure
rotation), so the mesh lines up with the point cloud and cameras of the same build. The face winding
is kept: W is a rotation, so faces still point out of the solid.
"""

from __future__ import annotations

import numpy as np

from .convention import srgb8_to_linear_rgba, transform_points
from .materials import point_material
from .pointcloud import COLOR_ATTRIBUTE


def fused_mesh_arrays(mesh, W: np.ndarray):
    """Blender-world vertices (V, 3) float32, faces (F, 3) int32, linear RGBA colours (V, 4) float32."""
    verts = transform_points(np.asarray(mesh.vertices, np.float32), W)
    faces = np.ascontiguousarray(mesh.faces, np.int32)
    rgba = srgb8_to_linear_rgba(np.asarray(mesh.colors, np.uint8))
    return (np.ascontiguousarray(verts, np.float32), faces,
            np.ascontiguousarray(rgba, np.float32).reshape(-1, 4))


def build_fused_mesh(name: str, mesh, W: np.ndarray, collection, created):
    """Create mesh datablock + object + material (all recorded in the ledger `created`), linked into
    `collection`. Returns the object. An empty `mesh` is refused (the mesher raises before that)."""
    import bpy

    if mesh.n_faces == 0:
        raise ValueError("build_fused_mesh: the mesh has no faces")
    verts, faces, rgba = fused_mesh_arrays(mesh, W)
    me = created.add(bpy.data.meshes.new(name))
    me.vertices.add(len(verts))
    me.attributes["position"].data.foreach_set("vector", verts.reshape(-1))
    m = len(faces)
    me.loops.add(3 * m)
    me.loops.foreach_set("vertex_index", faces.reshape(-1))
    me.polygons.add(m)
    me.polygons.foreach_set("loop_start", np.arange(0, 3 * m, 3, dtype=np.int32))
    col = me.color_attributes.new(COLOR_ATTRIBUTE, "FLOAT_COLOR", "POINT")
    col.data.foreach_set("color", rgba.reshape(-1))
    me.color_attributes.active_color = col
    me.color_attributes.render_color_index = me.color_attributes.active_color_index
    me.update(calc_edges=True)
    me.validate(clean_customdata=False)
    me.materials.append(point_material(f"{name} Colour", created))
    obj = created.add(bpy.data.objects.new(name, me))
    collection.objects.link(obj)
    return obj
