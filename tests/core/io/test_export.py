"""PLY and COLMAP export: read the files back and check they describe the same cameras and points."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_synthrecon import make_synthetic_recon, net_pixels_in_orig
from pointmap.core.align.geometry import rotation_to_quaternion
from pointmap.core.io.export import point_cloud, write_colmap, write_ply


@pytest.fixture(scope="module")
def rec():
    return make_synthetic_recon()


def _quat_to_rot(q):
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def test_quaternions_round_trip_every_branch():
    rng = np.random.default_rng(1)
    # Random rotations plus the half-turns that send Shepperd's method down each branch.
    rots = [np.linalg.qr(m)[0] * np.sign(np.linalg.det(np.linalg.qr(m)[0])) for m in rng.normal(size=(200, 3, 3))]
    rots += [np.diag(d) for d in ([1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, 1])]
    R = np.stack(rots)
    q = rotation_to_quaternion(R)
    assert np.allclose(np.linalg.norm(q, axis=1), 1) and (q[:, 0] >= 0).all()
    back = np.stack([_quat_to_rot(v) for v in q])
    np.testing.assert_allclose(back, R, atol=1e-12)


def test_ply_holds_every_kept_point(rec, tmp_path):
    n = write_ply(rec, tmp_path / "cloud.ply", min_conf=0.5)
    data = (tmp_path / "cloud.ply").read_bytes()
    header, body = data.split(b"end_header\n", 1)
    assert b"element vertex %d" % n in header and b"property float confidence" in header
    dtype = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1"),
             ("c", "<f4"), ("v", "<i4")]
    v = np.frombuffer(body, dtype=dtype)
    pts, cols, conf, view = point_cloud(rec, min_conf=0.5)
    assert len(v) == n == len(pts) and (conf >= 0.5).all()
    np.testing.assert_array_equal(np.stack([v["x"], v["y"], v["z"]], 1), pts)
    np.testing.assert_array_equal(np.stack([v["r"], v["g"], v["b"]], 1), cols)
    np.testing.assert_array_equal(v["v"], view)


def test_colmap_cameras_project_points_onto_their_pixels(rec, tmp_path):
    write_colmap(rec, tmp_path / "sparse", points=500)
    cams = {}
    for line in (tmp_path / "sparse" / "cameras.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            cid, model, w, h, fx, fy, cx, cy = line.split()
            assert model == "PINHOLE"
            cams[int(cid)] = (int(w), int(h), *map(float, (fx, fy, cx, cy)))
    lines = [s for s in (tmp_path / "sparse" / "images.txt").read_text().splitlines() if not s.startswith("#")]
    images = [lines[k].split() for k in range(0, len(lines), 2) if lines[k]]
    assert len(images) == rec.n_views == len(cams)
    for i, row in enumerate(images):
        q, t = np.array(row[1:5], float), np.array(row[5:8], float)
        w, h, fx, fy, cx, cy = cams[int(row[8])]
        assert (h, w) == tuple(rec.image_sizes[i]) and row[9] == f"{rec.names[i]}.png"
        cam = rec.points[i].reshape(-1, 3).astype(np.float64) @ _quat_to_rot(q).T + t
        uv = np.stack([fx * cam[:, 0] / cam[:, 2] + cx, fy * cam[:, 1] / cam[:, 2] + cy], 1)
        # COLMAP's pixel centres sit at +0.5 of ours.
        expected = net_pixels_in_orig(rec, i).reshape(-1, 2) + 0.5
        ok = np.isfinite(uv).all(1)
        np.testing.assert_allclose(uv[ok], expected[ok], atol=1e-3)
    pts = np.loadtxt(tmp_path / "sparse" / "points3D.txt")
    assert pts.shape == (500, 8) and (pts[:, 4:7] <= 255).all()
