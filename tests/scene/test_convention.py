"""scene.convention and the numpy halves of the scene builder (no bpy needed)."""

import subprocess
import sys

import numpy as np
import pytest
from helpers_synthrecon import make_synthetic_recon
from pointmap.scene import SceneError, SceneOptions
from pointmap.scene.convention import (
    SRGB_TO_LINEAR,
    blender_intrinsics,
    camera_matrix_world,
    flip_rows,
    pixel_uv,
    project_blender,
    srgb8_to_linear_rgba,
    transform_points,
    world_rotation,
)
from pointmap.scene.meshes import grid_triangles
from pointmap.scene.textures import network_photo_array
from pointmap.scene.voxel import voxel_downsample


def test_scene_package_imports_without_bpy():
    code = ("import sys, pointmap.scene, pointmap.scene.convention, pointmap.scene.options; "
            "assert 'bpy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("w,h,fx,fy,cx,cy", [
    (640, 480, 500.0, 500.0, 319.5, 239.5),      # landscape, centred
    (480, 640, 520.0, 520.0, 250.0, 300.0),      # portrait, off centre
    (512, 240, 300.0, 330.0, 270.0, 110.0),      # wide, fy > fx
    (300, 400, 410.0, 380.0, 140.0, 215.0),      # portrait, fx > fy
    (256, 256, 200.0, 200.0, 120.0, 130.0),      # square
])
def test_blender_intrinsics_reproduce_K(w, h, fx, fy, cx, cy):
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    intr = blender_intrinsics(K, w, h)
    assert intr.sensor_fit == ("HORIZONTAL" if w >= h else "VERTICAL")
    assert min(intr.pixel_aspect_x, intr.pixel_aspect_y) == 1.0
    rng = np.random.default_rng(0)
    pc = rng.uniform([-2, -2, 1], [2, 2, 8], (200, 3))          # OpenCV camera frame
    uv = pc[:, :2] / pc[:, 2:] * [fx, fy] + [cx, cy]
    pb = pc * [1, -1, -1]                                       # Blender camera frame
    xy = project_blender(pb, intr)
    expected = np.stack([(uv[:, 0] + 0.5) / w, 1 - (uv[:, 1] + 0.5) / h], 1)
    np.testing.assert_allclose(xy, expected, atol=1e-9)


def test_skewed_intrinsics_are_refused():
    with pytest.raises(ValueError, match="skew"):
        blender_intrinsics(np.array([[500, 5, 320], [0, 500, 240], [0, 0, 1.0]]), 640, 480)


