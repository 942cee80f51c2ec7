"""Metric scale for DA3: the metric model's depth in metres, and the nested model's alignment of an
any-view result to it (what the reference `NestedDepthAnything3Net` does after its two forwards).

Shapes: every map is (B, S, H, W) float32 for B batch items of S views; intrinsics (B, S, 3, 3) in network
pixels. One scale is fitted over everything given (all batch items and views together, as the reference).

Alignment, in order:
1. metric depth = raw metric-model depth * (fx + fy)/2 / 300 (per view, with the given focal lengths);
2. non-sky = metric model's sky map < 0.3; fewer than 11 non-sky pixels: nothing to align to (error);
3. pixels used: any-view confidence >= its median over non-sky pixels, non-sky, metric depth > 0.01,
   any-view depth > 0.001; scale s = <metric, depth> / <depth, depth> (least squares, metric ≈ s·depth);
4. depth *= s (the caller scales camera translations by s too);
5. sky pixels get depth min(0.99 quantile of the scaled non-sky depth, 200) and confidence 1 (the lowest
   any-view confidence: it is exp(.) + 1).
Quantiles over more than 100,000 values use a random subset of 100,000 as the reference does; the subset
comes from a generator seeded with 0, so results repeat (the reference's are unseeded).
"""

from __future__ import annotations

import torch

METRIC_FOCAL_DIVISOR = 300.0
SKY_THRESHOLD = 0.3
SKY_DEPTH_CAP = 200.0
QUANTILE_SAMPLES = 100_000
MIN_DEPTH = 1e-3
MIN_METRIC_DEPTH = 1e-2


def metric_depth(raw: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """raw metric-model depth (B, S, H, W) and intrinsics (B, S, 3, 3) -> depth in metres (B, S, H, W)."""
    focal = (intrinsics[..., 0, 0] + intrinsics[..., 1, 1]) / 2
    return raw * (focal[..., None, None] / METRIC_FOCAL_DIVISOR)


def _quantile(values: torch.Tensor, q: float, generator: torch.Generator | None) -> torch.Tensor:
    if values.numel() > QUANTILE_SAMPLES:
        if generator is None:
            generator = torch.Generator(device=values.device).manual_seed(0)
        pick = torch.randperm(values.numel(), generator=generator, device=values.device)[:QUANTILE_SAMPLES]
        values = values.reshape(-1)[pick]
    return torch.quantile(values, q)


def align_to_metric(depth: torch.Tensor, depth_conf: torch.Tensor, metric_raw: torch.Tensor, sky: torch.Tensor,
                    intrinsics: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Any-view depth/confidence (B, S, H, W) -> the same in metres, with the metric model's raw depth and
    sky map (B, S, H, W) and the focal lengths of `intrinsics` (B, S, 3, 3).

    Returns depth, depth_conf (B, S, H, W), metric_depth (B, S, H, W, metres), scale (0-d tensor) and
    non_sky (B, S, H, W bool). Raises ValueError when the sky covers (almost) everything or no pixel
    qualifies for the fit.
    """
    depth, depth_conf = depth.float(), depth_conf.float()
    metric = metric_depth(metric_raw.float(), intrinsics.float())
    non_sky = sky < SKY_THRESHOLD
    if int(non_sky.sum()) <= 10:
        raise ValueError("the metric model sees sky (or nothing) almost everywhere, so there is nothing to take "
                         "the metric scale from")
    median_conf = _quantile(depth_conf[non_sky], 0.5, generator)
    use = (depth_conf >= median_conf) & non_sky & (metric > MIN_METRIC_DEPTH) & (depth > MIN_DEPTH)
    if not bool(use.any()):
        raise ValueError("no pixel has both a usable depth and a usable metric depth, so the metric scale "
                         "cannot be fitted")
    a, b = metric[use], depth[use]
    scale = torch.dot(a, b) / torch.dot(b, b).clamp_min(1e-12)
    depth = depth * scale
    sky_depth = torch.clamp(_quantile(depth[non_sky], 0.99, generator), max=SKY_DEPTH_CAP)
    depth = torch.where(non_sky, depth, sky_depth)
    depth_conf = torch.where(non_sky, depth_conf, torch.ones_like(depth_conf))
    return {"depth": depth, "depth_conf": depth_conf, "metric_depth": metric, "scale": scale, "non_sky": non_sky}
