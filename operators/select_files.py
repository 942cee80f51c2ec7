"""`pointmap.select_files`: a file browser filling the scene settings' folder and file list."""

from __future__ import annotations

import bpy


class POINTMAP_OT_select_files(bpy.types.Operator):
    """Choose the photos to reconstruct"""

    bl_idname = "pointmap.select_files"
    bl_label = "Choose Photos"
    bl_options = {"INTERNAL"}

    directory: bpy.props.StringProperty(subtype="DIR_PATH")
    files: bpy.props.CollectionProperty(type=bpy.types.OperatorFileListElement)
    filter_image: bpy.props.BoolProperty(default=True, options={"HIDDEN"})
    filter_folder: bpy.props.BoolProperty(default=True, options={"HIDDEN"})

    def invoke(self, context, _event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        settings = context.scene.pointmap
        settings.directory = self.directory
        settings.files.clear()
        for f in self.files:
            if f.name:
                settings.files.add().name = f.name
        settings.source = "FILES" if len(settings.files) else "FOLDER"
        return {"FINISHED"}


classes = (POINTMAP_OT_select_files,)
register, unregister = bpy.utils.register_classes_factory(classes)
