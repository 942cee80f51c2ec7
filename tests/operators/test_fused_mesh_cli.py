"""CLI `--fused-mesh` end to end with the tiny random-weight DUSt3R. Its random depth maps are not
multi-view consistent, so fusion finds no surface: the CLI must fail with the MeshingError sentence
and write no .blend. (The success path is covered by tests/scene/test_fused_mesh.py on a synthetic
reconstruction.)"""

import pytest
from conftest import tiny_checkpoint

bpy = pytest.importorskip("bpy")




def test_cli_fused_mesh_failure_is_a_clear_message_and_no_blend(photos, tmp_path, capsys):
    from pointmap import cli

    bpy.ops.wm.read_factory_settings(use_empty=True)
    out = tmp_path / "out"
    out.mkdir()
    blend = out / "scene.blend"
    code = cli.main([str(photos), "-o", str(blend), "--checkpoint", tiny_checkpoint(), "--image-size", "64",
                     "--iterations", "10", "--device", "cpu", "--min-conf", "0", "--fused-mesh", "--voxel-size", "0.2"])
    assert code == cli.EXIT_FAILED
    assert "gave no surface" in capsys.readouterr().out
    assert not blend.exists()


def test_cli_fused_mesh_from_a_saved_reconstruction(tmp_path):
    """No network: a saved synthetic reconstruction (consistent depth) becomes a .blend with a fused mesh."""
    from helpers_synthrecon import make_synthetic_recon
    from pointmap import cli
    from pointmap.scene import keys

    make_synthetic_recon(n_views=4).save(tmp_path / "rec.npz")
    out = tmp_path / "out.blend"
    assert cli.main(["--from-reconstruction", str(tmp_path / "rec.npz"), "-o", str(out), "--fused-mesh"]) == 0
    meshes = [o for o in bpy.data.objects if o.get(keys.FUSED_MESH)]
    assert meshes and len(meshes[-1].data.polygons) > 10 and "Color" in meshes[-1].data.attributes
    # The shot path carries the mesh too: one animated camera and the fused mesh in the same run.
    from helpers_synthrecon import ViewSpec

    n_before = len(meshes)
    make_synthetic_recon(views=[ViewSpec((300, 400), 2.5)], n_views=4).save(tmp_path / "shot.npz")
    assert cli.main(["--from-reconstruction", str(tmp_path / "shot.npz"), "-o", str(tmp_path / "shot.blend"),
                     "--fused-mesh", "--animated-camera"]) == 0
    meshes = [o for o in bpy.data.objects if o.get(keys.FUSED_MESH)]
    assert len(meshes) >= 1 and len(meshes[-1].data.polygons) > 10
    run = meshes[-1].users_collection[0]
    cams = [o for o in run.objects if o.type == "CAMERA" and o.animation_data and o.animation_data.action]
    assert len(cams) == 1, (n_before, [o.name for o in run.objects])


def test_cli_mesh_texture_gives_a_textured_fused_mesh(tmp_path, capsys):
    """`--mesh-texture SIZE` alone implies the fused mesh and textures it; a bad size is a usage error."""
    from helpers_synthrecon import make_synthetic_recon
    from pointmap import cli
    from pointmap.scene import keys

    bpy.ops.wm.read_factory_settings(use_empty=True)
    make_synthetic_recon(n_views=4).save(tmp_path / "rec.npz")
    args = ["--from-reconstruction", str(tmp_path / "rec.npz"), "-o", str(tmp_path / "out.blend")]
    assert cli.main([*args, "--mesh-texture", "-5"]) == cli.EXIT_USAGE
    assert "--mesh-texture -5" in capsys.readouterr().out
    assert cli.main([*args, "--mesh-texture", "1024"]) == 0
    mesh = [o for o in bpy.data.objects if o.get(keys.FUSED_MESH)][-1].data
    assert mesh.uv_layers.active is not None
    tex = [n for n in mesh.materials[0].node_tree.nodes if n.bl_idname == "ShaderNodeTexImage"]
    assert tex and tuple(tex[0].image.size) == (1024, 1024) and tex[0].image.packed_file is not None


def test_cli_no_refine_views_fuses_the_views_as_solved(tmp_path, monkeypatch):
    """`--no-refine-views` reaches MeshOptions.depth_fields (off); by default it is on."""
    from helpers_synthrecon import make_synthetic_recon
    from pointmap import cli
    from pointmap.core import meshing

    seen = []
    real = meshing.fuse_reconstruction

    def spy(rec, options=None):
        seen.append(options.depth_fields)
        return real(rec, options)

    monkeypatch.setattr(meshing, "fuse_reconstruction", spy)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    make_synthetic_recon(n_views=4).save(tmp_path / "rec.npz")
    args = ["--from-reconstruction", str(tmp_path / "rec.npz"), "--fused-mesh"]
    assert cli.main([*args, "-o", str(tmp_path / "a.blend")]) == 0
    assert cli.main([*args, "-o", str(tmp_path / "b.blend"), "--no-refine-views"]) == 0
    assert seen == [True, False]


def test_panel_refine_views_reaches_the_mesh_options():
    from types import SimpleNamespace

    from pointmap.operators.reconstruct import mesh_options

    op = SimpleNamespace(device="CPU", mesh_voxel_size=0.0, mesh_min_conf=3.0, mesh_face_budget=0,
                         mesh_texture_size=0, mesh_refine_views=False)
    assert mesh_options(op).depth_fields is False
    op.mesh_refine_views = True
    assert mesh_options(op).depth_fields is True
