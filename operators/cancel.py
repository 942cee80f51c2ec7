"""`pointmap.cancel`: stop the running reconstruction, weights download or dependency install."""

from __future__ import annotations

import bpy

from .. import tasks as jobs

WHAT_ITEMS = [
    ("AUTO", "Whatever Runs", "Every pointmap task that is running"),
    ("RECONSTRUCT", "Reconstruction", ""),
    ("DOWNLOAD", "Download", ""),
    ("INSTALL", "Install", ""),
]


def running_tasks() -> dict:
    """Name -> object with .cancel() for every task in progress."""
    tasks = {}
    rec = jobs.current()
    if rec is not None and not rec.state.finished:
        tasks["RECONSTRUCT"] = rec
    dl = jobs.current("download")
    if dl is not None and not dl.state.finished:
        tasks["DOWNLOAD"] = dl
    pip = jobs.current("install")
    if pip is not None and pip.running:
        tasks["INSTALL"] = pip
    return tasks


class POINTMAP_OT_cancel(bpy.types.Operator):
    """Stop the running pointmap task; nothing it would have produced is added"""

    bl_idname = "pointmap.cancel"
    bl_label = "Cancel"
    bl_options = {"INTERNAL"}

    what: bpy.props.EnumProperty(name="What", items=WHAT_ITEMS, default="AUTO")

    @classmethod
    def poll(cls, _context):
        return bool(running_tasks())

    def execute(self, _context):
        tasks = running_tasks()
        chosen = tasks if self.what == "AUTO" else {k: v for k, v in tasks.items() if k == self.what}
        if not chosen:
            self.report({"INFO"}, "Nothing to cancel.")
            return {"CANCELLED"}
        for task in chosen.values():
            task.cancel()
        return {"FINISHED"}


classes = (POINTMAP_OT_cancel,)
register, unregister = bpy.utils.register_classes_factory(classes)
