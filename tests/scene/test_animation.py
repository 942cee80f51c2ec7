"""The animated shot camera in real Blender: keys, accuracy at every frame, strides, plate, undo."""

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from bpy_extras.object_utils import world_to_camera_view  # noqa: E402
from helpers_synthrecon import net_pixels_in_orig  # noqa: E402
from helpers_synthshot import make_synthetic_shot  # noqa: E402
from mathutils import Vector  # noqa: E402
from pointmap.scene import SceneError, SceneOptions, build_scene  # noqa: E402
from pointmap.scene.convention import blender_intrinsics, camera_matrix_world, world_rotation  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_blender():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield


def _anim_camera(coll):
    return next(o for o in coll.objects if o.type == "CAMERA" and o.get("pointmap_animated"))


def _options(**kw):
    base = dict(animated_camera=True, cameras=False, depth_textures=None, background_images=False)
    base.update(kw)
    return SceneOptions(**base)


def _rotation_error_deg(A, B):
    # ||R - I||_F = 2·sqrt(2)·sin(θ/2): well conditioned for tiny angles, unlike arccos of the trace.
    R = A[:3, :3].T @ B[:3, :3]
    return np.degrees(2 * np.arcsin(min(1.0, np.linalg.norm(R - np.eye(3)) / (2 * np.sqrt(2)))))


def _check_every_frame(rec, coll, scene):
    """Animated camera at each solved frame == that frame's camera (rotation, centre, lens)."""
    cam = _anim_camera(coll)
    W = world_rotation("z_up")
    expected = camera_matrix_world(rec.cam2world, W)
    size = np.ptp(expected[:, :3, 3], axis=0).max() + 1.0
    worst_rot = worst_pos = 0.0
    for i, f in enumerate(rec.frame_numbers):
        scene.frame_set(int(f))
        M = np.array(cam.matrix_world)
        worst_rot = max(worst_rot, _rotation_error_deg(M, expected[i]))
        worst_pos = max(worst_pos, np.abs(M[:3, 3] - expected[i][:3, 3]).max() / size)
        intr = blender_intrinsics(rec.K[i], int(rec.image_sizes[i][1]), int(rec.image_sizes[i][0]))
        assert cam.data.lens == pytest.approx(np.float32(intr.lens), rel=1e-7)
        assert cam.data.shift_x == pytest.approx(intr.shift_x, abs=1e-7)
        assert cam.data.shift_y == pytest.approx(intr.shift_y, abs=1e-7)
    print(f"worst rotation {worst_rot:.2e} deg, centre {worst_pos:.2e} of scene size")
    assert worst_rot <= 1e-4
    assert worst_pos <= 1e-6


@pytest.mark.parametrize("stride", [1, 3])
def test_animated_camera_matches_every_solved_frame(stride):
    rec = make_synthetic_shot(60, stride=stride, start=1001)
    scene = bpy.context.scene
    coll = build_scene(rec, scene, _options())
    cam = _anim_camera(coll)
    frames = rec.frame_numbers
    assert (scene.frame_start, scene.frame_end) == (int(frames[0]), int(frames[-1]))
    assert (scene.render.fps, scene.render.fps_base) == (24, 1.0)
    assert (scene.render.resolution_x, scene.render.resolution_y) == (480, 270)
    assert scene.camera == cam
    # A key on every frame of the range; the in-between ones are listed and typed as generated.
    n_all = int(frames[-1] - frames[0] + 1)
    fcurves = _fcurves(cam)
    assert len(fcurves) == 7 and all(len(fc.keyframe_points) == n_all for fc in fcurves)
    assert sorted(cam["pointmap_solved_frames"]) == frames.tolist()
    assert len(cam["pointmap_interpolated_frames"]) == n_all - len(frames)
    types = {k.type for k in fcurves[0].keyframe_points}
    assert types == ({"KEYFRAME"} if stride == 1 else {"KEYFRAME", "GENERATED"})
    _check_every_frame(rec, coll, scene)


def _fcurves(id_block):
    action = id_block.animation_data.action
    if hasattr(action, "layers"):
        strip = action.layers[0].strips[0]
        return list(strip.channelbag(id_block.animation_data.action_slot).fcurves)
    return list(action.fcurves)


def test_rotations_are_continuous_between_frames():
    """No quaternion sign flips: consecutive keys are close (the pan crosses 180° in Blender's frame)."""
    rec = make_synthetic_shot(80, stride=2)
    coll = build_scene(rec, bpy.context.scene, _options())
    fcs = [fc for fc in _fcurves(_anim_camera(coll)) if fc.data_path == "rotation_quaternion"]
    q = np.stack([[k.co[1] for k in fc.keyframe_points] for fc in sorted(fcs, key=lambda f: f.array_index)], 1)
    assert (np.einsum("ij,ij->i", q[1:], q[:-1]) > 0.99).all()
    # The shot does cross the point where w >= 0 quaternions would have flipped sign.
    assert (q[:, 0] < 0).any()


