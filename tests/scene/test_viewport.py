"""A .blend saved by the command line opens on the reconstruction: every 3D viewport faces the run from
behind its cameras, holds its points, and colours by attribute."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from helpers_synthrecon import make_synthetic_recon  # noqa: E402
from mathutils import Vector  # noqa: E402


def _viewports():
    return [a.spaces.active for s in bpy.data.screens for a in s.areas if a.type == "VIEW_3D"]


def test_saved_blend_opens_on_the_run(tmp_path):
    from pointmap import cli
    from pointmap.scene.framing import run_cameras, run_points

    bpy.ops.wm.read_factory_settings(use_empty=True)
    make_synthetic_recon(n_views=5).save(tmp_path / "rec.npz")
    out = tmp_path / "out.blend"
    assert cli.main(["--from-reconstruction", str(tmp_path / "rec.npz"), "-o", str(out)]) == 0
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=str(out))
    run = next(c for c in bpy.data.collections if run_cameras(c))
    cams, points = run_cameras(run), run_points(run)
    cam_look = sum((c.matrix_world.to_3x3() @ Vector((0.0, 0.0, -1.0)) for c in cams), Vector()).normalized()
    spaces = _viewports()
    assert spaces
    for space in spaces:
        r3d = space.region_3d
        assert space.shading.color_type == "VERTEX"
        np.testing.assert_allclose(np.array(r3d.view_location), np.median(points, axis=0), atol=1e-4)
        look = r3d.view_rotation @ Vector((0.0, 0.0, -1.0))
        assert look.dot(cam_look) > 0.5                              # the way the photos look
        eye = r3d.view_location - look * r3d.view_distance
        assert all((c.matrix_world.translation - eye).dot(look) > 0 for c in cams)    # cameras in front
        assert space.clip_end > 2 * r3d.view_distance


def test_a_run_without_cameras_keeps_the_views_and_sets_the_colour():
    from helpers_synthrecon import make_synthetic_recon
    from pointmap.scene import SceneOptions, build_scene
    from pointmap.scene.viewport import frame_viewports

    bpy.ops.wm.read_factory_settings(use_empty=True)
    coll = build_scene(make_synthetic_recon(n_views=3), bpy.context.scene,
                       SceneOptions(cameras=False, depth_textures=None, background_images=False))
    before = [tuple(s.region_3d.view_location) for s in _viewports()]
    assert frame_viewports(coll) == len(before) > 0
    assert [tuple(s.region_3d.view_location) for s in _viewports()] == before
    assert all(s.shading.color_type == "VERTEX" for s in _viewports())


def test_view_run_tool_points_the_3d_view_at_the_run():
    """The sidebar's View Run (operators/scene_tools.py) in a 3D View; without one it is not offered."""
    from pointmap import register, unregister
    from pointmap.scene import SceneOptions, build_scene
    from pointmap.scene.framing import run_points

    bpy.ops.wm.read_factory_settings(use_empty=True)
    register()
    try:
        coll = build_scene(make_synthetic_recon(n_views=4), bpy.context.scene,
                           SceneOptions(depth_textures=None, background_images=False))
        assert not bpy.ops.pointmap.view_run.poll()                   # no 3D View in this context
        area = next(a for a in bpy.context.screen.areas if a.type == "VIEW_3D")
        space = area.spaces.active
        space.shading.color_type = "MATERIAL"
        with bpy.context.temp_override(area=area, space_data=space, region=area.regions[-1]):
            assert bpy.ops.pointmap.view_run() == {"FINISHED"}
        assert space.shading.color_type == "VERTEX"
        np.testing.assert_allclose(np.array(space.region_3d.view_location), np.median(run_points(coll), axis=0),
                                   atol=1e-4)
        build_scene(make_synthetic_recon(n_views=3), bpy.context.scene,
                    SceneOptions(depth_textures=None, background_images=False))
        bpy.context.view_layer.objects.active = None
        with bpy.context.temp_override(area=area, space_data=space, region=area.regions[-1]):
            with pytest.raises(RuntimeError, match="Several pointmap reconstructions"):
                bpy.ops.pointmap.view_run()
    finally:
        unregister()
