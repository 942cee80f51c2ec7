"""User-facing errors and cooperative cancellation.

Every failure a user can cause (a bad file, a wrong checkpoint, a cancelled run) is raised as a
`PointmapError` subclass whose message is a complete sentence naming the thing at fault, so the
Blender side can show `str(err)` as a report without a traceback.
"""

from __future__ import annotations

import threading


class PointmapError(Exception):
    """Base class for errors whose message is meant for the user."""


class InputError(PointmapError):
    """An input image/video/folder could not be used. `path` names it (may be None for arrays)."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


class CheckpointError(PointmapError):
    """A checkpoint file/folder is missing, truncated, of an unknown layout or does not fit the model."""


class UnsupportedOption(PointmapError):
    """An option the chosen backend cannot honour (e.g. a scene graph for VGGT); refused, never dropped."""


class DependencyError(PointmapError):
    """A runtime dependency (torch, torchvision, timm) is missing or unusable."""


class Cancelled(PointmapError):
    """The run was cancelled by the user; nothing was produced."""

    def __init__(self, message: str = "Cancelled by the user."):
        super().__init__(message)


class CancelToken:
    """Thread-safe cancel flag, set from the UI thread and polled by workers between batches/steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise `Cancelled` if cancellation was requested."""
        if self._event.is_set():
            raise Cancelled()


def check_cancel(cancel: CancelToken | None) -> None:
    """`cancel.check()` that accepts None (no cancellation possible)."""
    if cancel is not None:
        cancel.check()
