"""`pointmap.download_weights`: show a checkpoint's licence, then download it in the background.

The download runs in a `job.Job` worker (core.download.download_checkpoint with progress and a
cancel token); a modal timer drains its events into the preferences' progress bar.
"""

from __future__ import annotations

import textwrap

import bpy

from ..core.errors import Cancelled, PointmapError
from ..ui.preferences import get_prefs, weights_dir
from . import job as jobs

_job: jobs.Job | None = None


def current() -> jobs.Job | None:
    return _job


def _info(name: str):
    from ..core import registry

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
        return _job is None or _job.state.finished

    def invoke(self, context, _event):
        if not self._check(context):
            return {"CANCELLED"}
        return context.window_manager.invoke_props_dialog(self, width=520, confirm_text="Accept and Download")

    def draw(self, _context):
        layout = self.layout
        try:
            info = _info(self.name)
        except Exception as err:
            layout.label(text=str(err), icon="ERROR")
            return
        size = getattr(info, "approx_size", 0)
        layout.label(text=f"{info.name}: about {size / 1e9:.1f} GB" if size else info.name)
        layout.label(text=f"From: {getattr(info, 'hf_url', '')}")
        layout.label(text="Licence:")
        col = layout.box().column(align=True)
        for para in str(getattr(info, "license", "") or "No licence text available.").splitlines():
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
        except Exception:
            self.report({"ERROR"}, f"'{self.name}' is not a checkpoint pointmap knows how to download.")
            return False
        return True

    def _make_job(self, context):
        global _job
        name, cache_dir = self.name, weights_dir(get_prefs(context))

        def work(progress, cancel):
            from ..core.download import download_checkpoint

            return download_checkpoint(name, cache_dir, progress, cancel)

        def on_done(path):
            self._outcome = ("done", {"INFO"}, f"Downloaded '{name}' to {path}.")

        def on_error(err, tb):
            if isinstance(err, Cancelled):
                self._outcome = ("cancelled", {"WARNING"}, "Download cancelled.")
            elif isinstance(err, PointmapError):
                self._outcome = ("failed", {"ERROR"}, str(err))
            else:
                print(f"pointmap: download failed\n{tb}", flush=True)
                self._outcome = ("failed", {"ERROR"}, f"Download failed ({type(err).__name__}: {err}).")

        _job = jobs.Job(work, on_done=on_done, on_error=on_error, name="pointmap-download")
        return _job

    def _finish(self):
        status, level, message = self._outcome
        self.report(level, message)
        return {"FINISHED"} if status == "done" else {"CANCELLED"}

    def execute(self, context):
        if not self._check(context):
            return {"CANCELLED"}
        job = self._make_job(context)
        if bpy.app.background:
            job.run_inline()
            job.drain()
            return self._finish()
        job.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        for area in context.screen.areas if context.screen else []:
            area.tag_redraw()
        if _job.cancelled and not _job.state.finished:
            _job.state.finished = True
            self._outcome = ("cancelled", {"WARNING"}, "Download cancelled.")
        elif not _job.drain():
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._finish()

    def cancel(self, context):
        if _job is not None:
            _job.cancel()
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)


classes = (POINTMAP_OT_download_weights,)
register, unregister = bpy.utils.register_classes_factory(classes)
