"""DA3's camera modules and its 9-d pose encoding.

Pose encoding (..., 9) = [t (3), q (4, XYZW), fov_h, fov_w] of the **camera-to-world** transform [R | t]
(OpenCV axes; VGGT's encoding has the same layout but describes world-to-camera). Intrinsics are in
network pixels: fx = (W/2)/tan(fov_w/2), fy = (H/2)/tan(fov_h/2), principal point (W/2, H/2).

`CameraEnc` (posed mode): known cameras -> one token (B, S, C) per view that replaces the backbone's
camera token: Mlp(9 -> C/2 -> C, GELU) -> LayerNorm -> `trunk_depth` pre-norm blocks attending across
the S views (no qk-norm, no RoPE) -> LayerNorm. `CameraDec`: the last out-layer's camera token
(B, S, 2C) -> pose encoding (B, S, 9). Both always run in float32.
"""

from __future__ import annotations

import torch
from timm.layers import Mlp
from torch import nn

from ..vggt.blocks import Block
from ..vggt.pose import extri_intri_to_pose_encoding, quat_to_mat


def pose_encoding_to_c2w_intrinsics(pose_enc: torch.Tensor, image_hw: tuple[int, int]):
    """(..., 9) -> cam2world (..., 3, 4) and intrinsics (..., 3, 3) in network pixels."""
    h, w = image_hw
    c2w = torch.cat([quat_to_mat(pose_enc[..., 3:7]), pose_enc[..., :3, None]], dim=-1)
    k = torch.zeros(*pose_enc.shape[:-1], 3, 3, dtype=pose_enc.dtype, device=pose_enc.device)
    k[..., 0, 0] = (w / 2) / torch.tan(pose_enc[..., 8] / 2).clamp(min=1e-6)
    k[..., 1, 1] = (h / 2) / torch.tan(pose_enc[..., 7] / 2).clamp(min=1e-6)
    k[..., 0, 2] = w / 2
    k[..., 1, 2] = h / 2
    k[..., 2, 2] = 1
    return c2w, k


def invert_rigid(m: torch.Tensor) -> torch.Tensor:
    """[R | t] (..., 3 or 4, 4 or 3x4) -> [Rᵀ | -Rᵀt] (..., 3, 4)."""
    r, t = m[..., :3, :3], m[..., :3, 3:]
    rt = r.transpose(-1, -2)
    return torch.cat([rt, -rt @ t], dim=-1)


def c2w_intrinsics_to_pose_encoding(c2w: torch.Tensor, intrinsics: torch.Tensor,
                                    image_hw: tuple[int, int]) -> torch.Tensor:
    """cam2world (..., 3|4, 4) and intrinsics (..., 3, 3) -> (..., 9); unit quaternion with w >= 0."""
    return extri_intri_to_pose_encoding(c2w[..., :3, :4], intrinsics, image_hw)


class CameraEnc(nn.Module):
    def __init__(self, dim_out: int, trunk_depth: int = 4, num_heads: int = 16, mlp_ratio: float = 4.0):
        super().__init__()
        self.trunk = nn.Sequential(*[Block(dim_out, num_heads, mlp_ratio, init_values=0.01, norm_eps=1e-5)
                                     for _ in range(trunk_depth)])
        self.token_norm = nn.LayerNorm(dim_out)
        self.trunk_norm = nn.LayerNorm(dim_out)
        self.pose_branch = Mlp(in_features=9, hidden_features=dim_out // 2, out_features=dim_out)

    def forward(self, world2cam: torch.Tensor, intrinsics: torch.Tensor, image_hw: tuple[int, int],
                trace: dict | None = None) -> torch.Tensor:
        """world2cam (B, S, 3|4, 4), intrinsics (B, S, 3, 3) in network pixels -> tokens (B, S, C)."""
        enc = c2w_intrinsics_to_pose_encoding(invert_rigid(world2cam.float()), intrinsics.float(), image_hw)
        dtype = self.token_norm.weight.dtype
        tok = self.token_norm(self.pose_branch(enc.to(dtype)))
        if trace is not None:
            trace.update(cam_enc_pose_encoding=enc, cam_enc_token_norm=tok)
        for blk in self.trunk:
            tok = blk(tok)
        return self.trunk_norm(tok)


class CameraDec(nn.Module):
    def __init__(self, dim_in: int):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(dim_in, dim_in), nn.ReLU(), nn.Linear(dim_in, dim_in), nn.ReLU())
        self.fc_t = nn.Linear(dim_in, 3)
        self.fc_qvec = nn.Linear(dim_in, 4)
        self.fc_fov = nn.Sequential(nn.Linear(dim_in, 2), nn.ReLU())

    def forward(self, cam_token: torch.Tensor) -> torch.Tensor:
        """cam_token (B, S, 2C) -> pose encoding (B, S, 9) [t, q xyzw, fov_h, fov_w] of cam2world."""
        f = self.backbone(cam_token.to(self.fc_t.weight.dtype))
        return torch.cat([self.fc_t(f), self.fc_qvec(f), self.fc_fov(f)], dim=-1).float()
