"""One camera animated over a shot's solved frames, with the plate as its background.

Built from a `Reconstruction` whose views are frames of one clip (`frame_numbers`, e.g. 1001, 1003,
...; without them the views are taken as frames 1..N in order). Every frame from the first to the
last solved one gets a location and a rotation (quaternion, sign-continuous) key; frames skipped by a
stride are filled in (slerp / cubic, see `scene.camera_path`), keyed with the keyframe type
GENERATED (BREAKDOWN before Blender 4.2) and listed in the object's "pointmap_interpolated_frames".
Keys are written in bulk (`keyframe_points.add` + `foreach_set`) with LINEAR interpolation, so the
camera at an integer frame is exactly that frame's key. Lens and shift are constant when the shot
has one focal and principal point, else keyed on the camera data (a zoom).

The plate: a movie clip (scene frame f shows the movie frame f − plate_first_frame + 1) or an image
sequence (scene frame f shows the file numbered f). Scene frame range, fps, render size and pixel
aspect follow the shot; all scene settings changed are restored if the build is undone.

Blender 4.4+ stores animation in layered actions (action → slot, layer → keyframe strip →
channelbag → F-curves); 4.2/4.3 use `action.fcurves`. Both are handled by `_Channels`.
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from .camera_path import CameraPath, camera_path
from .convention import BlenderIntrinsics, blender_intrinsics, camera_matrix_world
from .options import SceneError

MOVIE_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mxf", ".mpg", ".mpeg", ".ogv")
_NUMBERED = re.compile(r"^(?P<head>.*?)(?P<num>\d+)(?P<tail>\.[^.]+)$")


def shot_frames(recon) -> np.ndarray:
    """(N,) int64 clip frame of each view: `recon.frame_numbers`, or 1..N for views without them."""
    if recon.frame_numbers is None:
        return np.arange(1, recon.n_views + 1, dtype=np.int64)
    return np.asarray(recon.frame_numbers, np.int64)


def shot_intrinsics(recon, sensor_mm: float) -> tuple[list[BlenderIntrinsics], int, int]:
    """Blender intrinsics of every view and the shot's (width, height); one size for the whole shot."""
    sizes = {(int(w), int(h)) for h, w in np.asarray(recon.image_sizes)}
    if len(sizes) != 1:
        raise SceneError(f"An animated camera needs one frame size for the whole shot; the frames have "
                         f"{len(sizes)} sizes ({', '.join(f'{w}x{h}' for w, h in sorted(sizes))}).")
    (w, h), = sizes
    intr = []
    for i in range(recon.n_views):
        try:
            intr.append(blender_intrinsics(recon.K[i], w, h, sensor=sensor_mm, above_blender_minimum=True))
        except ValueError as err:
            raise SceneError(f"View {recon.names[i]}: {err}.") from err
    # One sensor for the whole shot (the sensor is not keyed): when any frame's lens or sensor would fall below
    # Blender's 1 mm minimum, every frame's lens and the sensor grow by the largest factor any frame needs, so
    # each frame keeps its field of view and the lens keys stay comparable.
    scale = max(i.sensor_scale for i in intr)
    if scale > 1.0:
        intr = [blender_intrinsics(recon.K[i], w, h, sensor=sensor_mm * scale) for i in range(recon.n_views)]
        intr = [dataclasses.replace(x, sensor_scale=scale) for x in intr]
    return intr, w, h


def lens_note(recon, intr: list[BlenderIntrinsics], sensor_mm: float) -> str | None:
    """The warning for a shot whose lens (or sensor) would fall below Blender's 1 mm minimum on some frame."""
    scale = intr[0].sensor_scale if intr else 1.0
    if scale <= 1.0:
        return None
    low = int(np.argmin([x.lens for x in intr]))
    frame = int(shot_frames(recon)[low])
    fitted = intr[low].sensor_width if intr[low].sensor_fit == "HORIZONTAL" else intr[low].sensor_height
    return (f"Animated camera: with a {sensor_mm:g} mm sensor its focal length would be "
            f"{intr[low].lens / scale:.3g} mm at frame {frame} ({intr[low].field_of_view_deg:.1f}° field of view), "
            f"below Blender's 1 mm minimum, which Blender would clamp (changing the view); its sensor is "
            f"{fitted:.3g} mm instead and every lens key is {scale:.3g}x larger, so each frame keeps its field of "
            "view. Check the sensor size (mm) if this is unexpected.")


def shot_path(recon, W: np.ndarray, sensor_mm: float) -> tuple[CameraPath, list[BlenderIntrinsics]]:
    """The animated camera's path (Blender object matrices, lens and shift) over the shot's frames."""
    frames = shot_frames(recon)
    order = np.argsort(frames, kind="stable")
    if np.any(np.diff(frames[order]) == 0):
        dup = int(frames[order][np.flatnonzero(np.diff(frames[order]) == 0)[0]])
        raise SceneError(f"Frame {dup} appears twice in the reconstruction; an animated camera needs "
                         "one view per frame.")
    intr, _, _ = shot_intrinsics(recon, sensor_mm)
    mats = camera_matrix_world(recon.cam2world, W)
    scalars = {name: np.array([getattr(intr[i], name) for i in order])
               for name in ("lens", "shift_x", "shift_y")}
    return camera_path(frames[order], mats[order], scalars), intr


