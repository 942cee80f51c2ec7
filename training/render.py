"""A ray caster in torch: images, depth and world points of `Scenes` seen by pinhole cameras.

Rays carry a camera-space direction with z = 1, so the ray parameter t of a hit IS the hit's z-depth.
All work is batched over scenes and views; objects are visited one slot at a time so memory stays at a few
(B, R, 3) tensors (R rays per scene).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from . import textures
from .scenes import BOX, CYLINDER, ELLIPSOID, Scenes
from .textures import albedo

_EPS = 1e-4
_FAR = 1e6


@dataclass
class Hits:
    """Per ray: depth t (B, R), world point (B, R, 3), unit world normal (B, R, 3), surface id (B, R) int64:
    object slot m in [0, M), or M + face (0..5) for the room's faces (-x, +x, -y, +y, floor, ceiling)."""

    t: torch.Tensor
    point: torch.Tensor
    normal: torch.Tensor
    surface: torch.Tensor


def camera_rays(cam2world: torch.Tensor, K: torch.Tensor, size: tuple[int, int], supersample: int = 1):
    """cam2world (B, V, 4, 4), K (B, V, 3, 3) -> origins and directions (B, V*H'*W', 3), H' = H*supersample.

    Sub-pixel samples sit at u + (i + 0.5)/s - 0.5 around each pixel centre u (pixel centres at integers).
    Directions are world-space images of camera vectors (x, y, 1).
    """
    B, V = cam2world.shape[:2]
    h, w = size
    s = supersample
    dev = cam2world.device
    off = (torch.arange(s, device=dev) + 0.5) / s - 0.5
    v = (torch.arange(h, device=dev)[:, None] + off[None]).reshape(-1)
    u = (torch.arange(w, device=dev)[:, None] + off[None]).reshape(-1)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    pix = torch.stack([uu, vv, torch.ones_like(uu)], -1).reshape(-1, 3)              # (P, 3)
    cam = torch.einsum("bvij,pj->bvpi", torch.linalg.inv(K), pix)                   # (B, V, P, 3)
    cam = cam / cam[..., 2:3]
    d = torch.einsum("bvij,bvpj->bvpi", cam2world[:, :, :3, :3], cam)
    o = cam2world[:, :, None, :3, 3].expand_as(d)
    return o.reshape(B, -1, 3), d.reshape(B, -1, 3)


def _object_hit(o: torch.Tensor, d: torch.Tensor, kind: torch.Tensor, half: torch.Tensor):
    """Local-frame rays (B, R, 3) against one object slot per scene (kind (B,), half (B, 3)).

    Returns t (B, R) (inf where missed) and the local normal (B, R, 3) (not normalised)."""
    s = half[:, None, :]
    inf = torch.full_like(o[..., 0], float("inf"))
    # box: slab test
    inv = 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    t1, t2 = (-s - o) * inv, (s - o) * inv
    tn, tf = torch.minimum(t1, t2), torch.maximum(t1, t2)
    t_near, axis = tn.max(-1)
    t_far = tf.min(-1).values
    box_ok = (t_far >= t_near) & (t_near > _EPS)
    t_box = torch.where(box_ok, t_near, inf)
    n_box = -torch.sign(d) * torch.nn.functional.one_hot(axis, 3).to(d.dtype)
    # ellipsoid: unit sphere after scaling
    os_, ds = o / s, d / s
    a = (ds * ds).sum(-1)
    b = 2 * (os_ * ds).sum(-1)
    c = (os_ * os_).sum(-1) - 1
    disc = b * b - 4 * a * c
    t_e = (-b - disc.clamp_min(0).sqrt()) / (2 * a)
    t_ell = torch.where((disc >= 0) & (t_e > _EPS), t_e, inf)
    p_e = o + t_ell.clamp(max=_FAR)[..., None] * d
    n_ell = p_e / (s * s)
    # cylinder: side + caps
    a2 = ds[..., 0] ** 2 + ds[..., 1] ** 2
    b2 = 2 * (os_[..., 0] * ds[..., 0] + os_[..., 1] * ds[..., 1])
    c2 = os_[..., 0] ** 2 + os_[..., 1] ** 2 - 1
    disc2 = b2 * b2 - 4 * a2 * c2
    t_s = (-b2 - disc2.clamp_min(0).sqrt()) / (2 * a2).clamp_min(1e-12)
    z_s = o[..., 2] + t_s * d[..., 2]
    t_side = torch.where((disc2 >= 0) & (t_s > _EPS) & (z_s.abs() <= s[..., 2]), t_s, inf)
    dz = torch.where(d[..., 2].abs() < 1e-12, torch.full_like(d[..., 2], 1e-12), d[..., 2])
    t_cap = torch.minimum((s[..., 2] - o[..., 2]) / dz, (-s[..., 2] - o[..., 2]) / dz)
    q = os_[..., :2] + t_cap[..., None] * ds[..., :2]
    t_cap = torch.where((t_cap > _EPS) & ((q * q).sum(-1) <= 1), t_cap, inf)
    side_first = t_side <= t_cap
    t_cyl = torch.minimum(t_side, t_cap)
    p_c = o + t_cyl.clamp(max=_FAR)[..., None] * d
    n_side = torch.stack([p_c[..., 0] / s[..., 0] ** 2, p_c[..., 1] / s[..., 1] ** 2, torch.zeros_like(t_cyl)], -1)
    n_cap = torch.zeros_like(p_c)
    n_cap[..., 2] = -torch.sign(dz)
    n_cyl = torch.where(side_first[..., None], n_side, n_cap)
    k = kind[:, None]
    t = torch.where(k == BOX, t_box, torch.where(k == ELLIPSOID, t_ell, torch.where(k == CYLINDER, t_cyl, inf)))
    kk = k[..., None]
    n = torch.where(kk == BOX, n_box, torch.where(kk == ELLIPSOID, n_ell, n_cyl))
    return t, n


