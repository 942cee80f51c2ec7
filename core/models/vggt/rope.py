"""2-D rotary position embedding (RoPE) of VGGT's aggregator, as cos/sin tables.

The rotation is CroCo's RoPE2D (core/models/rope.py, base 100: the first half of a head is rotated by
the row position, the second by the column, rotate-half layout inside each half); only the positions
differ. VGGT puts its special tokens (camera, registers) at (0, 0) and patch (r, c) at (r + 1, c + 1),
i.e. at rows of RoPE2D's table for a (rows + 1, cols + 1) patch grid, so the tables are gathered from
that one (cached) table instead of being computed a second way.

The tables depend only on the patch grid, so they are built once per forward and shared by every
block (frame attention uses them as is, global attention tiles them S times).
"""

from __future__ import annotations

import torch

from ..rope import RoPE2D, swap_quarters


def token_positions(grid_h: int, grid_w: int, n_special: int, device=None) -> torch.Tensor:
    """(n_special + grid_h*grid_w, 2) int64 (row, col) positions of one frame's tokens."""
    rows = torch.arange(grid_h, device=device).repeat_interleave(grid_w) + 1
    cols = torch.arange(grid_w, device=device).repeat(grid_h) + 1
    special = torch.zeros(n_special, 2, dtype=torch.long, device=device)
    return torch.cat([special, torch.stack([rows, cols], dim=-1)], dim=0)


def rope_tables(rope: RoPE2D, grid_h: int, grid_w: int, n_special: int, head_dim: int, device,
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and signed-sin tables, each (n_special + grid_h*grid_w, head_dim), of one frame's tokens.

    Angles are computed in float32 by `rope` (RoPE2D.tables) and cast to `dtype` at the end.
    """
    cos, sin = rope.tables(head_dim, (grid_h + 1, grid_w + 1), device, dtype)
    pos = token_positions(grid_h, grid_w, n_special, device)
    rows = pos[:, 0] * (grid_w + 1) + pos[:, 1]  # row-major index of (row, col) in the larger grid
    return cos[rows], sin[rows]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., T, D) by tables (T, D) from `rope_tables` (RoPE2D's rotation, signs in `sin`)."""
    return torch.addcmul(x * cos, swap_quarters(x), sin)
