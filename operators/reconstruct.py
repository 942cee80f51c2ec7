"""`pointmap.reconstruct`: photos → `core.reconstruct` → `scene.build_scene`.

Main thread: read options, resolve inputs/checkpoint, then either
* invoke (interactive UI): start a background `Job` and return RUNNING_MODAL; TIMER events drain the
  job's queue (progress for the panel) and the final event builds the scene, still on the main thread;
* execute (scripts, `blender -b`, the bpy module): run the same job inline and drain it at once.
A failed or cancelled run builds nothing, so the scene is untouched (build_scene itself is atomic).
"""

from __future__ import annotations

import traceback

import bpy

from .. import tasks as jobs
from ..core.errors import PointmapError
from ..core.progress import WARNING, console_progress, count
from ..core.weights.resolve import resolve_checkpoint
from ..ui.preferences import get_settings
from ..ui.properties import ReconstructOptions, copy_options
from .inputs import beside_blend, resolve_inputs


def graph_string(kind: str, k: int) -> str:
    """Panel graph choice → core's scene-graph spec ("complete", "swin-4", "oneref-0", ...)."""
    return "complete" if kind == "COMPLETE" else f"{kind.lower()}-{int(k)}"


def core_options(op, settings):
    """core.options.ReconstructOptions from operator options and preferences (plain values)."""
    from ..core.options import AlignOptions, PairwiseOptions, ReconstructOptions, VGGTOptions

    device = settings.device if op.device == "PREFS" else op.device.lower()
    return ReconstructOptions(
        backend={"AUTO": "auto", "PAIRS": "pairs", "VGGT": "vggt", "DA3": "da3"}[op.backend],
        image_size=op.image_size or None,
        device=None if device == "auto" else device,
        precision=settings.precision,
        known_focal_mm=op.focal_mm or None,
        sensor_width_mm=op.sensor_mm,
        on_bad_image="skip" if op.on_bad_image == "SKIP" else "raise",
        cache_dir=settings.cache_dir or None,
        pairwise=PairwiseOptions(graph=graph_string(op.graph, op.graph_k)),
        align=AlignOptions(iterations=op.iterations or None, shared_focal=op.shared_focal),
        vggt=VGGTOptions(points=op.vggt_points.lower()),
    )


def scene_options(op):
    """SceneOptions from the operator's output options."""
    from ..scene import SceneOptions

    return SceneOptions(
        name=op.name or None, point_cloud=op.point_cloud, min_conf=op.min_conf,
        point_radius=op.point_radius or None, voxel_size=op.voxel_size, cameras=op.cameras,
        background_images=op.background_images, set_render_resolution=op.set_render_resolution,
        depth_textures=None if op.depth_textures == "NONE" else op.depth_textures.lower(),
        texture_dir=bpy.path.abspath(op.texture_dir) if op.texture_dir else beside_blend("pointmap_textures"),
        per_view_meshes=op.per_view_meshes, sensor_mm=op.sensor_mm,
    )


