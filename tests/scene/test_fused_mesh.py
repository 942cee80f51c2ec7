"""scene/fused_mesh.py in real Blender: positions in Blender world, colours, ledger undo, exporters."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from pointmap.core.meshing import Mesh  # noqa: E402
from pointmap.scene.convention import SRGB_TO_LINEAR, transform_points, world_rotation  # noqa: E402
from pointmap.scene.fused_mesh import build_fused_mesh  # noqa: E402
from pointmap.scene.ledger import Created  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_blender():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield


def _cube_mesh() -> Mesh:
    """A closed unit cube (OpenCV world), faces wound counter-clockwise seen from outside."""
    v = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], np.float32) + [2, -1, 3]
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], np.int32)
    n = (v - v.mean(0)) / np.linalg.norm(v - v.mean(0), axis=1, keepdims=True)
    colors = (np.arange(24, dtype=np.uint8).reshape(8, 3) * 10)
    return Mesh(v, f, n.astype(np.float32), colors)


def test_fused_mesh_object_positions_colours_and_winding():
    mesh = _cube_mesh()
    W = world_rotation("z_up")
    coll = bpy.data.collections.new("run")
    bpy.context.scene.collection.children.link(coll)
    created = Created()
    obj = build_fused_mesh("Fused Mesh", mesh, W, coll, created)
    assert obj.name in coll.objects
    me = obj.data
    co = np.zeros(3 * len(me.vertices), np.float32)
    me.attributes["position"].data.foreach_get("vector", co)
    world = co.reshape(-1, 3) @ np.array(obj.matrix_world)[:3, :3].T.astype(np.float32)
    np.testing.assert_allclose(world, transform_points(mesh.vertices, W), atol=1e-6)
    col = np.zeros(4 * len(me.vertices), np.float32)
    me.color_attributes["Color"].data.foreach_get("color", col)
    np.testing.assert_allclose(col.reshape(-1, 4)[:, :3], SRGB_TO_LINEAR[mesh.colors], atol=1e-6)
    assert len(me.polygons) == 12
    # Winding survives the conversion: Blender's face normals point away from the cube's centre.
    centre = world.mean(0)
    for p in me.polygons:
        assert np.dot(np.array(p.normal), np.array(p.center) - centre) > 0
    mat = me.materials[0]
    attr = [n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeAttribute"]
    assert attr and attr[0].attribute_name == "Color"


def test_fused_mesh_undo_leaves_nothing():
    before = {k: len(getattr(bpy.data, k)) for k in ("meshes", "objects", "materials")}
    coll = bpy.context.scene.collection
    created = Created()
    build_fused_mesh("Fused Mesh", _cube_mesh(), np.eye(4), coll, created)
    created.undo()
    assert {k: len(getattr(bpy.data, k)) for k in ("meshes", "objects", "materials")} == before


def test_blender_exporters_write_the_fused_mesh(tmp_path):
    coll = bpy.context.scene.collection
    obj = build_fused_mesh("Fused Mesh", _cube_mesh(), np.eye(4), coll, Created())
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    ply, objf = tmp_path / "m.ply", tmp_path / "m.obj"
    bpy.ops.wm.ply_export(filepath=str(ply), export_selected_objects=True, export_colors="SRGB",
                          apply_modifiers=False, export_triangulated_mesh=True)
    bpy.ops.wm.obj_export(filepath=str(objf), export_selected_objects=True, export_materials=False)
    head = ply.read_bytes()[:400].decode("ascii", "replace")
    assert "element vertex 8" in head and "element face 12" in head and "red" in head
    text = objf.read_text()
    assert text.count("\nv ") == 8 and text.count("\nf ") == 12


def test_build_scene_adds_the_fused_mesh_atomically():
    from helpers_synthrecon import make_synthetic_recon
    from pointmap.core.meshing import MeshOptions, fuse_reconstruction
    from pointmap.scene import SceneOptions, build_scene

    rec = make_synthetic_recon(n_views=3)
    mesh = fuse_reconstruction(rec, MeshOptions(device="cpu", max_resolution=64))
    opts = SceneOptions(cameras=False, point_cloud=False)
    coll = build_scene(rec, options=opts, fused_mesh=mesh)
    objs = [o for o in coll.objects if o.get("pointmap_fused_mesh")]
    assert len(objs) == 1
    me = objs[0].data
    assert len(me.vertices) == mesh.n_vertices and len(me.polygons) == mesh.n_faces
    assert "Color" in me.color_attributes

    before = (len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.collections))

    def cancel_at_finish(p):
        if p.message == "finishing":
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        build_scene(rec, options=opts, fused_mesh=mesh, progress=cancel_at_finish)
    assert (len(bpy.data.objects), len(bpy.data.meshes), len(bpy.data.collections)) == before


def _textured_cube():
    """The cube with a 64-px atlas from one camera facing one side -> (mesh with uvs/texture, atlas)."""
    from pointmap.core.meshing.atlas import texture_atlas
    from pointmap.core.meshing.views import check_views

    mesh = _cube_mesh()
    c2w = np.eye(4)
    c2w[:3, 3] = [2.5, -0.5, 0.0]
    K = np.array([[40.0, 0, 31.5], [0, 40.0, 23.5], [0, 0, 1]])
    photo = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    views = check_views([np.full((48, 64), 3.0, np.float32)], [np.full((48, 64), 10.0, np.float32)],
                        K[None], c2w[None], [photo], min_confidence=3.0)
    atlas = texture_atlas(mesh.vertices, mesh.faces, mesh.colors, views, 64, tolerance=0.05)
    mesh.uvs, mesh.texture = atlas.uvs, atlas.image
    return mesh, atlas


def test_textured_fused_mesh_exports_to_gltf_and_obj(tmp_path):
    """A modeller's exports of the textured mesh: glTF embeds the atlas as the base colour texture with the
    UVs; OBJ after Blender's File > External Data > Unpack Resources refers to the atlas PNG and copies it."""
    import json
    import struct

    from PIL import Image

    mesh, atlas = _textured_cube()
    obj = build_fused_mesh("Fused Mesh", mesh, world_rotation("z_up"), bpy.context.scene.collection, Created())
    obj.select_set(True)
    glb = tmp_path / "mesh.glb"
    bpy.ops.export_scene.gltf(filepath=str(glb), export_format="GLB", use_selection=True)
    data = glb.read_bytes()
    doc = json.loads(data[20:20 + struct.unpack("<I", data[12:16])[0]])
    assert "TEXCOORD_0" in doc["meshes"][0]["primitives"][0]["attributes"]
    assert doc["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]["index"] == 0
    assert doc["images"][0]["mimeType"] == "image/png"

    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "scene.blend"))
    bpy.ops.file.unpack_all(method="USE_LOCAL")
    out = tmp_path / "obj"
    out.mkdir()
    bpy.ops.wm.obj_export(filepath=str(out / "mesh.obj"), export_selected_objects=True, export_materials=True,
                          path_mode="COPY")
    maps = [line.split(None, 1)[1].strip() for line in (out / "mesh.mtl").read_text().splitlines()
            if line.startswith("map_Kd")]
    assert len(maps) == 1 and (out / maps[0]).is_file()
    png = np.asarray(Image.open(out / maps[0]).convert("RGB"), np.float64) / 255
    np.testing.assert_allclose(png, atlas.image, atol=0.5 / 255 + 1e-6)


