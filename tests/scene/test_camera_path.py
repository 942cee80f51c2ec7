"""Camera path maths (pure numpy): sign-continuous quaternions, slerp and cubic in-betweens."""

import numpy as np
import pytest
from pointmap.scene.camera_path import (
    camera_path,
    continuous_quaternions,
    matrix_to_quaternion,
    quaternion_to_matrix,
    slerp,
)


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _poses(angles, centres):
    T = np.tile(np.eye(4), (len(angles), 1, 1))
    T[:, :3, :3] = np.stack([_rz(a) for a in angles])
    T[:, :3, 3] = centres
    return T


def test_continuous_quaternions_remove_sign_flips():
    ang = np.radians(np.linspace(0, 350, 60))        # crosses 180°, where w >= 0 normalisation flips
    q = matrix_to_quaternion(np.stack([_rz(a) for a in ang]))
    assert (np.einsum("ij,ij->i", q[1:], q[:-1]) < 0).any()
    qc = continuous_quaternions(q)
    assert (np.einsum("ij,ij->i", qc[1:], qc[:-1]) > 0).all()
    assert np.allclose(quaternion_to_matrix(qc), quaternion_to_matrix(q))


def test_matrix_quaternion_round_trip_at_any_angle():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(500, 4))
    q[:5] = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 1, 0]]   # 0° and 180° turns
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    back = matrix_to_quaternion(quaternion_to_matrix(q))
    same = np.abs(np.einsum("ij,ij->i", back, q))
    assert np.abs(same - 1).max() < 1e-12
    assert np.abs(quaternion_to_matrix(back) - quaternion_to_matrix(q)).max() < 1e-12


def test_slerp_midpoint_and_ends():
    q0 = matrix_to_quaternion(_rz(0.0)[None])
    q1 = matrix_to_quaternion(_rz(np.radians(100))[None])
    out = slerp(np.repeat(q0, 3, 0), np.repeat(q1, 3, 0), np.array([0.0, 0.5, 1.0]))
    R = quaternion_to_matrix(out)
    assert np.allclose(R[1], _rz(np.radians(50)))
    assert np.allclose(R[0], _rz(0)) and np.allclose(R[2], _rz(np.radians(100)))


def test_path_with_stride_is_exact_on_solved_frames_and_smooth_between():
    frames = 1001 + 3 * np.arange(8)
    ang = np.radians(np.linspace(0, 300, 8))
    centres = np.stack([np.arange(8) * 1.5, np.zeros(8), 0.2 * np.arange(8)], 1)   # uniform motion
    path = camera_path(frames, _poses(ang, centres), {"lens": np.linspace(30, 40, 8)})
    assert path.frames.tolist() == list(range(1001, 1023))
    solved = ~path.interpolated
    assert path.frames[solved].tolist() == frames.tolist()
    M = path.matrices()
    assert np.abs(M[solved] - _poses(ang, centres)).max() < 1e-12
    # Uniform motion is reproduced exactly by the cubic; rotation by slerp at constant angular speed.
    f = path.frames - 1001
    assert np.allclose(path.location, np.stack([f * 0.5, np.zeros_like(f), f * 0.2 / 3], 1))
    assert np.allclose(M[:, :3, :3], np.stack([_rz(a) for a in np.radians(f * 300 / 21)]))
    assert np.allclose(path.scalars["lens"], 30 + f * 10 / 21)
    assert (np.einsum("ij,ij->i", path.quaternion[1:], path.quaternion[:-1]) > 0).all()


def test_path_refuses_unordered_frames():
    with pytest.raises(ValueError, match="increasing"):
        camera_path(np.array([3, 2]), _poses([0, 0], np.zeros((2, 3))))
