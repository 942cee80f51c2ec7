"""build_scene in real Blender (the bpy module): geometry, cameras, attributes, textures, atomicity."""

from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from helpers_bpydata import datablock_names  # noqa: E402
from helpers_synthrecon import make_synthetic_recon, net_pixels_in_orig  # noqa: E402
from mathutils import Vector  # noqa: E402
from pointmap.core import Cancelled, CancelToken  # noqa: E402
from pointmap.scene import (  # noqa: E402
    SceneError,
    SceneOptions,
    build_scene,
    geonodes,  # noqa: E402
    use_camera_render_settings,
)
from pointmap.scene.convention import SRGB_TO_LINEAR  # noqa: E402
from pointmap.scene.voxel import voxel_keys  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_blender():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield


@pytest.fixture(scope="module")
def recon():
    return make_synthetic_recon()


def _points_object(coll):
    return next(o for o in coll.objects if o.type == "MESH" and o.modifiers)


def _cameras(coll):
    return sorted((o for o in coll.objects if o.type == "CAMERA"), key=lambda o: o["pointmap_view"])


def _attr(me, name, dtype, width=1):
    a = me.attributes[name]
    out = np.empty(len(a.data) * width, dtype)
    key = {"FLOAT_COLOR": "color", "FLOAT_VECTOR": "vector"}.get(a.data_type, "value")
    a.data.foreach_get(key, out)
    return out.reshape(-1, width) if width > 1 else out


def _evaluated_count(obj):
    """(element count, "points" | "mesh") of what obj's modifiers output. Read through the depsgraph's object
    instances (a point cloud output is an instance of the object): Object.evaluated_geometry() is 5.0+ only."""
    dg = bpy.context.evaluated_depsgraph_get()
    dg.update()
    points = mesh = 0
    for inst in dg.object_instances:
        owner = inst.parent if inst.is_instance else inst.object
        if owner is None or owner.original != obj:
            continue
        if inst.object.type == "POINTCLOUD":
            points += len(inst.object.data.points)
        elif inst.object.type == "MESH":
            mesh += len(inst.object.data.vertices)
    return (points, "points") if points else (mesh, "mesh")


# Worst reprojection error asserted for every orientation. README: "within 1.5e-4 px". Measured on this data
# (Blender 5.0.1): 7.5e-5 px (z_up, none), 1.3e-4 px (cameras_up). It is the float32 storage floor: point
# positions and camera matrices are float32 in Blender (~6e-8 relative), i.e. ~2e-7 of a 400 px frame; the
# projection itself is done in float64 through Blender's own camera matrix, so mathutils' float32 arithmetic
# (world_to_camera_view adds up to ~5e-5 px more) is not counted against the scene.
REPROJECTION_BOUND_PX = 1.5e-4


