"""Procedural solid textures evaluated at world points: the same surface point has the same colour in every
view (the networks learn correspondences from this), and every pattern is a pure function of the material.

Texture ids: 0 value-noise fbm, 1 checkers, 2 stripes, 3 bricks, 4 wood rings, 5 marble, 6 glyphs (text-like
strokes in cells), 7 plain colour with faint noise. Material vectors are laid out as in `scenes.MATERIAL_DIM`.
"""

from __future__ import annotations

import torch


def _hash(i: torch.Tensor) -> torch.Tensor:
    """Integer lattice points (..., 3) (float, whole numbers) -> pseudo-random values in [0, 1)."""
    i = i.to(torch.int64)
    h = i[..., 0] * 73856093 ^ i[..., 1] * 19349663 ^ i[..., 2] * 83492791
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFFFF).to(torch.float32) / float(0x1000000)


def value_noise(p: torch.Tensor) -> torch.Tensor:
    """Smooth value noise in [0, 1) at points p (..., 3)."""
    i = torch.floor(p)
    f = p - i
    f = f * f * (3 - 2 * f)
    out = torch.zeros_like(p[..., 0])
    for dx in (0, 1):
        wx = f[..., 0] if dx else 1 - f[..., 0]
        for dy in (0, 1):
            wy = f[..., 1] if dy else 1 - f[..., 1]
            for dz in (0, 1):
                wz = f[..., 2] if dz else 1 - f[..., 2]
                corner = i + torch.tensor([dx, dy, dz], dtype=p.dtype, device=p.device)
                out = out + wx * wy * wz * _hash(corner)
    return out


def fbm(p: torch.Tensor, octaves: int = 4) -> torch.Tensor:
    """Fractal sum of value noise, roughly in [0, 1]."""
    total, amp, norm = torch.zeros_like(p[..., 0]), 1.0, 0.0
    for o in range(octaves):
        total = total + amp * value_noise(p * (2.0 ** o) + 17.0 * o)
        norm += amp
        amp *= 0.5
    return total / norm


def _planar(q: torch.Tensor, normal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two coordinates across the surface: drop the axis the normal is most aligned with."""
    axis = normal.abs().argmax(-1)
    u = torch.where(axis == 0, q[..., 1], q[..., 0])
    v = torch.where(axis == 2, q[..., 1], q[..., 2])
    return u, v


def albedo(point: torch.Tensor, normal: torch.Tensor, mat: torch.Tensor) -> torch.Tensor:
    """Linear albedo (..., 3) at world points (..., 3) with normals (..., 3) and materials (..., MATERIAL_DIM)."""
    tex = mat[..., 0].round().long()
    scale = mat[..., 1:2]
    c1, c2, c3 = mat[..., 2:5], mat[..., 5:8], mat[..., 8:11]
    axis, phase, offset = mat[..., 11:14], mat[..., 14:17], mat[..., 17]
    q = point * scale + phase
    n1 = fbm(q * 0.7)
    u, v = _planar(q, normal)
    frac = torch.frac
    t = n1.clone()                                                             # 0: noise
    checker = (torch.floor(q).sum(-1).remainder(2))
    t = torch.where(tex == 1, 0.85 * checker + 0.15 * n1, t)
    stripe = (torch.sin(6.2832 * ((q * axis).sum(-1) + 0.3 * n1)) > 0).float()
    t = torch.where(tex == 2, stripe, t)
    row = torch.floor(v * 2.0)
    bu = u + 0.5 * row.remainder(2)
    mortar = (torch.minimum(frac(bu), 1 - frac(bu)) < 0.05) | (frac(v * 2.0) < 0.1)
    t = torch.where(tex == 3, torch.where(mortar, torch.full_like(t, 2.0), 0.3 * n1 + 0.3 * _hash(
        torch.stack([torch.floor(bu), row, torch.zeros_like(row)], -1))), t)
    radial = (q - (q * axis).sum(-1, keepdim=True) * axis).norm(dim=-1)
    t = torch.where(tex == 4, frac(radial * 2.0 + 1.2 * n1), t)
    t = torch.where(tex == 5, 0.5 + 0.5 * torch.sin((q * axis).sum(-1) * 2.0 + 6.0 * n1), t)
    cu, cv = torch.floor(u * 3.0), torch.floor(v * 2.0)
    su, sv = torch.floor(frac(u * 3.0) * 4.0), torch.floor(frac(v * 2.0) * 6.0)
    bit = _hash(torch.stack([cu * 7 + su, cv * 11 + sv, cu + 3 * cv], -1)) < 0.45
    inked = bit & (su < 3) & (sv > 0) & (sv < 5) & (_hash(torch.stack([cu, cv, cu * 0], -1)) < 0.8)
    t = torch.where(tex == 6, (~inked).float(), t)
    t = torch.where(tex == 7, 0.15 * n1 + 0.1 * offset, t)
    base = c2 + (c1 - c2) * t.clamp(0, 1)[..., None]
    out = torch.where((t > 1.5)[..., None], c3, base)
    return out * (0.85 + 0.3 * fbm(q * 3.1 + 5.0, octaves=2))[..., None]
