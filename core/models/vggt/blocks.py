"""Transformer blocks shared by DINOv2, the aggregator and the camera head.

`Block`: pre-norm residual block x + ls1(attn(norm1(x))) followed by x + ls2(mlp(norm2(x))).
Attention uses one fused qkv projection, an optional per-head LayerNorm on q and k (qk-norm,
affine, eps 1e-5) and optional 2-D RoPE applied after it, then `F.scaled_dot_product_attention`
(which picks flash/cuDNN/memory-efficient kernels on GPU). Tokens are (B, T, C) throughout.

Fused GPU path (`set_fused(module, True)`, opt-in, CUDA tensors only): everything of a block except
the attention kernel itself is run as two torch.compile'd functions with automatic dynamic shapes
(after a few compiles, one graph serves every frame count and both the frame (B·S, P, C) and global
(B, S·P, C) layouts; channel and head sizes stay static):
  pre:  LayerNorm -> qkv GEMM -> qk-norm -> RoPE, giving q, k, v as (B, heads, T, D) views of
        (B, T, heads, D) memory (SDPA kernels accept that layout without a copy);
  post: proj GEMM -> LayerScale + residual -> LayerNorm -> fc1 GEMM + GELU -> fc2 GEMM ->
        LayerScale + residual.
Inductor fuses the bias/scale/residual/norm/GELU passes that eager runs as separate kernels into the
GEMM neighbours. The eager path stays the reference (float32 CPU parity).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import LayerScale, Mlp
from torch import nn

from .rope import apply_rope


def _qk_heads(qkv: torch.Tensor, heads: int, qw, qb, kw, kb, cos, sin):
    """qkv (B, T, 3C) -> q, k, v (B, heads, T, D), with optional qk-norm and RoPE tables (T, D).

    Norm and RoPE work token-major, on (B, T, heads, D) rows that are contiguous in memory, and q/k/v
    are returned as transposed views: SDPA reads that layout directly, and both the eager kernels and
    the compiled ones then stream memory in order (the head-major (B, heads, T, D) layout made every
    qk-norm/RoPE pass a strided gather, ~9 ms per block at 200 frames on an H200).
    """
    b, t, c3 = qkv.shape
    q, k, v = qkv.view(b, t, 3, heads, c3 // (3 * heads)).unbind(2)
    if qw is not None:
        q = F.layer_norm(q, q.shape[-1:], qw, qb, 1e-5)
        k = F.layer_norm(k, k.shape[-1:], kw, kb, 1e-5)
    if cos is not None:
        cos, sin = cos[:, None], sin[:, None]
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


def _pre_attention(x, n_w, n_b, eps: float, qkv_w, qkv_b, heads: int, qw, qb, kw, kb, cos, sin):
    """x (B, T, C) -> q, k, v (B, heads, T, D): norm1, qkv projection, optional qk-norm and RoPE."""
    h = F.layer_norm(x, x.shape[-1:], n_w, n_b, eps)
    return _qk_heads(F.linear(h, qkv_w, qkv_b), heads, qw, qb, kw, kb, cos, sin)


def _post_attention(x, attn, proj_w, proj_b, g1, n_w, n_b, eps: float, fc1_w, fc1_b, fc2_w, fc2_b, g2):
    """x, attn (B, T, C) -> the block output (B, T, C): proj + LayerScale residual, then the MLP half."""
    x = x + g1 * F.linear(attn, proj_w, proj_b)
    h = F.gelu(F.linear(F.layer_norm(x, x.shape[-1:], n_w, n_b, eps), fc1_w, fc1_b))
    return x + g2 * F.linear(h, fc2_w, fc2_b)


_compiled: dict = {}


def _compiled_fn(name: str):
    """The torch.compile'd pre/post function, created on first use (compiling happens at the first call)."""
    if name not in _compiled:
        import torch._dynamo

        # A few specialisations (batch 1 vs many, eps 1e-5 vs 1e-6, with/without qk-norm+RoPE): keep them all.
        for opt in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, opt):
                setattr(torch._dynamo.config, opt, max(64, getattr(torch._dynamo.config, opt)))
        fn = _pre_attention if name == "pre" else _post_attention
        # dynamic=None ("automatic"): the first shape compiles static, a later different shape recompiles
        # with only the dims that changed (batch, tokens) symbolic. dynamic=True would make the head dim
        # symbolic too, and Triton then emits generic looped reductions for the 64-wide qk-norm rows
        # (~6x slower than the static kernels on an H200).
        _compiled[name] = torch.compile(fn, dynamic=None)
    return _compiled[name]


def set_fused(module: nn.Module, enabled: bool = True) -> None:
    """Use (or stop using) the compiled fused path in every `Block` under `module` for CUDA inputs."""
    for m in module.modules():
        if isinstance(m, Block):
            m.fused = enabled


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
        qn = (self.q_norm.weight, self.q_norm.bias, self.k_norm.weight, self.k_norm.bias) \
            if self.q_norm is not None else (None,) * 4
        q, k, v = _qk_heads(self.qkv(x), self.num_heads, *qn, *(rope if rope is not None else (None, None)))
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
        self.fused = False

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        if self.fused and x.is_cuda:
            return self._forward_fused(x, rope, compiled=True)
        x = x + self.ls1(self.attn(self.norm1(x), rope))
        return x + self.ls2(self.mlp(self.norm2(x)))

    def _forward_fused(self, x: torch.Tensor, rope, compiled: bool = True) -> torch.Tensor:
        """The fused path; compiled=False runs the same two functions eagerly (what the CPU test checks)."""
        pre = _compiled_fn("pre") if compiled else _pre_attention
        post = _compiled_fn("post") if compiled else _post_attention
        a = self.attn
        qn = (a.q_norm.weight, a.q_norm.bias, a.k_norm.weight, a.k_norm.bias) if a.q_norm is not None else (None,) * 4
        cos, sin = rope if rope is not None else (None, None)
        q, k, v = pre(x, self.norm1.weight, self.norm1.bias, self.norm1.eps, a.qkv.weight, a.qkv.bias,
                      a.num_heads, *qn, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v)
        b, t, c = x.shape
        return post(x, out.transpose(1, 2).reshape(b, t, c), a.proj.weight, a.proj.bias, self.ls1.gamma,
                    self.norm2.weight, self.norm2.bias, self.norm2.eps, self.mlp.fc1.weight, self.mlp.fc1.bias,
                    self.mlp.fc2.weight, self.mlp.fc2.bias, self.ls2.gamma)
