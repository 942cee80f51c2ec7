"""A synthetic `Reconstruction` with exact geometry: a ray-cast room seen by N pinhole cameras.

The room (OpenCV world: y down, z forward; the first camera sits near the origin) is made of a
floor, three walls and a few spheres, each with a procedural colour pattern. Every view has its own
original size (landscape, portrait, non-square), its own principal point (off centre) and optionally
fx != fy. Network maps are a scaled + cropped version of the original image, described by
`net_to_orig`, so `K = net_to_orig @ K_net` holds exactly and each network pixel's 3-D point projects
through K onto `net_to_orig @ (u, v, 1)`.

Used by the scene-builder tests, the bench and the extension's tests; pure numpy, fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pointmap.core import Reconstruction

# (kind, params, base colour, pattern colour). Planes: normal n and offset d with n·x = d, the room
# interior on the side the cameras are on. Spheres: centre and radius.
_PLANES = [
    (np.array([0.0, 1.0, 0.0]), 1.2, (150, 120, 90), (90, 70, 50)),     # floor, y = 1.2 (below)
    (np.array([0.0, 0.0, 1.0]), 7.0, (200, 200, 215), (60, 90, 160)),   # back wall, z = 7
    (np.array([1.0, 0.0, 0.0]), -3.5, (190, 80, 70), (240, 220, 200)),  # left wall, x = -3.5
    (np.array([1.0, 0.0, 0.0]), 3.5, (70, 160, 90), (230, 230, 120)),   # right wall, x = 3.5
]
_SPHERES = [
    (np.array([-0.9, 0.5, 4.0]), 0.7, (230, 180, 40), (120, 40, 20)),
    (np.array([1.0, 0.6, 4.8]), 0.6, (60, 110, 220), (250, 250, 250)),
    (np.array([0.1, 0.85, 3.2]), 0.35, (220, 60, 150), (40, 40, 40)),
]


@dataclass
class ViewSpec:
    """One synthetic view: original size, network scale/crop, intrinsics tweaks and pose."""

    orig_hw: tuple[int, int]            # (H0, W0)
    scale: float                        # original pixels per network pixel
    crop: tuple[int, int] = (0, 0)      # (rows, cols) cut off the top/left of the resized image
    net_hw: tuple[int, int] | None = None   # network (H, W); default: the whole resized image
    fov_x_deg: float = 60.0
    aspect_f: float = 1.0               # fy / fx
    pp_offset: tuple[float, float] = (0.0, 0.0)   # principal point offset from the centre, in orig px


DEFAULT_VIEWS = [
    ViewSpec((300, 400), 10.0, pp_offset=(12.0, -9.0)),                                  # landscape
    ViewSpec((400, 300), 10.0, pp_offset=(-7.0, 15.0)),                                   # portrait
    ViewSpec((240, 512), 8.0, crop=(1, 2), net_hw=(26, 60), pp_offset=(20.0, 6.0)),      # wide, cropped
    ViewSpec((300, 400), 10.0, aspect_f=1.08, pp_offset=(-15.0, -4.0)),                  # fx != fy
]


def _pattern(p: np.ndarray, which: np.ndarray) -> np.ndarray:
    """A checker/stripe pattern selector in {0, 1} per hit point, different per surface."""
    k = which.astype(np.float64) + 1.0
    s = np.floor(p[:, 0] * (1.3 + 0.2 * k)) + np.floor(p[:, 1] * 1.7) + np.floor(p[:, 2] * (1.1 + 0.1 * k))
    return (s.astype(np.int64) % 2).astype(np.float64)


def raycast_room(origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit along rays (M, 3) → (t (M,), surface index (M,), sRGB colour (M, 3) uint8).

    Rays that hit nothing get t = inf. Surfaces are numbered planes first, then spheres.
    """
    m = len(dirs)
    best_t = np.full(m, np.inf)
    which = np.full(m, -1, np.int64)
    for si, (n, d, _, _) in enumerate(_PLANES):
        denom = dirs @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (d - origins @ n) / denom
        ok = (t > 1e-6) & (t < best_t) & (np.abs(denom) > 1e-12)
        best_t[ok] = t[ok]
        which[ok] = si
    for sj, (c, r, _, _) in enumerate(_SPHERES):
        oc = origins - c
        b = np.einsum("ij,ij->i", oc, dirs)
        cc = np.einsum("ij,ij->i", oc, oc) - r * r
        dd = np.einsum("ij,ij->i", dirs, dirs)
        disc = b * b - dd * cc
        hit = disc >= 0
        sq = np.sqrt(np.where(hit, disc, 0.0))
        t = (-b - sq) / dd
        ok = hit & (t > 1e-6) & (t < best_t)
        best_t[ok] = t[ok]
        which[ok] = len(_PLANES) + sj
    surfaces = _PLANES + _SPHERES
    base = np.array([s[2] for s in surfaces] + [(0, 0, 0)], np.float64)
    alt = np.array([s[3] for s in surfaces] + [(0, 0, 0)], np.float64)
    p = origins + dirs * np.where(np.isfinite(best_t), best_t, 0.0)[:, None]
    sel = _pattern(p, which)[:, None]
    col = base[which] * (1 - sel) + alt[which] * sel
    return best_t, which, np.clip(np.rint(col), 0, 255).astype(np.uint8)