_object_hit_eager = _object_hit


def _to_local(x: torch.Tensor, scenes: Scenes, m: int, is_point: bool) -> torch.Tensor:
    R = scenes.rot[:, m]                                        # (B, 3, 3) local -> world
    if is_point:
        x = x - scenes.centre[:, m, None, :]
    return torch.einsum("brj,bji->bri", x, R)                   # R^T x per row


def _sphere_mask(o: torch.Tensor, d: torch.Tensor, centre: torch.Tensor, radius2: torch.Tensor,
                 t_limit: torch.Tensor) -> torch.Tensor:
    """(B, R) bool: rays o, d (B, R, 3) that meet the sphere (centre (B, 3), squared radius (B,); a negative one
    meets no ray), leave it ahead of the origin and enter it before t_limit (B, R)."""
    oc = o - centre[:, None, :]
    a = (d * d).sum(-1)
    b = (oc * d).sum(-1)
    disc = b * b - a * ((oc * oc).sum(-1) - radius2[:, None])
    root = disc.clamp_min(0).sqrt()
    return (disc >= 0) & ((-b + root) > _EPS * a) & ((-b - root) < t_limit * a)


_sphere_mask_eager = _sphere_mask


def _candidates(scenes: Scenes, o: torch.Tensor, d: torch.Tensor, t_limit: torch.Tensor) -> list[torch.Tensor]:
    """Per object slot m, the flat indices into (B*R) of the rays that may hit it before t_limit (B, R): those
    that meet its bounding sphere (radius |half|, which encloses a box, an ellipsoid and a cylinder of those
    half-extents). Empty slots get none. Two host syncs for all slots (the indices, their counts per slot)."""
    radius = scenes.half.norm(dim=-1) * (1 + 1e-4) + 1e-6                  # (B, M), a margin for rounding
    radius2 = torch.where(scenes.kind > 0, radius * radius, torch.full_like(radius, -1.0))
    M = scenes.kind.shape[1]
    masks = torch.stack([_sphere_mask(o, d, scenes.centre[:, m], radius2[:, m], t_limit) for m in range(M)])
    slot, ray = masks.reshape(M, -1).nonzero(as_tuple=True)                   # sorted by slot
    return list(ray.split(torch.bincount(slot, minlength=M).tolist()))


def _slot_hit(scenes: Scenes, m: int, o: torch.Tensor, d: torch.Tensor, idx: torch.Tensor):
    """`_object_hit` of slot m for the flat rays idx of o, d (B, R, 3) only -> t (N,), world normal (N, 3)."""
    R = o.shape[1]
    bi = idx // R
    rot = scenes.rot[bi, m]                                                # (N, 3, 3) local -> world
    o_l = torch.einsum("nj,nji->ni", o.reshape(-1, 3)[idx] - scenes.centre[bi, m], rot)
    d_l = torch.einsum("nj,nji->ni", d.reshape(-1, 3)[idx], rot)
    t, n_local = _object_hit(o_l[:, None], d_l[:, None], scenes.kind[bi, m], scenes.half[bi, m])
    return t[:, 0], torch.einsum("nij,nj->ni", rot, n_local[:, 0])


