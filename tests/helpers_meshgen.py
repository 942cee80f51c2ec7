"""Synthetic meshing cases in the fixture format of tests/fixtures/meshing/README.md (own generator).

Ray-cast spheres, boxes rotated about z, a floor and a background sphere ("object"), or the inside of
an 8 x 8 x 3 m room with spheres ("room"); then the README's perturbations: depth noise (half per
pixel, half a smooth field), per-view scale error, camera rotation error, outliers and flying pixels.
"""

from __future__ import annotations

import json

import numpy as np


def _look_at(centre: np.ndarray, target: np.ndarray) -> np.ndarray:
    """cam2world (4, 4), OpenCV axes, camera at `centre` looking at `target`, world z up."""
    z = target - centre
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-6 else np.array([1.0, 0, 0])
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], 1)
    T[:3, 3] = centre
    return T


def _sphere_hits(o, d, c, r, inside=False):
    oc = o - c
    b = (d * oc).sum(-1)
    disc = b * b - ((oc * oc).sum(-1) - r * r)
    s = np.sqrt(np.maximum(disc, 0))
    t = -b + s if inside else -b - s
    return np.where((disc > 0) & (t > 1e-6), t, np.inf)


def _box_hits(o, d, c, half, ang, inside=False):
    ca, sa = np.cos(-ang), np.sin(-ang)
    R = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1.0]])
    ol, dl = (o - c) @ R.T, d @ R.T
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-half - ol) / dl, (half - ol) / dl
    tn = np.nanmax(np.minimum(t1, t2), -1)
    tf = np.nanmin(np.maximum(t1, t2), -1)
    t = tf if inside else tn
    return np.where((tf >= tn) & (t > 1e-6), t, np.inf)


def _scene(kind: str, rng):
    prims = []
    if kind == "object":
        for _ in range(int(rng.integers(4, 8))):
            p = rng.uniform(-0.7, 0.7, 2)
            if rng.random() < 0.5:
                r = rng.uniform(0.12, 0.3)
                z = r if rng.random() < 0.6 else r + rng.uniform(0.1, 0.4)
                prims.append(("sphere", np.array([p[0], p[1], z]), r))
            else:
                half = rng.uniform(0.1, 0.3, 3)
                prims.append(("box", np.array([p[0], p[1], half[2]]), half, rng.uniform(0, np.pi)))
    else:
        for _ in range(int(rng.integers(3, 6))):
            r = rng.uniform(0.3, 0.7)
            p = rng.uniform(-2.5, 2.5, 2)
            prims.append(("sphere", np.array([p[0], p[1], r]), r))
    return prims


def _cast(kind, prims, o, d):
    """Hit distance along unit rays (n,), and a surface id per ray."""
    hits = []
    for p in prims:
        hits.append(_sphere_hits(o, d, p[1], p[2]) if p[0] == "sphere" else _box_hits(o, d, p[1], p[2], p[3]))
    if kind == "object":
        with np.errstate(divide="ignore", invalid="ignore"):
            tf = -o[..., 2] / d[..., 2]
        in_bg = np.linalg.norm(o + np.nan_to_num(tf)[..., None] * d, axis=-1) < 8
        hits.append(np.where((tf > 1e-6) & in_bg, tf, np.inf))
        hits.append(_sphere_hits(o, d, np.zeros(3), 8.0, inside=True))
    else:
        hits.append(_box_hits(o, d, np.array([0, 0, 1.5]), np.array([4.0, 4.0, 1.5]), 0.0, inside=True))
    H = np.stack(hits, -1)
    return H.min(-1), H.argmin(-1)


def _colour(X, sid):
    c = 0.5 + 0.25 * np.sin(X[..., :1] * np.array([7.0, 5.0, 3.0]) + X[..., 1:2] * np.array([3.0, 9.0, 4.0])
                            + X[..., 2:3] * np.array([5.0, 2.0, 8.0]) + sid[..., None])
    return np.clip(255 * c, 0, 255).astype(np.uint8)


def _rays(K, c2w, H, W, factor=1):
    u, v = np.meshgrid(np.arange(W * factor) / factor - (factor - 1) / (2 * factor),
                       np.arange(H * factor) / factor - (factor - 1) / (2 * factor))
    pix = np.stack([u, v, np.ones_like(u)], -1)
    dc = pix @ np.linalg.inv(K).T
    dw = dc @ c2w[:3, :3].T
    n = np.linalg.norm(dw, axis=-1, keepdims=True)
    return np.broadcast_to(c2w[:3, 3], dw.shape), dw / n, (dc / n)[..., 2]


def _rot(rng, deg):
    a = rng.normal(size=3)
    a /= np.linalg.norm(a)
    t = np.deg2rad(rng.normal(0, deg)) if deg > 0 else 0.0
    Kx = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * Kx + (1 - np.cos(t)) * Kx @ Kx


