"""`pointmap.remesh` in real bpy: rebuilds a run's fused mesh from its saved reconstruction, one undo step."""

import os

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from helpers_synthrecon import make_synthetic_recon  # noqa: E402
from pointmap.scene import keys  # noqa: E402

MESH = dict(fused_mesh=True, mesh_min_conf=0.5, mesh_voxel_size=0.3)


@pytest.fixture()
def run(registered, tmp_path):
    """A run built from a saved synthetic reconstruction with a coarse fused mesh; returns its collection name."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    make_synthetic_recon().save(tmp_path / "rec.npz")
    res = bpy.ops.pointmap.reconstruct(from_reconstruction=str(tmp_path / "rec.npz"), name="run",
                                       depth_textures="NONE", background_images=False, **MESH)
    assert res == {"FINISHED"}
    return "run", tmp_path / "rec.npz"


def _fused(name):
    return [o for o in bpy.data.collections[name].objects if o.get(keys.FUSED_MESH)]


def _world_vertices(obj) -> np.ndarray:
    co = np.zeros(3 * len(obj.data.vertices), np.float32)
    obj.data.vertices.foreach_get("co", co)
    M = np.array(obj.matrix_world)
    return co.reshape(-1, 3) @ M[:3, :3].T + M[:3, 3]


def test_remesh_replaces_the_mesh_and_undo_restores_it(run):
    name, _ = run
    old, = _fused(name)
    old_name, old_faces = old.name, len(old.data.polygons)
    bpy.ops.ed.undo_push(message="before re-mesh")
    res = bpy.ops.pointmap.remesh("EXEC_DEFAULT", True, mesh_voxel_size=0.2, mesh_min_conf=0.5)
    assert res == {"FINISHED"}
    new, = _fused(name)
    assert new.name == old_name and len(new.data.polygons) > old_faces
    assert new.data.color_attributes.get("Color") is not None and new.data.materials[0] is not None
    assert not [m for m in bpy.data.meshes if m.users == 0]          # the old mesh data went with it
    bpy.ops.ed.undo()
    back, = _fused(name)
    assert back.name == old_name and len(back.data.polygons) == old_faces


def test_remesh_keeps_what_scene_tools_did(run):
    """A run moved and scaled (x2) by a scene tool: the new mesh lands where the old one was; its voxel size is in
    scene units, so 0.6 now is the 0.3 of the build and gives the same surface."""
    from pointmap.scene.tools import apply_similarity

    name, _ = run
    coll = bpy.data.collections[name]
    S = np.eye(4)
    S[:3, :3] = 2.0 * np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    S[:3, 3] = (1.0, -2.0, 0.5)
    apply_similarity(coll, S, bpy.context.scene)
    before = _world_vertices(_fused(name)[0])
    assert bpy.ops.pointmap.remesh(run=name, mesh_voxel_size=0.6, mesh_min_conf=0.5) == {"FINISHED"}
    after = _world_vertices(_fused(name)[0])
    assert after.shape == before.shape and np.allclose(after, before, atol=1e-4)


def test_remesh_adds_a_mesh_to_a_run_without_one(registered, tmp_path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    make_synthetic_recon().save(tmp_path / "rec.npz")
    bpy.ops.pointmap.reconstruct(from_reconstruction=str(tmp_path / "rec.npz"), name="plain", depth_textures="NONE")
    assert not _fused("plain")
    bpy.context.view_layer.objects.active = bpy.data.collections["plain"].objects[0]
    assert bpy.ops.pointmap.remesh(mesh_voxel_size=0.3, mesh_min_conf=0.5) == {"FINISHED"}
    assert len(_fused("plain")) == 1


def test_missing_or_moved_file_is_named_and_nothing_changes(run):
    name, path = run
    faces = len(_fused(name)[0].data.polygons)
    os.rename(path, path.with_suffix(".moved"))
    with pytest.raises(RuntimeError, match=f"saved reconstruction of run 'run' is missing: {path} does not exist"):
        bpy.ops.pointmap.remesh(mesh_voxel_size=0.2)
    assert len(_fused(name)[0].data.polygons) == faces
    del bpy.data.collections[name][keys.RECONSTRUCTION]
    with pytest.raises(RuntimeError, match="has no saved reconstruction"):
        bpy.ops.pointmap.remesh()
    with pytest.raises(RuntimeError, match="no pointmap run called 'nope'"):
        bpy.ops.pointmap.remesh(run="nope")


def test_a_setting_that_gives_no_surface_keeps_the_old_mesh(run):
    name, _ = run
    old = _fused(name)[0].name
    with pytest.raises(RuntimeError, match="confiden"):
        bpy.ops.pointmap.remesh(mesh_min_conf=1e6)
    assert [o.name for o in _fused(name)] == [old]


def test_remesh_needs_a_run(registered):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert not bpy.ops.pointmap.remesh.poll()
