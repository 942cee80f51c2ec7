"""`JobOperator`: an operator whose work runs in a background `tasks.Job` (reconstruct, re-mesh).

Main thread: `_make_job(context, on_progress)` reads options and returns the Job, then either
* invoke (interactive UI): the job starts in a worker thread and the operator goes modal; TIMER events
  drain the job's queue (progress for the panel) and the final event builds the result, still on the
  main thread, so the whole change is one undo step when the operator finishes;
* execute (scripts, `blender -b`, the bpy module): the same job runs inline and is drained at once; headless,
  progress lines are printed as the work reports them (`Job.live`), not after the run.
The job's callbacks set `self._outcome` (see `tasks.report_outcome`). One job runs at a time.
"""

from __future__ import annotations

import bpy

from .. import tasks as jobs
from ..core.errors import PointmapError
from ..core.progress import WARNING, console_progress


class JobOperator:
    """Mixin for a `bpy.types.Operator` that runs a `tasks.Job`; subclasses implement `_make_job`."""

    _job = None
    _timer = None
    _outcome: tuple[str, set, str] = ("", set(), "")

    def _make_job(self, context, on_progress) -> jobs.Job:
        raise NotImplementedError

    def _prepare(self, context, on_progress) -> jobs.Job:
        if jobs.busy():
            raise PointmapError("A reconstruction is already running (or still stopping): wait or cancel it first.")
        return self._make_job(context, on_progress)

    def _failed_outcome(self, err, tb, what: str, cancelled: str) -> None:
        self._outcome = jobs.error_outcome(err, tb, what, cancelled)

    # -- synchronous (headless, scripts) --

    def _run_sync(self, context):
        wm = context.window_manager
        printer = console_progress()

        def show(p):
            # Warnings reach the console and the UI through self.report at the end: not said twice, and not a stage.
            if p.stage != WARNING and not bpy.app.background:
                wm.progress_update(int(100 * p.fraction))

        def say(p):
            # Headless: printed the moment the work reports it (the queue is only drained after the run).
            if p.stage != WARNING:
                printer(p)
        try:
            self._job = self._prepare(context, show)
        except PointmapError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        if bpy.app.background:
            self._job.live = say
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
            self._job = self._prepare(context, lambda _p: jobs.redraw(bpy.context))
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
