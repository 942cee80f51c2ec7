"""Reconstruction → Blender scene. The ONE place converting the core's OpenCV convention.

`build_scene` and `use_camera_render_settings` import bpy only when called, so this package (and
`scene.convention`, `scene.options`) import without Blender.
"""

from .options import SceneError, SceneOptions

__all__ = ["SceneError", "SceneOptions", "build_scene", "use_camera_render_settings"]


def build_scene(recon, scene=None, options=None, progress=None, cancel=None, fused_mesh=None):
    """See `scene.build.build_scene`."""
    from .build import build_scene as _build_scene

    return _build_scene(recon, scene=scene, options=options, progress=progress, cancel=cancel,
                        fused_mesh=fused_mesh)


def use_camera_render_settings(scene, cam_obj) -> None:
    """See `scene.cameras.use_camera_render_settings`."""
    from .cameras import use_camera_render_settings as _use

    _use(scene, cam_obj)
