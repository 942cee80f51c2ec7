"""Exports of a built shot from the Blender scene (after any orientation tool): Nuke .chan.

`export_chan` samples the camera at every frame of the scene's range, so interpolated frames and the
scene tools' transforms are included; the file format is `core.io.chan`'s. The reconstruction-only
path (no Blender scene, e.g. the CLI's --export-chan) is `chan_world_for_scene` +
`core.io.chan.write_chan_from_reconstruction`.
"""

from __future__ import annotations

import numpy as np

from ..core.io.chan import BLENDER_TO_NUKE, write_chan


def camera_fy_pixels(cam_data, width: int, height: int, pixel_aspect_x: float = 1.0,
                     pixel_aspect_y: float = 1.0) -> float:
    """The vertical focal length in pixels of a Blender camera rendered at width×height (the inverse
    of `scene.convention.blender_intrinsics`)."""
    fit = cam_data.sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if width >= height else "VERTICAL"
    if fit == "HORIZONTAL":
        fx = cam_data.lens * width / cam_data.sensor_width
        return fx * pixel_aspect_x / pixel_aspect_y
    return cam_data.lens * height / cam_data.sensor_height


def chan_world_for_scene(W: np.ndarray) -> np.ndarray:
    """4x4 map from the reconstruction's world to Nuke's, matching a scene built with re-orientation W."""
    return BLENDER_TO_NUKE @ np.asarray(W, np.float64)


def export_chan(cam_obj, path: str, scene=None, frames: range | None = None) -> int:
    """Write `cam_obj`'s world motion and vertical FOV at every frame (default: the scene's range) as a
    Nuke .chan (Y up, ZXY degrees, vertical FOV); returns the number of frames written."""
    import bpy

    scene = scene or bpy.context.scene
    frames = frames or range(scene.frame_start, scene.frame_end + 1)
    r = scene.render
    current = scene.frame_current
    mats, vfov = [], []
    try:
        for f in frames:
            scene.frame_set(f)
            M = np.array(cam_obj.matrix_world, np.float64)
            M[:3, :3] /= np.linalg.norm(M[:3, :3], axis=0)
            mats.append(BLENDER_TO_NUKE @ M)
            fy = camera_fy_pixels(cam_obj.data, r.resolution_x, r.resolution_y, r.pixel_aspect_x, r.pixel_aspect_y)
            vfov.append(np.degrees(2 * np.arctan(r.resolution_y / (2 * fy))))
    finally:
        scene.frame_set(current)
    write_chan(path, np.array(list(frames)), np.array(mats), np.array(vfov))
    return len(mats)
