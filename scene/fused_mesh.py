"""The fused mesh (`core.meshing.Mesh`) as a Blender object: its material shows the texture atlas when
the mesh has one (UV map + packed image), else its vertex colours.

Vertices and normals go through `convention.transform_points` (the world re-orientation W, a pure
rotation), so the mesh lines up with the point cloud and cameras of the same build. The face winding
is kept: W is a rotation, so faces still point out of the solid.
"""

from __future__ import annotations

import numpy as np

from .convention import flip_rows, srgb8_to_linear_rgba, transform_points
from .materials import photo_material, point_material
from .pointcloud import COLOR_ATTRIBUTE


def fused_mesh_arrays(mesh, W: np.ndarray):
    """Blender-world vertices (V, 3) float32, faces (F, 3) int32, linear RGBA colours (V, 4) float32."""
    verts = transform_points(np.asarray(mesh.vertices, np.float32), W)
    faces = np.ascontiguousarray(mesh.faces, np.int32)
    rgba = srgb8_to_linear_rgba(np.asarray(mesh.colors, np.uint8))
    return (np.ascontiguousarray(verts, np.float32), faces,
            np.ascontiguousarray(rgba, np.float32).reshape(-1, 4))


def atlas_image(name: str, texture: np.ndarray, created):
    """The atlas (S, S, 3) sRGB in [0, 1], row 0 at the top, as a packed byte image (sRGB as is)."""
    import bpy

    h, w = texture.shape[:2]
    img = created.add(bpy.data.images.new(name, w, h, alpha=False))
    rgba = np.ones((h, w, 4), np.float32)
    rgba[..., :3] = texture
    img.pixels.foreach_set(flip_rows(rgba).reshape(-1))     # Blender stores rows bottom to top
    img.pack()
    return img


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
    if mesh.texture is not None:
        uv = me.uv_layers.new(name="UVMap")
        # Loops are three per face in face order, so the per-corner UVs (F, 3, 2) are per loop already.
        uv.data.foreach_set("uv", np.ascontiguousarray(mesh.uvs, np.float32).reshape(-1))
        me.materials.append(photo_material(f"{name} Texture", atlas_image(f"{name} Texture", mesh.texture,
                                                                          created), created))
    else:
        me.materials.append(point_material(f"{name} Colour", created))
    obj = created.add(bpy.data.objects.new(name, me))
    collection.objects.link(obj)
    return obj
