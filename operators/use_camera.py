"""`pointmap.use_camera`: look through a reconstructed camera with its own photo's render settings.

Photos of different sizes (or pixel aspects) cannot share one render resolution, so the build sets the
scene from the most common size; this makes any one camera exact: scene camera, resolution, pixel aspect,
and (with a 3D View at hand) the view switched to that camera so its background photo lines up.
"""

from __future__ import annotations

import bpy

from ..scene import keys


def _pointmap_camera(obj):
    return obj if obj is not None and obj.type == "CAMERA" and keys.WIDTH in obj else None


class POINTMAP_OT_use_camera(bpy.types.Operator):
    """Make the active reconstructed camera the scene camera, with its photo's resolution and pixel aspect"""

    bl_idname = "pointmap.use_camera"
    bl_label = "Look Through Camera"
    bl_options = {"REGISTER", "UNDO"}

    camera: bpy.props.StringProperty(name="Camera", description="Camera object (empty: the active object)")

    @classmethod
    def poll(cls, context):
        return _pointmap_camera(getattr(context, "active_object", None)) is not None or bool(
            [o for o in context.scene.objects if _pointmap_camera(o)])

    def execute(self, context):
        from ..scene import use_camera_render_settings

        obj = bpy.data.objects.get(self.camera) if self.camera else getattr(context, "active_object", None)
        if _pointmap_camera(obj) is None:
            self.report({"ERROR"}, f"'{self.camera or getattr(obj, 'name', '')}' is not a camera made by pointmap.")
            return {"CANCELLED"}
        use_camera_render_settings(context.scene, obj)
        area = getattr(context, "area", None)
        if area is not None and area.type == "VIEW_3D":
            area.spaces.active.region_3d.view_perspective = "CAMERA"
        self.report({"INFO"}, f"Looking through {obj.name} ({obj['pointmap_width']}x{obj['pointmap_height']}).")
        return {"FINISHED"}


classes = (POINTMAP_OT_use_camera,)
register, unregister = bpy.utils.register_classes_factory(classes)
