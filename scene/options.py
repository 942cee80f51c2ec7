"""`SceneOptions`: what `build_scene` creates and how. Plain dataclass, importable without bpy."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import PointmapError
from .convention import WORLD_ORIENTATIONS

DEPTH_TEXTURE_MODES = (None, "pack", "exr")


class SceneError(PointmapError):
    """The scene could not be built as asked (bad option, unwritable texture folder, ...)."""


@dataclass
class SceneOptions:
    """Options of one scene build; every field has a default.

    name:               collection name; default "<first image's folder or name> (<backend>)".
    point_cloud:        build the fused point cloud object.
    min_conf:           initial value of the live confidence threshold (GN modifier input); points
                        are all stored, so the threshold can later be lowered without a re-run.
    point_radius:       display radius in scene units; None = half the median pixel footprint.
    voxel_size:         0 = off; else average the points inside each voxel of this size (scene units).
    mesh_points:        display points as small coloured meshes (visible with attribute colour in
                        Workbench / Solid view) instead of point primitives; None = only when the
                        cloud has at most `mesh_points_max` points.
    cameras:            one Blender camera per image.
    background_images:  the photo as each camera's background image.
    set_render_resolution: set the scene's render size (and pixel aspect, active camera) from the images.
    depth_textures:     None | "pack" (float images packed into the .blend) | "exr" (OpenEXR files in
                        texture_dir); the depth and confidence maps of each view, linked from the camera.
    texture_dir:        folder under which each "exr" run writes its own sub-folder (named after the run's
                        collection; never an existing one, never overwriting a file). None = beside the
                        saved .blend; with an unsaved .blend (or Blender's temp folder) the maps are packed
                        instead, with a warning. The CLI passes the output .blend's folder.
    per_view_meshes:    one triangulated, photo-textured mesh per view.
    mesh_max_depth_jump: drop triangles whose depths differ by more than this fraction of the nearest.
    mesh_min_conf:      drop triangles touching a pixel below this confidence; None = min_conf.
    world_orientation:  "z_up" | "cameras_up" | "none" (see scene.convention).
    sensor_mm:          camera sensor size along the image's long side (36 = full frame); the lens in mm
                        follows from it, the field of view does not depend on it.
    animated_camera:    one camera animated over the shot's frames (`recon.frame_numbers`), with the
                        plate as background; sets the scene's frame range, fps and render size
                        (see scene.animation). Combine with cameras=False to skip the static cameras.
    plate:              the plate for the animated camera: a movie file, a file of a numbered image
                        sequence or its folder; None = the views' own files when they are a sequence,
                        or the movie a shot was solved from (`recon.meta["shot"]`).
    plate_first_frame:  clip frame number of a movie plate's first frame (None: the solved movie's first
                        frame number from `recon.meta["shot"]`, else 1; e.g. 1001).
    plate_background:   show the plate behind the animated camera (False: no background).
    """

    name: str | None = None
    point_cloud: bool = True
    min_conf: float = 0.0
    point_radius: float | None = None
    voxel_size: float = 0.0
    mesh_points: bool | None = None
    mesh_points_max: int = 500_000
    cameras: bool = True
    background_images: bool = True
    set_render_resolution: bool = True
    depth_textures: str | None = "pack"
    texture_dir: str | None = None
    per_view_meshes: bool = False
    mesh_max_depth_jump: float = 0.08
    mesh_min_conf: float | None = None
    world_orientation: str = "z_up"
    sensor_mm: float = 36.0
    animated_camera: bool = False
    plate: str | None = None
    plate_first_frame: int | None = None
    plate_background: bool = True

    def validate(self) -> None:
        """Raise SceneError naming the first bad option."""
        if self.depth_textures not in DEPTH_TEXTURE_MODES:
            raise SceneError(f"Unknown depth texture mode {self.depth_textures!r}; use None, 'pack' or 'exr'.")
        if self.world_orientation not in WORLD_ORIENTATIONS:
            raise SceneError(f"Unknown world orientation {self.world_orientation!r}; "
                             f"use one of {', '.join(WORLD_ORIENTATIONS)}.")
        if self.voxel_size < 0:
            raise SceneError(f"The voxel size must be 0 (off) or positive, not {self.voxel_size}.")
        if self.point_radius is not None and self.point_radius <= 0:
            raise SceneError(f"The point radius must be positive, not {self.point_radius}.")
        if self.sensor_mm <= 0:
            raise SceneError(f"The sensor size must be positive (mm), not {self.sensor_mm}.")
        if self.mesh_max_depth_jump <= 0:
            raise SceneError(f"The mesh depth-jump threshold must be positive, not {self.mesh_max_depth_jump}.")
