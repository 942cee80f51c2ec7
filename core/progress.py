"""One progress type for every long stage (loading, encoding, pairs, alignment, VGGT, ...)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """A progress report.

    stage:   short machine name: "load", "encode", "pairs", "align", "vggt", "build", ...
    done:    units finished in this stage (0 <= done <= total)
    total:   units in this stage (>= 1)
    message: optional human text ("pair 12/56", "iteration 80, loss 0.0123")
    loss:    alignment loss at this step, when it has one
    overall: fraction (0..1) of the whole run, filled in by `core.reconstruct` across its stages
    """

    stage: str
    done: int
    total: int
    message: str = ""
    loss: float | None = None
    overall: float | None = None

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, max(0.0, self.done / self.total))


ProgressFn = Callable[[Progress], None]

# Progress.stage of a warning event: `message` is the warning, sent the moment it is known so headless runs
# print it then (it also stays in Reconstruction.warnings). Not a stage: progress bars ignore it.
WARNING = "warning"


def warn(progress: ProgressFn | None, message: str) -> None:
    """Send one warning through `progress` (see WARNING), if a callback is given."""
    if progress is not None:
        progress(Progress(WARNING, 1, 1, message))


def report(progress: ProgressFn | None, stage: str, done: int, total: int, message: str = "",
           loss: float | None = None) -> None:
    """Call `progress` with a `Progress` built from the arguments, if a callback is given."""
    if progress is not None:
        progress(Progress(stage, int(done), int(total), message, loss))


def eta_text(started: float, done: int, total: int, now: float | None = None) -> str:
    """"ETA 1 min 5 s" from the pace so far (`started`: time.perf_counter() at 0 units done); "" at 0."""
    import time

    if done <= 0 or total <= done:
        return ""
    left = (((now if now is not None else time.perf_counter()) - started) / done) * (total - done)
    minutes, seconds = divmod(int(round(left)), 60)
    return f"ETA {minutes} min {seconds} s" if minutes else f"ETA {seconds} s"


class ConsoleProgress:
    """Progress printer for headless runs (CLI, demo, `blender -b`): one line per stage change or 10 % step,
    and every warning event the moment it arrives, flushed at once so the lines appear while the job runs.
    `shown` holds the warnings printed; `unshown(warnings)` gives the rest, for printing at the end."""

    def __init__(self, prefix: str = "pointmap"):
        self.prefix = prefix
        self.shown: list[str] = []
        self._stage: str | None = None
        self._tenth = -1

    def __call__(self, p: Progress) -> None:
        if p.stage == WARNING:
            if p.message not in self.shown:
                self.shown.append(p.message)
                print(f"{self.prefix}: warning: {p.message}", flush=True)
            return
        tenth = int(p.fraction * 10)
        if p.stage != self._stage or tenth != self._tenth:
            self._stage, self._tenth = p.stage, tenth
            print(f"{self.prefix}: {p.stage} {p.done}/{p.total} {p.message}".rstrip(), flush=True)

    def unshown(self, warnings) -> list[str]:
        return [w for w in warnings if w not in self.shown]


def console_progress(prefix: str = "pointmap") -> ConsoleProgress:
    """A `ConsoleProgress` printer (kept as a function: the name callers use)."""
    return ConsoleProgress(prefix)


def count(n: int, noun: str) -> str:
    """"1 view", "3 views": a count with its noun in the right number (regular plurals)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
