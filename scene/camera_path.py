"""A camera path over clip frames: continuous quaternions and in-between frames. Pure numpy, no bpy.

Frames are clip frame numbers (ints, e.g. 1001, 1003, ...). Poses are rigid 4x4 matrices in any one
world frame (the animated camera uses Blender object matrices, see `scene.convention`). With a stride,
the frames between two solved ones are filled in: rotation by slerp, position by a cubic Hermite
spline through the solved centres (tangents from the neighbouring solved frames, so the path is C1
and passes exactly through every solved centre), focal-type scalars linearly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations → (N, 4) unit quaternions (w, x, y, z), w >= 0.

    Bar-Itzhack's method: the quaternion is the eigenvector of the largest eigenvalue of a symmetric
    4x4 matrix built from R; batched `eigh`, exact for rotations and well defined at any angle.
    """
    R = np.asarray(R, np.float64).reshape(-1, 3, 3)
    xx, xy, xz = R[:, 0, 0], R[:, 0, 1], R[:, 0, 2]
    yx, yy, yz = R[:, 1, 0], R[:, 1, 1], R[:, 1, 2]
    zx, zy, zz = R[:, 2, 0], R[:, 2, 1], R[:, 2, 2]
    K = np.stack([
        np.stack([xx - yy - zz, yx + xy, zx + xz, zy - yz], -1),
        np.stack([yx + xy, yy - xx - zz, zy + yz, xz - zx], -1),
        np.stack([zx + xz, zy + yz, zz - xx - yy, yx - xy], -1),
        np.stack([zy - yz, xz - zx, yx - xy, xx + yy + zz], -1),
    ], -2) / 3.0
    _, vecs = np.linalg.eigh(K)
    v = vecs[:, :, -1]                                   # (x, y, z, w) of the largest eigenvalue
    q = np.concatenate([v[:, 3:], v[:, :3]], axis=1)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q * np.where(q[:, :1] < 0, -1.0, 1.0)


def continuous_quaternions(q: np.ndarray) -> np.ndarray:
    """(N, 4) unit quaternions with signs flipped so that consecutive ones have a dot product >= 0.

    q and −q are the same rotation; keying them as they come makes Blender's per-channel
    interpolation spin the long way round between two keys.
    """
    q = np.asarray(q, np.float64)
    if len(q) < 2:
        return q.copy()
    flip = np.einsum("ij,ij->i", q[1:], q[:-1]) < 0
    sign = np.concatenate([[1.0], np.cumprod(np.where(flip, -1.0, 1.0))])
    return q * sign[:, None]


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(N, 4) quaternions (w, x, y, z), normalised here → (N, 3, 3) rotations."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation of (M, 4) unit quaternions at (M,) parameters t in [0, 1] (shortest arc)."""
    q0 = np.asarray(q0, np.float64)
    q1 = np.asarray(q1, np.float64)
    t = np.asarray(t, np.float64)[:, None]
    d = np.einsum("ij,ij->i", q0, q1)
    q1 = np.where(d[:, None] < 0, -q1, q1)
    d = np.abs(d)[:, None]
    theta = np.arccos(np.clip(d, -1.0, 1.0))
    s = np.sin(theta)
    small = s < 1e-9
    safe = np.where(small, 1.0, s)
    a = np.where(small, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    b = np.where(small, t, np.sin(t * theta) / safe)
    out = a * q0 + b * q1
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@dataclass
class CameraPath:
    """One camera over consecutive clip frames. M frames = last solved − first solved + 1.

    frames:       (M,) int64, every frame from the first to the last solved one.
    location:     (M, 3) float64 camera centres (world).
    quaternion:   (M, 4) float64 (w, x, y, z) world rotations, sign-continuous.
    scalars:      name → (M,) float64 (lens, shift, ...), linearly interpolated between solved frames.
    interpolated: (M,) bool, True where the frame was not solved but filled in.
    """

    frames: np.ndarray
    location: np.ndarray
    quaternion: np.ndarray
    scalars: dict[str, np.ndarray]
    interpolated: np.ndarray

    def matrices(self) -> np.ndarray:
        """(M, 4, 4) rigid matrices of the path."""
        T = np.tile(np.eye(4), (len(self.frames), 1, 1))
        T[:, :3, :3] = quaternion_to_matrix(self.quaternion)
        T[:, :3, 3] = self.location
        return T


def _hermite_tangents(frames: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-solved-frame tangents d(value)/d(frame): central differences, one-sided at the ends."""
    f = frames.astype(np.float64)
    m = np.zeros_like(values)
    if len(f) < 2:
        return m
    m[1:-1] = (values[2:] - values[:-2]) / (f[2:] - f[:-2])[:, None]
    m[0] = (values[1] - values[0]) / (f[1] - f[0])
    m[-1] = (values[-1] - values[-2]) / (f[-1] - f[-2])
    return m


def camera_path(frames: np.ndarray, poses: np.ndarray, scalars: dict[str, np.ndarray] | None = None) -> CameraPath:
    """The path over every frame from frames[0] to frames[-1] through the solved `poses`.

    frames: (N,) strictly increasing ints; poses: (N, 4, 4) rigid matrices; scalars: name → (N,).
    Solved frames get their pose exactly (up to float64 rounding); frames in between are filled in.
    """
    frames = np.asarray(frames, np.int64)
    poses = np.asarray(poses, np.float64)
    if frames.ndim != 1 or len(frames) != len(poses) or len(frames) == 0:
        raise ValueError(f"{len(frames)} frame numbers for {len(poses)} poses")
    if np.any(np.diff(frames) <= 0):
        raise ValueError("frame numbers must be strictly increasing")
    scalars = {k: np.asarray(v, np.float64) for k, v in (scalars or {}).items()}
    q = continuous_quaternions(matrix_to_quaternion(poses[:, :3, :3]))
    loc = poses[:, :3, 3]
    all_frames = np.arange(frames[0], frames[-1] + 1, dtype=np.int64)
    solved = np.isin(all_frames, frames)
    # Segment k runs from solved frame k to k + 1; the last frame belongs to the last segment's end.
    k = np.clip(np.searchsorted(frames, all_frames, side="right") - 1, 0, max(len(frames) - 2, 0))
    if len(frames) == 1:
        return CameraPath(all_frames, loc.copy(), q.copy(), {n: v.copy() for n, v in scalars.items()},
                          ~solved)
    f0, f1 = frames[k].astype(np.float64), frames[k + 1].astype(np.float64)
    h = f1 - f0
    t = (all_frames - f0) / h
    quat = slerp(q[k], q[k + 1], t)
    quat = continuous_quaternions(quat)
    m = _hermite_tangents(frames, loc)
    t2, t3 = t * t, t * t * t
    h00, h10, h01, h11 = 2 * t3 - 3 * t2 + 1, t3 - 2 * t2 + t, -2 * t3 + 3 * t2, t3 - t2
    location = (h00[:, None] * loc[k] + (h10 * h)[:, None] * m[k] + h01[:, None] * loc[k + 1]
                + (h11 * h)[:, None] * m[k + 1])
    out_scalars = {n: (1 - t) * v[k] + t * v[k + 1] for n, v in scalars.items()}
    # Exact values on solved frames (the spline reproduces them only up to rounding).
    idx = np.searchsorted(all_frames, frames)
    location[idx] = loc
    quat[idx] = q * np.where(np.einsum("ij,ij->i", quat[idx], q) < 0, -1.0, 1.0)[:, None]
    for n, v in scalars.items():
        out_scalars[n][idx] = v
    return CameraPath(all_frames, location, quat, out_scalars, ~solved)
