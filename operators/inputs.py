"""Turn the operator's input options into what `core.reconstruct` takes, on the main thread.

A folder passes through as a path (core lists it and skips bad files); a file list becomes absolute
paths; a movie clip becomes image files: an image sequence's own files, or, for a movie, frames
rendered through a temporary Video Sequencer scene into a folder (the .blend's `//pointmap_frames/`
when it is saved, Blender's temp folder otherwise) that background images can keep referring to.
"""

from __future__ import annotations

import os
import re

import bpy

from ..core.errors import InputError


def resolve_inputs(op, context) -> str | list[str]:
    """The `inputs` argument for core.reconstruct: a folder path or a list of image paths."""
    if op.source == "FOLDER":
        folder = bpy.path.abspath(op.directory) if op.directory else ""
        if not folder or not os.path.isdir(folder):
            raise InputError(f"The photo folder '{op.directory}' does not exist.", op.directory or None)
        return os.path.normpath(folder)
    if op.source == "FILES":
        folder = bpy.path.abspath(op.directory) if op.directory else ""
        paths = [os.path.normpath(os.path.join(folder, f.name)) for f in op.files if f.name]
        if not paths:
            raise InputError("No image files were chosen: pick some with the file list button.")
        for p in paths:
            if not os.path.isfile(p):
                raise InputError(f"The image file '{p}' does not exist.", p)
        return paths
    return clip_frames(op, context)


def _clip(op, context):
    if op.clip_name:
        clip = bpy.data.movieclips.get(op.clip_name)
        if clip is None:
            raise InputError(f"There is no movie clip named '{op.clip_name}' in this file.")
        return clip
    clip = context.scene.active_clip
    if clip is None:
        raise InputError("The scene has no active movie clip: open one in the Movie Clip editor or pick a folder.")
    return clip


def frame_numbers(first: int, last: int, start: int, end: int, step: int) -> list[int]:
    """Clip frames first..last (inclusive) limited to start..end (end 0 = last), every `step`-th."""
    lo = max(first, start)
    hi = last if end <= 0 else min(last, end)
    return list(range(lo, hi + 1, max(1, step)))


def sequence_files(first_file: str) -> list[str]:
    """All files of the image sequence `first_file` belongs to, ordered by frame number.

    The sequence is the files in its folder sharing the name around the last run of digits.
    """
    folder, name = os.path.split(first_file)
    runs = list(re.finditer(r"\d+", name))
    if not runs:
        return [first_file]
    m = runs[-1]
    head, tail = re.escape(name[:m.start()]), re.escape(name[m.end():])
    pattern = re.compile(f"^{head}(\\d+){tail}$")
    numbered = []
    for entry in os.listdir(folder):
        mm = pattern.match(entry)
        if mm:
            numbered.append((int(mm.group(1)), os.path.join(folder, entry)))
    return [p for _, p in sorted(numbered)]


def beside_blend(folder: str) -> str:
    """`folder` next to the saved .blend (`//folder`), or inside Blender's temp folder for an unsaved file."""
    if bpy.data.filepath:
        return bpy.path.abspath(f"//{folder}")
    return os.path.join(bpy.app.tempdir or "/tmp", folder)


def frames_dir(clip_name: str) -> str:
    base = beside_blend("pointmap_frames")
    safe = re.sub(r"[^\w.-]+", "_", clip_name) or "clip"
    path = os.path.join(base, safe)
    os.makedirs(path, exist_ok=True)
    return path


def clip_frames(op, context) -> list[str]:
    clip = _clip(op, context)
    path = bpy.path.abspath(clip.filepath)
    if not os.path.exists(path):
        raise InputError(f"The movie clip '{clip.name}' points to '{path}', which does not exist.", path)
    # Clip-local frame numbers run 1..frame_duration.
    frames = frame_numbers(1, clip.frame_duration, op.frame_start, op.frame_end, op.frame_step)
    if len(frames) < 2:
        raise InputError(f"Frames {op.frame_start}-{op.frame_end or clip.frame_duration} every "
                         f"{op.frame_step} of clip '{clip.name}' give {len(frames)} image(s); at least 2 are needed.")
    if clip.source == "SEQUENCE":
        files = sequence_files(path)
        return [files[f - 1] for f in frames if f - 1 < len(files)]
    return render_movie_frames(path, clip.name, frames)


def render_movie_frames(movie: str, clip_name: str, frames: list[int]) -> list[str]:
    """Write the chosen frames (1-based) of a movie file as PNGs through a temporary sequencer scene."""
    out_dir = frames_dir(clip_name)
    scene = bpy.data.scenes.new("pointmap_frames_tmp")
    try:
        seq = scene.sequence_editor_create()
        strips = seq.strips if hasattr(seq, "strips") else seq.sequences   # renamed in 4.4
        strips.new_movie("movie", movie, channel=1, frame_start=1)
        clip = bpy.data.movieclips.get(clip_name)
        w, h = (int(clip.size[0]), int(clip.size[1])) if clip is not None else (0, 0)
        if not (w and h):
            raise InputError(f"Could not read the frame size of movie '{movie}'.", movie)
        r = scene.render
        r.resolution_x, r.resolution_y, r.resolution_percentage = w, h, 100
        r.use_sequencer = True
        r.image_settings.file_format = "PNG"
        r.image_settings.color_mode = "RGB"
        scene.frame_end = max(frames)
        written = []
        for f in frames:
            scene.frame_set(f)
            r.filepath = os.path.join(out_dir, f"frame_{f:06d}.png")
            _render_still(scene)
            written.append(r.filepath)
        return written
    finally:
        bpy.data.scenes.remove(scene)


def _render_still(scene) -> None:
    with bpy.context.temp_override(scene=scene):
        bpy.ops.render.render(write_still=True, scene=scene.name)
