"""Transformer blocks shared by DINOv2, the aggregator and the camera head.

`Block`: pre-norm residual block x + ls1(attn(norm1(x))) followed by x + ls2(mlp(norm2(x))).
Attention uses one fused qkv projection, an optional per-head LayerNorm on q and k (qk-norm,
affine, eps 1e-5) and optional 2-D RoPE applied after it, then `F.scaled_dot_product_attention`
(which picks flash/cuDNN/memory-efficient kernels on GPU). Tokens are (B, T, C) throughout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import LayerScale, Mlp
from torch import nn

from .rope import apply_rope


def _qk_prep(q, k, qw, qb, kw, kb, cos, sin):
    """qk-norm then RoPE of q, k (B, heads, T, D); a pure function so torch.compile can fuse it."""
    q = F.layer_norm(q, q.shape[-1:], qw, qb, 1e-5)
    k = F.layer_norm(k, k.shape[-1:], kw, kb, 1e-5)
    return apply_rope(q, cos, sin), apply_rope(k, cos, sin)


_qk_prep_impl = _qk_prep


def use_compiled_qk_prep(enabled: bool = True) -> None:
    """Fuse qk-norm + RoPE into one kernel with torch.compile (GPU; compiles once per token shape)."""
    global _qk_prep_impl
    if enabled:
        import torch._dynamo

        # Two token shapes (frame, global) per frame count: keep every one compiled, not fall back to eager.
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, name):
                setattr(torch._dynamo.config, name, max(64, getattr(torch._dynamo.config, name)))
    _qk_prep_impl = torch.compile(_qk_prep, dynamic=False) if enabled else _qk_prep


class Attention(nn.Module):
    """Multi-head self-attention over (B, T, C) with optional qk-norm and RoPE tables (T, head_dim)."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        if qk_norm:
            self.q_norm = nn.LayerNorm(self.head_dim)
            self.k_norm = nn.LayerNorm(self.head_dim)
        else:
            self.q_norm = self.k_norm = None
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if self.q_norm is not None and rope is not None:
            q, k = _qk_prep_impl(q, k, self.q_norm.weight, self.q_norm.bias, self.k_norm.weight, self.k_norm.bias,
                                 *rope)
        elif rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        elif self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale; `norm_eps` 1e-6 for DINOv2, 1e-5 elsewhere."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qk_norm: bool = False,
                 init_values: float = 0.01, norm_eps: float = 1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm)
        self.ls1 = LayerScale(dim, init_values=init_values)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values=init_values)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), rope))
        return x + self.ls2(self.mlp(self.norm2(x)))
