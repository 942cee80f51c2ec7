"""`build_shot` from a saved shot (what `--from-reconstruction ... --animated-camera` runs)."""

import json

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from helpers_synthshot import make_synthetic_shot  # noqa: E402
from pointmap.core.errors import InputError, PointmapError  # noqa: E402
from pointmap.scene import SceneOptions  # noqa: E402
from pointmap.scene.shot import build_shot  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_blender():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield


def test_build_shot_from_saved_reconstruction(tmp_path):
    rec = make_synthetic_shot(24, start=1001, plate_dir=str(tmp_path / "plate"))
    rec.save(tmp_path / "shot.npz")
    scene = bpy.context.scene
    coll = build_shot(str(tmp_path / "shot.npz"), scene, SceneOptions(depth_textures=None, cameras=False),
                      frames="1003:1020", stride=2, export_chan=str(tmp_path / "shot.chan"),
                      export_transforms=str(tmp_path / "ns" / "transforms.json"),
                      export_colmap=str(tmp_path / "colmap"))
    cam = next(o for o in coll.objects if o.type == "CAMERA")
    assert (scene.frame_start, scene.frame_end) == (1003, 1019)
    assert list(cam["pointmap_solved_frames"]) == list(range(1003, 1020, 2))
    chan = np.loadtxt(tmp_path / "shot.chan")
    assert chan[:, 0].tolist() == list(range(1003, 1020))
    d = json.loads((tmp_path / "ns" / "transforms.json").read_text())
    assert [f["frame_number"] for f in d["frames"]] == list(range(1003, 1020, 2))
    assert (tmp_path / "colmap" / "images.txt").exists()
    bg = cam.data.background_images[0]
    scene.frame_set(1010)
    assert bg.image.filepath_from_user(image_user=bg.image_user).endswith("plate.1010.png")


def test_build_shot_checks_inputs_and_outputs_first(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        build_shot(str(tmp_path / "missing.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a saved pointmap reconstruction"):
        build_shot(str(tmp_path / "junk.npz"))
    rec = make_synthetic_shot(4)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(PointmapError, match="is a file, not a folder"):
        build_shot(rec, export_chan=str(tmp_path / "afile" / "such" / "x.chan"))
    assert len(bpy.data.objects) == 0


def test_build_shot_takes_the_fused_mesh_of_the_whole_shot(tmp_path):
    """The mesh fused from the full saved shot goes into the shot's collection with the animated camera."""
    from pointmap.core.meshing import MeshOptions, fuse_reconstruction
    from pointmap.scene import keys

    rec = make_synthetic_shot(8, start=1001)
    rec.save(tmp_path / "shot.npz")
    mesh = fuse_reconstruction(rec, MeshOptions(device="cpu", min_confidence=0.5, voxel_size=0.3))
    coll = build_shot(str(tmp_path / "shot.npz"), bpy.context.scene, SceneOptions(depth_textures=None, cameras=False),
                      stride=2, fused_mesh=mesh)
    fused = [o for o in coll.objects if o.get(keys.FUSED_MESH)]
    assert len(fused) == 1 and len(fused[0].data.polygons) == mesh.n_faces
    assert sum(o.type == "CAMERA" for o in coll.objects) == 1
