"""Atomic builds: remember every datablock, file and setting a build creates, and undo them all."""

from __future__ import annotations

import os
from collections.abc import Callable


class Created:
    """Ledger of one build. `undo()` leaves bpy.data (and written files) exactly as before the build."""

    def __init__(self) -> None:
        self.ids: list = []
        self.files: list[str] = []
        self.dirs: list[str] = []
        self._restore: list[Callable[[], None]] = []

    def add(self, idblock):
        """Record a newly created ID (object, mesh, image, ...) and return it."""
        self.ids.append(idblock)
        return idblock

    def add_file(self, path: str) -> None:
        """Record a file this build created (never one that existed before): undo deletes it."""
        self.files.append(path)

    def add_dir(self, path: str) -> None:
        """Record a folder this build created: undo removes it once its recorded files are gone, if empty."""
        self.dirs.append(path)

    def on_undo(self, fn: Callable[[], None]) -> None:
        """Register a function restoring something changed in place (scene settings)."""
        self._restore.append(fn)

    def undo(self) -> None:
        import bpy

        for fn in reversed(self._restore):
            fn()
        # batch_remove also unlinks objects from collections and clears users in one pass.
        alive = [i for i in self.ids if _alive(i)]
        if alive:
            bpy.data.batch_remove(alive)
        for path in self.files:
            try:
                os.remove(path)
            except OSError:
                pass
        for path in reversed(self.dirs):
            try:
                os.rmdir(path)      # only when empty: a file someone else put there stays, with its folder
            except OSError:
                pass
        self.ids.clear()
        self.files.clear()
        self.dirs.clear()
        self._restore.clear()


def _alive(idblock) -> bool:
    try:
        idblock.name   # noqa: B018 - a removed ID raises ReferenceError on access
        return True
    except ReferenceError:
        return False
