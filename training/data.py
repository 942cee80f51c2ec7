"""Training and evaluation batches: rendered view pairs with ground-truth pointmaps, made on the fly.

A batch is a pure function of its scene seeds (and the style): scene i of a batch uses seed `seeds[i]` for
the scene and its cameras; the photometric jitter and blur of the whole batch are drawn from `seeds[0]`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .cameras import sample_views
from .render import render
from .scenes import TRAIN, Scenes, SceneStyle, sample_scene, scenes_to, stack_scenes


@dataclass
class PairBatch:
    """B view pairs. img1/img2 (B, 3, H, W) normalised to [-1, 1] as the networks expect; pts1/pts2
    (B, H, W, 3) ground-truth points of each view's pixels in view 1's camera frame (OpenCV axes);
    cam2world (B, 2, 4, 4) and K (B, 2, 3, 3) of the two views."""

    img1: torch.Tensor
    img2: torch.Tensor
    pts1: torch.Tensor
    pts2: torch.Tensor
    cam2world: torch.Tensor
    K: torch.Tensor


@dataclass
class Drawn:
    """What a batch renders, drawn on the CPU from its seeds: B scenes (`Scenes`, CPU tensors), their cameras
    cam2world (B, V, 4, 4) and K (B, V, 3, 3), and the seed of the batch's photometric jitter. A pure
    function of the seeds and settings, so another process may draw it ahead of time (`train.py`'s
    `--draw-workers`)."""

    scenes: Scenes
    cam2world: torch.Tensor
    K: torch.Tensor
    jitter_seed: int


def draw_views(seeds: list[int], n_views: int, size: tuple[int, int], style: SceneStyle = TRAIN,
               arc_deg: tuple[float, float] = (8.0, 70.0), fov_deg: tuple[float, float] = (40.0, 80.0)) -> Drawn:
    """Scenes from `seeds` and n_views cameras each for frames of `size` (H, W), on the CPU."""
    scenes, c2w, Ks = [], [], []
    for seed in seeds:
        g = torch.Generator().manual_seed(int(seed) * 7919 + 1)
        s = sample_scene(seed, style)
        T, K = sample_views(s, n_views, size, g, arc_deg, fov_deg)
        scenes.append(s)
        c2w.append(T)
        Ks.append(K)
    return Drawn(stack_scenes(scenes), torch.stack(c2w), torch.stack(Ks), int(seeds[0]))


def render_drawn(drawn: Drawn, size: tuple[int, int], device="cpu", supersample: int = 2):
    """Render a `Drawn` batch on `device` -> (Rendered, cam2world (B, V, 4, 4), K (B, V, 3, 3))."""
    c2w, K = drawn.cam2world.to(device), drawn.K.to(device)
    g = torch.Generator().manual_seed(drawn.jitter_seed * 104729 + 3)
    return render(scenes_to(drawn.scenes, device), c2w, K, size, g, supersample=supersample), c2w, K


def render_views(seeds: list[int], n_views: int, size: tuple[int, int], style: SceneStyle = TRAIN,
                 device="cpu", supersample: int = 2, arc_deg: tuple[float, float] = (8.0, 70.0),
                 fov_deg: tuple[float, float] = (40.0, 80.0)):
    """Scenes from `seeds`, n_views cameras each, frames of `size` (H, W; any aspect, portrait included)
    -> (Rendered, cam2world (B, V, 4, 4), K (B, V, 3, 3)). `fov_deg`: the long side's field of view."""
    return render_drawn(draw_views(seeds, n_views, size, style, arc_deg, fov_deg), size, device, supersample)


def soften(img: torch.Tensor, seed: int) -> torch.Tensor:
    """Blend each image (B, V, 3, H, W) with a [1 2 1]^2/16 blur by a random amount: photos through lenses,
    demosaicing and JPEG are softer than one ray per pixel."""
    B, V, C, H, W = img.shape
    k = torch.tensor([1.0, 2.0, 1.0], device=img.device)
    k = (k[:, None] * k[None, :] / 16).expand(C, 1, 3, 3)
    flat = img.reshape(B * V, C, H, W)
    blurred = torch.nn.functional.conv2d(torch.nn.functional.pad(flat, (1, 1, 1, 1), mode="replicate"), k, groups=C)
    g = torch.Generator().manual_seed(int(seed) * 31 + 7)
    a = torch.rand(B * V, 1, 1, 1, generator=g).to(img.device)
    return (flat + a * (blurred - flat)).reshape(B, V, C, H, W)


def to_camera(points: torch.Tensor, cam2world: torch.Tensor) -> torch.Tensor:
    """World points (B, H, W, 3) -> the frame of cameras cam2world (B, 4, 4)."""
    R, t = cam2world[:, :3, :3], cam2world[:, :3, 3]
    return torch.einsum("bji,bhwj->bhwi", R, points - t[:, None, None, :])


def make_pairs_batch(seeds: list[int], size: tuple[int, int] = (224, 224), style: SceneStyle = TRAIN,
                     device="cpu", supersample: int = 2, fov_deg: tuple[float, float] = (40.0, 80.0),
                     drawn: Drawn | None = None) -> PairBatch:
    """One training batch of len(seeds) pairs at frame `size` (H, W); which way the second view lies from the
    first is random (seeded: `sample_views` walks its arc in a random direction). `fov_deg`: the range of the
    views' field of view along the frame's long side. `drawn`: the batch's `draw_views(seeds, 2, size, style,
    fov_deg=fov_deg)` when it was drawn ahead (the same batch, without drawing it again)."""
    if drawn is None:
        drawn = draw_views(seeds, 2, size, style, fov_deg=fov_deg)
    elif drawn.jitter_seed != int(seeds[0]) or len(drawn.cam2world) != len(seeds):
        raise ValueError(f"drawn batch (first seed {drawn.jitter_seed}, {len(drawn.cam2world)} scenes) is not the "
                         f"batch of seeds {seeds[0]}.. ({len(seeds)})")
    r, c2w, K = render_drawn(drawn, size, device, supersample)
    img = soften(r.image.permute(0, 1, 4, 2, 3), seeds[0]) * 2 - 1     # (B, 2, 3, H, W)
    ref = c2w[:, 0]
    return PairBatch(img[:, 0].contiguous(), img[:, 1].contiguous(), to_camera(r.points[:, 0], ref),
                     to_camera(r.points[:, 1], ref), c2w, K)