class POINTMAP_OT_reconstruct(ReconstructOptions, bpy.types.Operator):
    """Reconstruct cameras and a point cloud from photos"""

    bl_idname = "pointmap.reconstruct"
    bl_label = "Reconstruct"
    # UNDO: Ctrl+Z removes a run. No REGISTER: its redo panel would re-run the whole reconstruction
    # synchronously on the main thread whenever a value is tweaked there.
    bl_options = {"UNDO"}

    use_scene_settings: bpy.props.BoolProperty(
        name="Use Scene Settings", default=False, options={"SKIP_SAVE"},
        description="Fill every option not given explicitly from the scene's Pointmap settings")

    _job = None
    _timer = None
    _outcome: tuple[str, set, str] = ("", set(), "")

    # -- entry points --

    def invoke(self, context, _event):
        # The panel keeps its options on the scene; explicitly passed options win.
        self._fill_from_scene(context)
        if bpy.app.background:
            return self._run_sync(context)
        return self._start_async(context)

    def execute(self, context):
        if self.use_scene_settings:
            self._fill_from_scene(context)
        return self._run_sync(context)

    def _fill_from_scene(self, context) -> None:
        settings = getattr(context.scene, "pointmap", None)
        if settings is not None:
            copy_options(settings, self, skip=self.properties.is_property_set)

    # -- shared preparation (main thread) --

    def _make_job(self, context, progress_extra=None):
        if jobs.busy():
            raise PointmapError("A reconstruction is already running (or still stopping): wait or cancel it first.")
        prefs = get_settings(context)
        inputs = resolve_inputs(self, context)
        checkpoint = resolve_checkpoint(bpy.path.abspath(self.checkpoint) if self.checkpoint.startswith("//")
                                        else self.checkpoint, prefs.checkpoint, prefs.cache_dir)
        core_opts = core_options(self, prefs)
        options = scene_options(self)
        scene = context.scene

        def work(progress, cancel):
            from ..core.pipeline import reconstruct

            return reconstruct(inputs, checkpoint, core_opts, progress=progress, cancel=cancel)

        def on_done(recon):
            self._apply(recon, scene, options)

        return jobs.Job(work, on_done=on_done, on_error=self._failed, on_progress=progress_extra)

    def _apply(self, recon, scene, options) -> None:
        from ..scene import build_scene

        try:
            coll = build_scene(recon, scene=scene, options=options)
        except Exception as err:   # build_scene has undone its work; a SceneError reports its sentence
            self._failed(err, traceback.format_exc())
            return
        for w in recon.warnings:
            self.report({"WARNING"}, w)
        self._outcome = ("done", {"INFO"}, f"Reconstructed {count(recon.n_views, 'view')} into collection "
                                          f"'{coll.name}' in {jobs.format_seconds(self._job.state.elapsed())}.")

    def _failed(self, err, tb) -> None:
        self._outcome = jobs.error_outcome(err, tb, "Reconstruction",
                                           "Reconstruction cancelled; the scene was not changed.")

    # -- synchronous (headless, scripts) --

    def _run_sync(self, context):
        wm = context.window_manager
        printer = console_progress()

        def show(p):
            # Warnings reach the console and the UI through self.report at the end: not said twice, and not a stage.
            if p.stage == WARNING:
                return
            if bpy.app.background:
                printer(p)
            else:
                wm.progress_update(int(100 * p.fraction))
        try:
            self._job = self._make_job(context, show)
        except PointmapError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        jobs.set_current(self._job)
        if not bpy.app.background:
            wm.progress_begin(0, 100)
        try:
            self._job.run_inline()
            self._job.drain()
        finally:
            if not bpy.app.background:
                wm.progress_end()
            jobs.set_current(None)
        return jobs.report_outcome(self, self._outcome)

    # -- asynchronous (interactive UI) --

    def _start_async(self, context):
        try:
            self._job = self._make_job(context, lambda _p: jobs.redraw(bpy.context))
        except PointmapError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        jobs.set_current(self._job)
        self._job.start()
        jobs.redraw(context)
        return jobs.start_modal_timer(self, context, 0.1)

    def modal(self, context, event):
        job = self._job
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel()
        if event.type != "TIMER" and not job.cancelled:
            return {"PASS_THROUGH"}
        # A cancel stops the run now; the worker notices the token at its next check, its result is dropped.
        if not job.drain_or_stop():
            return {"PASS_THROUGH"}
        jobs.stop_modal_timer(self, context)
        jobs.redraw(context)
        return jobs.report_outcome(self, self._outcome)

    def cancel(self, context):
        # Called when Blender drops the modal handler (file load, quit): stop the worker too.
        if self._job is not None:
            self._job.cancel()
        jobs.stop_modal_timer(self, context)


classes = (POINTMAP_OT_reconstruct,)
register, unregister = bpy.utils.register_classes_factory(classes)
