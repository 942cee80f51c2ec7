"""VGGT pose encodings <-> camera matrices, and depth unprojection (VGGT's conventions).

Pose encoding (..., 9) "absT_quaR_FoV": [tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w].
Extrinsic (..., 3, 4) = [R | t] maps world to camera (camera-from-world), OpenCV axes.
Intrinsic (..., 3, 3): fx = (W/2)/tan(fov_w/2), fy = (H/2)/tan(fov_h/2), cx = W/2, cy = H/2.
VGGT's unprojection uses integer pixel indices (u = column, v = row) with no half-pixel offset.
"""

from __future__ import annotations

import numpy as np
import torch

from ...align.geometry import rotation_to_quaternion


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
    """Inverse of `pose_encoding_to_extri_intri` (quaternion comes back unit-norm, qw >= 0), float32."""
    h, w = image_hw
    fov_h = 2 * torch.atan((h / 2) / intrinsic[..., 1, 1])
    fov_w = 2 * torch.atan((w / 2) / intrinsic[..., 0, 0])
    wxyz = rotation_to_quaternion(extrinsic[..., :3, :3].detach().cpu().numpy())  # (N, 4) float64
    xyzw = torch.from_numpy(wxyz[:, [1, 2, 3, 0]]).reshape(*extrinsic.shape[:-2], 4)
    return torch.cat([extrinsic[..., :3, 3].float(), xyzw.to(extrinsic.device, torch.float32),
                      fov_h[..., None].float(), fov_w[..., None].float()], dim=-1)


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
    # Per frame one BLAS product (H*W, 3) @ (3, 3): ~3x faster than the equivalent einsum.
    x = cam - t[:, None, None, :]
    return np.stack([(x[i].reshape(-1, 3) @ r[i]).reshape(h, w, 3) for i in range(s)])