def cast(scenes: Scenes, o: torch.Tensor, d: torch.Tensor, objects_only: bool = False,
         t_max: torch.Tensor | None = None, cull: bool = True) -> Hits | torch.Tensor:
    """Nearest hit of rays o, d (B, R, 3). With objects_only, returns only a (B, R) bool 'blocked before
    t_max' (shadow rays).

    cull: intersect each object slot only with the rays that meet its bounding sphere inside the room (or
    before t_max) — a few per cent of the rays: objects are small — instead of with every ray; the same hits
    up to rounding, several times faster. cull=False is the plain reference (tests, bench/bench_train.py)."""
    B, R, _ = o.shape
    M = scenes.kind.shape[1]
    if objects_only:
        blocked = torch.zeros(B, R, dtype=torch.bool, device=o.device)
        if cull:
            for m, idx in enumerate(_candidates(scenes, o, d, t_max)):
                if len(idx):
                    t, _ = _slot_hit(scenes, m, o, d, idx)
                    blocked.view(-1)[idx] |= t < t_max.reshape(-1)[idx]
            return blocked
        occupied = (scenes.kind > 0).any(0).tolist()
        for m in range(M):
            if not occupied[m]:
                continue
            t, _ = _object_hit(_to_local(o, scenes, m, True), _to_local(d, scenes, m, False),
                               scenes.kind[:, m], scenes.half[:, m])
            blocked |= t < t_max
        return blocked
    # room interior: exit distance of the box
    inv = 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    lo, hi = scenes.room_min[:, None, :], scenes.room_max[:, None, :]
    t_exit_axes = torch.maximum((lo - o) * inv, (hi - o) * inv)
    t_best, axis = t_exit_axes.min(-1)
    positive = torch.gather(d, -1, axis[..., None])[..., 0] > 0
    surface = M + 2 * axis + positive.long()
    normal = -torch.sign(torch.gather(d, -1, axis[..., None])) * torch.nn.functional.one_hot(axis, 3).to(d.dtype)
    if cull:
        # candidates against the room (not the nearest hit so far): one pass, two host syncs per cast
        for m, idx in enumerate(_candidates(scenes, o, d, t_best)):
            if not len(idx):
                continue
            t, n_world = _slot_hit(scenes, m, o, d, idx)
            closer = t < t_best.view(-1)[idx]
            hit = idx[closer]
            t_best.view(-1)[hit] = t[closer]
            normal.view(-1, 3)[hit] = n_world[closer]
            surface.view(-1)[hit] = m
        return _hits(o, d, t_best, normal, surface)
    occupied = (scenes.kind > 0).any(0).tolist()
    for m in range(M):
        if not occupied[m]:
            continue
        t, n_local = _object_hit(_to_local(o, scenes, m, True), _to_local(d, scenes, m, False),
                                 scenes.kind[:, m], scenes.half[:, m])
        closer = t < t_best
        t_best = torch.where(closer, t, t_best)
        n_world = torch.einsum("bij,brj->bri", scenes.rot[:, m], n_local)
        normal = torch.where(closer[..., None], n_world, normal)
        surface = torch.where(closer, torch.full_like(surface, m), surface)
    return _hits(o, d, t_best, normal, surface)


def _hits(o: torch.Tensor, d: torch.Tensor, t: torch.Tensor, normal: torch.Tensor, surface: torch.Tensor) -> Hits:
    return Hits(t, o + t[..., None] * d, normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12), surface)


