"""The reconstruct operator's shot and fused-mesh options in real bpy: what they map to, and what a run builds.

Runs either use the tiny random-weight DUSt3R on three photos, or build from a saved synthetic
Reconstruction through the operator's `from_reconstruction` (the same worker function, no network).
"""

import os

import numpy as np
import pytest
from conftest import tiny_checkpoint
from helpers_bpydata import datablock_names

bpy = pytest.importorskip("bpy")

from helpers_synthshot import make_synthetic_shot  # noqa: E402
from pointmap.scene import keys  # noqa: E402

RUN = dict(image_size=64, iterations=10, device="CPU")


@pytest.fixture()
def fresh(registered):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield bpy.context.scene


def _fused(coll):
    return [o for o in coll.objects if o.get(keys.FUSED_MESH)]


def test_shot_options_map_to_sequence_scene_and_mesh_options(fresh, tmp_path):
    from pointmap.operators.inputs import resolve_shot
    from pointmap.operators.reconstruct import core_options, mesh_options, scene_options
    from pointmap.ui.preferences import Settings

    movie = tmp_path / "plate.mov"
    movie.write_bytes(b"")          # resolve_shot only checks that the file is there
    s = fresh.pointmap
    s.input_kind, s.shot_source, s.shot_path, s.first_frame = "SHOT", "PATH", str(movie), 1001
    s.use_frame_range, s.frame_start, s.frame_end, s.stride = True, 1010, 1100, 3
    s.per_frame_focal, s.shot_window, s.on_bad_image = True, 6, "STOP"
    s.graph, s.shared_focal = "SWIN", True                       # photo-set options: not for a shot
    s.static_cameras, s.plate_background = True, False
    s.fused_mesh, s.mesh_voxel_size, s.mesh_min_conf, s.mesh_face_budget = True, 0.0625, 2.0, 1000
    s.mesh_texture_size = 1024
    prefs = Settings(device="cpu", precision="fp32")
    shot = resolve_shot(s, bpy.context)
    assert (shot.kind, shot.source, shot.plate, shot.first_frame) == ("movie", str(movie), str(movie), 1001)
    opt = core_options(s, prefs, shot)
    seq = opt.sequence
    assert (seq.is_shot, seq.first_frame, seq.start, seq.end, seq.stride) == (True, 1001, 1010, 1100, 3)
    assert (seq.window, seq.shared_focal, seq.on_bad_frame) == (6, False, "raise")
    assert opt.pairwise.graph == "complete" and opt.align.shared_focal is False
    opt.check()
    so = scene_options(s, shot)
    assert so.animated_camera and so.cameras and not so.plate_background
    assert (so.plate, so.plate_first_frame) == (str(movie), 1001)
    mo = mesh_options(s, prefs)
    assert (mo.voxel_size, mo.min_confidence, mo.face_budget, mo.device) == (0.0625, 2.0, 1000, "cpu")
    assert mo.texture_size == 1024
    # Photos: the graph and shared focal count again, no sequence, static cameras from `cameras`.
    s.input_kind = "PHOTOS"
    opt = core_options(s, prefs)
    assert opt.pairwise.graph == "swin-4" and opt.align.shared_focal and not opt.sequence.is_shot
    so = scene_options(s)
    assert not so.animated_camera and so.cameras == s.cameras and so.plate is None
    # Without the frame range the whole shot is solved.
    s.input_kind, s.use_frame_range = "SHOT", False
    seq = core_options(s, prefs, shot).sequence
    assert (seq.start, seq.end) == (None, None)


def _run_files() -> set[str]:
    """Every saved run in the per-user folder (tests point it at a temporary folder)."""
    root = os.environ["BLENDER_USER_DATAFILES"]
    return {os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".npz")}


def test_bad_shot_choices_are_clear(fresh, tmp_path):
    runs_before = _run_files()
    s = fresh.pointmap
    s.input_kind, s.shot_source = "SHOT", "PATH"
    with pytest.raises(RuntimeError, match="No shot file was chosen"):
        bpy.ops.pointmap.reconstruct(use_scene_settings=True)
    loose = tmp_path / "notes.txt"
    loose.write_text("x")
    for path, says in ((tmp_path / "gone.mp4", "gone.mp4' does not exist"),
                       (loose, "notes.txt' is neither a movie file")):
        with pytest.raises(RuntimeError, match=says):
            bpy.ops.pointmap.reconstruct(input_kind="SHOT", shot_source="PATH", shot_path=str(path))
    with pytest.raises(RuntimeError, match="no active movie clip"):
        bpy.ops.pointmap.reconstruct(input_kind="SHOT", shot_source="CLIP")
    with pytest.raises(RuntimeError, match=r"End \(5\) is before sequence.start \(9\)|end \(5\) is before"):
        bpy.ops.pointmap.reconstruct(input_kind="SHOT", shot_source="PATH", shot_path=str(tmp_path),
                                     use_frame_range=True, frame_start=9, frame_end=5,
                                     checkpoint=tiny_checkpoint())
    assert _run_files() == runs_before          # a refused run reserves no file


