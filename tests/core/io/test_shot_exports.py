"""Shot exports without Blender: Nuke .chan, nerfstudio transforms.json, COLMAP of every frame."""

import json

import numpy as np
import pytest
from helpers_synthshot import make_synthetic_shot
from pointmap.core.io.chan import (
    CV_TO_YUP,
    euler_zxy_degrees,
    matrix_from_euler_zxy_degrees,
    write_chan,
    write_chan_from_reconstruction,
)
from pointmap.core.io.export import write_colmap
from pointmap.core.io.transforms import TransformsError, write_transforms
from pointmap.scene.camera_path import quaternion_to_matrix


def test_euler_zxy_round_trip_and_order():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(200, 4))
    R = quaternion_to_matrix(q)
    ang = euler_zxy_degrees(R)
    assert np.abs(matrix_from_euler_zxy_degrees(ang) - R).max() < 1e-12
    # ZXY: Z applied first. A pure 90° yaw (about Y) then tilt: R = Ry(30) Rx(20) Rz(10).
    R1 = matrix_from_euler_zxy_degrees(np.array([[20.0, 30.0, 10.0]]))
    assert np.allclose(euler_zxy_degrees(R1), [[20.0, 30.0, 10.0]])


def test_euler_angles_are_unwrapped():
    yaw = np.linspace(0, 720, 100)
    R = matrix_from_euler_zxy_degrees(np.column_stack([np.zeros(100), yaw, np.zeros(100)]))
    assert np.allclose(euler_zxy_degrees(R)[:, 1], yaw)


def test_chan_from_reconstruction(tmp_path):
    rec = make_synthetic_shot(20, stride=2, start=1001)
    path = tmp_path / "shot.chan"
    write_chan_from_reconstruction(rec, path)
    table = np.loadtxt(path)
    assert table.shape == (20, 8)
    assert table[:, 0].tolist() == rec.frame_numbers.tolist()
    M = CV_TO_YUP @ rec.cam2world @ CV_TO_YUP
    assert np.abs(table[:, 1:4] - M[:, :3, 3]).max() < 1e-8
    assert np.abs(matrix_from_euler_zxy_degrees(table[:, 4:7]) - M[:, :3, :3]).max() < 1e-8
    fy, h = rec.K[0, 1, 1], rec.image_sizes[0, 0]
    assert table[:, 7] == pytest.approx(np.degrees(2 * np.arctan(h / (2 * fy))), rel=1e-9)
    # Nuke's camera looks down −Z with +Y up: the first camera (identity in OpenCV) looks down −Z.
    assert np.allclose(table[0, 1:7], 0.0, atol=1e-9)


def test_chan_refuses_bad_paths(tmp_path):
    from pointmap.core.errors import PointmapError

    with pytest.raises(PointmapError, match="cannot be written"):
        write_chan(tmp_path / "missing" / "x.chan", np.arange(2), np.tile(np.eye(4), (2, 1, 1)), 40.0)


def test_transforms_json(tmp_path):
    rec = make_synthetic_shot(10, stride=3, plate_dir=str(tmp_path / "plate"))
    out = write_transforms(rec, tmp_path / "ns" / "transforms.json")
    d = json.loads(out.read_text())
    assert d["camera_model"] == "OPENCV"
    assert d["w"] == 480 and d["h"] == 270
    assert d["fl_x"] == pytest.approx(rec.K[0, 0, 0]) and d["cx"] == pytest.approx(rec.K[0, 0, 2] + 0.5)
    assert d["ply_file_path"] == "points.ply" and (tmp_path / "ns" / "points.ply").exists()
    assert len(d["frames"]) == 10
    for i, fr in enumerate(d["frames"]):
        c2w = np.array(fr["transform_matrix"]) @ np.diag([1.0, -1, -1, 1])
        assert np.allclose(c2w, rec.cam2world[i])
        assert (tmp_path / "ns" / fr["file_path"]).resolve() == (tmp_path / "plate" / f"plate.{fr['frame_number']:04d}.png")


def test_transforms_zoom_has_per_frame_intrinsics(tmp_path):
    rec = make_synthetic_shot(5, zoom=0.2, plate_dir=str(tmp_path / "p"))
    d = json.loads(write_transforms(rec, tmp_path / "t.json", ply_name=None).read_text())
    assert "fl_x" not in d and "ply_file_path" not in d
    assert d["frames"][-1]["fl_x"] == pytest.approx(rec.K[-1, 0, 0])


def test_transforms_needs_frame_files(tmp_path):
    rec = make_synthetic_shot(4)
    with pytest.raises(TransformsError, match="needs an image file"):
        write_transforms(rec, tmp_path / "t.json")
    assert not (tmp_path / "t.json").exists() and not (tmp_path / "points.ply").exists()


def test_colmap_every_frame_one_camera(tmp_path):
    rec = make_synthetic_shot(12, stride=2)
    rec.paths = ["/clips/shot.mp4"] * rec.n_views          # frames of one movie: names from frame numbers
    write_colmap(rec, tmp_path, points=100, single_camera=True)
    cams = [ln for ln in (tmp_path / "cameras.txt").read_text().splitlines() if not ln.startswith("#")]
    imgs = [ln for ln in (tmp_path / "images.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(cams) == 1 and len(imgs) == 12
    names = [ln.split()[-1] for ln in imgs]
    assert names[0] == "shot.1001.png" and len(set(names)) == 12
    assert {ln.split()[8] for ln in imgs} == {"1"}
