"""`pointmap.check_dependencies`: re-check torch/torchvision/timm and which device torch sees."""

from __future__ import annotations

import bpy

from .. import tasks as jobs


class POINTMAP_OT_check_dependencies(bpy.types.Operator):
    """Check whether PyTorch, torchvision and timm import, and which devices PyTorch can use"""

    bl_idname = "pointmap.check_dependencies"
    bl_label = "Check Dependencies"
    bl_options = {"INTERNAL"}

    def execute(self, _context):
        status = jobs.dependency_status(refresh=True, probe_device=True)
        if status.ok:
            self.report({"INFO"}, f"Dependencies found; {status.device}")
        else:
            self.report({"WARNING"}, status.error or f"Missing: {', '.join(status.missing)}")
        return {"FINISHED"}


classes = (POINTMAP_OT_check_dependencies,)
register, unregister = bpy.utils.register_classes_factory(classes)