def test_fused_mesh_with_an_atlas_gets_a_uv_map_and_a_packed_image():
    mesh, atlas = _textured_cube()
    assert (atlas.view == 0).sum() == 2        # the cube's side facing the camera; the rest keeps vertex colours
    coll = bpy.context.scene.collection
    obj = build_fused_mesh("Fused Mesh", mesh, world_rotation("z_up"), coll, Created())
    me = obj.data
    assert me.uv_layers.active is not None
    uv = np.zeros(2 * len(me.loops), np.float32)
    me.uv_layers.active.data.foreach_get("uv", uv)
    np.testing.assert_allclose(uv.reshape(-1, 3, 2), atlas.uvs, atol=1e-7)
    loop_vertex = np.zeros(len(me.loops), np.int32)
    me.loops.foreach_get("vertex_index", loop_vertex)
    np.testing.assert_array_equal(loop_vertex.reshape(-1, 3), mesh.faces)
    tex = [n for n in me.materials[0].node_tree.nodes if n.bl_idname == "ShaderNodeTexImage"]
    img = tex[0].image
    assert tuple(img.size) == (64, 64) and img.packed_file is not None
    px = np.zeros(64 * 64 * 4, np.float32)
    img.pixels.foreach_get(px)
    # Blender rows run bottom to top; byte pixels hold the sRGB values to 1/255.
    np.testing.assert_allclose(px.reshape(64, 64, 4)[::-1, :, :3], atlas.image, atol=0.5 / 255 + 1e-6)
