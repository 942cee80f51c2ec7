"""Scene orientation tools in real Blender: each transforms the whole run (keys included) and nothing else."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from helpers_synthrecon import net_pixels_in_orig  # noqa: E402
from helpers_synthshot import make_synthetic_shot, shot_poses  # noqa: E402
from mathutils import Vector  # noqa: E402
from pointmap.scene import SceneOptions, build_scene  # noqa: E402

N = 16


@pytest.fixture()
def shot(registered):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    rec = make_synthetic_shot(N, stride=2)
    scene = bpy.context.scene
    coll = build_scene(rec, scene, SceneOptions(animated_camera=True, depth_textures=None,
                                                background_images=False, mesh_points=False))
    other = bpy.data.objects.new("bystander", None)
    scene.collection.objects.link(other)
    other.location = (1.0, 2.0, 3.0)
    return rec, scene, coll, other


def _points(coll):
    return next(o for o in coll.objects if o.type == "MESH")


def _world_vertices(obj):
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    M = np.array(obj.matrix_world)
    return co.reshape(-1, 3).astype(np.float64) @ M[:3, :3].T + M[:3, 3]


def _floor_mask(obj):
    """Vertices on the room's floor (room frame y = 1.2), from the known first camera pose."""
    view = np.empty(len(obj.data.vertices), np.int32)
    obj.data.attributes["view"].data.foreach_get("value", view)
    co = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", co)
    # Built points are W · p_out with W = Rx(−90°); p_room = room0 · p_out.
    from pointmap.scene.convention import world_rotation

    W = world_rotation("z_up")[:3, :3]
    p_out = co.reshape(-1, 3).astype(np.float64) @ W      # W is orthonormal: W⁻¹ = Wᵀ
    room0 = shot_poses(N)[0]
    p_room = p_out @ room0[:3, :3].T + room0[:3, 3]
    return np.abs(p_room[:, 1] - 1.2) < 1e-3


def _anim(coll):
    return next(o for o in coll.objects if o.type == "CAMERA" and o.get("pointmap_animated"))


def _static(coll):
    return sorted((o for o in coll.objects if o.type == "CAMERA" and "pointmap_view" in o),
                  key=lambda o: o["pointmap_view"])


def _check_consistent(rec, scene, coll):
    """Animated camera == static camera at every solved frame; points still land on their pixels."""
    anim, static = _anim(coll), _static(coll)
    pts = _points(coll)
    P = _world_vertices(pts)
    view = np.empty(len(P), np.int32)
    pts.data.attributes["view"].data.foreach_get("value", view)
    for i, f in enumerate(rec.frame_numbers):
        scene.frame_set(int(f))
        A, B = np.array(anim.matrix_world), np.array(static[i].matrix_world)
        size = np.abs(B[:3, 3]).max() + 1.0
        assert np.abs(A[:3, :3] - B[:3, :3]).max() < 1e-5
        assert np.abs(A[:3, 3] - B[:3, 3]).max() < 1e-5 * size
        if i in (0, N - 1):
            expected = net_pixels_in_orig(rec, i).reshape(-1, 2)
            ok = np.flatnonzero(np.isfinite(rec.points[i].reshape(-1, 3)).all(1))[::7][:20]
            mine = P[view == i]
            got = np.array([tuple(world_to_camera_view(scene, anim, Vector(p.tolist()))) for p in mine[ok]])
            px = np.stack([got[:, 0] * 480 - 0.5, (1 - got[:, 1]) * 270 - 0.5], 1)
            assert np.abs(px - expected[ok]).max() < 0.02


def _select_vertices(obj, mask):
    bpy.context.view_layer.objects.active = obj
    obj.data.vertices.foreach_set("select", mask.astype(bool))
    bpy.ops.object.mode_set(mode="EDIT")


def _select_objects(*objs):
    for o in bpy.context.view_layer.objects:
        o.select_set(False)
    for o in objs:
        o.select_set(True)
    bpy.context.view_layer.objects.active = objs[-1]


def _empty(name, loc):
    e = bpy.data.objects.new(name, None)
    bpy.context.scene.collection.objects.link(e)
    e.location = loc
    bpy.context.view_layer.update()
    return e


def test_floor_from_edit_mode_selection(shot):
    rec, scene, coll, other = shot
    pts = _points(coll)
    floor = _floor_mask(pts)
    assert floor.sum() > 50
    rng = np.random.default_rng(0)
    sel = floor.copy()
    sel[rng.choice(np.flatnonzero(~floor), 10, replace=False)] = True    # a few stray points
    _select_vertices(pts, sel)
    before = np.array(other.matrix_world)
    assert bpy.ops.pointmap.set_floor() == {"FINISHED"}
    assert pts.mode == "OBJECT"
    Z = _world_vertices(pts)[floor, 2]
    size = np.ptp(_world_vertices(pts), axis=0).max()
    assert np.abs(Z).max() < 1e-4 * size
    assert all(np.array(c.matrix_world)[2, 3] > 0 for c in _static(coll))      # cameras above the floor
    assert np.array_equal(np.array(other.matrix_world), before)                # nothing else moved
    _check_consistent(rec, scene, coll)


