"""DINOv2 ViT with register tokens: the aggregator's patch embedding (ViT-L/14-reg in VGGT-1B).

Input: images (N, 3, H, W), ImageNet-normalised, H and W multiples of the patch size.
Output of `forward`: the final-LayerNorm'd patch tokens (N, (H/14)·(W/14), C), row-major over the
patch grid (DINOv2's `x_norm_patchtokens`); cls and register tokens are dropped.

The learned position embedding covers a 37x37 grid (518 px) plus the cls entry. Other sizes
interpolate it bicubically with antialiasing to the exact output grid (align_corners False).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Block


def interpolate_pos_embed(pos_embed: torch.Tensor, gh: int, gw: int, offset: float = 0.0,
                          antialias: bool = True) -> torch.Tensor:
    """DINOv2's learned position embedding (1, 1 + m*m, C) resampled to a gh x gw patch grid, float32.

    Bicubic (A = -0.75, align_corners False); with `offset` (DINOv2's training-time variant) the resize
    is given as the scale factor ((gh + offset)/m, (gw + offset)/m), whose floor is the output size and
    which also sets the source coordinates. The square m x m grid itself passes unchanged; so does cls.
    """
    pos = pos_embed.float()
    n_grid = pos.shape[1] - 1
    m = int(math.sqrt(n_grid))
    if gh * gw == n_grid and gh == gw:
        return pos
    grid = pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)
    if offset:
        scale = ((gh + offset) / m, (gw + offset) / m)
        grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=antialias)
    else:
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", antialias=antialias)
    grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)
    return torch.cat([pos[:, :1], grid], dim=1)


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: (N, 3, H, W) -> (N, (H/p)(W/p), C)."""

    def __init__(self, patch_size: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoViT(nn.Module):
    def __init__(self, img_size: int = 518, patch_size: int = 14, embed_dim: int = 1024, depth: int = 24,
                 num_heads: int = 16, mlp_ratio: float = 4.0, num_register_tokens: int = 4,
                 init_values: float = 1.0, interpolate_antialias: bool = True, interpolate_offset: float = 0.0,
                 **_unused):
        super().__init__()
        self.patch_size = patch_size
        self.interpolate_antialias = interpolate_antialias
        self.interpolate_offset = interpolate_offset
        grid = img_size // patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
        # Unused at inference; kept so the official checkpoint loads strictly.
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim), requires_grad=False)
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, qk_norm=False, init_values=init_values, norm_eps=1e-6)
            for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def interpolate_pos_encoding(self, height: int, width: int) -> torch.Tensor:
        """Position embedding (1, 1 + (H/p)(W/p), C) for an H x W input, in float32."""
        return interpolate_pos_embed(self.pos_embed, height // self.patch_size, width // self.patch_size,
                                     self.interpolate_offset, self.interpolate_antialias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(n, -1, -1).to(tokens.dtype), tokens], dim=1)
        tokens = tokens + self.interpolate_pos_encoding(h, w).to(tokens.dtype)
        n_reg = self.register_tokens.shape[1]
        tokens = torch.cat([tokens[:, :1], self.register_tokens.expand(n, -1, -1).to(tokens.dtype),
                            tokens[:, 1:]], dim=1)
        for blk in self.blocks:
            tokens = blk(tokens)
        return self.norm(tokens[:, 1 + n_reg:])
