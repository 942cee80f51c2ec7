"""VGGT aggregator: DINOv2 patch tokens + camera/register tokens through alternating attention.

Input: images (B, S, 3, H, W) in [0, 1] (ImageNet normalisation happens here).
Each frame becomes P = 1 + R + (H/14)(W/14) tokens: [camera, R registers, patches]. Frame 0 gets
its own learned camera/register tokens (index 0 of the (1, 2, n, C) parameters), frames 1..S-1
share index 1; this is what anchors the world frame to the first camera.
Depth L pairs of blocks alternate frame attention (within each frame, (B·S, P, C)) and global
attention (across all frames, (B, S·P, C)). Output entry i is concat(frame_i, global_i) on
channels: (B, S, P, 2C). Only the layers in `keep` are returned (others are None), which is what
keeps memory flat for long sequences.
"""

from __future__ import annotations

import torch
from torch import nn

from ..rope import RoPE2D
from .blocks import Block
from .dino import DinoViT
from .rope import rope_tables

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class Aggregator(nn.Module):
    def __init__(self, img_size: int = 518, patch_size: int = 14, embed_dim: int = 1024, depth: int = 24,
                 num_heads: int = 16, mlp_ratio: float = 4.0, num_register_tokens: int = 4,
                 qk_norm: bool = True, rope_freq: float = 100.0, init_values: float = 0.01,
                 aa_order=("frame", "global"), aa_block_size: int = 1, dino: dict | None = None, **_unused):
        super().__init__()
        if list(aa_order) != ["frame", "global"] or aa_block_size != 1:
            raise ValueError("only aa_order=[frame, global] with aa_block_size=1 (the VGGT-1B layout) is supported")
        dino_cfg = dict(depth=24, num_heads=16, mlp_ratio=4.0, num_register_tokens=4, init_values=1.0,
                        interpolate_antialias=True, interpolate_offset=0.0)
        dino_cfg.update(dino or {})
        self.patch_size = patch_size
        self.depth = depth
        self.rope = RoPE2D(rope_freq)  # no parameters: the state_dict keys stay the official ones
        self.head_dim = embed_dim // num_heads
        self.patch_embed = DinoViT(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, **dino_cfg)
        self.frame_blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, qk_norm=qk_norm, init_values=init_values) for _ in range(depth)])
        self.global_blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, qk_norm=qk_norm, init_values=init_values) for _ in range(depth)])
        self.camera_token = nn.Parameter(torch.zeros(1, 2, 1, embed_dim))
        self.register_token = nn.Parameter(torch.zeros(1, 2, num_register_tokens, embed_dim))
        self.patch_start_idx = 1 + num_register_tokens

    def _special_tokens(self, param: torch.Tensor, b: int, s: int) -> torch.Tensor:
        """(1, 2, n, C) -> (B·S, n, C): index 0 for frame 0, index 1 for the others."""
        first = param[:, :1].expand(b, 1, -1, -1)
        rest = param[:, 1:].expand(b, s - 1, -1, -1)
        return torch.cat([first, rest], dim=1).reshape(b * s, *param.shape[2:])

    def patch_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """DINOv2 patch tokens (B·S, h·w, C) of images (B, S, 3, H, W) in [0, 1]."""
        b, s, _, h, w = images.shape
        # Constants built on the fly (not buffers) so casting the module to bf16 cannot round them.
        mean = torch.tensor(_IMAGENET_MEAN, dtype=images.dtype, device=images.device).view(1, 1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD, dtype=images.dtype, device=images.device).view(1, 1, 3, 1, 1)
        x = (images - mean) / std
        return self.patch_embed(x.reshape(b * s, 3, h, w).to(self.camera_token.dtype))

    def forward(self, images: torch.Tensor, keep=None, step=None) -> list[torch.Tensor | None]:
        """images (B, S, 3, H, W) -> list of L entries (B, S, P, 2C) or None; `keep`: indices (None = all).

        `step(i)` is called after layer i (progress reports; raising from it, e.g. on cancel, aborts).
        """
        b, s, _, h, w = images.shape
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image size {w}x{h} is not a multiple of the patch size {self.patch_size}")
        keep = set(range(self.depth)) if keep is None else {k % self.depth for k in keep}
        patches = self.patch_tokens(images)
        dtype = patches.dtype
        tokens = torch.cat([self._special_tokens(self.camera_token, b, s).to(dtype),
                            self._special_tokens(self.register_token, b, s).to(dtype), patches], dim=1)
        del patches
        p, c = tokens.shape[1], tokens.shape[2]
        cos, sin = rope_tables(self.rope, h // self.patch_size, w // self.patch_size, self.patch_start_idx,
                               self.head_dim, tokens.device, dtype)
        frame_rope = (cos, sin)
        global_rope = (cos.repeat(s, 1), sin.repeat(s, 1))

        outputs: list[torch.Tensor | None] = []
        last = max(keep)
        for i in range(self.depth):
            tokens = self.frame_blocks[i](tokens.view(b * s, p, c), frame_rope)
            frame_out = tokens.view(b, s, p, c) if i in keep else None
            tokens = self.global_blocks[i](tokens.view(b, s * p, c), global_rope)
            if i in keep:
                outputs.append(torch.cat([frame_out, tokens.view(b, s, p, c)], dim=-1))
            else:
                outputs.append(None)
            if step is not None:
                step(i)
            if i == last:
                break
        outputs.extend([None] * (self.depth - len(outputs)))
        return outputs
