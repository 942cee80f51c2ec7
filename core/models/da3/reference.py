"""Reference-view choice of the DA3 backbone (the view whose camera defines the world frame).

`reference_order` scores each view from its cls token (B, S, C) entering block alt_start-1 and returns
the processing order (B, S) = [ref, the other views in their order]. Strategies as in the reference:
"first", "middle", "saddle_balanced" (default: the view closest to the middle of the range on three
normalised scores: mean cosine similarity to the others, cls norm, variance of the unit cls vector),
"saddle_sim_range" (largest max-min similarity to the others).
"""

from __future__ import annotations

import torch

STRATEGIES = ("first", "middle", "saddle_balanced", "saddle_sim_range")


def _minmax(m: torch.Tensor) -> torch.Tensor:
    lo, hi = m.min(dim=1, keepdim=True).values, m.max(dim=1, keepdim=True).values
    return (m - lo) / (hi - lo + 1e-8)


def reference_index(cls: torch.Tensor, strategy: str = "saddle_balanced") -> torch.Tensor:
    """cls (B, S, C) -> index (B,) int64 of the reference view."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown reference-view strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    b, s, _ = cls.shape
    if s <= 1 or strategy == "first":
        return torch.zeros(b, dtype=torch.long, device=cls.device)
    if strategy == "middle":
        return torch.full((b,), s // 2, dtype=torch.long, device=cls.device)
    f = cls / cls.norm(dim=-1, keepdim=True)
    sim = f @ f.transpose(1, 2) - torch.eye(s, device=cls.device, dtype=cls.dtype)
    if strategy == "saddle_sim_range":
        return (sim.max(dim=-1).values - sim.min(dim=-1).values).argmax(dim=1)
    scores = (_minmax(sim.sum(-1) / (s - 1)), _minmax(cls.norm(dim=-1)), _minmax(f.var(dim=-1)))
    return sum((m - 0.5).abs() for m in scores).argmin(dim=1)


def reference_order(cls: torch.Tensor, strategy: str = "saddle_balanced") -> torch.Tensor:
    """cls (B, S, C) -> processing order (B, S) int64: original view index at each processing slot."""
    b, s, _ = cls.shape
    ref = reference_index(cls, strategy)[:, None]
    slots = torch.arange(s, device=cls.device)[None].expand(b, s)
    order = torch.where((slots > 0) & (slots <= ref), slots - 1, slots)
    order[:, 0] = ref[:, 0]
    return order


def take_views(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """x (B, S, ...) -> x in processing order (a copy)."""
    return x[torch.arange(x.shape[0], device=x.device)[:, None], order]


def restore_order(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Inverse of `take_views`: x (B, S, ...) in processing order -> the original view order."""
    return take_views(x, torch.argsort(order, dim=1))
