"""Camera sets that look at a scene's objects with overlap: pairs on arcs, varied focal lengths and frames.

Cameras are OpenCV pinholes (x right, y down, z forward); `cam2world` (..., 4, 4) maps camera to world
coordinates; `K` (..., 3, 3) maps camera points to pixel coordinates with pixel centres at integers.

Frames: a view is rendered at (H, W). The field of view is drawn for the LONG side (horizontal for landscape
and square frames, vertical for portrait ones), so one lens range covers every aspect and a portrait view is
a landscape one turned on its side; the principal point sits near the frame's centre ((W-1)/2, (H-1)/2).
Training frames other than squares come from `aspect_shape`: the shape the photo loader gives a photo of
that aspect at the training size (long side = size, sides cropped to multiples of the patch), so the network
trains on exactly the frames it is shown at inference.
"""

from __future__ import annotations

import math

import torch

from .scenes import Scenes


def look_at(eye: torch.Tensor, target: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(n, 3) eyes and targets, (n,) roll in radians -> (n, 4, 4) cam2world (OpenCV axes, world z up)."""
    f = target - eye
    f = f / f.norm(dim=-1, keepdim=True)
    up = torch.tensor([0.0, 0.0, 1.0], device=eye.device).expand_as(f)
    x = torch.linalg.cross(f, up)
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    y = torch.linalg.cross(f, x)          # points down in the image
    c, s = torch.cos(roll)[:, None], torch.sin(roll)[:, None]
    x, y = c * x + s * y, -s * x + c * y
    T = torch.zeros(eye.shape[0], 4, 4, device=eye.device)
    T[:, :3, 0], T[:, :3, 1], T[:, :3, 2], T[:, :3, 3], T[:, 3, 3] = x, y, f, eye, 1
    return T


def sample_views(scene: Scenes, n_views: int, size: tuple[int, int], g: torch.Generator,
                 arc_deg: tuple[float, float] = (8.0, 70.0),
                 fov_deg: tuple[float, float] = (40.0, 80.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """n_views cameras on an arc around a point of interest of a single scene (batch 1).

    The arc spans a random angle in `arc_deg`; eye heights and distances wander along it. All cameras share
    a focal length (one lens), drawn for a field of view of the frame's LONG side uniform in `fov_deg`
    (= the horizontal one for the square and landscape frames of `size` (H, W)), principal point near the
    image centre. Returns cam2world (n_views, 4, 4) and K (n_views, 3, 3).
    """
    h, w = size
    k = int(torch.randint(int((scene.kind[0] > 0).sum()), (1,), generator=g))
    target = scene.centre[0, k] + (torch.rand(3, generator=g) - 0.5) * 0.6
    target[2] = target[2].clamp(0.1, 1.5)
    room_lo, room_hi = scene.room_min[0], scene.room_max[0]
    span = math.radians(float(arc_deg[0] + (arc_deg[1] - arc_deg[0]) * torch.rand(1, generator=g)))
    start = float(torch.rand(1, generator=g)) * 2 * math.pi
    az = start + span * torch.linspace(0, 1, n_views) * (1 if torch.rand(1, generator=g) < 0.5 else -1)
    az = az + (torch.rand(n_views, generator=g) - 0.5) * span / max(n_views, 2) * 0.5
    dist = 1.6 + 2.4 * torch.rand(1, generator=g) + 0.3 * (torch.rand(n_views, generator=g) - 0.5)
    elev = torch.deg2rad(8 + 40 * torch.rand(1, generator=g) + 8 * (torch.rand(n_views, generator=g) - 0.5))
    eye = target + torch.stack([dist * torch.cos(elev) * torch.cos(az), dist * torch.cos(elev) * torch.sin(az),
                                dist * torch.sin(elev)], -1)
    margin = 0.15
    eye = torch.maximum(torch.minimum(eye, room_hi - margin), room_lo + margin)
    aim = target + (torch.rand(n_views, 3, generator=g) - 0.5) * 0.4
    roll = torch.deg2rad((torch.rand(n_views, generator=g) - 0.5) * 10)
    cam2world = look_at(eye, aim, roll)
    fov = math.radians(fov_deg[0] + (fov_deg[1] - fov_deg[0]) * float(torch.rand(1, generator=g)))
    f = 0.5 * max(w, h) / math.tan(fov / 2)
    K = torch.zeros(n_views, 3, 3)
    K[:, 0, 0], K[:, 1, 1], K[:, 2, 2] = f, f, 1
    K[:, 0, 2] = (w - 1) / 2 + (torch.rand(1, generator=g) - 0.5) * 0.04 * w
    K[:, 1, 2] = (h - 1) / 2 + (torch.rand(1, generator=g) - 0.5) * 0.04 * h
    return cam2world, K


def parse_aspect(text: str) -> tuple[tuple[int, int], float]:
    """'W:H' or 'W:H=WEIGHT' (e.g. '4:3', '9:16=0.5') -> ((W, H), weight); raises ValueError naming the text."""
    ratio, _, weight = text.partition("=")
    try:
        w, h = (int(v) for v in ratio.split(":"))
        wt = float(weight) if weight else 1.0
    except ValueError:
        raise ValueError(f"aspect {text!r} must look like 4:3 or 4:3=2 (width:height[=weight])") from None
    if w <= 0 or h <= 0 or not wt > 0:
        raise ValueError(f"aspect {text!r}: width, height and weight must be positive")
    return (w, h), wt


def aspect_shape(aspect: tuple[int, int], size: int, patch: int = 16) -> tuple[int, int]:
    """(H, W) of the network frame of a W:H photo at training size `size`: what the loader's whole-frame
    rule gives (`core.io.images.dust3r_plan(..., whole_frame=True)`, squares kept square): long side `size`,
    the short side cut down to a multiple of `patch`. 4:3 -> (160, 224) at 224; 16:9 -> (112, 224); 3:4 ->
    (224, 160)."""
    from ..core.io.images import dust3r_plan

    w, h = aspect
    _, _, (left, top, right, bottom) = dust3r_plan(w, h, size, square_ok=True, patch_size=patch, whole_frame=True)
    if right <= left or bottom <= top:
        raise ValueError(f"aspect {w}:{h} leaves no frame at size {size} (a side under {patch} pixels)")
    return bottom - top, right - left


def draw_shape(shapes: list[tuple[int, int]], weights: list[float], seed: int, step: int) -> tuple[int, int]:
    """The (H, W) of training step `step`: one of `shapes` by `weights`, a pure function of (seed, step), so
    every DDP rank renders the same shape and a resumed run continues the same sequence."""
    if len(shapes) == 1:
        return shapes[0]
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step) + 11)
    k = int(torch.multinomial(torch.tensor(weights, dtype=torch.float64), 1, generator=g))
    return shapes[k]
