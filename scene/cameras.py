"""Blender cameras reproducing the reconstruction's OpenCV cameras (see scene.convention).

Each camera object carries custom properties for pipelines and for switching render settings:
  pointmap_view (int), pointmap_path (str), pointmap_width / pointmap_height (original pixels),
  pointmap_K (9 floats, row-major, original pixels, OpenCV), pointmap_cam2world_cv (16 floats,
  row-major, reconstruction world, OpenCV axes), pointmap_pixel_aspect (x, y),
  pointmap_depth / pointmap_conf (the depth / confidence images themselves, when made).
The render resolution and pixel aspect are scene-wide in Blender: `use_camera_render_settings`
makes the scene match one camera (needed when the images differ in size or fx/fy ratio).
"""

from __future__ import annotations

import numpy as np

from . import keys
from .convention import BlenderIntrinsics


def build_camera(name: str, matrix_world: np.ndarray, intr: BlenderIntrinsics, clip: tuple[float, float],
                 display_size: float, collection, created):
    """Camera data + object linked into `collection`. matrix_world: 4x4 Blender camera matrix."""
    import bpy
    from mathutils import Matrix

    cam = created.add(bpy.data.cameras.new(name))
    cam.type = "PERSP"
    cam.sensor_fit = intr.sensor_fit
    cam.sensor_width = intr.sensor_width
    cam.sensor_height = intr.sensor_height
    cam.lens_unit = "MILLIMETERS"
    cam.lens = intr.lens
    cam.shift_x = intr.shift_x
    cam.shift_y = intr.shift_y
    cam.clip_start, cam.clip_end = clip
    cam.display_size = display_size
    obj = created.add(bpy.data.objects.new(name, cam))
    obj.matrix_world = Matrix(np.asarray(matrix_world, np.float64).tolist())
    collection.objects.link(obj)
    obj[keys.WIDTH] = intr.width
    obj[keys.HEIGHT] = intr.height
    obj[keys.PIXEL_ASPECT] = [intr.pixel_aspect_x, intr.pixel_aspect_y]
    return obj


def set_background(cam_obj, image, alpha: float = 0.8) -> None:
    """Show `image` behind the camera's view (it already has the frame's aspect, so FIT is exact)."""
    cam = cam_obj.data
    cam.show_background_images = True
    bg = cam.background_images.new()
    bg.image = image
    bg.frame_method = "FIT"
    bg.alpha = alpha


def use_camera_render_settings(scene, cam_obj) -> None:
    """Make `cam_obj` the scene camera and set render size and pixel aspect to its image's."""
    r = scene.render
    r.resolution_x = int(cam_obj[keys.WIDTH])
    r.resolution_y = int(cam_obj[keys.HEIGHT])
    r.resolution_percentage = 100
    ax, ay = cam_obj[keys.PIXEL_ASPECT]
    r.pixel_aspect_x, r.pixel_aspect_y = float(ax), float(ay)
    scene.camera = cam_obj
