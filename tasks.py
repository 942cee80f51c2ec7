"""Background tasks (reconstruct, weights download, dependency install) and the state the UI reads.

Operators start tasks and preferences / panels draw them; both read this one module, so neither
imports the other. Background work: a worker thread, an event queue, and a main-thread drain.

Blender data may only be touched on the main thread. A `Job` runs `work(progress, cancel)` in a
worker thread; the worker only puts events on a `queue.Queue`. The main thread calls `drain()`
(from a modal operator's TIMER events, or a `bpy.app.timers` function) which applies every queued
event through the callbacks, so `on_done` may build Blender data safely. Timers never fire in
`blender -b` or the bpy module, so `run_inline()` runs the same work synchronously and `drain()` is
called right after: one code path either way.

No bpy import here; the current job is a module-level singleton that the panel reads. The modal
helpers at the end (timer start/stop, redraw) only use the `context` an operator is handed.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import deps
from .core.errors import Cancelled, CancelToken, PointmapError
from .core.progress import WARNING, Progress


@dataclass
class JobState:
    """What the panel shows. `fraction` is within the current stage, `overall` (when the work reports it,
    as core.reconstruct does) of the whole run; times are time.monotonic()."""

    stage: str = "starting"
    message: str = ""
    fraction: float = 0.0
    overall: float | None = None
    started: float = 0.0
    stage_started: float = 0.0
    finished: bool = False
    outcome: str = ""          # "done", "cancelled", "failed" once finished

    def elapsed(self, now: float | None = None) -> float:
        return (now if now is not None else time.monotonic()) - self.started

    @property
    def bar(self) -> float:
        """The progress bar's fraction: of the whole run when known, else of the stage."""
        return self.overall if self.overall is not None else self.fraction

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left, extrapolated linearly: of the whole run when `overall` is known, else of the stage.
        None until there is enough progress to extrapolate from."""
        now = now if now is not None else time.monotonic()
        done, spent = ((self.overall, now - self.started) if self.overall is not None
                       else (self.fraction, now - self.stage_started))
        if done <= 0.02 or done >= 1.0:
            return None
        return spent * (1.0 - done) / done


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Job:
    """One run of `work(progress, cancel) -> result`.

    Callbacks, all called on the main thread from `drain()`:
      on_progress(Progress)          each progress event, in order
      on_done(result)                the work returned
      on_error(exc, traceback_text)  the work raised (Cancelled included)
    """

    def __init__(self, work: Callable[[Callable[[Progress], None], CancelToken], Any], *,
                 on_done: Callable[[Any], None] | None = None,
                 on_error: Callable[[BaseException, str], None] | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 name: str = "pointmap"):
        self.work = work
        self.on_done = on_done
        self.on_error = on_error
        self.on_progress = on_progress
        self.name = name
        # Called with each Progress in the worker's own thread, as it is reported (before it is queued): for
        # console printing, which needs no main thread, so a headless run shows its progress while it runs.
        self.live: Callable[[Progress], None] | None = None
        self.token = CancelToken()
        self.events: queue.Queue = queue.Queue()
        self.state = JobState()
        self.thread: threading.Thread | None = None

    # -- worker side (any thread) --

    def _progress(self, p: Progress) -> None:
        if self.live is not None:
            self.live(p)
        self.events.put(("progress", p))
        # Checking here too makes every progress report a cancellation point.
        self.token.check()

    def _run(self) -> None:
        try:
            result = self.work(self._progress, self.token)
        except BaseException as err:  # forwarded to the main thread, which decides what the user sees
            self.events.put(("error", err, traceback.format_exc()))
        else:
            self.events.put(("done", result))

    # -- main thread --

    def start(self) -> None:
        """Run the work in a daemon thread."""
        self.state.started = self.state.stage_started = time.monotonic()
        self.thread = threading.Thread(target=self._run, name=f"{self.name}-worker", daemon=True)
        self.thread.start()

    def run_inline(self) -> None:
        """Run the work in the calling thread (headless mode); call `drain()` afterwards."""
        self.state.started = self.state.stage_started = time.monotonic()
        self._run()

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    @property
    def alive(self) -> bool:
        """True while the worker thread still runs (it may linger briefly after a cancel)."""
        return self.thread is not None and self.thread.is_alive()

    def drain(self) -> bool:
        """Apply every queued event; True once the job has finished (result or error applied)."""
        while not self.state.finished:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            kind = event[0]
            if kind == "progress":
                self._apply_progress(event[1])
            elif kind == "done":
                self._finish("done")
                if self.token.cancelled:
                    # Cancelled after the last check: the user asked for nothing, so apply nothing.
                    self._call(self.on_error, Cancelled(), "")
                    self.state.outcome = "cancelled"
                else:
                    self._call(self.on_done, event[1])
            else:
                err, tb = event[1], event[2]
                self._finish("cancelled" if isinstance(err, Cancelled) else "failed")
                self._call(self.on_error, err, tb)
        return self.state.finished

    def drain_or_stop(self) -> bool:
        """`drain()` for interactive runs: once a cancel is asked for, finish as cancelled at once
        (on_error gets `Cancelled()`) instead of waiting for the worker's next check; whatever the
        worker still sends is never applied. True once the job has finished."""
        if self.token.cancelled and not self.state.finished:
            self._finish("cancelled")
            self._call(self.on_error, Cancelled(), "")
            return True
        return self.drain()

    def _apply_progress(self, p: Progress) -> None:
        if p.stage == WARNING:           # a warning, not a stage: the bar and the stage stay as they are
            self._call(self.on_progress, p)
            return
        now = time.monotonic()
        if p.stage != self.state.stage:
            self.state.stage, self.state.stage_started = p.stage, now
        self.state.fraction = p.fraction
        if p.overall is not None:
            self.state.overall = p.overall
        self.state.message = p.message
        self._call(self.on_progress, p)

    def _finish(self, outcome: str) -> None:
        self.state.finished = True
        self.state.outcome = outcome
        self.state.fraction = 1.0 if outcome == "done" else self.state.fraction

    @staticmethod
    def _call(fn, *args) -> None:
        if fn is not None:
            fn(*args)


# The task of each kind the UI tracks: "reconstruct" and "download" (a `Job`), "install" (a `deps.PipJob`).
# Scripts running operators synchronously never leave one behind.
_current: dict[str, Any] = {}
_dep_status: deps.DepStatus | None = None


def current(kind: str = "reconstruct"):
    """The tracked task of `kind`, or None."""
    return _current.get(kind)


def set_current(job, kind: str = "reconstruct") -> None:
    _current[kind] = job


def busy() -> bool:
    """True while a reconstruction is unfinished or its (cancelled) worker thread has not exited yet."""
    job = _current.get("reconstruct")
    return job is not None and (not job.state.finished or job.alive)


def dependency_status(refresh: bool = False, probe_device: bool = False) -> deps.DepStatus:
    """Dependency status, computed once and on request (drawing must stay cheap)."""
    global _dep_status
    if _dep_status is None or refresh:
        _dep_status = deps.check(probe_device=probe_device)
    return _dep_status


def shutdown(timeout: float = 2.0) -> None:
    """Cancel every tracked task and wait briefly for a reconstruction's worker (used by unregister)."""
    tasks = dict(_current)
    _current.clear()
    for task in tasks.values():
        if task is not None:
            task.cancel()
    job = tasks.get("reconstruct")
    if job is not None and job.thread is not None:
        job.thread.join(timeout)