def make_case(seed=0, kind="object", views=10, W=96, H=72, noise=0.01, outliers=0.03, edge_mix=0.5,
              pose_noise_deg=0.2, scale_noise=0.003, gt_factor=4, gt_points=100_000) -> dict:
    """One case as a dict of the fixture keys (gt_normals omitted: not used by the scores).
    gt_factor = 0 skips the ground truth (inputs only, for benchmarks)."""
    rng = np.random.default_rng(seed)
    prims = _scene(kind, rng)
    cams = []
    for k in range(views):
        if kind == "object":
            az = 2 * np.pi * k / views + rng.normal(0, 0.1)
            el = rng.uniform(0.35, 0.8)
            c = 3.0 * np.array([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)])
            cams.append(_look_at(c, np.array([0, 0, 0.25]) + rng.normal(0, 0.05, 3)))
        else:
            az = 2 * np.pi * k / views
            c = np.array([1.2 * np.cos(az), 1.2 * np.sin(az), 1.6])
            tgt = c + np.array([np.cos(az + 2.5), np.sin(az + 2.5), -0.25])
            cams.append(_look_at(c, tgt))
    depth, conf, imgs, Ks, given = [], [], [], [], []
    gt = []
    for T in cams:
        f = W * rng.uniform(0.95, 1.1)
        K = np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1.0]])
        o, d, zf = _rays(K, T, H, W)
        t, sid = _cast(kind, prims, o, d)
        X = o + t[..., None] * d
        z = t * zf
        img = _colour(X, sid)
        # Perturbations (README): smooth + per-pixel noise, scale, flying pixels, outliers.
        gy, gx = np.mgrid[0:H, 0:W] / max(H, W)
        smooth = sum(rng.normal() * np.sin(2 * np.pi * (rng.uniform(0.3, 1.5) * gx + rng.uniform(0.3, 1.5) * gy)
                                           + rng.uniform(0, 6)) for _ in range(3)) / np.sqrt(1.5)
        e = noise * (np.sqrt(0.5) * rng.normal(size=(H, W)) + np.sqrt(0.5) * smooth)
        zn = z * (1 + e) * (1 + rng.normal(0, scale_noise))
        c = rng.uniform(3, 20, (H, W))
        pad = np.pad(z, 1, mode="edge")
        win = np.stack([pad[a:a + H, b:b + W] for a in range(3) for b in range(3)])
        edge = (win.max(0) - win.min(0)) > 0.05 * win.min(0)
        mix = edge & (rng.random((H, W)) < edge_mix)
        zn = np.where(mix, rng.uniform(win.min(0), win.max(0)), zn)
        c = np.where(mix, rng.uniform(1.5, 6, (H, W)), c)
        out = rng.random((H, W)) < outliers
        zn = np.where(out, z * rng.uniform(0.3, 3, (H, W)), zn)
        c = np.where(out, rng.uniform(1, 1.5, (H, W)), c)
        Tg = T.copy()
        Tg[:3, :3] = _rot(rng, pose_noise_deg) @ T[:3, :3]
        depth.append(zn.astype(np.float32))
        conf.append(c.astype(np.float32))
        imgs.append(img)
        Ks.append(K)
        given.append(Tg)
        if gt_factor > 0:
            og, dg, _ = _rays(K, T, H, W, gt_factor)
            tg, _ = _cast(kind, prims, og, dg)
            gt.append((og + tg[..., None] * dg).reshape(-1, 3))
    meta = dict(seed=seed, views=views, W=W, H=H, scene=kind, noise=noise, outliers=outliers,
                edge_mix=edge_mix, pose_noise_deg=pose_noise_deg, scale_noise=scale_noise)
    inputs = {"images": np.stack(imgs), "depth": np.stack(depth), "conf": np.stack(conf),
              "K": np.stack(Ks).astype(np.float32), "cam2world": np.stack(given), "pixel_center": "integer",
              "meta": json.dumps(meta)}
    if gt_factor <= 0:
        return inputs
    gtp = np.concatenate(gt)
    if kind == "object":
        tops = [p[1][2] + (p[2] if p[0] == "sphere" else p[2][2]) for p in prims]
        lo = np.array([-1.0, -1.0, -0.5])
        hi = np.array([1.0, 1.0, max(tops) + 0.5])
        box = np.stack([lo, hi])
    else:
        box = np.array([[-np.inf] * 3, [np.inf] * 3])
    gtp = gtp[np.all((gtp >= box[0]) & (gtp <= box[1]), 1) & np.isfinite(gtp).all(1)]
    # Thin to a nearly uniform density: one sample per small grid cell.
    span = gtp.max(0) - gtp.min(0)
    cell = np.sqrt((span[0] * span[1] + span[1] * span[2] + span[0] * span[2]) / gt_points)
    _, first = np.unique(np.floor(gtp / cell).astype(np.int64), axis=0, return_index=True)
    gtp = gtp[first]
    return {**inputs, "gt_points": gtp.astype(np.float32),
            "bbox_diag": float(np.linalg.norm(gtp.max(0) - gtp.min(0))), "score_box": box}


def write_case(path, **kw) -> None:
    np.savez_compressed(path, **make_case(**kw))
