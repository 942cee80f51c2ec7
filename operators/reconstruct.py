"""`pointmap.reconstruct`: photos or a shot → `core.reconstruct` → `scene.build_scene`.

Main thread: read options, resolve inputs / checkpoint, reserve the run's file; worker (`scene.runs.run_work`):
the network (or a saved reconstruction), the fused mesh, the saved reconstruction; main thread again: one
atomic build (points, cameras or the animated shot camera, fused mesh), so a run is one undo step. A
failed or cancelled run builds nothing and leaves no file (see `job_operator` for the sync / async paths).
"""

from __future__ import annotations

import os
import traceback

import bpy

from .. import tasks as jobs
from ..core.errors import InputError
from ..core.progress import count
from ..core.weights.resolve import resolve_checkpoint
from ..ui.preferences import get_settings
from ..ui.properties import ReconstructOptions, copy_options
from .inputs import beside_blend, resolve_inputs, resolve_shot, runs_folder
from .job_operator import JobOperator


def graph_string(kind: str, k: int) -> str:
    """Panel graph choice → core's scene-graph spec ("complete", "swin-4", "oneref-0", ...)."""
    return "complete" if kind == "COMPLETE" else f"{kind.lower()}-{int(k)}"


def sequence_options(op, shot):
    """core SequenceOptions of a shot run (frame numbers are the shot's own, e.g. 1001...)."""
    from ..core.options import SequenceOptions

    return SequenceOptions(
        is_shot=True, first_frame=shot.first_frame if shot.first_frame is not None else 1,
        start=op.frame_start if op.use_frame_range else None, end=op.frame_end if op.use_frame_range else None,
        stride=op.stride, on_bad_frame="skip" if op.on_bad_image == "SKIP" else "raise",
        window=op.shot_window, shared_focal=not op.per_frame_focal)


def core_options(op, settings, shot=None):
    """core.options.ReconstructOptions from operator options and preferences (plain values).

    shot: the run's `ShotInput`, or None for photos. A shot takes its frames, window and focal model from
    `SequenceOptions`; the photo-set graph and shared-focal options are left at their defaults for it.
    """
    from ..core.options import AlignOptions, PairwiseOptions, ReconstructOptions, SequenceOptions, VGGTOptions

    device = settings.device if op.device == "PREFS" else op.device.lower()
    photos = shot is None
    known_poses = None
    if op.known_poses_file:
        import bpy

        from ..core.io.poses import read_known_poses

        known_poses = read_known_poses(bpy.path.abspath(op.known_poses_file))   # InputError names the file
    return ReconstructOptions(
        known_poses=known_poses,
        backend={"AUTO": "auto", "PAIRS": "pairs", "VGGT": "vggt", "DA3": "da3"}[op.backend],
        image_size=op.image_size or None,
        device=None if device == "auto" else device,
        precision=settings.precision,
        known_focal_mm=op.focal_mm or None,
        sensor_width_mm=op.sensor_mm,
        on_bad_image="skip" if op.on_bad_image == "SKIP" else "raise",
        cache_dir=settings.cache_dir or None,
        pairwise=PairwiseOptions(graph=graph_string(op.graph, op.graph_k) if photos else "complete"),
        align=AlignOptions(iterations=op.iterations or None, shared_focal=op.shared_focal and photos),
        vggt=VGGTOptions(points=op.vggt_points.lower()),
        sequence=SequenceOptions() if photos else sequence_options(op, shot),
    )


def mesh_options(op, settings=None):
    """core.meshing.MeshOptions from the fused-mesh options (voxel size 0: automatic)."""
    from ..core.meshing import MeshOptions

    device = getattr(settings, "device", "auto") if getattr(op, "device", "PREFS") == "PREFS" else op.device.lower()
    return MeshOptions(voxel_size=op.mesh_voxel_size, min_confidence=op.mesh_min_conf,
                       face_budget=op.mesh_face_budget, texture_size=op.mesh_texture_size,
                       depth_fields=op.mesh_refine_views, device=device if device in ("cpu", "cuda") else "auto")


def animated(op) -> bool:
    return op.input_kind == "SHOT" and op.animated_camera


def scene_options(op, shot=None):
    """SceneOptions from the operator's output options; `shot` (a ShotInput) gives the plate."""
    from ..scene import SceneOptions

    anim = animated(op)
    return SceneOptions(
        name=op.name or None, point_cloud=op.point_cloud, min_conf=op.min_conf,
        point_radius=op.point_radius or None, voxel_size=op.voxel_size,
        cameras=op.static_cameras if anim else op.cameras,
        background_images=op.background_images, set_render_resolution=op.set_render_resolution,
        depth_textures=None if op.depth_textures == "NONE" else op.depth_textures.lower(),
        texture_dir=bpy.path.abspath(op.texture_dir) if op.texture_dir else beside_blend("pointmap_textures"),
        per_view_meshes=op.per_view_meshes, sensor_mm=op.sensor_mm,
        animated_camera=anim, plate=shot.plate if (anim and shot) else None,
        plate_first_frame=shot.first_frame if (anim and shot) else None, plate_background=op.plate_background,
    )