# -- modal operators: the timer that drains a job, and redrawing what shows its progress --

def start_modal_timer(op, context, interval: float) -> set:
    """Add a window timer (kept as `op._timer`) and `op` as modal handler; returns {"RUNNING_MODAL"}."""
    wm = context.window_manager
    op._timer = wm.event_timer_add(interval, window=context.window)
    wm.modal_handler_add(op)
    return {"RUNNING_MODAL"}


def stop_modal_timer(op, context) -> None:
    """Remove the timer `start_modal_timer` added (safe to call twice)."""
    if op._timer is not None:
        context.window_manager.event_timer_remove(op._timer)
        op._timer = None


def redraw(context) -> None:
    """Redraw every 3D View (the sidebar panel) and Preferences area (download / install progress)."""
    wm = context.window_manager if context is not None else None
    for win in getattr(wm, "windows", []):
        for area in win.screen.areas:
            if area.type in {"VIEW_3D", "PREFERENCES"}:
                area.tag_redraw()


# -- what an operator reports when its job ends --

Outcome = tuple[str, set, str]   # (status "done" | "cancelled" | "failed", report level, message)


def error_outcome(err: BaseException, tb: str, what: str, cancelled_message: str) -> Outcome:
    """The report for a job that raised: a PointmapError's own sentence, never a traceback; anything
    unexpected gets one line in the UI and its traceback on the console. `what`: "Reconstruction", ..."""
    if isinstance(err, Cancelled):
        return ("cancelled", {"WARNING"}, cancelled_message)
    if isinstance(err, PointmapError):
        return ("failed", {"ERROR"}, str(err))
    print(f"pointmap: {what.lower()} failed\n{tb}", flush=True)
    return ("failed", {"ERROR"}, f"{what} failed ({type(err).__name__}: {err}); details are in the system console.")


def report_outcome(op, outcome: Outcome) -> set:
    """Report `outcome` through the operator and return its result set."""
    status, level, message = outcome
    op.report(level, message)
    return {"FINISHED"} if status == "done" else {"CANCELLED"}
