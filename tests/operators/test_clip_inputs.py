"""Movie clip inputs in real bpy: an image sequence's own files, and frames decoded from a real movie file."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

bpy = pytest.importorskip("bpy")

from pointmap.operators.inputs import resolve_inputs  # noqa: E402


def _op(**kw):
    base = dict(source="CLIP", clip_name="", frame_start=1, frame_end=0, frame_step=1, directory="", files=[])
    base.update(kw)
    return SimpleNamespace(**base)


def _write_movie(path_prefix: str, frames: int = 6) -> str:
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


def test_image_sequence_clip_uses_its_files_with_stride(tmp_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    for f in range(1, 8):
        Image.fromarray(np.full((24, 32, 3), 30 * f, np.uint8)).save(tmp_path / f"shot_{f:04d}.png")
    clip = bpy.data.movieclips.load(str(tmp_path / "shot_0001.png"))
    assert clip.source == "SEQUENCE" and clip.frame_duration == 7
    files = resolve_inputs(_op(clip_name=clip.name, frame_start=2, frame_step=2), bpy.context)
    assert [p.rsplit("/", 1)[1] for p in files] == ["shot_0002.png", "shot_0004.png", "shot_0006.png"]


def test_movie_clip_frames_are_decoded_to_images(tmp_path):
    movie = _write_movie(str(tmp_path / "clip_"))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    clip = bpy.data.movieclips.load(movie)
    bpy.context.scene.active_clip = clip
    files = resolve_inputs(_op(frame_start=1, frame_end=5, frame_step=2), bpy.context)
    assert len(files) == 3
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in files]
    assert all(f.shape == (48, 64, 3) for f in frames)
    assert np.abs(frames[0].astype(int) - frames[2].astype(int)).mean() > 0.5   # the camera moved
    assert "pointmap_frames_tmp" not in bpy.data.scenes                          # temporary scene removed


def test_clip_errors_are_clear(tmp_path):
    from pointmap.core.errors import InputError

    bpy.ops.wm.read_factory_settings(use_empty=True)
    with pytest.raises(InputError, match="no active movie clip"):
        resolve_inputs(_op(), bpy.context)
    with pytest.raises(InputError, match="no movie clip named"):
        resolve_inputs(_op(clip_name="nope"), bpy.context)
