"""The animated camera through Blender's own FBX and Alembic exporters, imported back (same world
matrix and lens at every frame, relative error <= 1e-4), and the Nuke .chan written from the scene."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from helpers_synthshot import make_synthetic_shot  # noqa: E402
from pointmap.scene import SceneOptions, build_scene  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_blender():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield


def _build(zoom=0.0):
    rec = make_synthetic_shot(24, stride=2, start=1001, zoom=zoom)
    scene = bpy.context.scene
    coll = build_scene(rec, scene, SceneOptions(animated_camera=True, cameras=False, point_cloud=True,
                                                depth_textures=None, background_images=False))
    cam = next(o for o in coll.objects if o.type == "CAMERA")
    return scene, cam


def _imported(before):
    """The one object an import added (the exporters write the camera alone)."""
    new = [o for o in bpy.data.objects if o not in before]
    assert len(new) == 1 and new[0].type == "CAMERA", [o.name for o in new]
    return new[0]


def _sample(scene, cam):
    frames = range(scene.frame_start, scene.frame_end + 1)
    mats, lens = [], []
    for f in frames:
        scene.frame_set(f)
        mats.append(np.array(cam.matrix_world))
        # Compare fields of view, not mm: importers may normalise the sensor.
        lens.append(cam.data.lens / (cam.data.sensor_width if cam.data.sensor_fit != "VERTICAL"
                                     else cam.data.sensor_height))
    return np.array(mats), np.array(lens)


def _compare(scene, cam, imported):
    want_m, want_l = _sample(scene, cam)
    got_m, got_l = _sample(scene, imported)
    scale = np.abs(want_m[:, :3, 3]).max() + 1.0
    err_m = np.abs(got_m - want_m).max() / scale
    err_l = np.abs(got_l / want_l - 1).max()
    print(f"matrix rel err {err_m:.2e}, lens rel err {err_l:.2e}")
    assert err_m <= 1e-4 and err_l <= 1e-4


@pytest.mark.parametrize("zoom", [0.0, 0.3])
def test_fbx_round_trip(tmp_path, zoom):
    from pointmap.scene.exports import export_camera_fbx

    scene, cam = _build(zoom)
    path = str(tmp_path / "cam.fbx")
    export_camera_fbx(cam, path)
    before = set(bpy.data.objects)
    # Blender's FBX exporter writes frame f at FBX time f / fps; its importer by default adds one frame
    # (anim_offset=1.0). Other applications read the time as written, so import it as written.
    bpy.ops.import_scene.fbx(filepath=path, anim_offset=0.0)
    imported = _imported(before)
    _compare(scene, cam, imported)


@pytest.mark.parametrize("zoom", [
    0.0,
    pytest.param(0.3, marks=pytest.mark.xfail(strict=True, reason=(
        "Blender's Alembic importer reads a camera's focal length once (the imported camera data has no "
        "animation; only the transform is cached), so a zoom does not survive the round trip in Blender"))),
])
def test_alembic_round_trip(tmp_path, zoom):
    from pointmap.scene.exports import export_camera_alembic

    scene, cam = _build(zoom)
    path = str(tmp_path / "cam.abc")
    export_camera_alembic(cam, path)
    before = set(bpy.data.objects)
    bpy.ops.wm.alembic_import(filepath=path)
    imported = _imported(before)
    _compare(scene, cam, imported)


def test_chan_from_scene_matches_chan_from_reconstruction(tmp_path):
    from pointmap.core.io.chan import write_chan_from_reconstruction
    from pointmap.scene.convention import world_rotation
    from pointmap.scene.exports import chan_world_for_scene, export_chan

    rec = make_synthetic_shot(12, stride=3, start=1001)
    coll = build_scene(rec, bpy.context.scene, SceneOptions(animated_camera=True, cameras=False, point_cloud=False,
                                                            depth_textures=None, background_images=False))
    cam = next(o for o in coll.objects if o.type == "CAMERA")
    n = export_chan(cam, str(tmp_path / "scene.chan"))
    assert n == 34                                     # every frame 1001..1034, interpolated ones included
    write_chan_from_reconstruction(rec, tmp_path / "rec.chan", world=chan_world_for_scene(world_rotation("z_up")))
    a, b = np.loadtxt(tmp_path / "scene.chan"), np.loadtxt(tmp_path / "rec.chan")
    solved = a[np.isin(a[:, 0], b[:, 0])]
    assert np.array_equal(solved[:, 0], b[:, 0])
    assert np.abs(solved[:, 1:4] - b[:, 1:4]).max() < 1e-5
    assert np.abs(solved[:, 4:7] - b[:, 4:7]).max() < 1e-3     # degrees, float32 keys
    assert np.abs(solved[:, 7] - b[:, 7]).max() < 1e-4