def _run_stem(op, inputs) -> str:
    """The saved reconstruction's file name: the run's name, else the input's."""
    if op.name:
        return op.name
    first = inputs if isinstance(inputs, str) else os.path.dirname(inputs[0])
    return os.path.splitext(os.path.basename(os.path.normpath(first)))[0] or "run"


class POINTMAP_OT_reconstruct(ReconstructOptions, JobOperator, bpy.types.Operator):
    """Reconstruct cameras and a point cloud from photos or a shot"""

    bl_idname = "pointmap.reconstruct"
    bl_label = "Reconstruct"
    # UNDO: Ctrl+Z removes a run. No REGISTER: its redo panel would re-run the whole reconstruction
    # synchronously on the main thread whenever a value is tweaked there.
    bl_options = {"UNDO"}

    use_scene_settings: bpy.props.BoolProperty(
        name="Use Scene Settings", default=False, options={"SKIP_SAVE"},
        description="Fill every option not given explicitly from the scene's Pointmap settings")
    from_reconstruction: bpy.props.StringProperty(
        name="From Reconstruction", subtype="FILE_PATH", options={"SKIP_SAVE"},
        description="Build from a saved reconstruction (.npz) instead of running the network; a shot's frame "
                    "range and stride still apply")

    _run_file = None

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

    # -- preparation (main thread) --

    def _make_job(self, context, on_progress):
        from ..scene.runs import RunFile, run_work

        prefs = get_settings(context)
        saved = os.path.normpath(bpy.path.abspath(self.from_reconstruction)) if self.from_reconstruction else None
        shot = resolve_shot(self, context, required=saved is None) if self.input_kind == "SHOT" else None
        meshing = mesh_options(self, prefs) if self.fused_mesh else None
        options = scene_options(self, shot)
        if saved is not None:
            if not os.path.isfile(saved):
                raise InputError(f"The saved reconstruction {saved} does not exist.", saved)
            load, run_file = self._load_saved(saved), None
        else:
            inputs = shot.source if shot is not None else resolve_inputs(self, context)
            checkpoint = resolve_checkpoint(bpy.path.abspath(self.checkpoint) if self.checkpoint.startswith("//")
                                            else self.checkpoint, prefs.checkpoint, prefs.cache_dir)
            core_opts = core_options(self, prefs, shot)
            try:
                core_opts.check()
            except ValueError as err:
                raise InputError(f"{str(err)[:1].upper()}{str(err)[1:]}.") from err

            def load(progress, cancel):
                from ..core.pipeline import reconstruct

                return reconstruct(inputs, checkpoint, core_opts, progress=progress, cancel=cancel)

            # Reserved last, so a refused run leaves no file behind.
            run_file = RunFile.reserve(runs_folder(), _run_stem(self, inputs))
        self._run_file = run_file
        scene = context.scene

        def work(progress, cancel):
            return run_work(load, meshing, run_file, existing=saved, progress=progress, cancel=cancel)

        return jobs.Job(work, on_done=lambda result: self._apply(result, scene, options, shot),
                        on_error=self._failed, on_progress=on_progress)

    def _load_saved(self, path: str):
        """The worker's loader for a saved reconstruction: a shot's frame range and stride still apply."""
        shot_frames = self.input_kind == "SHOT" and (self.use_frame_range or self.stride != 1)
        first, last = (self.frame_start, self.frame_end) if self.use_frame_range else (None, None)
        stride = self.stride

        def load(progress, cancel):
            from ..core.reconstruction import load_reconstruction

            recon = load_reconstruction(path)
            if shot_frames:
                from ..core.frames import select_frames

                recon = select_frames(recon, first, last, stride)
            return recon
        return load

    # -- result (main thread) --

    def _apply(self, result, scene, options, shot) -> None:
        from ..scene import build_scene
        from ..scene.runs import remember_run_file

        recon = result.recon
        if shot is not None and shot.fps and not recon.fps:
            recon.fps = shot.fps          # the clip's frame rate for the scene and the plate
        recon.warnings.extend(w for w in result.warnings if w not in recon.warnings)
        try:
            coll = build_scene(recon, scene=scene, options=options, fused_mesh=result.fused_mesh)
        except Exception as err:   # build_scene has undone its work; a SceneError reports its sentence
            self._failed(err, traceback.format_exc())
            return
        if result.saved:
            remember_run_file(coll, result.saved, bpy.data.filepath)
            if self._run_file is not None:
                self._run_file.keep()
        for w in recon.warnings:
            self.report({"WARNING"}, w)
        self._outcome = ("done", {"INFO"}, f"Reconstructed {count(recon.n_views, 'view')} into collection "
                                          f"'{coll.name}' in {jobs.format_seconds(self._job.state.elapsed())}.")

    def _failed(self, err, tb) -> None:
        if self._run_file is not None:
            self._run_file.discard()
        self._failed_outcome(err, tb, "Reconstruction", "Reconstruction cancelled; the scene was not changed.")


classes = (POINTMAP_OT_reconstruct,)
register, unregister = bpy.utils.register_classes_factory(classes)