class _Channels:
    """F-curves of one ID's new action, on layered actions (4.4+) or legacy `action.fcurves`."""

    def __init__(self, bpy, id_block, name: str, created):
        self.action = created.add(bpy.data.actions.new(name))
        ad = id_block.animation_data_create()
        if hasattr(self.action, "layers"):
            id_type = "OBJECT" if isinstance(id_block, bpy.types.Object) else "CAMERA"
            slot = self.action.slots.new(id_type=id_type, name=id_block.name)
            strip = self.action.layers.new("Layer").strips.new(type="KEYFRAME")
            self._fcurves = strip.channelbag(slot, ensure=True).fcurves
            ad.action = self.action
            ad.action_slot = slot
        else:
            self._fcurves = self.action.fcurves
            ad.action = self.action

    def key(self, data_path: str, index: int, frames: np.ndarray, values: np.ndarray,
            key_types: np.ndarray | None = None) -> None:
        """One F-curve with a LINEAR key at every frame, written in bulk."""
        fc = self._fcurves.new(data_path, index=index)
        kp = fc.keyframe_points
        n = len(frames)
        kp.add(n)
        co = np.empty((n, 2), np.float32)
        co[:, 0] = frames
        co[:, 1] = values
        kp.foreach_set("co", co.ravel())
        kp.foreach_set("interpolation", np.full(n, _LINEAR, np.int32))
        if key_types is not None:
            kp.foreach_set("type", key_types.astype(np.int32))
        fc.update()


# RNA enum values (stable across 4.2-5.0): interpolation LINEAR, keyframe types.
_LINEAR = 1


def _key_type_values(bpy) -> tuple[int, int]:
    """(KEYFRAME, in-between) values of the keyframe type enum; GENERATED where it exists."""
    items = bpy.types.Keyframe.bl_rna.properties["type"].enum_items
    between = items["GENERATED"] if "GENERATED" in items.keys() else items["BREAKDOWN"]
    return items["KEYFRAME"].value, between.value


def _constant(v: np.ndarray) -> bool:
    return bool(np.all(np.abs(v - v[0]) <= 1e-9 * max(1.0, abs(float(v[0])))))


def plate_source(recon, plate: str | None) -> tuple[str, str] | None:
    """("movie" | "sequence", file) of the shot's plate, or None when there is none.

    plate: a movie file, one file of a numbered image sequence, or None to use the views' own files
    (a numbered image per view → that sequence; one movie shared by all views → that movie).
    """
    path = plate
    if path is None:
        paths = [p for p in recon.paths if p]
        if not paths:
            return None
        path = paths[0]
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path) if _NUMBERED.match(f))
        if not files:
            raise SceneError(f"The plate folder {path} holds no numbered images.")
        path = os.path.join(path, files[0])
    if not os.path.isfile(path):
        raise SceneError(f"The plate {path} does not exist.")
    if path.lower().endswith(MOVIE_EXTENSIONS):
        return "movie", path
    if not _NUMBERED.match(os.path.basename(path)):
        if plate is None:
            return None         # loose photos, not a plate
        raise SceneError(f"The plate {path} is neither a movie nor a numbered image sequence "
                         "(e.g. plate.1001.exr).")
    return "sequence", path


def sequence_range(path: str) -> tuple[int, int]:
    """(first, last) frame number of the numbered image sequence that `path` belongs to."""
    m = _NUMBERED.match(os.path.basename(path))
    folder = os.path.dirname(path) or "."
    pat = re.compile("^" + re.escape(m["head"]) + r"(\d+)" + re.escape(m["tail"]) + "$")
    nums = [int(g[1]) for f in os.listdir(folder) if (g := pat.match(f))]
    return min(nums), max(nums)


