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
        layout.prop(s, "input_kind", expand=True)
        if s.input_kind == "PHOTOS":
            layout.prop(s, "source", expand=True)
            if s.source == "FOLDER":
                layout.prop(s, "directory")
            else:
                row = layout.row()
                row.label(text=f"{len(s.files)} file(s) in {s.directory or '(no folder)'}")
                row.operator("pointmap.select_files", text="", icon="FILEBROWSER")
            layout.prop(s, "on_bad_image")
            return
        layout.prop(s, "shot_source", expand=True)
        if s.shot_source == "CLIP":
            layout.prop_search(s, "clip_name", bpy.data, "movieclips", text="Clip")
            clip = bpy.data.movieclips.get(s.clip_name) if s.clip_name else context.scene.active_clip
            if not s.clip_name:
                layout.label(text=f"Active clip: {clip.name if clip else 'none'}")
            if clip is not None and clip.source != "SEQUENCE":
                layout.label(text=f"First frame {clip.frame_start} (the clip's Start Frame)")
        else:
            layout.prop(s, "shot_path")
            layout.prop(s, "first_frame")
        col = layout.column(align=True)
        col.prop(s, "use_frame_range")
        row = col.row(align=True)
        row.enabled = s.use_frame_range
        row.prop(s, "frame_start")
        row.prop(s, "frame_end")
        layout.prop(s, "stride")
        layout.prop(s, "per_frame_focal")
        layout.prop(s, "on_bad_image", text="Bad Frames")


class POINTMAP_PT_model(_Sidebar, bpy.types.Panel):
    bl_idname = "POINTMAP_PT_model"
    bl_label = "Model"
    bl_parent_id = "POINTMAP_PT_main"

    def draw(self, context):
        s = context.scene.pointmap
        layout = self.layout
        layout.prop(s, "checkpoint")
        if not s.checkpoint:
            from .preferences import get_settings, preferred_checkpoint_label

            layout.label(text=preferred_checkpoint_label(get_settings(context)))
        layout.prop(s, "backend")
        layout.prop(s, "device")
        layout.prop(s, "image_size")
        if s.backend == "VGGT":
            layout.prop(s, "vggt_points")


SINGLE_PASS_LABELS = {"vggt": "VGGT", "da3": "Depth Anything 3"}


def single_pass_family(settings, context=None) -> str | None:
    """"vggt" or "da3" when a run with these panel settings predicts all cameras in one pass: the backend
    chosen explicitly, or AUTO with a registry checkpoint of that family (a local file's family is only
    known once it is read); None for the pairwise backend."""
    if settings.backend != "AUTO":
        return {"VGGT": "vggt", "DA3": "da3"}.get(settings.backend)
    from ..core.weights import registry
    from .preferences import get_settings

    name = settings.checkpoint or get_settings(context).checkpoint
    try:
        family = registry.get(name).family
    except Exception:   # a path or an unknown name: the run itself says what it is
        return None
    return family if family in SINGLE_PASS_LABELS else None


def greyed_alignment_options(settings, context=None) -> set[str]:
    """Alignment options the run's backend cannot honour (core refuses them: UnsupportedOption), which the
    panel greys out: VGGT and DA3 have no scene graph, iterations or shared focal; both turn a known focal
    into known intrinsics, VGGT only with points from depth (its point head ignores the lens)."""
    family = single_pass_family(settings, context)
    if family is None:
        return set()
    names = {"graph", "graph_k", "iterations", "shared_focal", "shot_window"}
    if family == "vggt" and settings.vggt_points == "HEAD":
        names.add("focal_mm")
    return names


class POINTMAP_PT_alignment(_Sidebar, bpy.types.Panel):
    bl_idname = "POINTMAP_PT_alignment"
    bl_label = "Alignment"
    bl_parent_id = "POINTMAP_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.pointmap
        layout = self.layout
        greyed = greyed_alignment_options(s, context)
        if greyed:
            family = single_pass_family(s, context)
            layout.label(text=f"{SINGLE_PASS_LABELS[family]} predicts all cameras in one pass", icon="INFO")

        def prop(row, name, **kw):
            sub = row.row(align=True)
            sub.enabled = name not in greyed
            sub.prop(s, name, **kw)
            return sub

        if s.input_kind == "SHOT":
            prop(layout, "shot_window")
        else:
            row = layout.row(align=True)
            prop(row, "graph", text="")
            prop(row, "graph_k").enabled = s.graph != "COMPLETE" and "graph_k" not in greyed
            prop(layout, "shared_focal")
        prop(layout, "iterations")
        row = layout.row(align=True)
        prop(row, "focal_mm")
        prop(row, "sensor_mm")
        layout.prop(s, "known_poses_file")


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
        animated = s.input_kind == "SHOT" and s.animated_camera
        if s.input_kind == "SHOT":
            col.prop(s, "animated_camera")
            sub = col.column()
            sub.enabled = s.animated_camera
            sub.prop(s, "plate_background")
            sub.prop(s, "static_cameras")
        if not animated:
            col.prop(s, "cameras")
        sub = col.column()
        sub.enabled = s.static_cameras if animated else s.cameras
        sub.prop(s, "background_images")
        sub.prop(s, "set_render_resolution")
        col.prop(s, "per_view_meshes")
        col.prop(s, "depth_textures")
        if s.depth_textures == "EXR":
            col.prop(s, "texture_dir")


class POINTMAP_PT_fused_mesh(_Sidebar, bpy.types.Panel):
    bl_idname = "POINTMAP_PT_fused_mesh"
    bl_label = "Fused Mesh"
    bl_parent_id = "POINTMAP_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw_header(self, context):
        self.layout.prop(context.scene.pointmap, "fused_mesh", text="")

    def draw(self, context):
        s = context.scene.pointmap
        layout = self.layout
        col = layout.column()
        col.prop(s, "mesh_voxel_size", text="Voxel Size")
        col.prop(s, "mesh_min_conf", text="Min Confidence")
        col.prop(s, "mesh_face_budget", text="Face Budget")
        col.prop(s, "mesh_texture_size", text="Texture Size")
        col.prop(s, "mesh_refine_views")
        layout.operator("pointmap.remesh", text="Re-mesh Active Run", icon="MOD_REMESH")


classes = (POINTMAP_PT_main, POINTMAP_PT_input, POINTMAP_PT_model, POINTMAP_PT_alignment, POINTMAP_PT_outputs,
           POINTMAP_PT_fused_mesh)
register, unregister = bpy.utils.register_classes_factory(classes)
