"""Materials: points coloured by their `Color` attribute, meshes textured with their photo."""

from __future__ import annotations

from .pointcloud import COLOR_ATTRIBUTE


def _node_material(name: str, created):
    import bpy

    mat = created.add(bpy.data.materials.new(name))
    if mat.node_tree is None:   # Blender < 5 creates materials without nodes
        mat.use_nodes = True
    return mat, mat.node_tree


def _principled(nt):
    for node in nt.nodes:
        if node.bl_idname == "ShaderNodeBsdfPrincipled":
            return node
    bsdf = nt.nodes.new("ShaderNodeBsdfPrincipled")
    out = next(n for n in nt.nodes if n.bl_idname == "ShaderNodeOutputMaterial")
    nt.links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    return bsdf


def point_material(name: str, created):
    """Principled BSDF whose base colour is the geometry attribute `Color` (linear RGBA)."""
    mat, nt = _node_material(name, created)
    bsdf = _principled(nt)
    attr = nt.nodes.new("ShaderNodeAttribute")
    attr.attribute_type = "GEOMETRY"
    attr.attribute_name = COLOR_ATTRIBUTE
    attr.location = (-300, 200)
    nt.links.new(attr.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.9
    return mat


def photo_material(name: str, image, created):
    """Principled BSDF textured by `image` through the mesh's default UV map."""
    mat, nt = _node_material(name, created)
    bsdf = _principled(nt)
    tex = nt.nodes.new("ShaderNodeTexImage")
    tex.image = image
    tex.extension = "EXTEND"
    tex.location = (-350, 200)
    nt.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.9
    nt.nodes.active = tex    # Workbench's "Texture" colour mode shows the active image node
    return mat