def test_interpolated_frames_lie_between_their_neighbours():
    """With a stride, in-between frames move smoothly: each centre is near the chord of its neighbours."""
    rec = make_synthetic_shot(30, stride=4)
    scene = bpy.context.scene
    cam = _anim_camera(build_scene(rec, scene, _options()))
    pos = []
    for f in range(int(rec.frame_numbers[0]), int(rec.frame_numbers[-1]) + 1):
        scene.frame_set(f)
        pos.append(np.array(cam.matrix_world)[:3, 3])
    pos = np.array(pos)
    steps = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    assert steps.max() < 2.0 * np.median(steps)       # no jumps at the solved frames


def test_points_project_through_animated_camera_as_through_static_ones():
    rec = make_synthetic_shot(12, stride=2)
    scene = bpy.context.scene
    coll = build_scene(rec, scene, _options(cameras=True))
    anim = _anim_camera(coll)
    static = sorted((o for o in coll.objects if o.type == "CAMERA" and "pointmap_view" in o),
                    key=lambda o: o["pointmap_view"])
    W0, H0 = 480, 270
    rng = np.random.default_rng(0)
    for i in (0, 5, 11):
        scene.frame_set(int(rec.frame_numbers[i]))
        p = rec.points[i].reshape(-1, 3)
        expected = net_pixels_in_orig(rec, i).reshape(-1, 2)
        ok = np.flatnonzero(np.isfinite(p).all(1))
        pick = rng.choice(ok, 25, replace=False)
        Wm = world_rotation("z_up")
        pw = p[pick] @ Wm[:3, :3].T
        errs = []
        for cam in (anim, static[i]):
            got = np.array([tuple(world_to_camera_view(scene, cam, Vector(q.tolist()))) for q in pw])
            px = np.stack([got[:, 0] * W0 - 0.5, (1.0 - got[:, 1]) * H0 - 0.5], 1)
            errs.append(np.abs(px - expected[pick]).max())
        assert errs[0] <= errs[1] + 1e-3, errs
        assert errs[0] < 0.02


def test_zoom_keys_the_lens():
    rec = make_synthetic_shot(20, zoom=0.5)
    scene = bpy.context.scene
    coll = build_scene(rec, scene, _options())
    cam = _anim_camera(coll)
    assert cam.data.animation_data is not None
    _check_every_frame(rec, coll, scene)


@pytest.mark.parametrize("stride", [1, 3])
def test_plate_frame_shown_at_each_scene_frame(tmp_path, stride):
    rec = make_synthetic_shot(20, stride=stride, start=1001, plate_dir=str(tmp_path / "plate"))
    scene = bpy.context.scene
    cam = _anim_camera(build_scene(rec, scene, _options()))
    bg = cam.data.background_images[0]
    assert cam.data.show_background_images and bg.source == "IMAGE"
    for f in (int(rec.frame_numbers[0]), int(rec.frame_numbers[0]) + 4, int(rec.frame_numbers[-1])):
        scene.frame_set(f)
        shown = bg.image.filepath_from_user(image_user=bg.image_user)
        assert shown.endswith(f"plate.{f:04d}.png"), (f, shown)


def test_undo_removes_everything_and_restores_scene():
    rec = make_synthetic_shot(10)
    scene = bpy.context.scene
    before = (scene.frame_start, scene.frame_end, scene.render.fps, len(bpy.data.actions), len(bpy.data.objects))

    def progress(p):
        if p.message == "finishing":
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        build_scene(rec, scene, _options(), progress=progress)
    after = (scene.frame_start, scene.frame_end, scene.render.fps, len(bpy.data.actions), len(bpy.data.objects))
    assert before == after


def test_mixed_sizes_and_duplicate_frames_are_refused():
    rec = make_synthetic_shot(6)
    rec.image_sizes[2] = (300, 400)
    with pytest.raises(SceneError, match="one frame size"):
        build_scene(rec, bpy.context.scene, _options())
    rec = make_synthetic_shot(6)
    rec.frame_numbers[3] = rec.frame_numbers[2]
    with pytest.raises(SceneError, match="appears twice"):
        build_scene(rec, bpy.context.scene, _options())
    assert len(bpy.data.actions) == 0


def _render_movie(path_prefix, n):
    """A tiny n-frame H.264 movie rendered by Blender itself (the bpy module bundles FFmpeg)."""
    import os

    s = bpy.context.scene
    s.render.resolution_x, s.render.resolution_y, s.frame_start, s.frame_end = 32, 18, 1, n
    if hasattr(s.render.image_settings, "media_type"):     # Blender 5.0: pick video output first
        s.render.image_settings.media_type = "VIDEO"
    formats = s.render.image_settings.bl_rna.properties["file_format"].enum_items.keys()
    if "FFMPEG" not in formats:
        pytest.skip("this Blender build has no FFmpeg video output")
    s.render.image_settings.file_format = "FFMPEG"
    s.render.ffmpeg.format, s.render.ffmpeg.codec = "MPEG4", "H264"
    s.render.filepath = str(path_prefix)
    s.render.engine = "BLENDER_WORKBENCH"
    cam = bpy.data.objects.new("movie cam", bpy.data.cameras.new("movie cam"))
    s.collection.objects.link(cam)
    s.camera = cam
    bpy.ops.render.render(animation=True)
    folder = os.path.dirname(str(path_prefix))
    movie = next(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".mp4"))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return movie


