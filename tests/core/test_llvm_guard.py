"""A Workbench render in the bpy module maps Mesa's libLLVM; importing triton after that used to segfault.

The guard must make the model imports safe in that state (each case runs in a fresh process, since the
crash kills the interpreter)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("bpy")

RENDER = """
import bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
sc = bpy.context.scene
sc.render.engine = "BLENDER_WORKBENCH"
sc.render.resolution_x, sc.render.resolution_y = 32, 24
cam = bpy.data.objects.new("c", bpy.data.cameras.new("c")); sc.collection.objects.link(cam); sc.camera = cam
sc.render.filepath = {png!r}
bpy.ops.render.render(write_still=True)
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)


def test_models_import_after_a_workbench_render(tmp_path):
    code = RENDER.format(png=str(tmp_path / "r.png")) + """
from pointmap.core.llvm_guard import _system_llvm_loaded
llvm = _system_llvm_loaded()
from pointmap.core.models import build_model   # imports timm -> torchvision -> torch._dynamo
import pointmap.core.models.layers, pointmap.core.models.vggt.blocks
from pointmap.core.llvm_guard import triton_blocked
assert (triton_blocked() is not None) == (llvm is not None), (llvm, triton_blocked())
print("survived", llvm is not None)
"""
    res = _run(code)
    assert res.returncode == 0 and "survived" in res.stdout, res.stdout[-2000:] + res.stderr[-2000:]


def test_guard_leaves_clean_processes_alone():
    res = _run("import pointmap.core.models.layers, sys; from pointmap.core.llvm_guard import triton_blocked; "
               "print(triton_blocked(), sys.modules.get('triton', 'absent') is not None)")
    # Not blocked, and `import triton` was not turned into a failure (sys.modules["triton"] is not None).
    assert res.returncode == 0 and res.stdout.split() == ["None", "True"], res.stdout + res.stderr
