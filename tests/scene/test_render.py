"""A real (Workbench) render of a built synthetic scene shows the coloured points."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from helpers_synthrecon import make_synthetic_recon  # noqa: E402
from mathutils import Vector  # noqa: E402
from PIL import Image  # noqa: E402
from pointmap.scene import SceneOptions, build_scene, use_camera_render_settings  # noqa: E402


def _scene_seen_from_first_camera(mesh_points: bool):
    """A fresh file with the synthetic room built in it, its first camera (400x300) the render camera."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    coll = build_scene(make_synthetic_recon(), scene, SceneOptions(depth_textures=None, background_images=False,
                                                                   mesh_points=mesh_points))
    cam = next(o for o in coll.objects if o.type == "CAMERA" and o["pointmap_view"] == 0)
    use_camera_render_settings(scene, cam)
    return scene


def test_workbench_render_shows_coloured_points(tmp_path):
    scene = _scene_seen_from_first_camera(mesh_points=True)   # 400x300 ...
    scene.render.resolution_percentage = 80      # ... rendered at 320x240
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "FLAT"
    scene.display.shading.color_type = "VERTEX"  # "Attribute" colour in the UI
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(tmp_path / "render.png")
    bpy.ops.render.render(write_still=True)

    img = np.asarray(Image.open(tmp_path / "render.png").convert("RGBA"))
    assert img.shape == (240, 320, 4)
    covered = img[..., 3] > 200
    assert covered.mean() > 0.8            # seen through a source camera, points fill the frame
    rgb = img[covered][:, :3].astype(int)
    assert len(np.unique(rgb // 16, axis=0)) > 20           # many colours, not flat grey
    saturation = rgb.max(1) - rgb.min(1)
    assert (saturation > 60).mean() > 0.2                   # the coloured walls/spheres show


def test_cycles_render_shows_point_colours(tmp_path):
    """Point primitives get their colour from the material's Attribute node (Cycles/EEVEE path).

    Guards the attribute name: Cycles renders an attribute called "color" black.
    """
    scene = _scene_seen_from_first_camera(mesh_points=False)
    scene.render.resolution_percentage = 30
    world = bpy.data.worlds.new("white")
    scene.world = world
    if world.node_tree is None:
        world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (1, 1, 1, 1)
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 4
    scene.render.film_transparent = True
    scene.render.filepath = str(tmp_path / "cycles.png")
    bpy.ops.render.render(write_still=True)

    img = np.asarray(Image.open(tmp_path / "cycles.png").convert("RGBA"))
    rgb = img[img[..., 3] > 200][:, :3].astype(int)
    assert len(rgb) > 0.5 * img.shape[0] * img.shape[1]
    assert ((rgb.max(1) - rgb.min(1)) > 60).mean() > 0.2


def test_overview_picture_looks_at_the_scene_from_behind_the_cameras(tmp_path):
    """The README pictures' camera: behind and above the run's cameras, facing the points, every frustum in
    frame, the points' colours unshaded."""
    from pointmap.scene.overview import render_overview

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    coll = build_scene(make_synthetic_recon(n_views=5), scene,
                       SceneOptions(depth_textures=None, background_images=False, mesh_points=True))
    cams = [o for o in coll.objects if o.type == "CAMERA"]
    path = render_overview(coll, scene, tmp_path / "overview.png", size=(360, 225), point_scale=2.0)
    view = scene.camera
    assert view.name == "overview"
    look = view.matrix_world.to_3x3() @ Vector((0.0, 0.0, -1.0))
    cam_look = sum((c.matrix_world.to_3x3() @ Vector((0.0, 0.0, -1.0)) for c in cams), Vector()).normalized()
    assert look.dot(cam_look) > 0.5                                   # the way the photos look
    mean_cam = sum((c.matrix_world.translation for c in cams), Vector()) / len(cams)
    assert (mean_cam - view.location).dot(cam_look) > 0               # from behind the cameras
    from bpy_extras.object_utils import world_to_camera_view

    for obj in coll.objects:
        if "frustum" in obj.name:
            for v in obj.data.vertices:
                u, w, z = world_to_camera_view(scene, view, obj.matrix_world @ v.co)
                assert 0 <= u <= 1 and 0 <= w <= 1 and z > 0, obj.name
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert img.shape == (225, 360, 3)
    lit = np.abs(img - np.array([30, 32, 38])).sum(-1) > 30
    assert 0.3 < lit.mean() < 0.97                                    # the room fills most of the frame
