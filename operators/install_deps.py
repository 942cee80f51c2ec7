"""`pointmap.install_dependencies`: pip-install torch, torchvision and timm in the background.

pip runs as a subprocess (`deps.PipJob`) into the extension's user `site-packages`; a modal timer
copies its output into the preferences (last lines) and a text datablock (the whole log).
"""

from __future__ import annotations

import bpy

from .. import deps
from .. import tasks as jobs
from ..ui.preferences import get_prefs, site_packages_dir

LOG_TEXT = "pointmap_install_log"


def _pip() -> deps.PipJob | None:
    return jobs.current("install")


def _write_log(lines: list[str]) -> None:
    text = bpy.data.texts.get(LOG_TEXT) or bpy.data.texts.new(LOG_TEXT)
    text.from_string("\n".join(lines) + "\n")


class POINTMAP_OT_install_dependencies(bpy.types.Operator):
    """Install PyTorch, torchvision and timm for pointmap (into its own folder, not Blender's)"""

    bl_idname = "pointmap.install_dependencies"
    bl_label = "Install Dependencies"

    variant: bpy.props.EnumProperty(
        name="Variant", items=[("PREFS", "Preferences", ""), ("CPU", "CPU", ""), ("CUDA", "CUDA", "")],
        default="PREFS", options={"SKIP_SAVE"})

    _timer = None

    @classmethod
    def poll(cls, _context):
        return _pip() is None or not _pip().running

    def _command(self, context) -> list[str]:
        variant = self.variant
        if variant == "PREFS":
            prefs = get_prefs(context)
            variant = prefs.torch_variant if prefs is not None else "CPU"
        return deps.pip_install_command(site_packages_dir(), variant)

    def _start(self, context) -> bool:
        if not bpy.app.online_access:
            self.report({"ERROR"}, "Blender is set to work offline: allow online access in "
                                   "Preferences › System › Network to install dependencies.")
            return False
        jobs.set_current(deps.PipJob(self._command(context)), "install")
        _pip().start()
        return True

    def execute(self, context):
        # Scripts / background: run to completion.
        if not self._start(context):
            return {"CANCELLED"}
        _pip().wait()
        return self._finish(context)

    def invoke(self, context, _event):
        if bpy.app.background:
            return self.execute(context)
        if not self._start(context):
            return {"CANCELLED"}
        return jobs.start_modal_timer(self, context, 0.25)

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        jobs.redraw(context)
        if _pip().running:
            return {"PASS_THROUGH"}
        jobs.stop_modal_timer(self, context)
        return self._finish(context)

    def _finish(self, _context):
        _, log = _pip().snapshot()
        _write_log(log)
        status = jobs.dependency_status(refresh=True)
        if _pip().returncode == 0 and status.ok:
            self.report({"INFO"}, "Dependencies installed: " +
                        ", ".join(f"{k} {v}" for k, v in status.versions.items()))
            return {"FINISHED"}
        self.report({"ERROR"}, f"Installing dependencies failed (pip exit code {_pip().returncode}); "
                               f"see the text '{LOG_TEXT}' for pip's output.")
        return {"CANCELLED"}

    def cancel(self, context):
        if _pip() is not None:
            _pip().cancel()
        jobs.stop_modal_timer(self, context)


classes = (POINTMAP_OT_install_dependencies,)
register, unregister = bpy.utils.register_classes_factory(classes)
