"""`build_shot`: a saved (or in-memory) shot Reconstruction → animated-camera scene + exports.

The one call behind the headless matchmove flags (`--from-reconstruction FILE.npz --animated-camera
[--frames A:B] [--stride N] [--export-chan F] [--export-transforms F]`): no network runs. Output paths
are checked before anything is built (missing folders are made); the scene is built atomically (scene.build); exports follow.
"""

from __future__ import annotations

import dataclasses
import os

from ..core.errors import PointmapError
from ..core.frames import parse_frame_range, select_frames
from ..core.reconstruction import load_reconstruction
from .options import SceneOptions


def _check_output(path: str | None, what: str) -> None:
    """Refuse an output whose folder cannot be made: the nearest existing ancestor must be a writable folder."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    probe = folder
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise PointmapError(f"The {what} {path} cannot be written: {probe} is a file, not a folder.")
    if not os.access(probe, os.W_OK):
        raise PointmapError(f"The {what} {path} cannot be written: the folder {probe} is not writable.")


def build_shot(recon, scene=None, options: SceneOptions | None = None, frames: str | None = None, stride: int = 1,
               export_chan: str | None = None, export_transforms: str | None = None,
               export_colmap: str | None = None, progress=None, cancel=None, fused_mesh=None):
    """Build `recon` (a Reconstruction or the path of a saved one) with one animated camera; return
    the collection.

    frames: "A:B" (inclusive; either side may be empty) and stride: which solved frames to use, the
    rest of the range is interpolated. options: scene options (animated_camera is forced on; default:
    no static cameras). export_chan: Nuke .chan sampled from the built camera at every frame (scene
    world, Y up). export_transforms: nerfstudio transforms.json (+ points.ply beside it) and
    export_colmap: COLMAP text folder (one camera for the shot when it has one lens), both in the
    reconstruction's world. fused_mesh: a `core.meshing.Mesh` in the reconstruction's world (e.g.
    `fuse_reconstruction` of the full saved shot), built into the same collection atomically.
    """
    from . import build_scene
    from .exports import export_chan as write_scene_chan

    for path, what in ((export_chan, ".chan file"), (export_transforms, "transforms.json")):
        _check_output(path, what)
    _check_output(None if export_colmap is None else os.path.join(export_colmap, "cameras.txt"), "COLMAP folder")
    if not hasattr(recon, "cam2world"):
        recon = load_reconstruction(recon)
    if frames is not None or stride != 1:
        first, last = parse_frame_range(frames) if frames else (None, None)
        recon = select_frames(recon, first, last, stride)
    options = dataclasses.replace(options or SceneOptions(cameras=False), animated_camera=True)
    coll = build_scene(recon, scene=scene, options=options, progress=progress, cancel=cancel, fused_mesh=fused_mesh)
    if export_chan is not None:
        cam = next(o for o in coll.objects if o.type == "CAMERA" and o.get("pointmap_animated"))
        os.makedirs(os.path.dirname(os.path.abspath(export_chan)), exist_ok=True)
        write_scene_chan(cam, export_chan, scene)
    if export_transforms is not None:
        from ..core.io.transforms import write_transforms

        write_transforms(recon, export_transforms)
    if export_colmap is not None:
        from ..core.io.export import write_colmap

        write_colmap(recon, export_colmap, single_camera=True)
    return coll
