"""2-D rotary position embedding (RoPE) of VGGT's aggregator, as precomputed cos/sin tables.

Token positions are (row, col) integer pairs: special tokens (camera, registers) sit at (0, 0) and
patch (r, c) at (r + 1, c + 1). A head vector of size D is split into two halves of d = D/2: the
first half is rotated by the row position, the second by the column. Inside each half the layout is
"rotate-half" (feature j pairs with j + d/2), with inv_freq_i = base^(-2i/d), i < d/2.

The tables depend only on the patch grid, so they are built once per forward and shared by every
block (frame attention uses them as is, global attention tiles them S times).
"""

from __future__ import annotations

import torch


def token_positions(grid_h: int, grid_w: int, n_special: int, device=None) -> torch.Tensor:
    """(n_special + grid_h*grid_w, 2) int64 (row, col) positions of one frame's tokens."""
    rows = torch.arange(grid_h, device=device).repeat_interleave(grid_w) + 1
    cols = torch.arange(grid_w, device=device).repeat(grid_h) + 1
    special = torch.zeros(n_special, 2, dtype=torch.long, device=device)
    return torch.cat([special, torch.stack([rows, cols], dim=-1)], dim=0)


def rope_tables(positions: torch.Tensor, head_dim: int, base: float = 100.0,
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (T, head_dim) for positions (T, 2); angles are computed in float32."""
    d = head_dim // 2
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, device=positions.device).float() / d))
    halves_cos, halves_sin = [], []
    for axis in (0, 1):
        ang = positions[:, axis].float()[:, None] * inv_freq[None, :]
        ang = torch.cat([ang, ang], dim=-1)
        halves_cos.append(ang.cos())
        halves_sin.append(ang.sin())
    return torch.cat(halves_cos, -1).to(dtype), torch.cat(halves_sin, -1).to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., T, D) by tables (T, D): x·cos + rotate_half_per_axis(x)·sin."""
    q = x.shape[-1] // 4
    x0, x1, x2, x3 = x.split(q, dim=-1)
    rotated = torch.cat([-x1, x0, -x3, x2], dim=-1)
    return x * cos + rotated * sin
