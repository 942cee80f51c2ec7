"""Procedural scenes for training the demo network: a room with objects, materials and lights.

Everything is sampled from a `torch.Generator` seeded per scene, so a scene is a pure function of its seed
and its `SceneStyle`. World frame: metres, z up, the floor is z = 0. Shapes are given as a batch of B
scenes with M object slots each (unused slots have `kind == EMPTY`).

Object kinds, each defined in its own local frame (x_local = R^T (x_world - centre)):
    BOX       |x| <= s_x, |y| <= s_y, |z| <= s_z
    ELLIPSOID (x/s_x)^2 + (y/s_y)^2 + (z/s_z)^2 <= 1      (spheres when the three agree)
    CYLINDER  (x/s_x)^2 + (y/s_y)^2 <= 1, |z| <= s_z      (axis along local z)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

EMPTY, BOX, ELLIPSOID, CYLINDER = 0, 1, 2, 3
N_TEXTURES = 8   # noise, checkers, stripes, bricks, wood, marble, glyphs, plain+noise (see textures.py)


@dataclass(frozen=True)
class SceneStyle:
    """Ranges the sampler draws from. Training and evaluation use different styles (see `TRAIN`, `EVAL`)."""

    objects: tuple[int, int] = (3, 9)              # objects per room (inclusive range)
    room_half: tuple[float, float] = (2.5, 5.0)    # half width/depth of the room, metres
    room_height: tuple[float, float] = (2.4, 4.0)
    object_size: tuple[float, float] = (0.15, 0.7)  # half extents
    textures: tuple[int, ...] = tuple(range(N_TEXTURES))
    texture_scale: tuple[float, float] = (1.5, 9.0)  # pattern frequency, cycles per metre
    lights: tuple[int, int] = (1, 2)
    ambient: tuple[float, float] = (0.15, 0.45)
    palette_saturation: tuple[float, float] = (0.2, 0.9)


# Held-out evaluation scenes use other seeds AND other settings: more, smaller objects, coarser patterns,
# two lights, and the marble texture, which training never sees.
TRAIN = SceneStyle(textures=(0, 1, 2, 3, 4, 6, 7))
EVAL = SceneStyle(objects=(6, 10), object_size=(0.12, 0.5), texture_scale=(1.0, 5.0), lights=(2, 2),
                  textures=tuple(range(N_TEXTURES)), ambient=(0.2, 0.35))
MAX_OBJECTS = 10
EVAL_SEED_BASE = 1_000_000_000   # evaluation seeds start here; training seeds stay below


@dataclass
class Scenes:
    """B scenes. Shapes: (B, ...) for the room, (B, M, ...) for objects, (B, L, ...) for lights."""

    room_min: torch.Tensor      # (B, 3) room box corner (x, y, 0)
    room_max: torch.Tensor      # (B, 3)
    kind: torch.Tensor          # (B, M) int64
    centre: torch.Tensor        # (B, M, 3)
    rot: torch.Tensor           # (B, M, 3, 3) local -> world
    half: torch.Tensor          # (B, M, 3) half extents
    material: torch.Tensor      # (B, M + 6, MATERIAL_DIM): objects first, then the room's 6 faces
    light_pos: torch.Tensor     # (B, L, 3)
    light_power: torch.Tensor   # (B, L) (0 for unused lights)
    ambient: torch.Tensor       # (B,)

    @property
    def batch(self) -> int:
        return self.kind.shape[0]


# material vector: [texture id, scale, c1 rgb, c2 rgb, c3 rgb, axis xyz, phase xyz, offset]
MATERIAL_DIM = 1 + 1 + 9 + 3 + 3 + 1


def _uniform(g: torch.Generator, lo: float, hi: float, *shape) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=g)


def random_rotation(g: torch.Generator, n: int, upright: torch.Tensor | None = None) -> torch.Tensor:
    """(n, 3, 3) rotations; where `upright` (n,) is True only a yaw about world z."""
    q = torch.randn(n, 4, generator=g)
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    R = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(n, 3, 3)
    if upright is not None:
        yaw = _uniform(g, 0, 2 * math.pi, n)
        c, s = torch.cos(yaw), torch.sin(yaw)
        Rz = torch.zeros(n, 3, 3)
        Rz[:, 0, 0], Rz[:, 0, 1], Rz[:, 1, 0], Rz[:, 1, 1], Rz[:, 2, 2] = c, -s, s, c, 1
        R = torch.where(upright[:, None, None], Rz, R)
    return R


def _palette(g: torch.Generator, n: int, sat: tuple[float, float]) -> torch.Tensor:
    """(n, 3, 3): three related colours per material (a base hue with lighter/darker companions)."""
    hue = _uniform(g, 0, 1, n, 1)
    hues = (hue + torch.tensor([0.0, 0.08, 0.5]) * _uniform(g, -1, 1, n, 1)) % 1.0
    s = _uniform(g, *sat, n, 3)
    v = torch.stack([_uniform(g, 0.55, 0.95, n), _uniform(g, 0.1, 0.45, n), _uniform(g, 0.3, 0.9, n)], -1)
    # HSV -> RGB, vectorised
    k = (torch.tensor([5.0, 3.0, 1.0]) + hues[..., None] * 6) % 6
    f = torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return v[..., None] - v[..., None] * s[..., None] * f


def _materials(g: torch.Generator, n: int, style: SceneStyle) -> torch.Tensor:
    tex = torch.tensor(style.textures)[torch.randint(len(style.textures), (n,), generator=g)]
    scale = torch.exp(_uniform(g, math.log(style.texture_scale[0]), math.log(style.texture_scale[1]), n))
    cols = _palette(g, n, style.palette_saturation).reshape(n, 9)
    axis = torch.randn(n, 3, generator=g)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    phase = _uniform(g, 0, 100, n, 3)
    offset = _uniform(g, 0, 1, n, 1)
    return torch.cat([tex[:, None].float(), scale[:, None], cols, axis, phase, offset], -1)


def sample_scene(seed: int, style: SceneStyle = TRAIN, max_objects: int = MAX_OBJECTS) -> Scenes:
    """One scene (batch of 1) from `seed`; objects rest on the floor or float a little, none overlaps a wall."""
    g = torch.Generator().manual_seed(int(seed))
    hx, hy = _uniform(g, *style.room_half, 2).tolist()
    h = float(_uniform(g, *style.room_height, 1))
    room_min = torch.tensor([[-hx, -hy, 0.0]])
    room_max = torch.tensor([[hx, hy, h]])
    n_obj = int(torch.randint(style.objects[0], style.objects[1] + 1, (1,), generator=g))
    n_obj = min(n_obj, max_objects)
    kind = torch.zeros(1, max_objects, dtype=torch.int64)
    kind[0, :n_obj] = torch.randint(1, 4, (n_obj,), generator=g)
    half = _uniform(g, *style.object_size, max_objects, 3)
    spheres = torch.rand(max_objects, generator=g) < 0.5
    half = torch.where((kind[0] == ELLIPSOID)[:, None] & spheres[:, None], half[:, :1].expand(-1, 3), half)
    upright = torch.rand(max_objects, generator=g) < 0.7
    rot = random_rotation(g, max_objects, upright)
    # Objects cluster near the room centre (where the cameras look), resting on the floor when upright.
    spread = 0.45 * min(hx, hy)
    xy = _uniform(g, -1, 1, max_objects, 2) * spread
    lift = torch.where(upright, half[:, 2], half.max(dim=-1).values) + \
        torch.where(torch.rand(max_objects, generator=g) < 0.2, _uniform(g, 0.2, 1.2, max_objects), 0.0)
    centre = torch.cat([xy, lift[:, None]], -1)
    material = _materials(g, max_objects + 6, style)
    n_l = int(torch.randint(style.lights[0], style.lights[1] + 1, (1,), generator=g))
    light_pos = torch.stack([_uniform(g, -0.8 * hx, 0.8 * hx, 2), _uniform(g, -0.8 * hy, 0.8 * hy, 2),
                             _uniform(g, 0.6 * h, 0.95 * h, 2)], -1)
    light_power = _uniform(g, 4.0, 12.0, 2) * (torch.arange(2) < n_l)
    ambient = _uniform(g, *style.ambient, 1)
    return Scenes(room_min, room_max, kind, centre[None], rot[None], half[None], material[None],
                  light_pos[None], light_power[None], ambient)


def stack_scenes(scenes: list[Scenes]) -> Scenes:
    """Concatenate single scenes along the batch dimension."""
    return Scenes(*(torch.cat([getattr(s, f) for s in scenes]) for f in Scenes.__dataclass_fields__))


def scenes_to(s: Scenes, device) -> Scenes:
    return Scenes(*(getattr(s, f).to(device) for f in Scenes.__dataclass_fields__))