def _project_px(scene, cam, points_world: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """(N, 3) world points → (N, 2) pixel coordinates (pixel centres at integers), through Blender's projection
    matrix of `cam` (lens, sensor fit, shift, pixel aspect) evaluated in float64."""
    W0, H0 = size_wh
    proj = np.array(cam.calc_matrix_camera(bpy.context.evaluated_depsgraph_get(), x=W0, y=H0,
                                           scale_x=scene.render.pixel_aspect_x,
                                           scale_y=scene.render.pixel_aspect_y), np.float64)
    view = np.linalg.inv(np.array(cam.matrix_world, np.float64))
    h = np.c_[points_world, np.ones(len(points_world))] @ (proj @ view).T
    ndc = h[:, :2] / h[:, 3:4]
    return np.stack([(ndc[:, 0] + 1) / 2 * W0 - 0.5, (1 - ndc[:, 1]) / 2 * H0 - 0.5], 1)


def _reprojection_errors(recon, scene, coll) -> list[float]:
    """Per camera: worst |projected − source pixel centre| (px) of the points that camera's view made."""
    obj = _points_object(coll)
    M = np.array(obj.matrix_world, np.float64)
    P = _attr(obj.data, "position", np.float32, 3).astype(np.float64) @ M[:3, :3].T + M[:3, 3]
    view = _attr(obj.data, "view", np.int32)
    errors = []
    for i, cam in enumerate(_cameras(coll)):
        H0, W0 = (int(s) for s in recon.image_sizes[i])
        use_camera_render_settings(scene, cam)
        assert (scene.render.resolution_x, scene.render.resolution_y) == (W0, H0)
        expected = net_pixels_in_orig(recon, i).reshape(-1, 2)
        assert int((view == i).sum()) == len(expected)
        errors.append(float(np.abs(_project_px(scene, cam, P[view == i], (W0, H0)) - expected).max()))
    return errors


@pytest.mark.parametrize("orientation", ["z_up", "cameras_up", "none"])
def test_points_reproject_onto_their_pixels(recon, orientation):
    """Each view's points, through the built camera, land on their source pixel centres within
    REPROJECTION_BOUND_PX; a camera shifted by 0.005 px (a third of a shift error the old 0.02 px bound let through)
    fails that bound."""
    scene = bpy.context.scene
    coll = build_scene(recon, scene, SceneOptions(world_orientation=orientation, depth_textures=None,
                                                  background_images=False))
    cams = _cameras(coll)
    assert len(cams) == recon.n_views
    # Blender's own projection agrees with the float64 one (mathutils works in float32: 5e-4 px).
    cam = cams[0]
    use_camera_render_settings(scene, cam)
    H0, W0 = (int(s) for s in recon.image_sizes[0])
    obj = _points_object(coll)
    pts = _attr(obj.data, "position", np.float32, 3)[_attr(obj.data, "view", np.int32) == 0][:50]
    ours = _project_px(scene, cam, pts.astype(np.float64), (W0, H0))
    theirs = np.array([tuple(world_to_camera_view(scene, cam, Vector(p.tolist()))) for p in pts])
    assert (theirs[:, 2] > 0).all()
    np.testing.assert_allclose(np.stack([theirs[:, 0] * W0 - 0.5, (1 - theirs[:, 1]) * H0 - 0.5], 1), ours,
                               atol=5e-4)

    errors = _reprojection_errors(recon, scene, coll)
    worst = max(errors)
    print(f"worst reprojection error ({orientation}): {worst:.2e} px")
    assert worst <= REPROJECTION_BOUND_PX, (orientation, errors)

    # Sensitivity: 0.005 px of shift on every camera is caught.
    for cam in cams:
        H0, W0 = (int(s) for s in recon.image_sizes[cam["pointmap_view"]])
        cam.data.shift_x += 0.005 / max(W0, H0)
    assert min(_reprojection_errors(recon, scene, coll)) > REPROJECTION_BOUND_PX


def test_camera_settings(recon):
    coll = build_scene(recon, options=SceneOptions(depth_textures=None))
    cams = _cameras(coll)
    for i, cam in enumerate(cams):
        H0, W0 = (int(s) for s in recon.image_sizes[i])
        assert cam.name == recon.names[i]
        assert cam.data.sensor_fit == ("HORIZONTAL" if W0 >= H0 else "VERTICAL")
        K = np.array(cam["pointmap_K"]).reshape(3, 3)
        np.testing.assert_allclose(K, recon.K[i])
        assert (cam["pointmap_width"], cam["pointmap_height"]) == (W0, H0)
        bg = cam.data.background_images[0]
        assert bg.image is not None and cam.data.show_background_images
        # No file on disk: the network colours laid out at the original aspect.
        w, h = bg.image.size
        assert abs(w / h - W0 / H0) < 0.05
    fx_ne_fy = cams[3]
    assert tuple(fx_ne_fy["pointmap_pixel_aspect"]) != (1.0, 1.0)
    # Render size = most common image size, with a warning about the others.
    scene = bpy.context.scene
    assert (scene.render.resolution_x, scene.render.resolution_y) == (400, 300)
    assert scene.camera == cams[0]
    assert any("differ in size" in w for w in recon.warnings)
    assert any("differ in size" in w for w in coll["pointmap_warnings"])
    assert any("pixel aspect" in w for w in recon.warnings)
    assert coll.name == "view_00 (synthetic)"
    assert coll["pointmap_family"] == "synthetic"


def test_sensor_size_sets_lens_not_field_of_view(recon):
    """A matchmover's sensor (APS-C 23.5 mm on the long side) gives the lens in their units, same rays."""
    coll = build_scene(recon, options=SceneOptions(depth_textures=None, point_cloud=False, sensor_mm=23.5))
    for i, cam in enumerate(_cameras(coll)):
        H0, W0 = (int(s) for s in recon.image_sizes[i])
        if cam.data.sensor_fit == "HORIZONTAL":
            assert cam.data.sensor_width == pytest.approx(23.5)
            assert cam.data.lens == pytest.approx(recon.K[i][0, 0] * 23.5 / W0, rel=1e-5)
        else:
            assert cam.data.sensor_height == pytest.approx(23.5)
            assert cam.data.lens == pytest.approx(recon.K[i][1, 1] * 23.5 / H0, rel=1e-5)
    with pytest.raises(SceneError, match="sensor"):
        build_scene(recon, options=SceneOptions(sensor_mm=0))


def test_lens_below_blenders_minimum_keeps_the_field_of_view(recon):
    """A 0.5 mm sensor gives lenses under 1 mm, which Blender clamps (a wrong field of view, silently): lens and
    sensor are enlarged together instead, with a warning naming the view, and points still reproject exactly."""
    import dataclasses

    scene = bpy.context.scene
    fresh = dataclasses.replace(recon, warnings=[])     # build_scene adds its notes to recon.warnings
    coll = build_scene(fresh, scene, SceneOptions(sensor_mm=0.5, depth_textures=None, background_images=False))
    notes = [w for w in coll["pointmap_warnings"] if "below Blender's 1 mm minimum" in w]
    assert len(notes) == recon.n_views and all(f"View {n}:" in w for n, w in zip(recon.names, notes, strict=True))
    for i, cam in enumerate(_cameras(coll)):
        H0, W0 = (int(s) for s in recon.image_sizes[i])
        assert cam.data.lens >= 1.0 and min(cam.data.sensor_width, cam.data.sensor_height) >= 1.0
        if cam.data.sensor_fit == "HORIZONTAL":
            assert cam.data.lens / cam.data.sensor_width == pytest.approx(recon.K[i][0, 0] / W0, rel=1e-6)
        else:
            assert cam.data.lens / cam.data.sensor_height == pytest.approx(recon.K[i][1, 1] / H0, rel=1e-6)
    assert max(_reprojection_errors(recon, scene, coll)) <= REPROJECTION_BOUND_PX
    # The usual sensor needs no change and says nothing.
    bpy.ops.wm.read_factory_settings(use_empty=True)
    coll = build_scene(dataclasses.replace(recon, warnings=[]),
                       options=SceneOptions(depth_textures=None, background_images=False))
    assert not any("1 mm minimum" in w for w in coll["pointmap_warnings"])


def test_point_attributes(recon):
    coll = build_scene(recon, options=SceneOptions(cameras=False))
    me = _points_object(coll).data
    n = sum(c.size for c in recon.conf)
    assert len(me.vertices) == n
    col = _attr(me, "Color", np.float32, 4)
    conf = _attr(me, "confidence", np.float32)
    view = _attr(me, "view", np.int32)
    rgb = np.concatenate([c.reshape(-1, 3) for c in recon.colors])
    np.testing.assert_allclose(col[:, :3], SRGB_TO_LINEAR[rgb], atol=1e-7)
    assert (col[:, 3] == 1).all()
    np.testing.assert_array_equal(conf, np.concatenate([c.reshape(-1) for c in recon.conf]))
    np.testing.assert_array_equal(view, np.concatenate([np.full(c.size, i) for i, c in enumerate(recon.conf)]))
    assert me.attributes["Color"].domain == "POINT" and me.attributes["Color"].data_type == "FLOAT_COLOR"
    assert me.color_attributes.active_color_name == "Color"
    assert me.materials[0].node_tree.nodes.get("Attribute").attribute_name == "Color"


@pytest.mark.parametrize("as_mesh", [False, True])
def test_live_confidence_threshold(recon, as_mesh):
    coll = build_scene(recon, options=SceneOptions(cameras=False, mesh_points=as_mesh, min_conf=0.5,
                                                   point_radius=0.03))
    obj = _points_object(coll)
    mod = obj.modifiers[0]
    # The modifier shows the options' values (not the node group's defaults).
    assert geonodes.get_modifier_input(mod, geonodes.INPUT_RADIUS) == pytest.approx(0.03)
    assert geonodes.get_modifier_input(mod, geonodes.INPUT_MIN_CONF) == pytest.approx(0.5)
    assert bool(geonodes.get_modifier_input(mod, geonodes.INPUT_AS_MESH)) is as_mesh
    n = len(obj.data.vertices)
    conf = np.concatenate([c.reshape(-1) for c in recon.conf])
    per_point = 12 if as_mesh else 1
    extra = lambda k: k if as_mesh else 0   # noqa: E731 - mesh display keeps the source vertices
    shown = int((conf >= 0.5).sum())
    count, kind = _evaluated_count(obj)
    assert kind == ("mesh" if as_mesh else "points")
    assert count == shown * per_point + extra(shown)
    mesh_before = obj.data.as_pointer()
    geonodes.set_modifier_input(obj, mod, geonodes.INPUT_MIN_CONF, 2.0)
    keep = int((conf >= 2.0).sum())
    assert 0 < keep < n
    count, _ = _evaluated_count(obj)
    assert count == keep * per_point + extra(keep)
    assert obj.data.as_pointer() == mesh_before and len(obj.data.vertices) == n   # nothing rebuilt


@pytest.mark.parametrize("mode", ["pack", "exr"])
def test_depth_and_confidence_textures(recon, mode, tmp_path):
    tex_dir = tmp_path / "tex"
    coll = build_scene(recon, options=SceneOptions(depth_textures=mode, texture_dir=str(tex_dir)))
    for i, cam in enumerate(_cameras(coll)):
        h, w = recon.net_size(i)
        for key, ref in (("pointmap_depth", recon.depth[i]), ("pointmap_conf", recon.conf[i])):
            img = cam[key]
            assert tuple(img.size) == (w, h)
            assert img.colorspace_settings.name == "Non-Color"
            if mode == "pack":
                assert img.packed_file is not None
            else:
                path = Path(img.filepath)
                assert path.suffix == ".exr" and path.exists()
                assert path.parent.parent == tex_dir and coll["pointmap_texture_dir"] == str(path.parent)
                img.reload()    # read back what was written
            px = np.empty(w * h * 4, np.float32)
            img.pixels.foreach_get(px)
            back = px.reshape(h, w, 4)[::-1, :, 0]       # Blender rows run bottom to top
            np.testing.assert_allclose(back, ref, rtol=1e-6)


def test_textures_survive_saving_and_reopening(recon, tmp_path):
    """Everything a run makes has a user, so it is written into the .blend; float textures read back exactly."""
    build_scene(recon, options=SceneOptions(depth_textures="pack", per_view_meshes=True))
    kinds = ("objects", "cameras", "meshes", "images", "materials", "node_groups", "collections")
    before = {k: sorted(x.name for x in getattr(bpy.data, k)) for k in kinds}
    path = str(tmp_path / "saved.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    assert {k: sorted(x.name for x in getattr(bpy.data, k)) for k in kinds} == before
    cams = sorted((o for o in bpy.data.objects if o.type == "CAMERA"), key=lambda o: o["pointmap_view"])
    assert len(cams) == recon.n_views
    for i, cam in enumerate(cams):
        h, w = recon.net_size(i)
        img = cam["pointmap_depth"]
        assert img is not None and img.packed_file is not None and img.is_float
        px = np.empty(w * h * 4, np.float32)
        img.pixels.foreach_get(px)
        np.testing.assert_allclose(px.reshape(h, w, 4)[::-1, :, 0], recon.depth[i], rtol=1e-6)


def test_per_view_meshes_do_not_bridge_depth_jumps(recon):
    jump = 0.08
    coll = build_scene(recon, options=SceneOptions(per_view_meshes=True, mesh_max_depth_jump=jump,
                                                   depth_textures=None))
    meshes = sorted((o for o in coll.objects if o.type == "MESH" and not o.modifiers),
                    key=lambda o: o["pointmap_view"])
    cams = _cameras(coll)
    assert len(meshes) == recon.n_views
    for i, obj in enumerate(meshes):
        me = obj.data
        h, w = recon.net_size(i)
        assert 0 < len(me.polygons) < 2 * (h - 1) * (w - 1)        # some triangles were cut ...
        assert len(me.polygons) > (h - 1) * (w - 1)                  # ... but most kept
        V = _attr(me, "position", np.float32, 3).astype(np.float64)
        loops = np.empty(len(me.loops), np.int32)
        me.loops.foreach_get("vertex_index", loops)
        tri = loops.reshape(-1, 3)
        # Depth of every vertex in its camera (Blender camera looks down −Z).
        M = np.array(cams[i].matrix_world.inverted())
        z = -(V @ M[:3, :3].T + M[:3, 3])[:, 2]
        zt = z[tri]
        assert ((zt.max(1) - zt.min(1)) <= jump * zt.min(1) * 1.0001).all()
        # Faces point towards the camera.
        normals = np.cross(V[tri[:, 1]] - V[tri[:, 0]], V[tri[:, 2]] - V[tri[:, 0]])
        to_cam = np.array(cams[i].matrix_world.translation) - V[tri[:, 0]]
        assert ((normals * to_cam).sum(1) > 0).mean() > 0.99
        uv = np.empty(2 * len(me.loops), np.float32)
        me.uv_layers[0].uv.foreach_get("vector", uv)
        assert uv.min() >= 0.0 and uv.max() <= 1.0
        tex = me.materials[0].node_tree.nodes.get("Image Texture")
        assert tex.image == cams[i].data.background_images[0].image


def _render_state(scene):
    r = scene.render
    return (r.resolution_x, r.resolution_y, r.resolution_percentage, r.pixel_aspect_x, r.pixel_aspect_y,
            scene.camera)


@pytest.mark.parametrize("fail_at", [1, 4, 7, 11, 13])
def test_failed_build_leaves_blender_unchanged(recon, fail_at, tmp_path):
    scene = bpy.context.scene
    tex_dir = tmp_path / "tex"
    before, render_before = datablock_names(), _render_state(scene)

    def progress(p):
        if p.done == fail_at:
            raise RuntimeError("forced failure")

    with pytest.raises(RuntimeError, match="forced failure"):
        build_scene(recon, scene, SceneOptions(per_view_meshes=True, depth_textures="exr",
                                               texture_dir=str(tex_dir)), progress=progress)
    assert datablock_names() == before
    assert _render_state(scene) == render_before
    assert not tex_dir.exists()          # the folders it made are gone too


def test_cancel_leaves_blender_unchanged(recon):
    before = datablock_names()
    token = CancelToken()

    def progress(p):
        if p.done == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        build_scene(recon, options=SceneOptions(per_view_meshes=True), progress=progress, cancel=token)
    assert datablock_names() == before


def test_bad_input_raises_scene_error(recon, tmp_path):
    blocked = tmp_path / "a file"
    blocked.write_text("not a folder")
    with pytest.raises(SceneError, match="texture folder"):
        build_scene(recon, options=SceneOptions(depth_textures="exr", texture_dir=str(blocked / "tex")))
    broken = make_synthetic_recon()
    broken.conf[1] = broken.conf[1][:-1]
    with pytest.raises(SceneError, match="cannot be built"):
        build_scene(broken)


def test_progress_reports_every_step_in_order(recon):
    seen = []
    build_scene(recon, options=SceneOptions(per_view_meshes=True), progress=seen.append)
    assert [p.done for p in seen] == list(range(len(seen)))
    assert all(p.total == seen[0].total and p.stage == "build" for p in seen)
    assert seen[-1].done == seen[-1].total and seen[-1].fraction == 1.0


def test_voxel_downsampling(recon):
    size = 0.25
    coll = build_scene(recon, options=SceneOptions(cameras=False, voxel_size=size))
    me = _points_object(coll).data
    P = _attr(me, "position", np.float32, 3)
    # The build re-orients the world (z up) before voxelising: compare in that frame.
    W = np.array(coll["pointmap_world_matrix"]).reshape(4, 4)
    allp = np.concatenate([p.reshape(-1, 3) for p in recon.points]) @ W[:3, :3].T.astype(np.float32)
    assert len(P) == len(np.unique(voxel_keys(allp.astype(np.float32), size)))
    assert len(P) < 0.5 * len(allp)


def test_photos_from_files_and_default_name(tmp_path):
    from PIL import Image

    folder = tmp_path / "garden"
    folder.mkdir()
    base = make_synthetic_recon()
    paths = []
    for i in range(base.n_views):
        H0, W0 = (int(s) for s in base.image_sizes[i])
        p = folder / f"img_{i}.png"
        Image.new("RGB", (W0, H0), (10 * i, 100, 200)).save(p)
        paths.append(str(p))
    rec = make_synthetic_recon(names=[f"img_{i}" for i in range(base.n_views)], paths=paths)
    coll = build_scene(rec, options=SceneOptions(depth_textures=None))
    assert coll.name == "garden (synthetic)"
    for i, cam in enumerate(_cameras(coll)):
        img = cam.data.background_images[0].image
        assert bpy.path.abspath(img.filepath) == paths[i]
        assert tuple(img.size) == (int(rec.image_sizes[i][1]), int(rec.image_sizes[i][0]))
    # A second run reuses the loaded photos instead of duplicating them.
    n_images = len(bpy.data.images)
    coll2 = build_scene(rec, options=SceneOptions(depth_textures=None))
    assert len(bpy.data.images) == n_images and coll2.name != coll.name


def test_per_view_mesh_of_a_view_with_no_triangles_is_skipped_with_a_note():
    """Issue #9.7: a view whose every pixel is below the confidence threshold used to crash (Blender 5.0 gives a
    mesh without vertices no "position" attribute). The run succeeds; the view gets no mesh and a warning."""
    recon = make_synthetic_recon()
    recon.conf[1][...] = 0.0
    coll = build_scene(recon, options=SceneOptions(per_view_meshes=True, depth_textures=None, min_conf=1.5))
    views = sorted(o["pointmap_view"] for o in coll.objects if o.type == "MESH" and not o.modifiers)
    assert views == [i for i in range(recon.n_views) if i != 1]
    note = [w for w in coll["pointmap_warnings"] if "no per-view mesh" in w]
    assert len(note) == 1 and recon.names[1] in note[0]


def _depth_from_file(img) -> np.ndarray:
    img.reload()
    w, h = img.size
    px = np.empty(w * h * 4, np.float32)
    img.pixels.foreach_get(px)
    return px.reshape(h, w, 4)[::-1, :, 0]


def test_two_runs_into_two_blends_in_one_folder_keep_their_own_textures(tmp_path):
    """Issue #9.1: same photo names, same collection name, same folder: each .blend keeps its own depth."""
    recons = {"a": make_synthetic_recon(), "b": make_synthetic_recon()}
    for i in range(recons["b"].n_views):
        recons["b"].depth[i] = recons["b"].depth[i] * 2.0
    for tag, rec in recons.items():
        bpy.ops.wm.read_factory_settings(use_empty=True)
        build_scene(rec, options=SceneOptions(name="run", depth_textures="exr", texture_dir=str(tmp_path)))
        bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / f"{tag}.blend"))
    for tag, rec in recons.items():
        bpy.ops.wm.open_mainfile(filepath=str(tmp_path / f"{tag}.blend"))
        cams = sorted((o for o in bpy.data.objects if o.type == "CAMERA"), key=lambda o: o["pointmap_view"])
        assert len(cams) == rec.n_views
        for i, cam in enumerate(cams):
            np.testing.assert_allclose(_depth_from_file(cam["pointmap_depth"]), rec.depth[i], rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["run", "run_2"]


def test_exr_textures_default_beside_the_saved_blend_and_packed_when_unsaved(tmp_path):
    recon = make_synthetic_recon()
    coll = build_scene(recon, options=SceneOptions(depth_textures="exr"))          # unsaved: packed, noted
    assert all(c["pointmap_depth"].packed_file is not None for c in _cameras(coll))
    assert any("packed" in w for w in coll["pointmap_warnings"])
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "saved.blend"))
    coll = build_scene(recon, options=SceneOptions(depth_textures="exr"))
    assert Path(_cameras(coll)[0]["pointmap_depth"].filepath).parent.parent == tmp_path
    tmp = Path(bpy.app.tempdir)                   # Blender's session temp folder is never used
    coll = build_scene(recon, options=SceneOptions(depth_textures="exr", texture_dir=str(tmp / "tex")))
    assert _cameras(coll)[0]["pointmap_depth"].packed_file is not None and not (tmp / "tex").exists()


