"""VGGT camera head: iterative pose refinement from each frame's camera token.

Input: the last aggregator layer (B, S, P, 2C); token 0 of each frame is its camera token.
Output: a list of `num_iterations` activated pose encodings (B, S, 9) laid out as
[tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w] (camera-from-world translation, XYZW quaternion,
field of view in radians through ReLU). See pose.py for the conversion to matrices.

Each iteration modulates the same normalised camera tokens with adaLN (LayerNorm without affine,
then x·(1+scale)+shift, times a gate, plus the residual) conditioned on the embedding of the
running *un-activated* pose estimate, runs the trunk (attention across the S frames) and adds a
predicted delta to that estimate.
"""

from __future__ import annotations

import torch
from timm.layers import Mlp
from torch import nn

from .blocks import Block

POSE_DIM = 9


def activate_pose(raw: torch.Tensor) -> torch.Tensor:
    """Translation and quaternion pass through; the two FoVs go through ReLU."""
    return torch.cat([raw[..., :7], torch.relu(raw[..., 7:])], dim=-1)


class CameraHead(nn.Module):
    def __init__(self, dim_in: int = 2048, trunk_depth: int = 4, num_heads: int = 16, mlp_ratio: float = 4.0,
                 init_values: float = 0.01, num_iterations: int = 4, **_unused):
        super().__init__()
        self.num_iterations = num_iterations
        self.trunk = nn.Sequential(*[Block(dim_in, num_heads, mlp_ratio, init_values=init_values)
                                     for _ in range(trunk_depth)])
        self.token_norm = nn.LayerNorm(dim_in)
        self.trunk_norm = nn.LayerNorm(dim_in)
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, POSE_DIM))
        self.embed_pose = nn.Linear(POSE_DIM, dim_in)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim_in, 3 * dim_in))
        self.adaln_norm = nn.LayerNorm(dim_in, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(in_features=dim_in, hidden_features=dim_in // 2, out_features=POSE_DIM)

    def forward(self, last_layer: torch.Tensor) -> list[torch.Tensor]:
        """last_layer (B, S, P, 2C) -> list of (B, S, 9) activated encodings, one per iteration."""
        tokens = self.token_norm(last_layer[:, :, 0])
        b, s, _ = tokens.shape
        normed = self.adaln_norm(tokens)
        raw = None
        outputs = []
        for _ in range(self.num_iterations):
            cond = self.empty_pose_tokens.expand(b, s, -1) if raw is None else raw.detach()
            shift, scale, gate = self.poseLN_modulation(self.embed_pose(cond)).chunk(3, dim=-1)
            x = gate * (normed * (1 + scale) + shift) + tokens
            delta = self.pose_branch(self.trunk_norm(self.trunk(x)))
            raw = delta if raw is None else raw + delta
            outputs.append(activate_pose(raw))
        return outputs
