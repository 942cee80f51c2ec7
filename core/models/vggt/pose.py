"""VGGT pose encodings <-> camera matrices, and depth unprojection (VGGT's conventions).

Pose encoding (..., 9) "absT_quaR_FoV": [tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w].
Extrinsic (..., 3, 4) = [R | t] maps world to camera (camera-from-world), OpenCV axes.
Intrinsic (..., 3, 3): fx = (W/2)/tan(fov_w/2), fy = (H/2)/tan(fov_h/2), cx = W/2, cy = H/2.
VGGT's unprojection uses integer pixel indices (u = column, v = row) with no half-pixel offset.
"""

from __future__ import annotations

import numpy as np
import torch


def quat_to_mat(q: torch.Tensor) -> torch.Tensor:
    """XYZW quaternions (..., 4), not necessarily unit -> rotation matrices (..., 3, 3)."""
    x, y, z, w = q.unbind(-1)
    two_s = 2.0 / (q * q).sum(-1)
    m = torch.stack([
        1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w),
        two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w),
        two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y),
    ], dim=-1)
    return m.reshape(*q.shape[:-1], 3, 3)


def mat_to_quat(r: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> unit XYZW quaternions (..., 4) with qw >= 0.

    Picks, per matrix, the best-conditioned of the four classic formulas (largest diagonal term).
    """
    m = r.reshape(*r.shape[:-2], 9)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
    sq = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                      1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1).clamp_min(0).sqrt()
    # Row k: the (w, x, y, z) quaternion scaled by 2·sq_k, derived from the k-th diagonal term.
    cand = torch.stack([
        torch.stack([sq[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, sq[..., 1] ** 2, m10 + m01, m02 + m20], -1),
        torch.stack([m02 - m20, m10 + m01, sq[..., 2] ** 2, m12 + m21], -1),
        torch.stack([m10 - m01, m20 + m02, m21 + m12, sq[..., 3] ** 2], -1),
    ], dim=-2)
    cand = cand / (2.0 * sq[..., None].clamp_min(0.1))
    best = sq.argmax(dim=-1)
    wxyz = torch.gather(cand, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    xyzw = torch.cat([wxyz[..., 1:], wxyz[..., :1]], dim=-1)
    return torch.where(xyzw[..., 3:] < 0, -xyzw, xyzw)


def pose_encoding_to_extri_intri(pose_enc: torch.Tensor, image_hw: tuple[int, int]):
    """(..., 9) -> extrinsic (..., 3, 4) camera-from-world and intrinsic (..., 3, 3) in network pixels."""
    h, w = image_hw
    t, q = pose_enc[..., :3], pose_enc[..., 3:7]
    fov_h, fov_w = pose_enc[..., 7], pose_enc[..., 8]
    extrinsic = torch.cat([quat_to_mat(q), t[..., None]], dim=-1)
    intrinsic = torch.zeros(*pose_enc.shape[:-1], 3, 3, dtype=pose_enc.dtype, device=pose_enc.device)
    intrinsic[..., 0, 0] = (w / 2.0) / torch.tan(fov_w / 2.0)
    intrinsic[..., 1, 1] = (h / 2.0) / torch.tan(fov_h / 2.0)
    intrinsic[..., 0, 2] = w / 2.0
    intrinsic[..., 1, 2] = h / 2.0
    intrinsic[..., 2, 2] = 1.0
    return extrinsic, intrinsic


def extri_intri_to_pose_encoding(extrinsic: torch.Tensor, intrinsic: torch.Tensor,
                                 image_hw: tuple[int, int]) -> torch.Tensor:
    """Inverse of `pose_encoding_to_extri_intri` (quaternion comes back unit-norm, qw >= 0)."""
    h, w = image_hw
    fov_h = 2 * torch.atan((h / 2) / intrinsic[..., 1, 1])
    fov_w = 2 * torch.atan((w / 2) / intrinsic[..., 0, 0])
    return torch.cat([extrinsic[..., :3, 3], mat_to_quat(extrinsic[..., :3, :3]),
                      fov_h[..., None], fov_w[..., None]], dim=-1).float()


def unproject_depth(depth: np.ndarray, extrinsic: np.ndarray, intrinsic: np.ndarray) -> np.ndarray:
    """World points (S, H, W, 3) float64 from depth (S, H, W[, 1]), extrinsics (S, 3, 4), K (S, 3, 3).

    Pixel (u=column, v=row) is unprojected at integer coordinates: X_cam = ((u−cx)d/fx, (v−cy)d/fy, d),
    X_world = Rᵀ(X_cam − t).
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim == 4:
        depth = depth[..., 0]
    ext = np.asarray(extrinsic, dtype=np.float64)
    k = np.asarray(intrinsic, dtype=np.float64)
    s, h, w = depth.shape
    u = np.arange(w, dtype=np.float64)[None, None, :]
    v = np.arange(h, dtype=np.float64)[None, :, None]
    fx, fy = k[:, 0, 0, None, None], k[:, 1, 1, None, None]
    cx, cy = k[:, 0, 2, None, None], k[:, 1, 2, None, None]
    cam = np.stack([(u - cx) * depth / fx, (v - cy) * depth / fy, depth], axis=-1)
    r, t = ext[:, :3, :3], ext[:, :3, 3]
    return np.einsum("shwj,sjk->shwk", cam - t[:, None, None, :], r)
