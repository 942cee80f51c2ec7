"""pointmap: feed-forward 3D reconstruction (DUSt3R / MASt3R / VGGT) as a Blender extension.

This file is both the Blender extension entry point and the top of the Python package `pointmap`.
It touches bpy only inside register()/unregister(), so `import pointmap.core` works without Blender.
For scripts, `pointmap.reconstruct` (core) and `pointmap.build_scene` (Blender scene) load lazily.
"""

import importlib

# Registration order: settings and preferences first (operators and panels read them), panels last.
_MODULES = (
    "ui.properties",
    "ui.preferences",
    "operators.reconstruct",
    "operators.remesh",
    "operators.cancel",
    "operators.select_files",
    "operators.check_deps",
    "operators.install_deps",
    "operators.download_weights",
    "operators.use_camera",
    "operators.scene_tools",
    "ui.panel",
    "ui.scene_tools_panel",
)

_cli_handle = None


def _modules():
    return [importlib.import_module(f".{name}", __package__) for name in _MODULES]


def register():
    global _cli_handle
    import bpy

    from . import cli

    for mod in _modules():
        mod.register()
    _cli_handle = bpy.utils.register_cli_command("pointmap", cli.main)


def unregister():
    global _cli_handle
    import bpy

    from . import tasks

    # Stop background work first: its callbacks reference the classes about to go away.
    tasks.shutdown()
    if _cli_handle is not None:
        bpy.utils.unregister_cli_command(_cli_handle)
        _cli_handle = None
    for mod in reversed(_modules()):
        mod.unregister()


def __getattr__(name):
    if name == "reconstruct":
        from .core.pipeline import reconstruct

        return reconstruct
    if name == "build_scene":
        from .scene import build_scene

        return build_scene
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