def test_origin_axis_scale_flip_with_empties(shot):
    rec, scene, coll, other = shot
    pts = _points(coll)
    P = _world_vertices(pts)
    a, b = P[100], P[400]
    ea, eb = _empty("A", a), _empty("B", b)
    _select_objects(ea)
    assert bpy.ops.pointmap.set_origin() == {"FINISHED"}
    P1 = _world_vertices(pts)
    assert np.abs(P1[100]).max() < 1e-5
    # Empties are not part of the run: they stay where they were.
    assert np.allclose(np.array(ea.matrix_world)[:3, 3], a)
    ea.location, eb.location = P1[100], P1[400]
    bpy.context.view_layer.update()
    _select_objects(ea, eb)
    assert bpy.ops.pointmap.set_scale(distance=2.5, source="POINTS") == {"FINISHED"}
    P2 = _world_vertices(pts)
    assert np.linalg.norm(P2[400] - P2[100]) == pytest.approx(2.5, rel=1e-5)
    ea.location, eb.location = P2[100], P2[400]
    bpy.context.view_layer.update()
    _select_objects(ea, eb)
    assert bpy.ops.pointmap.set_axis(axis="Y") == {"FINISHED"}
    d = _world_vertices(pts)[400] - _world_vertices(pts)[100]
    assert abs(d[0]) < 1e-5 and d[1] > 0
    z_before = np.array([np.array(c.matrix_world)[2, 3] for c in _static(coll)])
    assert bpy.ops.pointmap.flip_floor() == {"FINISHED"}
    z_after = np.array([np.array(c.matrix_world)[2, 3] for c in _static(coll)])
    assert np.allclose(z_after, -z_before, atol=1e-5)
    assert np.allclose(np.array(other.matrix_world)[:3, 3], [1, 2, 3])
    _check_consistent(rec, scene, coll)
    # Cameras keep unit scale; the points object carries the scale.
    assert np.allclose(np.linalg.norm(np.array(_anim(coll).matrix_world)[:3, :3], axis=0), 1, atol=1e-5)


def test_scale_from_camera_travel(shot):
    rec, scene, coll, other = shot
    _select_objects(_points(coll))
    assert bpy.ops.pointmap.set_scale(distance=4.0, source="CAMERA_TRAVEL") == {"FINISHED"}
    c = [np.array(s.matrix_world)[:3, 3] for s in _static(coll)]
    assert np.linalg.norm(c[-1] - c[0]) == pytest.approx(4.0, rel=1e-5)
    _check_consistent(rec, scene, coll)


def test_too_few_points_is_refused_cleanly(shot):
    rec, scene, coll, other = shot
    e = _empty("lonely", (0, 0, 0))
    _select_objects(e)
    pts = _points(coll)
    before = np.array(pts.matrix_world)
    with pytest.raises(RuntimeError, match="at least 3 selected points"):
        bpy.ops.pointmap.set_floor()
    assert np.array_equal(np.array(pts.matrix_world), before)


def _state(coll_name, scene):
    """Everything a tool may change: object matrices and the animated camera at three frames."""
    coll = bpy.data.collections[coll_name]
    mats = {o.name: np.array(o.matrix_world) for o in coll.all_objects}
    anim = _anim(coll)
    cams = []
    for f in (scene.frame_start, (scene.frame_start + scene.frame_end) // 2, scene.frame_end):
        scene.frame_set(f)
        cams.append(np.array(anim.matrix_world))
    return mats, np.array(cams)


@pytest.mark.parametrize("edit_mode", [False, True])
def test_each_tool_is_one_undo_step(shot, edit_mode):
    rec, scene, coll, other = shot
    name = coll.name
    pts = _points(coll)
    floor = _floor_mask(pts)
    bpy.context.view_layer.objects.active = pts
    pts.data.vertices.foreach_set("select", floor)
    _select_objects(pts)
    bpy.ops.ed.undo_push(message="before the tool")
    before = _state(name, scene)
    if edit_mode:
        bpy.ops.object.mode_set(mode="EDIT")
        bpy.ops.ed.undo_push(message="edit mode")
    # Called as from the UI: EXEC_DEFAULT with undo=True makes Blender push the operator's undo step.
    assert bpy.ops.pointmap.set_floor("EXEC_DEFAULT", True) == {"FINISHED"}
    floored = _state(name, bpy.context.scene)
    assert not np.allclose(floored[1], before[1])
    assert bpy.ops.pointmap.flip_floor("EXEC_DEFAULT", True) == {"FINISHED"}
    assert not np.allclose(_state(name, bpy.context.scene)[1], floored[1])
    # One undo takes back exactly one tool: first the flip, then the floor.
    for expected in (floored, before):
        bpy.ops.ed.undo()
        scene = bpy.context.scene                  # undo reloads the data: fetch everything again
        mode = bpy.context.active_object.mode
        if mode == "EDIT":
            bpy.ops.object.mode_set(mode="OBJECT")
        got = _state(name, scene)
        if mode == "EDIT":
            bpy.ops.object.mode_set(mode="EDIT")
        assert np.allclose(got[1], expected[1], atol=1e-6)
        for k, M in expected[0].items():
            assert np.allclose(got[0][k], M, atol=1e-6), k
    assert bpy.context.active_object.mode == ("EDIT" if edit_mode else "OBJECT")
