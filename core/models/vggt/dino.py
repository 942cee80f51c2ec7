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


def cached_pos_embed(owner: nn.Module, pos_embed: torch.Tensor, gh: int, gw: int, offset: float = 0.0,
                     antialias: bool = True) -> torch.Tensor:
    """`interpolate_pos_embed`, kept on `owner` for the last (grid, settings, parameter version) asked.

    The resampled table depends on the weights and the grid only, and recomputing it per forward costs more
    than it looks on CUDA: the bicubic kernel runs one thread per output position, each looping over all
    channels (~9 ms for ViT-L at 36 x 27 on an H200). Recomputed when the parameter changes in place
    (load_state_dict, .to()) and never cached while autograd records (training needs the graph).
    """
    if torch.is_grad_enabled() and pos_embed.requires_grad:
        return interpolate_pos_embed(pos_embed, gh, gw, offset, antialias)
    key = (gh, gw, offset, antialias, pos_embed.device, pos_embed.dtype, pos_embed.data_ptr(), pos_embed._version)
    hit = owner.__dict__.get("_pos_embed_cache")
    if hit is None or hit[0] != key:
        hit = (key, interpolate_pos_embed(pos_embed, gh, gw, offset, antialias))
        owner.__dict__["_pos_embed_cache"] = hit
    return hit[1]


def patchify_linear(x: torch.Tensor, proj: nn.Conv2d) -> torch.Tensor:
    """The patch convolution (kernel = stride = p) as one GEMM: (N, 3, H, W) -> (N, (H/p)(W/p), C).

    Same arithmetic as `proj(x)` (each output is a dot product of the weight with one p x p patch), laid
    out as (N * patches, 3 p^2) @ (3 p^2, C): cuDNN picks a slow direct kernel for this stride-p conv on
    large batches (~7 ms for 200 frames of 504 x 378 on an H200), where the GEMM is one fast call.
    """
    n, c, h, w = x.shape
    p = proj.kernel_size[0]
    gh, gw = h // p, w // p
    t = x[:, :, :gh * p, :gw * p].reshape(n, c, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5).reshape(n, gh * gw, c * p * p)
    return F.linear(t, proj.weight.reshape(proj.out_channels, -1), proj.bias)


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: (N, 3, H, W) -> (N, (H/p)(W/p), C); as one GEMM on CUDA
    (`patchify_linear`), as the convolution elsewhere (the float32 CPU parity path)."""

    def __init__(self, patch_size: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda:
            return patchify_linear(x, self.proj)
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
        return cached_pos_embed(self, self.pos_embed, height // self.patch_size, width // self.patch_size,
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