def test_world_rotations():
    for name in ("z_up", "none"):
        W = world_rotation(name)
        np.testing.assert_allclose(W[:3, :3] @ W[:3, :3].T, np.eye(3), atol=1e-12)
    W = world_rotation("z_up")
    np.testing.assert_allclose(W[:3, :3] @ [0, 1, 0], [0, 0, -1])   # OpenCV down → Blender −Z
    np.testing.assert_allclose(W[:3, :3] @ [0, 0, 1], [0, 1, 0])    # OpenCV forward → Blender +Y
    # cameras_up: a camera rolled/tilted away from the world's y axis still ends up z-up.
    rec = make_synthetic_recon()
    tilt = np.eye(4)
    a = np.radians(25)
    tilt[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    c2w = tilt @ rec.cam2world
    W = world_rotation("cameras_up", c2w)
    up_mean = -c2w[:, :3, 1].sum(0)
    np.testing.assert_allclose(W[:3, :3] @ (up_mean / np.linalg.norm(up_mean)), [0, 0, 1], atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(W[:3, :3]), 1.0)
    with pytest.raises(ValueError):
        world_rotation("sideways")


def test_camera_matrix_looks_along_opencv_z():
    rec = make_synthetic_recon()
    W = world_rotation("z_up")
    M = camera_matrix_world(rec.cam2world, W)
    for i in range(rec.n_views):
        # Blender camera looks down its −Z; OpenCV's looks down +z: the same world direction.
        np.testing.assert_allclose(-M[i, :3, 2], W[:3, :3] @ rec.cam2world[i, :3, 2], atol=1e-12)
        np.testing.assert_allclose(M[i, :3, 1], -(W[:3, :3] @ rec.cam2world[i, :3, 1]), atol=1e-12)
        np.testing.assert_allclose(M[i, :3, 3], transform_points(rec.cam2world[i, :3, 3], W), atol=1e-5)


def test_srgb_to_linear():
    assert SRGB_TO_LINEAR[0] == 0.0 and SRGB_TO_LINEAR[255] == pytest.approx(1.0)
    assert SRGB_TO_LINEAR[128] == pytest.approx(0.2158605, abs=1e-6)
    assert SRGB_TO_LINEAR[10] == pytest.approx(10 / 255 / 12.92)
    rgba = srgb8_to_linear_rgba(np.array([[[0, 128, 255]]], np.uint8))
    assert rgba.shape == (1, 1, 4) and rgba.dtype == np.float32 and rgba[0, 0, 3] == 1.0


def test_flip_rows_and_uv():
    a = np.arange(12).reshape(3, 4)
    assert flip_rows(a)[0].tolist() == [8, 9, 10, 11]
    n2o = np.array([[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1]])
    uv = pixel_uv(n2o, 3, 4, 6, 8)
    # network (0, 0) → original (0.5, 0.5) → UV ((0.5 + 0.5)/8, 1 − 1/6)
    np.testing.assert_allclose(uv[0, 0], [1 / 8, 1 - 1 / 6], atol=1e-7)
    np.testing.assert_allclose(uv[2, 3], [(6.5 + 0.5) / 8, 1 - (4.5 + 0.5) / 6], atol=1e-7)


def test_voxel_downsample():
    P = np.array([[0.1, 0.1, 0.1], [0.3, 0.2, 0.1], [1.5, 0.1, 0.1], [1.6, 0.2, 0.3]], np.float32)
    C = np.ones((4, 4), np.float32) * np.array([[0.0], [1.0], [0.5], [0.5]], np.float32)
    conf = np.array([1.0, 3.0, 2.0, 5.0], np.float32)
    view = np.array([0, 1, 2, 3], np.int32)
    P2, C2, c2, v2 = voxel_downsample(P, C, conf, view, 1.0)
    assert len(P2) == 2
    np.testing.assert_allclose(P2[0], (P[0] * 1 + P[1] * 3) / 4, rtol=1e-6)
    np.testing.assert_allclose(C2[0, 0], 0.75, rtol=1e-6)
    assert c2.tolist() == [3.0, 5.0] and v2.tolist() == [1, 3]
    # Large random cloud: one point per occupied voxel.
    rng = np.random.default_rng(1)
    Q = rng.uniform(-5, 5, (20000, 3)).astype(np.float32)
    Q2, *_ = voxel_downsample(Q, np.ones((20000, 4), np.float32), np.ones(20000, np.float32),
                              np.zeros(20000, np.int32), 0.7)
    assert len(Q2) == len(np.unique(np.floor(Q / np.float32(0.7)).astype(np.int64), axis=0))


def test_grid_triangles_cut_depth_jumps_and_low_confidence():
    depth = np.full((4, 5), 2.0, np.float32)
    depth[:, 3:] = 5.0                                # a step between columns 2 and 3
    valid = np.ones((4, 5), bool)
    tris = grid_triangles(depth, valid, 0.1)
    z = depth.reshape(-1)[tris]
    assert len(tris) == 2 * 3 * 4 - 2 * 3              # the column of cells across the step is gone
    assert ((z.max(1) - z.min(1)) <= 0.1 * z.min(1)).all()
    valid[0, 0] = False
    assert len(grid_triangles(depth, valid, 0.1)) == len(tris) - 1   # corner cell loses one triangle


def test_network_photo_array_places_the_crop():
    colors = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) + 1
    same = network_photo_array(colors, np.eye(3), (2, 3))
    np.testing.assert_array_equal(same, colors)
    # Network = original scaled by 2 then cropped by one network column on the left.
    n2o = np.array([[2.0, 0, 2.5], [0, 2.0, 0.5], [0, 0, 1]])
    out = network_photo_array(colors, n2o, (4, 8))
    assert out.shape == (2, 4, 3)
    assert (out[:, 0] == 0).all()                       # the cropped column is black
    np.testing.assert_array_equal(out[:, 1:], colors)


def test_options_validation():
    SceneOptions().validate()
    SceneOptions(depth_textures="exr").validate()   # no folder: beside the saved .blend, or packed
    for bad in (dict(depth_textures="png"), dict(world_orientation="y_up"),
                dict(voxel_size=-1.0), dict(point_radius=0.0), dict(mesh_max_depth_jump=0.0)):
        with pytest.raises(SceneError):
            SceneOptions(**bad).validate()