def shade(scenes: Scenes, hits: Hits, d: torch.Tensor, shadows: bool = True) -> torch.Tensor:
    """Linear radiance (B, R, 3): textured albedo x (ambient + lambert from point lights, shadowed)."""
    mat = torch.gather(scenes.material, 1, hits.surface[..., None].expand(-1, -1, scenes.material.shape[-1]))
    rgb = albedo(hits.point, hits.normal, mat)
    n = torch.where(((hits.normal * d).sum(-1, keepdim=True) > 0), -hits.normal, hits.normal)
    light = scenes.ambient[:, None, None].expand_as(rgb).clone()
    origin = hits.point + n * 1e-3
    for li in range(scenes.light_pos.shape[1]):
        power = scenes.light_power[:, li]
        if not bool((power > 0).any()):
            continue
        to_l = scenes.light_pos[:, li, None, :] - origin
        dist2 = (to_l * to_l).sum(-1)
        lam = ((to_l * n).sum(-1) / dist2.sqrt()).clamp_min(0)
        vis = torch.ones_like(lam)
        if shadows:
            vis = (~cast(scenes, origin, to_l, objects_only=True, t_max=torch.ones_like(lam))).to(lam.dtype)
        light = light + (power[:, None] * lam * vis / (1.0 + 0.25 * dist2))[..., None]
    return rgb * light


def compile_kernels() -> None:
    """Swap the per-ray work (`_object_hit`, `_sphere_mask`, `albedo`: chains of elementwise operations) for
    `torch.compile`d versions, fused into a few kernels (GPU training: `train.py --compile-render`). The
    first batches of each frame shape pay the compilation."""
    global _object_hit, _sphere_mask, albedo
    _object_hit = _without_grad(torch.compile(_object_hit_eager, dynamic=True))
    _sphere_mask = _without_grad(torch.compile(_sphere_mask_eager, dynamic=True))
    albedo = _without_grad(torch.compile(textures.albedo, dynamic=True))


def _without_grad(fn):
    """fn always entered with autograd off. Compiled code is guarded on the grad mode, and training renders
    its batches with autograd on but its evaluation batches under no_grad: each kernel compiled twice."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        with torch.no_grad():
            return fn(*args, **kwargs)

    return call


@dataclass
class Rendered:
    """B scenes x V views. image (B, V, H, W, 3) float in [0, 1] (sRGB-like), depth (B, V, H, W) z-depth,
    points (B, V, H, W, 3) world coordinates of each pixel centre's surface point."""

    image: torch.Tensor
    depth: torch.Tensor
    points: torch.Tensor


def render(scenes: Scenes, cam2world: torch.Tensor, K: torch.Tensor, size: tuple[int, int],
           g: torch.Generator | None = None, supersample: int = 2, shadows: bool = True,
           photometric: bool = True) -> Rendered:
    """Images (anti-aliased by supersample^2 rays per pixel), depth and points (one ray per pixel centre).

    photometric: random exposure, white balance, tone curve and sensor noise per view (drawn from g)."""
    B, V = cam2world.shape[:2]
    h, w = size
    s = supersample
    o, d = camera_rays(cam2world, K, size, s)
    hits = cast(scenes, o, d)
    rad = shade(scenes, hits, d, shadows).reshape(B, V, h, s, w, s, 3).mean(dim=(3, 5))
    oc, dc = camera_rays(cam2world, K, size, 1)
    centre = hits if s == 1 else cast(scenes, oc, dc)
    depth = centre.t.reshape(B, V, h, w)
    points = centre.point.reshape(B, V, h, w, 3)
    dev = rad.device
    if photometric:
        gen = g if g is not None else torch.Generator().manual_seed(0)
        expo = torch.exp(torch.empty(B, V, 1, 1, 1).uniform_(-0.4, 0.6, generator=gen)).to(dev)
        wb = torch.empty(B, V, 1, 1, 3).uniform_(0.85, 1.15, generator=gen).to(dev)
        noise_sd = torch.empty(B, V, 1, 1, 1).uniform_(0.0, 0.02, generator=gen).to(dev)
        img = 1.0 - torch.exp(-1.6 * rad * expo * wb)
        img = img.clamp(0, 1) ** (1 / 2.2)
        if dev.type == "cpu":
            noise = torch.randn(img.shape, generator=gen)
        else:
            # drawn on the device (a CPU draw of every pixel is slow), from a generator seeded by gen, so a batch
            # is a function of its seeds on the GPU too (not of the global CUDA stream)
            seed = int(torch.randint(0, 2**62, (1,), generator=gen))
            noise = torch.randn(img.shape, generator=torch.Generator(device=dev).manual_seed(seed), device=dev)
        img = (img + noise_sd * noise).clamp(0, 1)
    else:
        img = ((1.0 - torch.exp(-1.6 * rad)).clamp(0, 1)) ** (1 / 2.2)
    return Rendered(img, depth, points)