def set_plate(cam_obj, kind: str, path: str, first_frame: int | None, created) -> object:
    """Make the plate the camera's background so that scene frame f shows plate frame f.

    movie: first_frame is the clip frame number of the movie's first frame (default 1).
    sequence: files carry their frame numbers; first_frame is ignored.
    Returns the image or movie clip datablock.
    """
    import bpy

    cam = cam_obj.data
    cam.show_background_images = True
    bg = cam.background_images.new()
    bg.frame_method = "FIT"
    bg.alpha = 1.0
    if kind == "movie":
        try:
            clip = created.add(bpy.data.movieclips.load(path))
        except RuntimeError as err:
            raise SceneError(f"The plate {path} cannot be opened as a movie: {err}") from err
        clip.frame_start = int(first_frame if first_frame is not None else 1)
        bg.source = "MOVIE_CLIP"
        bg.clip = clip
        cam_obj["pointmap_plate"] = path
        return clip
    try:
        img = created.add(bpy.data.images.load(path, check_existing=False))
    except RuntimeError as err:
        raise SceneError(f"The plate {path} cannot be opened as an image sequence: {err}") from err
    img.source = "SEQUENCE"
    first, last = sequence_range(path)
    bg.source = "IMAGE"
    bg.image = img
    iu = bg.image_user
    # Blender shows file number clamp(f − frame_start + 1, 0, duration) + offset (image_user_frame_get).
    iu.frame_start = first
    iu.frame_offset = first - 1
    iu.frame_duration = last - first + 1
    iu.use_auto_refresh = True
    cam_obj["pointmap_plate"] = path
    return img


def _remember_scene(scene, created) -> None:
    r = scene.render
    saved = (scene.frame_start, scene.frame_end, scene.frame_current, r.fps, r.fps_base, r.resolution_x,
             r.resolution_y, r.resolution_percentage, r.pixel_aspect_x, r.pixel_aspect_y, scene.camera)

    def restore():
        (scene.frame_start, scene.frame_end, scene.frame_current, r.fps, r.fps_base, r.resolution_x,
         r.resolution_y, r.resolution_percentage, r.pixel_aspect_x, r.pixel_aspect_y, scene.camera) = saved

    created.on_undo(restore)


def fps_settings(fps: float) -> tuple[int, float]:
    """Blender's (fps, fps_base) for a frame rate: 23.976 → (24, 1.001), 25 → (25, 1.0)."""
    whole = max(1, int(round(fps)))
    return whole, whole / float(fps)


def build_animated_camera(recon, W: np.ndarray, name: str, collection, scene, created, *,
                          sensor_mm: float = 36.0, clip: tuple[float, float] = (0.01, 1000.0),
                          display_size: float = 1.0, plate: str | None = None,
                          plate_first_frame: int | None = None, use_plate: bool = True, set_scene: bool = True,
                          warnings: list[str] | None = None):
    """The animated camera object (linked into `collection`); see the module docstring.

    W: 4x4 world re-orientation (scene.convention). set_scene: set the scene's frame range, fps,
    render size, pixel aspect and active camera from the shot (restored by the ledger's undo).
    use_plate: False builds no background (the plate's fps and first frame still come from `recon`).
    warnings: gets a sentence when the frames' fx/fy ratios differ (the scene's pixel aspect is the
    first frame's, so only frames with that ratio project exactly).
    """
    import bpy

    from . import cameras as cam_mod

    path, intr = shot_path(recon, W, sensor_mm)
    first = intr[0]
    note = lens_note(recon, intr, sensor_mm)
    if note and warnings is not None:
        warnings.append(note)
    aspects = {(round(i.pixel_aspect_x, 4), round(i.pixel_aspect_y, 4)) for i in intr}
    if len(aspects) > 1 and warnings is not None:
        warnings.append(f"The shot's frames differ in fx/fy ratio ({len(aspects)} pixel aspects); the animated "
                        f"camera uses the first frame's ({first.pixel_aspect_x:g}:{first.pixel_aspect_y:g}).")
    cam = cam_mod.build_camera(name, path.matrices()[0], first, clip, display_size, collection, created)
    cam.rotation_mode = "QUATERNION"
    frames = path.frames.astype(np.float64)
    key_kf, key_between = _key_type_values(bpy)
    types = np.where(path.interpolated, key_between, key_kf)
    obj_keys = _Channels(bpy, cam, f"{name} action", created)
    for i in range(3):
        obj_keys.key("location", i, frames, path.location[:, i], types)
    for i in range(4):
        obj_keys.key("rotation_quaternion", i, frames, path.quaternion[:, i], types)
    varying = [k for k in ("lens", "shift_x", "shift_y") if not _constant(path.scalars[k])]
    if varying:
        data_keys = _Channels(bpy, cam.data, f"{name} lens action", created)
        for k in varying:
            data_keys.key(k, 0, frames, path.scalars[k], types)
    cam["pointmap_animated"] = True
    cam["pointmap_solved_frames"] = path.frames[~path.interpolated].tolist()
    cam["pointmap_interpolated_frames"] = path.frames[path.interpolated].tolist()
    if recon.fps:
        cam["pointmap_fps"] = float(recon.fps)

    source = plate_source(recon, plate) if use_plate else None
    if source is not None:
        set_plate(cam, *source, plate_first_frame, created)

    if set_scene:
        _remember_scene(scene, created)
        scene.frame_start, scene.frame_end = int(path.frames[0]), int(path.frames[-1])
        scene.frame_current = int(path.frames[0])
        if recon.fps:
            scene.render.fps, scene.render.fps_base = fps_settings(recon.fps)
        cam_mod.use_camera_render_settings(scene, cam)
    return cam
