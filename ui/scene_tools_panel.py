"""The sidebar's "Scene Tools" section: orient and scale a reconstruction (operators/scene_tools.py)."""

from __future__ import annotations

import bpy

from .panel import _Sidebar


class POINTMAP_PT_scene_tools(_Sidebar, bpy.types.Panel):
    bl_idname = "POINTMAP_PT_scene_tools"
    bl_label = "Scene Tools"
    bl_parent_id = "POINTMAP_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        obj = context.active_object
        hint = "Select vertices of the points (Edit Mode) or empties"
        if obj is not None and obj.mode == "EDIT" and obj.type == "MESH":
            hint = f"{obj.data.total_vert_sel} vertices selected"
        layout.operator("pointmap.view_run", icon="HIDE_OFF")
        layout.label(text=hint, icon="INFO")
        col = layout.column(align=True)
        row = col.row(align=True)
        row.operator("pointmap.set_floor", icon="AXIS_TOP")
        row.operator("pointmap.flip_floor", text="Flip", icon="ARROW_LEFTRIGHT")
        row = col.row(align=True)
        row.operator("pointmap.set_wall", icon="AXIS_FRONT").axis = "X"
        row.operator("pointmap.set_origin", icon="OBJECT_ORIGIN")
        row = col.row(align=True)
        row.operator("pointmap.set_axis", text="Set X Axis").axis = "X"
        row.operator("pointmap.set_axis", text="Set Y Axis").axis = "Y"
        col = layout.column(align=True)
        op = col.operator("pointmap.set_scale", text="Scale from Two Points", icon="DRIVER_DISTANCE")
        op.source = "POINTS"
        op = col.operator("pointmap.set_scale", text="Scale from Camera Travel", icon="CAMERA_DATA")
        op.source = "CAMERA_TRAVEL"


classes = (POINTMAP_PT_scene_tools,)
register, unregister = bpy.utils.register_classes_factory(classes)