def test_failure_after_some_textures_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    """Issue #9.1: a file named as an older layout's texture is untouched, the run's own files and folder go."""
    from pointmap.scene import textures

    recon = make_synthetic_recon()
    (tmp_path / "old.blend").write_bytes(b"another file")
    (tmp_path / f"{recon.names[0]} depth.exr".replace(" ", "_")).write_bytes(b"an earlier run's texture")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.exr").write_bytes(b"an earlier run's folder")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    real, calls = textures.float_map_image, []

    def failing(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise RuntimeError("disk full (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(textures, "float_map_image", failing)
    with pytest.raises(RuntimeError, match="injected"):
        build_scene(recon, options=SceneOptions(name="run", depth_textures="exr", texture_dir=str(tmp_path)))
    assert len(calls) == 3
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["run"]


def test_exif_oriented_photo_is_upright_behind_its_camera_and_on_its_mesh(tmp_path):
    """Issue #9.7: an orientation-6 JPEG (stored landscape, shown portrait) is shown upright; the file is
    left untouched and the upright copy is packed."""
    from PIL import Image

    raw = np.zeros((40, 60, 3), np.uint8)            # stored 60 wide x 40 high
    raw[:20, :30] = (255, 0, 0)                        # stored top-left quadrant red
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(raw).save(path, quality=100, exif=exif)
    original = path.read_bytes()
    with Image.open(path) as im:
        from PIL import ImageOps

        upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert upright.shape == (60, 40, 3)
    recon = make_synthetic_recon()
    recon.paths[0] = str(path)
    coll = build_scene(recon, options=SceneOptions(per_view_meshes=True, depth_textures=None))
    cam = _cameras(coll)[0]
    img = cam.data.background_images[0].image
    assert tuple(img.size) == (40, 60) and img.packed_file is not None
    px = np.empty(40 * 60 * 4, np.float32)
    img.pixels.foreach_get(px)
    got = np.round(px.reshape(60, 40, 4)[::-1, :, :3] * 255).astype(np.int16)
    assert np.abs(got - upright.astype(np.int16)).max() <= 1
    mesh = next(o for o in coll.objects if o.type == "MESH" and not o.modifiers and o["pointmap_view"] == 0)
    tex = next(n for n in mesh.data.materials[0].node_tree.nodes if n.type == "TEX_IMAGE")
    assert tex.image == img
    assert path.read_bytes() == original


def test_view_names_that_map_to_one_file_name_get_distinct_textures(tmp_path):
    """'a b' and 'a_b' (or 'View'/'view' on a case-insensitive disk) would share a file name: never overwritten."""
    recon = make_synthetic_recon()
    recon.names[0], recon.names[1] = "a b", "a_b"
    recon.depth[1] = recon.depth[1] * 3.0
    coll = build_scene(recon, options=SceneOptions(depth_textures="exr", texture_dir=str(tmp_path)))
    cams = _cameras(coll)
    paths = [Path(c["pointmap_depth"].filepath) for c in cams[:2]]
    assert paths[0] != paths[1] and paths[1].name == "a_b_depth_2.exr"
    for i in range(2):
        np.testing.assert_allclose(_depth_from_file(cams[i]["pointmap_depth"]), recon.depth[i], rtol=1e-6)
