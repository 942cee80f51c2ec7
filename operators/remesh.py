"""`pointmap.remesh`: rebuild a run's fused mesh from its saved reconstruction with other settings.

No network runs: the worker loads the run's .npz (`keys.RECONSTRUCTION` on its collection) and fuses
it (`scene.runs.remesh_work`); the main thread then swaps the fused mesh object (`replace_fused_mesh`),
so Ctrl+Z brings the old mesh back in one step.
"""

from __future__ import annotations

import traceback

import bpy

from .. import tasks as jobs
from ..ui.preferences import get_settings
from ..ui.properties import FusedMeshSettings
from .job_operator import JobOperator
from .reconstruct import mesh_options

_SETTINGS = tuple(FusedMeshSettings.__annotations__)


class POINTMAP_OT_remesh(FusedMeshSettings, JobOperator, bpy.types.Operator):
    """Rebuild the fused mesh of the active run from its saved reconstruction with other settings (no network)"""

    bl_idname = "pointmap.remesh"
    bl_label = "Re-mesh"
    bl_options = {"UNDO"}

    run: bpy.props.StringProperty(name="Run", description="Collection of the run (empty: the active run)")

    @classmethod
    def poll(cls, context):
        scene = context.scene
        return scene is not None and any("pointmap_family" in c for c in scene.collection.children_recursive)

    def invoke(self, context, _event):
        settings = getattr(context.scene, "pointmap", None)
        if settings is not None:
            for name in _SETTINGS:
                if not self.properties.is_property_set(name):
                    setattr(self, name, getattr(settings, name))
        if bpy.app.background:
            return self._run_sync(context)
        return self._start_async(context)

    def execute(self, context):
        return self._run_sync(context)

    def _make_job(self, context, on_progress):
        from ..scene.runs import RemeshError, find_run, remesh_work, run_file_of, scene_scale

        if self.run:
            coll = bpy.data.collections.get(self.run)
            if coll is None or "pointmap_family" not in coll:
                raise RemeshError(f"There is no pointmap run called '{self.run}'.")
        else:
            coll = find_run(context)
        path = run_file_of(coll, bpy.data.filepath)
        options = mesh_options(self, get_settings(context))
        scale = scene_scale(coll)
        options.voxel_size /= scale        # given in scene units; the saved run is in its own
        name = coll.name

        def work(progress, cancel):
            return remesh_work(path, options, progress, cancel)

        return jobs.Job(work, on_done=lambda mesh: self._apply(name, mesh, scale), on_error=self._failed,
                        on_progress=on_progress)

    def _apply(self, name: str, mesh, scale: float) -> None:
        from ..scene.runs import replace_fused_mesh

        coll = bpy.data.collections.get(name)
        if coll is None:
            self._outcome = ("failed", {"ERROR"}, f"The run '{name}' was removed while it was re-meshed.")
            return
        try:
            obj = replace_fused_mesh(coll, mesh)
        except Exception as err:   # the old mesh is untouched when the new one cannot be built
            self._failed(err, traceback.format_exc())
            return
        for w in mesh.info.get("warnings", []):
            self.report({"WARNING"}, w)
        self._outcome = ("done", {"INFO"}, f"Re-meshed '{name}': {obj.name} has {len(obj.data.polygons)} faces "
                                          f"(voxel size {scale * mesh.info.get('voxel_size', 0):.4g}).")

    def _failed(self, err, tb) -> None:
        self._failed_outcome(err, tb, "Re-mesh", "Re-mesh cancelled; the scene was not changed.")


classes = (POINTMAP_OT_remesh,)
register, unregister = bpy.utils.register_classes_factory(classes)
