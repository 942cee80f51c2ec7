"""Exports of a built shot from the Blender scene (after any orientation tool): Nuke .chan, and the
animated camera through Blender's own FBX and Alembic exporters (`export_camera_fbx`,
`export_camera_alembic`: only the camera, every frame of the scene's range baked, no key reduction).

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


class _OnlySelected:
    """Select only `obj` (and make it active) for an exporter's "selection only", then restore."""

    def __init__(self, context, obj):
        self.context, self.obj = context, obj

    def __enter__(self):
        vl = self.context.view_layer
        self.saved = ([o for o in vl.objects if o.select_get()], vl.objects.active)
        for o in self.saved[0]:
            o.select_set(False)
        self.obj.select_set(True)
        vl.objects.active = self.obj

    def __exit__(self, *exc):
        vl = self.context.view_layer
        self.obj.select_set(False)
        for o in self.saved[0]:
            o.select_set(True)
        vl.objects.active = self.saved[1]


def export_camera_fbx(cam_obj, path: str) -> None:
    """The camera alone as FBX, its motion and lens baked at every frame of the scene's range.

    FBX stores frame f at time f / fps. Blender's own FBX importer adds one frame unless imported with
    `anim_offset=0`; other applications read the time as written.
    """
    import bpy

    with _OnlySelected(bpy.context, cam_obj):
        bpy.ops.export_scene.fbx(filepath=path, use_selection=True, object_types={"CAMERA"}, bake_anim=True,
                                 bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False,
                                 bake_anim_step=1.0, bake_anim_simplify_factor=0.0, add_leaf_bones=False)


def export_camera_alembic(cam_obj, path: str, scene=None) -> None:
    """The camera alone as Alembic, sampled at every frame of the scene's range (transform and lens)."""
    import bpy

    scene = scene or bpy.context.scene
    with _OnlySelected(bpy.context, cam_obj):
        bpy.ops.wm.alembic_export(filepath=path, selected=True, start=scene.frame_start, end=scene.frame_end)
