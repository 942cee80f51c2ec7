"""Add-on preferences: checkpoint, weights cache, device, precision, dependencies and weights.

Also the helpers everything else uses to read them (`get_settings`), which fall back to defaults
when the classes were registered without enabling the add-on (scripts, the demo, the bpy module).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import bpy
from bpy.props import EnumProperty, StringProperty

from .. import deps
from ..core.weights.bundled import DEMO_NAME

ADDON_ID = __package__.rpartition(".")[0]       # "pointmap" or "bl_ext.<repo>.pointmap"
LOCAL = "LOCAL"

DEVICE_ITEMS = [
    ("AUTO", "Auto", "CUDA, then Apple MPS, then CPU"),
    ("CUDA", "CUDA", "NVIDIA GPU"),
    ("MPS", "Apple MPS", "Apple silicon GPU"),
    ("CPU", "CPU", "Processor only (slow)"),
]
PRECISION_ITEMS = [
    ("AUTO", "Auto", "Half precision on GPUs that support it, else float32"),
    ("FP32", "Float32", "Full precision"),
    ("FP16", "Float16", "Half precision (CUDA)"),
    ("BF16", "BFloat16", "Brain float (recent GPUs)"),
]
VARIANT_ITEMS = [
    ("CPU", "CPU", "PyTorch CPU wheels (~200 MB, any machine)"),
    ("CUDA", "CUDA / default", "PyTorch from PyPI: CUDA on Linux/Windows (~2.5 GB), MPS on macOS"),
]


def user_dir(sub: str) -> str:
    """A per-user folder for this extension: the extension user directory, or a config folder when
    the package was registered outside the extension system."""
    try:
        return bpy.utils.extension_path_user(ADDON_ID, path=sub, create=True)
    except ValueError:
        path = os.path.join(bpy.utils.user_resource("DATAFILES", path="pointmap"), sub)
        os.makedirs(path, exist_ok=True)
        return path


def site_packages_dir() -> str:
    return user_dir("site-packages")


_registry_items: list[tuple[str, str, str]] = []


def _checkpoint_items(_self, _context):
    # Blender keeps pointers into these strings: the list must outlive the call, hence the module global,
    # filled once (the registry is fixed).
    if not _registry_items:
        from ..core.weights import registry

        # Checkpoints a studio may use commercially (Apache-2.0 DA3 models) say so in the list itself.
        _registry_items.extend((name, name + (" (Apache-2.0, commercial use OK)" if registry.get(name).commercial_ok
                                              else ""), registry.get(name).description) for name in registry.names())
        _registry_items.append((DEMO_NAME, "pointmap demo model (bundled, offline)",
                                "A small DUSt3R trained here on synthetic scenes, shipped with the extension: "
                                "nothing to download; for trying pointmap, not for real photos"))
        _registry_items.append((LOCAL, "Local file or folder", "A checkpoint already on disk"))
    return _registry_items


class POINTMAP_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    checkpoint: EnumProperty(name="Checkpoint", items=_checkpoint_items,
                             description="Model used when the panel names none")
    local_checkpoint: StringProperty(name="Local Checkpoint", subtype="FILE_PATH",
                                     description=".pth / .safetensors file or a Hugging Face folder")
    cache_dir: StringProperty(name="Weights Folder", subtype="DIR_PATH",
                              description="Where downloaded weights are kept (empty: the extension's user folder)")
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="AUTO")
    precision: EnumProperty(name="Precision", items=PRECISION_ITEMS, default="AUTO")
    torch_variant: EnumProperty(name="PyTorch", items=VARIANT_ITEMS, default="CPU")

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        col.prop(self, "checkpoint")
        if self.checkpoint == LOCAL:
            col.prop(self, "local_checkpoint")
        elif self.checkpoint == DEMO_NAME:
            col.label(text="Bundled with the extension: nothing to download.", icon="CHECKMARK")
        else:
            row = col.row()
            row.prop(self, "cache_dir")
            col.label(text=f"Weights: {weights_dir(self)}", icon="FILE_FOLDER")
            draw_download(col, context, self.checkpoint)
        row = col.row()
        row.prop(self, "device")
        row.prop(self, "precision")
        draw_dependencies(layout.box(), context, self)


def weights_dir(prefs=None) -> str:
    if prefs is not None and prefs.cache_dir:
        return bpy.path.abspath(prefs.cache_dir)
    return user_dir("weights")


def draw_download(layout, _context, name: str) -> None:
    from .. import tasks

    job = tasks.current("download")
    if job is not None and not job.state.finished:
        row = layout.row()
        row.progress(factor=job.state.fraction, text=job.state.message or "Downloading…")
        row.operator("pointmap.cancel", text="", icon="CANCEL")
    else:
        op = layout.operator("pointmap.download_weights", icon="IMPORT")
        op.name = name


def draw_dependencies(box, _context, prefs) -> None:
    from .. import tasks

    status = tasks.dependency_status()
    box.label(text="Dependencies", icon="SCRIPT")
    for name, version in status.versions.items():
        box.label(text=f"{name}: {version or 'not installed'}", icon="CHECKMARK" if version else "ERROR")
    if status.device:
        box.label(text=f"Devices: {status.device}")
    if status.error:
        box.label(text=status.error, icon="ERROR")
    row = box.row()
    row.operator("pointmap.check_dependencies", icon="FILE_REFRESH")
    job = tasks.current("install")
    if job is not None and job.running:
        row.operator("pointmap.cancel", text="Stop Installing", icon="CANCEL")
    else:
        row.prop(prefs, "torch_variant", text="")
        row.operator("pointmap.install_dependencies", icon="IMPORT")
    box.label(text=f"Installed into: {site_packages_dir()}")
    if job is not None:
        lines, _ = job.snapshot()
        col = box.column(align=True)
        for line in lines:
            col.label(text=line[:160])


@dataclass
class Settings:
    """Preferences as plain values (defaults when the add-on is not enabled through Blender)."""

    checkpoint: str = ""          # registry name or local path; "" = none chosen
    cache_dir: str = ""
    device: str = "auto"
    precision: str = "auto"


def preferred_checkpoint_label(settings: Settings) -> str:
    """The panel's line for a run that names no checkpoint: the preferences' choice, and when that official
    checkpoint is not downloaded, that the bundled demo model runs instead (`resolve_checkpoint`'s offline
    default). A few file checks; nothing is read."""
    from ..core.errors import PointmapError
    from ..core.weights.bundled import is_demo
    from ..core.weights.resolve import default_name, resolve_checkpoint

    name = settings.checkpoint or default_name()
    try:
        runs_demo = name != DEMO_NAME and is_demo(resolve_checkpoint("", settings.checkpoint, settings.cache_dir))
    except PointmapError:          # nothing usable: the run says why and how to get it
        runs_demo = False
    return f"Preferences: {name}" + (" (not downloaded: the demo model runs)" if runs_demo else "")


def get_prefs(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


def get_settings(context=None) -> Settings:
    prefs = get_prefs(context)
    if prefs is None:
        # Not enabled through Blender (scripts, the demo): share the core's cache ($POINTMAP_CACHE, ~/.cache).
        from ..core.weights.download import default_cache_dir

        return Settings(cache_dir=str(default_cache_dir()))
    ckpt = bpy.path.abspath(prefs.local_checkpoint) if prefs.checkpoint == LOCAL else prefs.checkpoint
    return Settings(checkpoint=ckpt, cache_dir=weights_dir(prefs), device=prefs.device.lower(),
                    precision=prefs.precision.lower())


classes = (POINTMAP_AP_preferences,)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    deps.add_site_dir(site_packages_dir())


def unregister():
    deps.remove_site_dir(site_packages_dir())
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