def test_movie_plate_starts_at_the_plate_first_frame(tmp_path):
    movie = _render_movie(tmp_path / "shot_", 8)
    rec = make_synthetic_shot(4, stride=2, start=1001)
    rec.paths = [movie] * rec.n_views
    scene = bpy.context.scene
    cam = _anim_camera(build_scene(rec, scene, _options(plate_first_frame=1001)))
    bg = cam.data.background_images[0]
    assert bg.source == "MOVIE_CLIP" and bg.clip.filepath == movie
    # Blender shows clip frame f − frame_start + 1 at scene frame f (movieclip remap_scene_to_clip_frame):
    # scene frame 1001 shows the movie's first frame, which is plate frame 1001.
    assert bg.clip.frame_start == 1001 and bg.clip.frame_duration == 8


def test_bad_plate_is_refused(tmp_path):
    rec = make_synthetic_shot(4)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SceneError, match="neither a movie nor a numbered image sequence"):
        build_scene(rec, bpy.context.scene, _options(plate=str(tmp_path / "notes.txt")))
    with pytest.raises(SceneError, match="does not exist"):
        build_scene(rec, bpy.context.scene, _options(plate=str(tmp_path / "missing.mov")))
    assert len(bpy.data.actions) == 0 and len(bpy.data.objects) == 0


def test_points_carry_their_frame_number():
    rec = make_synthetic_shot(6, stride=2, start=1001)
    coll = build_scene(rec, bpy.context.scene, _options())
    me = next(o for o in coll.objects if o.type == "MESH").data
    view = np.empty(len(me.vertices), np.int32)
    frame = np.empty(len(me.vertices), np.int32)
    me.attributes["view"].data.foreach_get("value", view)
    me.attributes["frame"].data.foreach_get("value", frame)
    assert np.array_equal(frame, rec.frame_numbers[view])


def test_differing_pixel_aspects_are_reported():
    rec = make_synthetic_shot(6)
    rec.K[3, 1, 1] *= 1.05
    coll = build_scene(rec, bpy.context.scene, _options())
    assert any("differ in fx/fy ratio" in w for w in coll["pointmap_warnings"])


def test_lens_below_blenders_minimum_keeps_every_frames_field_of_view():
    """A 0.5 mm sensor puts a zooming shot's lens keys under 1 mm, which Blender clamps (a wrong field of view,
    silently): the lens keys and the one sensor grow together by the largest factor any frame needs, with one
    warning naming the shortest frame, and every frame keeps its own field of view."""
    rec = make_synthetic_shot(10, zoom=0.5)
    scene = bpy.context.scene
    coll = build_scene(rec, scene, _options(sensor_mm=0.5))
    cam = _anim_camera(coll)
    notes = [w for w in coll["pointmap_warnings"] if "below Blender's 1 mm minimum" in w]
    assert len(notes) == 1 and notes[0].startswith("Animated camera:"), coll["pointmap_warnings"]
    W0, H0 = (int(s) for s in rec.image_sizes[0][::-1])
    short = int(np.argmin(rec.K[:, 0, 0] if W0 >= H0 else rec.K[:, 1, 1]))
    assert f"at frame {int(rec.frame_numbers[short])} " in notes[0]
    lenses = []
    for i, f in enumerate(rec.frame_numbers):
        scene.frame_set(int(f))
        d = cam.data
        assert d.lens >= 1.0 and min(d.sensor_width, d.sensor_height) >= 1.0
        if d.sensor_fit == "HORIZONTAL":
            assert d.lens / d.sensor_width == pytest.approx(rec.K[i][0, 0] / W0, rel=1e-6)
        else:
            assert d.lens / d.sensor_height == pytest.approx(rec.K[i][1, 1] / H0, rel=1e-6)
        lenses.append(d.lens)
    # Lifted by no more than needed: the smallest of the lens keys and the sensor sides sits at the minimum.
    assert min(*lenses, cam.data.sensor_width, cam.data.sensor_height) == pytest.approx(1.0, rel=1e-6)
    # The usual sensor needs no change and says nothing.
    bpy.ops.wm.read_factory_settings(use_empty=True)
    coll = build_scene(make_synthetic_shot(10, zoom=0.5), bpy.context.scene, _options())
    assert not any("1 mm minimum" in w for w in coll["pointmap_warnings"])
