"""2-D rotary position embedding (RoPE2D) as used by CroCo / DUSt3R / MASt3R ("RoPE100").

Token positions are integer patch indices (y = row, x = column) in row-major order, never normalised
or centred. For a head of size Dh the first Dh/2 channels are rotated by y, the second Dh/2 by x.
Within one half of size D: inv_freq[i] = base^(-2i/D) for i < D/2, angle = pos * inv_freq duplicated to
D channels, and out = t*cos + rotate_half(t)*sin with rotate_half(t) = cat(-t[D/2:], t[:D/2]).

Every image of one batch has the same shape, so positions are one (S, 2) table shared by the batch and
the rotation is a per-(S, Dh) cos/sin table computed once per (shape, device, dtype) and cached.
Tensors are rotated in the token-major (B, S, heads, Dh) layout the projections produce, so no copy
is needed before attention.
"""

from __future__ import annotations

import torch
from torch import nn


def patch_positions(n_rows: int, n_cols: int, device=None) -> torch.Tensor:
    """(S, 2) int64 (y, x) patch indices in row-major order, S = n_rows * n_cols."""
    ys = torch.arange(n_rows, device=device).repeat_interleave(n_cols)
    xs = torch.arange(n_cols, device=device).repeat(n_rows)
    return torch.stack([ys, xs], dim=-1)


def swap_quarters(t: torch.Tensor) -> torch.Tensor:
    """(…, Dh) → the two quarters of each half swapped: [y2, y1, x2, x1] (signs live in the sin table)."""
    d = t.shape[-1] // 4
    return t.unflatten(-1, (2, 2, d)).flip(-2).flatten(-3)


class RoPE2D(nn.Module):
    """Applies 2-D RoPE to (B, heads, S, Dh) queries/keys for an image of (n_rows, n_cols) patches."""

    def __init__(self, base: float = 100.0):
        super().__init__()
        self.base = float(base)
        self._cache: dict = {}

    def tables(self, head_dim: int, grid: tuple[int, int], device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and signed sin tables, each (S, head_dim) in `dtype`, for a (rows, cols) patch grid.

        The sin table carries rotate_half's signs: t*cos + rotate_half(t)*sin == t*cos + swap(t)*sin_signed.
        """
        key = (head_dim, tuple(grid), str(device), dtype)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if head_dim % 4:
            raise ValueError(f"RoPE2D needs a head size divisible by 4, got {head_dim}.")
        d = head_dim // 2
        # Angles and cos/sin in float32, cast at the end: angles reach ~100 rad, which bf16 cannot hold.
        inv_freq = 1.0 / (self.base ** (torch.arange(0, d, 2, device=device).float() / d))
        pos = patch_positions(grid[0], grid[1], device=device).float()
        ang_y = pos[:, :1] * inv_freq[None]            # (S, d/2)
        ang_x = pos[:, 1:] * inv_freq[None]
        ang = torch.cat((ang_y, ang_y, ang_x, ang_x), dim=-1)  # (S, head_dim)
        sign = torch.ones(head_dim, device=device)
        sign[: d // 2] = -1
        sign[d: d + d // 2] = -1
        out = (ang.cos().to(dtype), (ang.sin() * sign).to(dtype))
        self._cache[key] = out
        return out

    def forward(self, t: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """t: (B, S, …, Dh) with tokens on dim 1 (e.g. (B, S, heads, Dh)) → same shape, rotated by the
        (y, x) position of each token."""
        cos, sin = self.tables(t.shape[-1], grid, t.device, t.dtype)
        shape = (cos.shape[0],) + (1,) * (t.ndim - 3) + (cos.shape[1],)
        return torch.addcmul(t * cos.view(shape), swap_quarters(t), sin.view(shape))
