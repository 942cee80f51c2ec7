"""DUSt3R's confidence-aware pointmap regression loss (Wang et al. 2024, Eq. 2-4).

Both views' pointmaps are expressed in view 1's frame. Ground truth and prediction are each normalised by
the mean distance of their points to the origin (over both views), so the loss is scale-free; the per-pixel
error is the Euclidean distance; confidence c = 1 + exp(x) weights it: L = c * err - alpha * log(c).
"""

from __future__ import annotations

import torch


def _normalise(p1: torch.Tensor, p2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H, W, 3) pair -> both divided by their joint mean point norm (per batch item)."""
    n = torch.cat([p1.flatten(1, 2), p2.flatten(1, 2)], 1).norm(dim=-1).mean(1).clamp_min(1e-8)
    return p1 / n[:, None, None, None], p2 / n[:, None, None, None]


def conf_regression_loss(pred1: torch.Tensor, conf1: torch.Tensor, pred2: torch.Tensor, conf2: torch.Tensor,
                         gt1: torch.Tensor, gt2: torch.Tensor, alpha: float = 0.2) -> tuple[torch.Tensor, dict]:
    """pred*/gt* (B, H, W, 3) in view 1's frame, conf* (B, H, W) >= 1 -> (scalar loss, details).

    details: 'regr' = mean unweighted normalised error (the interpretable number)."""
    p1, p2 = _normalise(pred1.float(), pred2.float())
    g1, g2 = _normalise(gt1.float(), gt2.float())
    e1, e2 = (p1 - g1).norm(dim=-1), (p2 - g2).norm(dim=-1)
    c1, c2 = conf1.float(), conf2.float()
    loss = (c1 * e1 - alpha * torch.log(c1)).mean() + (c2 * e2 - alpha * torch.log(c2)).mean()
    return loss, {"regr": 0.5 * (e1.mean() + e2.mean()).detach()}
