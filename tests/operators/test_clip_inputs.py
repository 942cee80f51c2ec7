"""Shot inputs in real bpy: a movie clip or image-sequence clip becomes what core reads and the plate."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

bpy = pytest.importorskip("bpy")

from pointmap.operators.inputs import resolve_shot  # noqa: E402


def _op(**kw):
    base = dict(shot_source="CLIP", clip_name="", shot_path="", first_frame=1)
    base.update(kw)
    return SimpleNamespace(**base)


def _write_movie(path_prefix: str, frames: int = 6, fps: int = 24) -> str:
    """Render a tiny H.264 movie with Workbench (the bpy module carries FFmpeg)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene
    sc.render.engine = "BLENDER_WORKBENCH"
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = 64, 48, 100
    settings = sc.render.image_settings
    if hasattr(settings, "media_type"):   # Blender 5.0 splits images and videos
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    sc.render.ffmpeg.format, sc.render.ffmpeg.codec = "MPEG4", "H264"
    sc.frame_start, sc.frame_end = 1, frames
    sc.render.fps, sc.render.fps_base = fps, 1.0
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    sc.collection.objects.link(cam)
    sc.camera = cam
    bpy.ops.mesh.primitive_cube_add(location=(0, 0, -5))
    for f in (1, frames):
        cam.location.x = 0.3 * f
        cam.keyframe_insert("location", frame=f)
    sc.render.filepath = path_prefix
    bpy.ops.render.render(animation=True)
    return f"{path_prefix}0001-{frames:04d}.mp4"


def test_image_sequence_clip_is_read_from_its_folder(tmp_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    for f in range(1001, 1008):
        Image.fromarray(np.full((24, 32, 3), 3 * (f - 1000), np.uint8)).save(tmp_path / f"shot_{f:04d}.png")
    clip = bpy.data.movieclips.load(str(tmp_path / "shot_1001.png"))
    assert clip.source == "SEQUENCE"
    shot = resolve_shot(_op(clip_name=clip.name), bpy.context)
    assert (shot.kind, shot.source, shot.first_frame) == ("sequence", str(tmp_path), None)
    assert shot.plate == str(tmp_path / "shot_1001.png")
    # The same sequence chosen as a path: one of its files, or its folder.
    assert resolve_shot(_op(shot_source="PATH", shot_path=str(tmp_path / "shot_1003.png")), bpy.context).source \
        == str(tmp_path)
    assert resolve_shot(_op(shot_source="PATH", shot_path=str(tmp_path)), bpy.context).kind == "sequence"


def test_movie_clip_gives_its_start_frame_and_frame_rate_to_the_plate(tmp_path):
    """A saved shot of frames 1001-1006 built with a movie clip whose Start Frame is 1001: the plate shows
    movie frame f - 1000 at scene frame f, and the scene takes the clip's frame rate."""
    import pointmap
    from helpers_synthshot import make_synthetic_shot

    movie = _write_movie(str(tmp_path / "clip_"), frames=6, fps=25)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    clip = bpy.data.movieclips.load(movie)
    clip.frame_start = 1001
    bpy.context.scene.active_clip = clip
    shot = resolve_shot(_op(), bpy.context)
    assert (shot.kind, shot.source, shot.plate, shot.first_frame, shot.fps) == ("movie", movie, movie, 1001, 25.0)
    make_synthetic_shot(n_frames=6, start=1001, fps=None).save(tmp_path / "shot.npz")
    pointmap.register()
    try:
        res = bpy.ops.pointmap.reconstruct(from_reconstruction=str(tmp_path / "shot.npz"), input_kind="SHOT",
                                           shot_source="CLIP", name="mm", depth_textures="NONE")
        assert res == {"FINISHED"}
        cam = next(o for o in bpy.data.collections["mm"].objects if o.type == "CAMERA")
        bg = cam.data.background_images[0]
        assert bg.source == "MOVIE_CLIP" and bg.clip.filepath == movie and bg.clip.frame_start == 1001
        scene = bpy.context.scene
        assert (scene.render.fps, scene.frame_start, scene.frame_end) == (25, 1001, 1006)
    finally:
        pointmap.unregister()


def test_clip_errors_are_clear(tmp_path):
    from pointmap.core.errors import InputError

    bpy.ops.wm.read_factory_settings(use_empty=True)
    with pytest.raises(InputError, match="no active movie clip"):
        resolve_shot(_op(), bpy.context)
    assert resolve_shot(_op(), bpy.context, required=False) is None
    with pytest.raises(InputError, match="no movie clip named"):
        resolve_shot(_op(clip_name="nope"), bpy.context)