def test_tiny_run_with_fused_mesh_saves_its_reconstruction_beside_the_blend(fresh, photos, tmp_path_factory):
    project = tmp_path_factory.mktemp("project")
    bpy.ops.wm.save_as_mainfile(filepath=str(project / "scene.blend"))
    res = bpy.ops.pointmap.reconstruct(directory=str(photos), checkpoint=tiny_checkpoint(), name="meshed",
                                       fused_mesh=True, mesh_min_conf=1.0, **RUN)
    assert res == {"FINISHED"}
    coll = bpy.data.collections["meshed"]
    fused = _fused(coll)
    assert len(fused) == 1 and fused[0].type == "MESH" and len(fused[0].data.polygons) > 0
    assert fused[0].data.color_attributes.get("Color") is not None
    assert coll[keys.RECONSTRUCTION] == "//pointmap_runs/meshed.npz"
    assert (project / "pointmap_runs" / "meshed.npz").stat().st_size > 0


def test_a_mesh_that_cannot_be_built_is_reported_and_the_rest_is_built(fresh, tmp_path):
    from helpers_synthrecon import make_synthetic_recon

    make_synthetic_recon().save(tmp_path / "rec.npz")
    res = bpy.ops.pointmap.reconstruct(from_reconstruction=str(tmp_path / "rec.npz"), name="nomesh",
                                       fused_mesh=True, mesh_min_conf=1e6, depth_textures="NONE")
    assert res == {"FINISHED"}
    coll = bpy.data.collections["nomesh"]
    assert not _fused(coll) and any(o.type == "CAMERA" for o in coll.objects)
    assert any(w.startswith("No fused mesh:") for w in coll[keys.WARNINGS])


def _saved_shot(tmp_path, n=12, start=1001):
    rec = make_synthetic_shot(n_frames=n, start=start, plate_dir=str(tmp_path / "plate"))
    path = tmp_path / "shot.npz"
    rec.save(path)
    return rec, path


def test_animated_camera_from_a_saved_shot(fresh, tmp_path):
    rec, path = _saved_shot(tmp_path)
    before = datablock_names()
    bpy.ops.ed.undo_push(message="before the run")
    res = bpy.ops.pointmap.reconstruct("EXEC_DEFAULT", True, from_reconstruction=str(path), input_kind="SHOT",
                                       animated_camera=True, stride=2, name="shot", depth_textures="NONE",
                                       fused_mesh=True, mesh_min_conf=0.5, mesh_voxel_size=0.3)
    assert res == {"FINISHED"}
    scene = bpy.context.scene
    coll = bpy.data.collections["shot"]
    cams = [o for o in coll.objects if o.type == "CAMERA"]
    assert len(cams) == 1 and cams[0].get("pointmap_animated")
    cam = cams[0]
    assert list(cam["pointmap_solved_frames"]) == list(range(1001, 1013, 2))
    assert list(cam["pointmap_interpolated_frames"]) == list(range(1002, 1012, 2))
    bg = cam.data.background_images[0]
    assert bg.source == "IMAGE" and bg.image.source == "SEQUENCE"
    assert (scene.frame_start, scene.frame_end, scene.render.fps) == (1001, 1011, 24)
    assert len(_fused(coll)) == 1                                  # the fused mesh on the shot path too
    assert coll[keys.RECONSTRUCTION] == str(path)                  # referred to, not copied
    # Frame 1005 is a solved frame: the animated camera sits where the reconstruction put it.
    scene.frame_set(1005)
    W = np.array(coll[keys.WORLD_MATRIX]).reshape(4, 4)
    centre = (W @ rec.cam2world[4])[:3, 3]
    assert np.allclose(np.array(cam.matrix_world.translation), centre, atol=1e-5)
    # The run is one undo step.
    bpy.ops.ed.undo()
    assert "shot" not in bpy.data.collections and datablock_names() == before


def test_no_plate_and_static_cameras(fresh, tmp_path):
    _, path = _saved_shot(tmp_path, n=6)
    res = bpy.ops.pointmap.reconstruct(from_reconstruction=str(path), input_kind="SHOT", name="bare",
                                       plate_background=False, static_cameras=True, depth_textures="NONE",
                                       background_images=False)
    assert res == {"FINISHED"}
    cams = [o for o in bpy.data.collections["bare"].objects if o.type == "CAMERA"]
    animated = [c for c in cams if c.get("pointmap_animated")]
    assert len(animated) == 1 and len(cams) == 7 and len(animated[0].data.background_images) == 0


def test_clip_frame_rate_and_first_frame_reach_the_plate(fresh, tmp_path):
    """A saved shot without an fps, built with a plate given as a path: the shot's plate and frame numbers."""
    rec = make_synthetic_shot(n_frames=5, start=1001, fps=None, plate_dir=str(tmp_path / "plate"))
    rec.save(tmp_path / "nofps.npz")
    res = bpy.ops.pointmap.reconstruct(from_reconstruction=str(tmp_path / "nofps.npz"), input_kind="SHOT",
                                       shot_source="PATH", shot_path=str(tmp_path / "plate"), name="p",
                                       depth_textures="NONE")
    assert res == {"FINISHED"}
    cam = next(o for o in bpy.data.collections["p"].objects if o.type == "CAMERA")
    assert cam["pointmap_plate"].endswith("plate.1001.png")
    assert bpy.context.scene.frame_start == 1001


def test_missing_saved_reconstruction_changes_nothing(fresh, tmp_path):
    before = datablock_names()
    with pytest.raises(RuntimeError, match=r"saved reconstruction .*gone\.npz does not exist"):
        bpy.ops.pointmap.reconstruct(from_reconstruction=str(tmp_path / "gone.npz"))
    assert datablock_names() == before
