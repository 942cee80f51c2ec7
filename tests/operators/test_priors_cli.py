"""`--intrinsics FX FY CX CY` and `--known-poses FILE` on the CLI (tiny random-weight DUSt3R), and the pose
file reader (`core/io/poses.py`) on both of its formats."""

import json

import numpy as np
import pytest
from conftest import FIXTURES, tiny_checkpoint

bpy = pytest.importorskip("bpy")


def _pose(deg, centre):
    t = np.radians(deg)
    T = np.eye(4)
    T[:3, :3] = [[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]]
    T[:3, 3] = centre
    return T


def test_cli_keeps_the_lens_and_the_known_poses(photos, tmp_path):
    from pointmap import cli
    from pointmap.core.reconstruction import Reconstruction

    bpy.ops.wm.read_factory_settings(use_empty=True)
    poses = {"view0.png": _pose(0, [0, 0, 0]), "view2.png": _pose(-6, [0.4, 0, 0.02])}
    out = tmp_path / "out"
    out.mkdir()
    pose_file = out / "poses.json"
    pose_file.write_text(json.dumps({"cameras": {k: {"cam2world": v.tolist()} for k, v in poses.items()}}))
    code = cli.main([str(photos), "-o", str(out / "scene.blend"), "--checkpoint", tiny_checkpoint(),
                     "--image-size", "64", "--iterations", "10", "--device", "cpu",
                     "--intrinsics", "70", "72", "31", "24.5", "--known-poses", str(pose_file),
                     "--save-reconstruction", str(out / "rec.npz")])
    assert code == 0
    rec = Reconstruction.load(out / "rec.npz")
    K = np.array([[70, 0, 31], [0, 72, 24.5], [0, 0, 1]])
    np.testing.assert_allclose(rec.K, np.stack([K] * 3), atol=1e-9)
    names = [p.rsplit("/", 1)[-1] for p in rec.paths]
    for name, T in poses.items():
        np.testing.assert_allclose(rec.cam2world[names.index(name)], T, atol=1e-6)


def test_cli_bad_pose_files_are_usage_errors(photos, tmp_path, capsys):
    from pointmap import cli

    bpy.ops.wm.read_factory_settings(use_empty=True)
    args = [str(photos), "-o", str(tmp_path / "o.blend"), "--checkpoint", tiny_checkpoint(), "--device", "cpu"]
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps({"cameras": {"view0.png": [[1, 0, 0], [0, 1, 0]]}}))
    for path, says in ((broken, "cannot read"), (flat, "4x4"), (tmp_path / "none.json", "is not a file")):
        assert cli.main([*args, "--known-poses", str(path)]) == cli.EXIT_USAGE
        out = capsys.readouterr().out
        assert says in out and str(path) in out
    assert cli.main([*args, "--intrinsics", "-5", "5", "1", "1"]) == cli.EXIT_USAGE
    assert "positive" in capsys.readouterr().out
    # A name no photo has is found before the network runs, and nothing is written.
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"elsewhere.jpg": np.eye(4).tolist()}))
    assert cli.main([*args, "--known-poses", str(unknown)]) == cli.EXIT_FAILED
    assert "elsewhere.jpg" in capsys.readouterr().out and not (tmp_path / "o.blend").exists()


def test_pose_reader_takes_camera_files_and_saved_solves(tmp_path):
    from helpers_synthrecon import make_synthetic_recon
    from pointmap.core.io.poses import read_known_poses

    samples = read_known_poses(FIXTURES.parents[1] / "samples" / "photos" / "cameras.json")
    assert len(samples) == 7 and all(k.endswith(".jpg") for k in samples)
    rec = make_synthetic_recon(n_views=3)
    rec.save(tmp_path / "photos.npz")
    by_name = read_known_poses(tmp_path / "photos.npz")
    assert len(by_name) == 3
    np.testing.assert_allclose(np.stack(list(by_name.values())), rec.cam2world)
    rec.frame_numbers = np.array([1001, 1002, 1003])
    rec.save(tmp_path / "shot.npz")
    assert sorted(read_known_poses(tmp_path / "shot.npz")) == [1001, 1002, 1003]
    digits = tmp_path / "frames.json"
    digits.write_text(json.dumps({"1001": np.eye(4).tolist()}))
    assert list(read_known_poses(digits)) == [1001]
