"""Turn the operator's input options into what `core.reconstruct` takes, on the main thread.

Photos: a folder passes through as a path (core lists it and skips bad files); a file list becomes
absolute paths. A shot (`ShotInput`): a movie file or an image-sequence folder that core reads frame by
frame with `SequenceOptions`, from a Blender movie clip or a path; the same file is the plate shown
behind the animated camera, with the clip's first frame number and frame rate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import bpy

from ..core.errors import InputError
from ..scene.animation import MOVIE_EXTENSIONS
from ..scene.runs import RUNS_FOLDER


@dataclass(frozen=True)
class ShotInput:
    """A shot as core and the scene builder take it.

    source:      a movie file or an image-sequence folder (what `core.reconstruct` reads).
    kind:        "movie" or "sequence".
    plate:       the movie, or one file of the sequence: the animated camera's background.
    first_frame: a movie's first frame number (a clip's Start Frame; e.g. 1001); None for a sequence, whose
                 files carry their numbers.
    fps:         the clip's frame rate when Blender knows it (else core reads the movie's).
    """

    source: str
    kind: str
    plate: str
    first_frame: int | None
    fps: float | None


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
    raise InputError(f"Unknown photo source {op.source!r}.")


def _clip(op, context):
    if op.clip_name:
        clip = bpy.data.movieclips.get(op.clip_name)
        if clip is None:
            raise InputError(f"There is no movie clip named '{op.clip_name}' in this file.")
        return clip
    clip = context.scene.active_clip
    if clip is None:
        raise InputError("The scene has no active movie clip: open one in the Movie Clip editor, or choose a "
                         "shot file.")
    return clip


def _numbered(name: str) -> bool:
    stem = os.path.splitext(name)[0]
    return bool(stem) and stem[-1].isdigit()


def resolve_shot(op, context, required: bool = True) -> ShotInput | None:
    """The operator's shot (a movie clip datablock or a path). required=False: None when none is chosen
    (a saved reconstruction brings its own frames and plate)."""
    if op.shot_source == "CLIP":
        if not required and not op.clip_name and context.scene.active_clip is None:
            return None
        clip = _clip(op, context)
        path = os.path.normpath(bpy.path.abspath(clip.filepath))
        if not os.path.exists(path):
            raise InputError(f"The movie clip '{clip.name}' points to '{path}', which does not exist.", path)
        fps = float(clip.fps) if clip.fps > 0 else None
        if clip.source == "SEQUENCE":
            return ShotInput(os.path.dirname(path), "sequence", path, None, fps)
        return ShotInput(path, "movie", path, int(clip.frame_start), fps)
    if not op.shot_path:
        if not required:
            return None
        raise InputError("No shot file was chosen: pick a movie file or an image sequence.")
    path = os.path.normpath(bpy.path.abspath(op.shot_path))
    if not os.path.exists(path):
        raise InputError(f"The shot '{path}' does not exist.", path)
    if os.path.isdir(path):
        return ShotInput(path, "sequence", path, None, None)
    if path.lower().endswith(MOVIE_EXTENSIONS):
        return ShotInput(path, "movie", path, int(op.first_frame), None)
    if _numbered(os.path.basename(path)):
        return ShotInput(os.path.dirname(path), "sequence", path, None, None)
    raise InputError(f"The shot '{path}' is neither a movie file ({', '.join(MOVIE_EXTENSIONS)}) nor a numbered "
                     "image sequence (e.g. plate.1001.png).", path)


def beside_blend(folder: str) -> str:
    """`folder` next to the saved .blend (`//folder`), or inside Blender's temp folder for an unsaved file."""
    if bpy.data.filepath:
        return bpy.path.abspath(f"//{folder}")
    return os.path.join(bpy.app.tempdir or "/tmp", folder)


def runs_folder() -> str:
    """Where a run's Reconstruction is saved: `//pointmap_runs/` beside the saved .blend, else the
    extension's per-user folder (never the extension's own folder, never a temporary one)."""
    if bpy.data.filepath:
        return bpy.path.abspath(f"//{RUNS_FOLDER}")
    from ..ui.preferences import user_dir

    return user_dir("runs")
