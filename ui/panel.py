"""The 3D View sidebar panel (category "Pointmap"): input, model, alignment, outputs, run.

Drawing only reads `scene.pointmap` (the settings), the cached dependency status and the current
job's state; it never imports torch.
"""

from __future__ import annotations

import bpy

from .. import tasks as jobs
from ..scene import keys
from .preferences import ADDON_ID


class _Sidebar:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Pointmap"


class POINTMAP_PT_main(_Sidebar, bpy.types.Panel):
    bl_idname = "POINTMAP_PT_main"
    bl_label = "Pointmap"

    def draw(self, context):
        layout = self.layout
        status = jobs.dependency_status()
        if status.missing:
            box = layout.box()
            box.label(text=f"Missing: {', '.join(status.missing)}", icon="ERROR")
            box.operator("preferences.addon_show", text="Install in Preferences", icon="PREFERENCES").module = ADDON_ID
            return
        draw_run(layout, context)


def draw_run(layout, context) -> None:
    job = jobs.current()
    if job is not None and not job.state.finished:
        st = job.state
        col = layout.column(align=True)
        stage = f"{st.stage.capitalize()} {100 * st.fraction:.0f} %"
        col.label(text=f"{stage}: {st.message}" if st.message else stage, icon="TIME")
        col.progress(factor=st.bar, text=f"{100 * st.bar:.0f} %")
        eta = st.eta()
        scope = "" if st.overall is not None else " in this stage"
        col.label(text=f"Elapsed {jobs.format_seconds(st.elapsed())}"
                       + (f", about {jobs.format_seconds(eta)} left{scope}" if eta is not None else ""))
        layout.operator("pointmap.cancel", text="Cancel", icon="CANCEL").what = "RECONSTRUCT"
    else:
        layout.operator("pointmap.reconstruct", text="Reconstruct", icon="PLAY")
    obj = context.active_object
    if obj is not None and obj.type == "CAMERA" and keys.WIDTH in obj:
        layout.operator("pointmap.use_camera", text=f"Look Through {obj.name}", icon="VIEW_CAMERA")


class POINTMAP_PT_input(_Sidebar, bpy.types.Panel):
    bl_idname = "POINTMAP_PT_input"
    bl_label = "Input"
    bl_parent_id = "POINTMAP_PT_main"

    def draw(self, context):
        s = context.scene.pointmap
        layout = self.layout
        layout.prop(s, "source", expand=True)
        if s.source == "FOLDER":
            layout.prop(s, "directory")
        elif s.source == "FILES":
            row = layout.row()
            row.label(text=f"{len(s.files)} file(s) in {s.directory or '(no folder)'}")
            row.operator("pointmap.select_files", text="", icon="FILEBROWSER")
        else:
            layout.prop_search(s, "clip_name", bpy.data, "movieclips", text="Clip")
            if not s.clip_name:
                clip = context.scene.active_clip
                layout.label(text=f"Active clip: {clip.name if clip else 'none'}")
            row = layout.row(align=True)
            row.prop(s, "frame_start")
            row.prop(s, "frame_end")
            row.prop(s, "frame_step")
        layout.prop(s, "on_bad_image")


class POINTMAP_PT_model(_Sidebar, bpy.types.Panel):
    bl_idname = "POINTMAP_PT_model"
    bl_label = "Model"
    bl_parent_id = "POINTMAP_PT_main"

    def draw(self, context):
        s = context.scene.pointmap
        layout = self.layout
        layout.prop(s, "checkpoint")
        if not s.checkpoint:
            from .preferences import get_settings

            layout.label(text=f"Preferences: {get_settings(context).checkpoint or 'none chosen'}")
        layout.prop(s, "backend")
        layout.prop(s, "device")
        layout.prop(s, "image_size")
        if s.backend == "VGGT":
            layout.prop(s, "vggt_points")


def runs_vggt(settings, context=None) -> bool:
    """Whether a run with these panel settings uses VGGT: chosen explicitly, or AUTO with a registry
    checkpoint of the VGGT family (a local file's family is only known once it is read)."""
    if settings.backend != "AUTO":
        return settings.backend == "VGGT"
    from ..core.weights import registry
    from .preferences import get_settings

    name = settings.checkpoint or get_settings(context).checkpoint
    try:
        return registry.get(name).family == "vggt"
    except Exception:   # a path or an unknown name: the run itself says what it is
        return False


class POINTMAP_PT_alignment(_Sidebar, bpy.types.Panel):
    bl_idname = "POINTMAP_PT_alignment"
    bl_label = "Alignment"
    bl_parent_id = "POINTMAP_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.pointmap
        layout = self.layout
        if runs_vggt(s, context):
            # VGGT has no scene graph, alignment or focal constraint; the core refuses these options.
            layout.label(text="VGGT predicts all cameras in one pass", icon="INFO")
            layout = layout.column()
            layout.enabled = False
        row = layout.row(align=True)
        row.prop(s, "graph", text="")
        sub = row.row(align=True)
        sub.enabled = s.graph != "COMPLETE"
        sub.prop(s, "graph_k")
        layout.prop(s, "iterations")
        layout.prop(s, "shared_focal")
        row = layout.row(align=True)
        row.prop(s, "focal_mm")
        row.prop(s, "sensor_mm")


class POINTMAP_PT_outputs(_Sidebar, bpy.types.Panel):
    bl_idname = "POINTMAP_PT_outputs"
    bl_label = "Outputs"
    bl_parent_id = "POINTMAP_PT_main"

    def draw(self, context):
        s = context.scene.pointmap
        layout = self.layout
        layout.prop(s, "name")
        col = layout.column(heading="Create")
        col.prop(s, "point_cloud")
        sub = col.column()
        sub.enabled = s.point_cloud
        sub.prop(s, "min_conf")
        sub.prop(s, "voxel_size")
        sub.prop(s, "point_radius")
        col.prop(s, "cameras")
        sub = col.column()
        sub.enabled = s.cameras
        sub.prop(s, "background_images")
        sub.prop(s, "set_render_resolution")
        col.prop(s, "per_view_meshes")
        col.prop(s, "depth_textures")
        if s.depth_textures == "EXR":
            col.prop(s, "texture_dir")


classes = (POINTMAP_PT_main, POINTMAP_PT_input, POINTMAP_PT_model, POINTMAP_PT_alignment, POINTMAP_PT_outputs)
register, unregister = bpy.utils.register_classes_factory(classes)
