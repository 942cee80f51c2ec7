"""`pointmap.download_weights`: show a checkpoint's licence, then download it in the background.

The download runs in a `job.Job` worker (core.download.download_checkpoint with progress and a
cancel token); a modal timer drains its events into the preferences' progress bar.
"""

from __future__ import annotations

import textwrap

import bpy

from .. import tasks as jobs
from ..core.errors import CheckpointError
from ..ui.preferences import get_prefs, weights_dir


def _info(name: str):
    from ..core.weights import registry

    return registry.get(name)


class POINTMAP_OT_download_weights(bpy.types.Operator):
    """Download the chosen checkpoint's weights (after showing its licence)"""

    bl_idname = "pointmap.download_weights"
    bl_label = "Download Weights"

    name: bpy.props.StringProperty(name="Checkpoint", description="Registry name of the checkpoint")

    _timer = None
    _outcome = ("", {"INFO"}, "")

    @classmethod
    def poll(cls, _context):
        return jobs.current("download") is None or jobs.current("download").state.finished

    def invoke(self, context, _event):
        if not self._check(context):
            return {"CANCELLED"}
        return context.window_manager.invoke_props_dialog(self, width=520, confirm_text="Accept and Download")

    def draw(self, _context):
        layout = self.layout
        try:
            info = _info(self.name)
        except CheckpointError as err:
            layout.label(text=str(err), icon="ERROR")
            return
        layout.label(text=f"{info.name}: about {info.approx_size / 1e9:.1f} GB")
        layout.label(text=f"From: {info.hf_url}")
        layout.label(text="Licence:")
        col = layout.box().column(align=True)
        for para in info.license.splitlines():
            for line in textwrap.wrap(para, 90) or [""]:
                col.label(text=line)

    def _check(self, context) -> bool:
        if not self.name:
            prefs = get_prefs(context)
            self.name = prefs.checkpoint if prefs is not None and prefs.checkpoint != "LOCAL" else ""
        if not bpy.app.online_access:
            self.report({"ERROR"}, "Blender is set to work offline: allow online access in "
                                   "Preferences › System › Network to download weights.")
            return False
        try:
            _info(self.name)
        except CheckpointError:
            self.report({"ERROR"}, f"'{self.name}' is not a checkpoint pointmap knows how to download.")
            return False
        return True

    def _make_job(self, context):
        name, cache_dir = self.name, weights_dir(get_prefs(context))

        def work(progress, cancel):
            from ..core.weights.download import download_checkpoint

            return download_checkpoint(name, cache_dir, progress, cancel)

        def on_done(path):
            self._outcome = ("done", {"INFO"}, f"Downloaded '{name}' to {path}.")

        def on_error(err, tb):
            self._outcome = jobs.error_outcome(err, tb, "Download", "Download cancelled.")

        job = jobs.Job(work, on_done=on_done, on_error=on_error, name="pointmap-download")
        jobs.set_current(job, "download")
        return job

    def execute(self, context):
        if not self._check(context):
            return {"CANCELLED"}
        job = self._make_job(context)
        if bpy.app.background:
            job.run_inline()
            job.drain()
            return jobs.report_outcome(self, self._outcome)
        job.start()
        return jobs.start_modal_timer(self, context, 0.2)

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        jobs.redraw(context)
        if not jobs.current("download").drain_or_stop():
            return {"PASS_THROUGH"}
        jobs.stop_modal_timer(self, context)
        return jobs.report_outcome(self, self._outcome)

    def cancel(self, context):
        if jobs.current("download") is not None:
            jobs.current("download").cancel()
        jobs.stop_modal_timer(self, context)


classes = (POINTMAP_OT_download_weights,)
register, unregister = bpy.utils.register_classes_factory(classes)
