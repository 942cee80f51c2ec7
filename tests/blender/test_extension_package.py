"""The extension validates, builds a clean zip, installs into a user repository, runs, unloads, uninstalls
(its files and user folder go, Blender's stay) and installs again.

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
    import json, os, sys
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

    # Uninstall: the extension's files and its own user folder (the dependency site-packages) go, Blender's
    # own folders stay as they were; then a reinstall works.
    ext_dir = os.path.join(repo_dir, "pointmap")
    user_dir = bpy.utils.extension_path_user(mod, create=True)
    site = bpy.utils.extension_path_user(mod, path="site-packages", create=True)
    open(os.path.join(site, "pm_marker.py"), "w").write("X = 1")   # as the dependency installer would
    def listing(top):
        return sorted(os.path.relpath(os.path.join(d, f), top) for d, _, fs in os.walk(top) for f in fs
                      if "__pycache__" not in d)
    blender_dirs = [p for p in sys.path if p.endswith("site-packages") and "pmtest" not in p and os.path.isdir(p)]
    blender_dirs.append(bpy.utils.user_resource("EXTENSIONS", path=".local"))
    blender_dirs = [p for p in blender_dirs if os.path.isdir(p)]
    blender_before = {p: listing(p) for p in blender_dirs}
    facts["user_dir_before"] = os.path.isdir(user_dir) and os.path.isfile(os.path.join(site, "pm_marker.py"))
    facts["ext_dir_before"] = os.path.isdir(ext_dir)
    repo_index = [r.directory for r in bpy.context.preferences.extensions.repos].index(repo_dir)
    facts["uninstall"] = sorted(bpy.ops.extensions.package_uninstall(
        repo_directory=repo_dir, repo_index=repo_index, pkg_id="pointmap"))
    facts["after_uninstall_ext_dir"] = os.path.exists(ext_dir)
    facts["after_uninstall_user_dir"] = os.path.exists(user_dir)
    facts["after_uninstall_enabled"] = mod in bpy.context.preferences.addons
    facts["blender_dirs"] = len(blender_dirs)
    facts["blender_dirs_unchanged"] = all(listing(p) == files for p, files in blender_before.items())
    facts["reinstall"] = sorted(bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="pmtest", enable_on_install=True))
    facts["reinstall_enabled"] = mod in bpy.context.preferences.addons
    facts["reinstall_classes"] = sorted(k for k in dir(bpy.types) if k.startswith("POINTMAP_")) == facts["classes"]
    facts["reinstall_scene_settings"] = bpy.context.scene.pointmap.graph
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
    # Uninstalling removes the extension's files and its user folder (with the dependency site-packages),
    # leaves Blender's own site-packages alone; a reinstall works.
    assert facts["ext_dir_before"] and facts["user_dir_before"]
    assert facts["uninstall"] == ["FINISHED"]
    assert not facts["after_uninstall_ext_dir"] and not facts["after_uninstall_user_dir"]
    assert not facts["after_uninstall_enabled"]
    assert facts["blender_dirs"] >= 1 and facts["blender_dirs_unchanged"]
    assert facts["reinstall"] == ["FINISHED"] and facts["reinstall_enabled"] and facts["reinstall_classes"]
    assert facts["reinstall_scene_settings"] == "COMPLETE"
