"""PLY and COLMAP export: read the files back and check they describe the same cameras and points."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers_synthrecon import make_synthetic_recon, net_pixels_in_orig
from pointmap.core.align.geometry import rotation_to_quaternion
from pointmap.core.io.export import write_colmap, write_ply


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


def test_ply_rows_are_the_reconstruction_arrays(rec, tmp_path):
    """Expected rows built straight from the Reconstruction's arrays (not from export.point_cloud): view by view,
    pixel rows then columns, every pixel with a finite point and confidence >= min_conf, colour and confidence
    included. Non-finite points (NaN, inf) and a pixel exactly at the threshold are planted."""
    points = [p.copy() for p in rec.points]
    conf = [c.copy() for c in rec.conf]
    points[0][0, 0] = np.nan
    points[1][2, 3, 1] = np.inf
    conf[2][1, 1] = 0.5                                  # kept: the threshold is inclusive
    conf[2][1, 2] = np.nextafter(np.float32(0.5), np.float32(0))
    r = dataclasses.replace(rec, points=points, conf=conf)
    n = write_ply(r, tmp_path / "cloud.ply", min_conf=0.5)

    expected = []
    for i in range(r.n_views):
        h, w = r.conf[i].shape
        for y in range(h):
            for x in range(w):
                p, c = r.points[i][y, x], float(r.conf[i][y, x])
                if np.isfinite(p).all() and c >= 0.5:
                    expected.append((*p.tolist(), *r.colors[i][y, x].tolist(), c, i))
    assert 0 < len(expected) < sum(c.size for c in r.conf)

    header, body = (tmp_path / "cloud.ply").read_bytes().split(b"end_header\n", 1)
    assert header.decode("ascii").splitlines() == [
        "ply", "format binary_little_endian 1.0", f"comment pointmap {r.family} {r.model}".rstrip(),
        f"element vertex {len(expected)}", "property float x", "property float y", "property float z",
        "property uchar red", "property uchar green", "property uchar blue", "property float confidence",
        "property int view"]
    rows = np.frombuffer(body, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"),
                                      ("b", "u1"), ("c", "<f4"), ("v", "<i4")])
    assert n == len(rows) == len(expected)
    for k, (row, exp) in enumerate(zip(rows.tolist(), expected, strict=True)):
        assert row == exp, (k, row, exp)     # bit-exact: float32 values survive the float conversion


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
