"""Transformer building blocks of the CroCo encoder/decoder (DUSt3R, MASt3R).

Attribute names equal the reference modules', so `state_dict()` keys match the official checkpoints.
Token tensors are (B, S, C) with S = rows * cols patches in row-major order; `grid` = (rows, cols)
gives the RoPE positions (every image of a batch has the same shape).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

from .rope import RoPE2D

LN_EPS = 1e-6


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, S, C) → (B, S, heads, C / heads) (a view)."""
    b, s, c = x.shape
    return x.view(b, s, n_heads, c // n_heads)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """q (B, Sq, heads, Dh), k/v (B, Sk, heads, Dh) → (B, Sq, heads * Dh); softmax(q k^T / sqrt(Dh)) v."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    b, h, s, d = out.shape
    return out.transpose(1, 2).reshape(b, s, h * d)


class Attention(nn.Module):
    """Multi-head self-attention with RoPE on q and k; qkv Linear(C, 3C) split as (3, heads, Dh)."""

    def __init__(self, dim: int, num_heads: int, rope: RoPE2D):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        b, s, c = x.shape
        qkv = self.qkv(x).view(b, s, 3, self.num_heads, c // self.num_heads)
        q, k = self.rope(qkv[:, :, :2], grid).unbind(2)  # q and k share positions: one rotation
        return self.proj(_attend(q, k, qkv[:, :, 2]))


class CrossAttention(nn.Module):
    """Queries from one view (RoPE at its own positions), keys/values from the other view (its positions)."""

    def __init__(self, dim: int, num_heads: int, rope: RoPE2D):
        super().__init__()
        self.num_heads = num_heads
        self.projq = nn.Linear(dim, dim)
        self.projk = nn.Linear(dim, dim)
        self.projv = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def forward(self, x: torch.Tensor, y: torch.Tensor, grid_x: tuple[int, int],
                grid_y: tuple[int, int]) -> torch.Tensor:
        q = self.rope(_heads(self.projq(x), self.num_heads), grid_x)
        k = self.rope(_heads(self.projk(y), self.num_heads), grid_y)
        v = _heads(self.projv(y), self.num_heads)
        return self.proj(_attend(q, k, v))


class Block(nn.Module):
    """Pre-norm encoder block: x += attn(LN1 x); x += MLP(LN2 x) (GELU, exact erf)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, rope: RoPE2D):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads, rope)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), grid)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """Decoder block of one view: self-attention, cross-attention to the other view, MLP (all pre-norm).

    `norm_y` normalises the other view's tokens (LayerNorm when norm_im2_in_dec, else identity).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, rope: RoPE2D, norm_mem: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads, rope)
        self.cross_attn = CrossAttention(dim, num_heads, rope)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.norm3 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        self.norm_y = nn.LayerNorm(dim, eps=LN_EPS) if norm_mem else nn.Identity()

    def forward(self, x: torch.Tensor, y: torch.Tensor, grid_x: tuple[int, int],
                grid_y: tuple[int, int]) -> torch.Tensor:
        """x: this view's tokens (B, Sx, C); y: the other view's (B, Sy, C) → new x (B, Sx, C)."""
        x = x + self.attn(self.norm1(x), grid_x)
        y = self.norm_y(y)
        x = x + self.cross_attn(self.norm2(x), y, grid_x, grid_y)
        return x + self.mlp(self.norm3(x))


class PatchEmbed(nn.Module):
    """Conv2d(3, C, k=p, s=p) → (B, S, C) tokens in row-major patch order; no norm, no position embedding."""

    def __init__(self, patch_size: int, dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """img (B, 3, H, W), H and W multiples of the patch size → (B, H/p * W/p, C)."""
        return self.proj(img).flatten(2).transpose(1, 2)
