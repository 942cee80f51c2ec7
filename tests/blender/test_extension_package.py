"""The extension validates, builds a clean zip, installs into a user repository, runs and unloads.

Blender work happens in a subprocess with its own BLENDER_USER_RESOURCES so installing an extension
never touches the real user configuration or the state of other tests.
"""

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")
ROOT = Path(__file__).resolve().parents[2]


def _blender_ext() -> str:
    return os.path.join(bpy.utils.resource_path("LOCAL"), "scripts/addons_core/bl_pkg/cli/blender_ext.py")


def _run(args, **kw):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("ext_build")
    res = _run([_blender_ext(), "build", "--source-dir", str(ROOT), "--output-dir", str(out)])
    assert res.returncode == 0, res.stdout + res.stderr
    zips = list(out.glob("*.zip"))
    assert len(zips) == 1
    return zips[0]


def test_manifest_validates():
    res = _run([_blender_ext(), "validate", str(ROOT)])
    assert res.returncode == 0, res.stdout + res.stderr


def test_zip_leaves_development_files_out(built_zip):
    names = zipfile.ZipFile(built_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert "operators/reconstruct.py" in names and "ui/panel.py" in names and "core/errors.py" in names
    banned_prefixes = ("tests/", "bench/", ".venv/", ".ci/", ".git/", "docs/", "samples/", "out/")
    banned_names = {"Makefile", "pyproject.toml", "DEVELOPING.md"}
    for n in names:
        assert not n.startswith(banned_prefixes), n
        assert n not in banned_names, n
        assert "__pycache__" not in n and ".egg-info" not in n and not n.endswith(".pyc"), n


INSTALL_SCRIPT = textwrap.dedent("""
    import json, sys
    import bpy
    zip_path, repo_dir, photos, out_json = sys.argv[1:5]
    facts = {}
    bpy.context.preferences.extensions.repos.new(
        name="pmtest", module="pmtest", custom_directory=repo_dir, source="USER")
    facts["install"] = sorted(bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="pmtest", enable_on_install=True))
    mod = "bl_ext.pmtest.pointmap"
    facts["enabled"] = mod in bpy.context.preferences.addons
    facts["classes"] = sorted(k for k in dir(bpy.types) if k.startswith("POINTMAP_"))
    facts["ops"] = sorted(k for k in dir(bpy.ops.pointmap))
    facts["scene_settings"] = bpy.context.scene.pointmap.graph
    facts["prefs_device"] = bpy.context.preferences.addons[mod].preferences.device
    facts["site_dir_on_path"] = any(p.endswith("site-packages") and "pmtest" in p for p in sys.path)
    pkg = sys.modules[mod]
    facts["cli_registered"] = pkg._cli_handle is not None
    # Run something through the installed copy: an empty folder gives a clear report.
    try:
        bpy.ops.pointmap.reconstruct(directory=photos + "/missing")
        facts["report"] = ""
    except RuntimeError as err:
        facts["report"] = str(err)
    facts["check_deps"] = sorted(bpy.ops.pointmap.check_dependencies())
    bpy.ops.preferences.addon_disable(module=mod)
    facts["after_classes"] = sorted(k for k in dir(bpy.types) if k.startswith("POINTMAP_"))
    facts["after_scene_prop"] = hasattr(bpy.types.Scene, "pointmap")
    facts["after_cli"] = pkg._cli_handle is not None
    facts["after_site_dir"] = any("pmtest" in p for p in sys.path)
    facts["after_handlers"] = [
        name for name in dir(bpy.app.handlers) if not name.startswith("_")
        for fn in (getattr(bpy.app.handlers, name) if isinstance(getattr(bpy.app.handlers, name), list) else [])
        if getattr(fn, "__module__", "").startswith("bl_ext.pmtest")]
    facts["after_ops"] = hasattr(bpy.types, "POINTMAP_OT_reconstruct")
    json.dump(facts, open(out_json, "w"))
""")


def test_install_enable_run_disable(built_zip, tmp_path):
    script = tmp_path / "install.py"
    script.write_text(INSTALL_SCRIPT)
    out_json = tmp_path / "facts.json"
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    res = _run([str(script), str(built_zip), str(tmp_path / "repo"), str(tmp_path), str(out_json)], env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    facts = json.loads(out_json.read_text())
    assert facts["install"] == ["FINISHED"]
    assert facts["enabled"]
    for cls in ("POINTMAP_PT_main", "POINTMAP_OT_reconstruct", "POINTMAP_OT_cancel",
                "POINTMAP_OT_install_dependencies", "POINTMAP_OT_download_weights"):
        assert cls in facts["classes"], cls
    assert "reconstruct" in facts["ops"] and "cancel" in facts["ops"]
    assert facts["scene_settings"] == "COMPLETE" and facts["prefs_device"] == "AUTO"
    assert facts["site_dir_on_path"] and facts["cli_registered"]
    assert "missing" in facts["report"] and "does not exist" in facts["report"]
    assert facts["check_deps"] == ["FINISHED"]
    # Disabling leaves nothing behind.
    assert facts["after_classes"] == []
    assert not facts["after_scene_prop"] and not facts["after_cli"] and not facts["after_site_dir"]
    assert facts["after_handlers"] == [] and not facts["after_ops"]