def look_at_cv(eye: np.ndarray, target: np.ndarray, down=(0.0, 1.0, 0.0)) -> np.ndarray:
    """OpenCV cam2world (4x4) at `eye` looking at `target`, image y pointing towards world `down`."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(np.asarray(down, np.float64), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
    return T


def arc_poses(n: int, radius: float = 3.6, target=(0.0, 0.3, 4.2), span_deg: float = 50.0,
              height: float = -0.3) -> np.ndarray:
    """n OpenCV cam2world poses on a horizontal arc around `target`, all looking at it, (n, 4, 4).

    The arc is centred on the −z side of the target (where the open side of the room is).
    """
    target = np.asarray(target, np.float64)
    angles = np.radians(np.linspace(-span_deg / 2, span_deg / 2, n)) if n > 1 else np.zeros(1)
    poses = []
    for a in angles:
        eye = target + np.array([radius * np.sin(a), height - target[1], -radius * np.cos(a)])
        poses.append(look_at_cv(eye, target))
    return np.stack(poses)


def make_synthetic_recon(views: list[ViewSpec] | None = None, n_views: int | None = None, seed: int = 0,
                         names: list[str] | None = None, paths: list[str | None] | None = None,
                         first_at_identity: bool = True) -> Reconstruction:
    """Build the exact synthetic reconstruction.

    views: per-view specs (default DEFAULT_VIEWS, repeated to n_views if given).
    first_at_identity: express the world in the first camera's frame, as real backends do.
    Confidence is a smooth function of the pixel (about 0.8 to 3, highest at the image centre, lower
    on the back wall) so thresholds remove some but not all points. Rays that miss get conf 0.
    """
    views = list(views or DEFAULT_VIEWS)
    if n_views is not None:
        views = [views[i % len(views)] for i in range(n_views)]
    n = len(views)
    rng = np.random.default_rng(seed)
    room_poses = arc_poses(n)                              # cameras in the room's own frame
    # The output world: the first camera's frame (as real backends do) or the room's frame.
    to_out = np.linalg.inv(room_poses[0]) if first_at_identity else np.eye(4)
    poses = to_out @ room_poses

    depth, points, conf, colors = [], [], [], []
    K_all, K_net_all, n2o_all, sizes = [], [], [], []
    for i, spec in enumerate(views):
        H0, W0 = spec.orig_hw
        s = spec.scale
        oy, ox = spec.crop
        if spec.net_hw is None:
            h, w = int(round(H0 / s)) - oy, int(round(W0 / s)) - ox
        else:
            h, w = spec.net_hw
        fx = (W0 / 2.0) / np.tan(np.radians(spec.fov_x_deg) / 2.0)
        fy = fx * spec.aspect_f
        cx = (W0 - 1) / 2.0 + spec.pp_offset[0]
        cy = (H0 - 1) / 2.0 + spec.pp_offset[1]
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        # Network pixel centre (u, v) sits at original pixel s·(u + crop) + (s − 1)/2: a plain
        # area-resize by s followed by a crop, with centres mapped to centres.
        n2o = np.array([[s, 0.0, s * ox + (s - 1) / 2.0], [0.0, s, s * oy + (s - 1) / 2.0], [0.0, 0.0, 1.0]])
        K_net = np.linalg.inv(n2o) @ K

        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        rays_cam = np.stack([(u - K_net[0, 2]) / K_net[0, 0], (v - K_net[1, 2]) / K_net[1, 1], np.ones_like(u)], -1)
        R, t = room_poses[i][:3, :3], room_poses[i][:3, 3]
        d_world = rays_cam.reshape(-1, 3) @ R.T
        tt, which, col = raycast_room(np.broadcast_to(t, d_world.shape).copy(), d_world)
        z = tt.reshape(h, w)                                # rays have z = 1 in camera: t is the depth
        p_room = t + d_world * tt[:, None]
        p_out = p_room @ to_out[:3, :3].T + to_out[:3, 3]
        c = 1.0 + 2.0 * np.exp(-((u - w / 2) ** 2 + (v - h / 2) ** 2) / (0.5 * (w * w + h * h) / 4))
        c = c * np.where(which.reshape(h, w) == 1, 0.6, 1.0) + 0.05 * rng.random((h, w))
        c = np.where(np.isfinite(z), c, 0.0)

        depth.append(np.where(np.isfinite(z), z, 0.0).astype(np.float32))
        points.append(p_out.reshape(h, w, 3).astype(np.float32))
        conf.append(c.astype(np.float32))
        colors.append(col.reshape(h, w, 3))
        K_all.append(K)
        K_net_all.append(K_net)
        n2o_all.append(n2o)
        sizes.append((H0, W0))

    names = names or [f"view_{i:02d}" for i in range(n)]
    paths = paths or [None] * n
    rec = Reconstruction(
        names=list(names), paths=list(paths), image_sizes=np.array(sizes, np.int32),
        cam2world=poses, K=np.stack(K_all), K_net=np.stack(K_net_all), net_to_orig=np.stack(n2o_all),
        depth=depth, points=points, conf=conf, colors=colors, family="synthetic", model="raycast-room",
        meta={"seed": seed},
    )
    rec.validate()
    return rec


def net_pixels_in_orig(rec: Reconstruction, i: int) -> np.ndarray:
    """Original-image pixel (x0, y0) of every network pixel of view i, (H, W, 2)."""
    h, w = rec.net_size(i)
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    A = rec.net_to_orig[i]
    return np.stack([A[0, 0] * u + A[0, 1] * v + A[0, 2], A[1, 0] * u + A[1, 1] * v + A[1, 2]], -1)
