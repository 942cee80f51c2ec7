"""Synthetic pairwise-pointmap scenes with ground truth, and the alignment scores (tests + benchmarks).

A box room (floor, ceiling, four walls) with a few spheres is ray-cast from N pinhole cameras (OpenCV
axes, pixel (u, v) centred at (u, v), principal point at ((W-1)/2, (H-1)/2) — the same rays as the
fixture files, which write the centre as W/2 with pixel centres at u + 0.5). For every directed edge
(i, j) of a scene graph it produces what a DUSt3R-style network would: view i's and view j's pointmaps
in camera i's frame, each pair with its own unknown scale, multiplicative depth noise, a small rotation
error on view j, and a fraction of outliers (random points) with confidence 1.0–1.5 (others 3–20).

`make_case(...)` returns (PairPredictions, truth) with torch tensors on the requested device, so the
benchmark can generate large scenes on the GPU. `case_to_npz` / `load_npz_case` use the fixture format
of tests/fixtures/alignment/README.md (single image size only).
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from pointmap.core.pairwise.graph import make_pairs
from pointmap.core.pairwise.predictions import PairPredictions


def _look_at(eye: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """cam2world (4x4) of an OpenCV camera at `eye` looking at `target` (world z up)."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, np.asarray(up))
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, :3] = np.stack([x, y, z], 1)
    m[:3, 3] = eye
    return m


def _rot(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def _cameras(rng, n: int, path: str):
    if path == "orbit":
        span = rng.uniform(0.9, 1.4) * math.pi
        a0 = rng.uniform(0, 2 * math.pi)
        poses = []
        for k in range(n):
            a = a0 + span * k / max(n - 1, 1)
            r = rng.uniform(2.2, 2.6)
            eye = np.array([r * math.cos(a), r * math.sin(a), rng.uniform(1.2, 1.8)])
            tgt = np.array([0, 0, 1.0]) + rng.normal(0, 0.15, 3)
            poses.append(_look_at(eye, tgt))
    elif path == "loop":
        # A closed walk around the room's centre, looking inwards: views k apart are 2πk/N apart on
        # the circle, so neighbours see real parallax at any N, and a cyclic graph (swin-K, logwin-K)
        # closes the loop.
        a0 = rng.uniform(0, 2 * math.pi)
        poses = []
        for k in range(n):
            a = a0 + 2 * math.pi * k / n
            r = 2.4 + 0.2 * math.sin(3 * a)
            eye = np.array([r * math.cos(a), r * math.sin(a), 1.5 + 0.2 * math.sin(2 * a)])
            tgt = np.array([0, 0, 1.0]) + rng.normal(0, 0.15, 3)
            poses.append(_look_at(eye, tgt))
    elif path == "forward":
        poses = []
        for k in range(n):
            eye = np.array([-3.5 + 1.6 * k / max(n - 1, 1), rng.normal(0, 0.1), 1.4 + rng.normal(0, 0.05)])
            yaw = rng.normal(0, 0.15)
            tgt = eye + np.array([math.cos(yaw), math.sin(yaw), rng.normal(0, 0.05)])
            poses.append(_look_at(eye, tgt))
    elif path == "shot":
        from helpers_shot import shot_poses  # a hand-held walk (the fixture README's "shots")

        return shot_poses(rng, n)
    else:
        raise ValueError(path)
    return np.stack(poses)


def pixel_rays(h: int, w: int, f: float) -> torch.Tensor:
    """(h, w, 3) float64 camera-frame rays (x/z, y/z, 1) of a centred pinhole of focal f (OpenCV axes)."""
    u = (torch.arange(w, dtype=torch.float64) - (w - 1) / 2) / f
    v = (torch.arange(h, dtype=torch.float64) - (h - 1) / 2) / f
    return torch.stack(torch.broadcast_tensors(u[None, :], v[:, None], torch.ones(1, 1, dtype=torch.float64)), -1)


def in_chunk_frame(pose: np.ndarray, world: torch.Tensor, s: float, r: np.ndarray, t: np.ndarray, outliers: float,
                   gen: torch.Generator):
    """One frame as a chunk predictor sees it, in the chunk's own similarity frame x -> s r x + t: the camera
    (4, 4) float64, its world points (h, w, 3) float32 with a share `outliers` replaced by random points of
    low confidence, and confidences (h, w) float32 (good pixels 3-20, outliers 1-1.5)."""
    cam = np.eye(4)
    cam[:3, :3] = r @ pose[:3, :3]
    cam[:3, 3] = s * r @ pose[:3, 3] + t
    h, w = world.shape[:2]
    x = s * world @ torch.tensor(r).T + torch.tensor(t)
    bad = torch.rand(h, w, generator=gen) < outliers
    x = torch.where(bad[..., None], torch.randn(h, w, 3, generator=gen, dtype=torch.float64) * 3, x)
    c = torch.where(bad, 1 + 0.5 * torch.rand(h, w, generator=gen), 3 + 17 * torch.rand(h, w, generator=gen))
    return cam, x.float(), c.float()


def _raycast(cam2world: torch.Tensor, f: float, h: int, w: int, spheres: torch.Tensor, K=None) -> torch.Tensor:
    """z-depth (h, w) of the room seen by one camera (f in pixels, pp at the centre; or a full 3x3 K)."""
    dev, dt = cam2world.device, cam2world.dtype
    fx, fy, cx, cy = (f, f, (w - 1) / 2, (h - 1) / 2) if K is None else (K[0, 0], K[1, 1], K[0, 2], K[1, 2])
    u = (torch.arange(w, device=dev, dtype=dt) - cx) / fx
    v = (torch.arange(h, device=dev, dtype=dt) - cy) / fy
    ray = torch.stack(torch.broadcast_tensors(u[None, :], v[:, None], torch.ones(1, 1, device=dev, dtype=dt)), -1)
    d = ray @ cam2world[:3, :3].T                            # world direction with unit camera z
    c = cam2world[:3, 3]
    lo = torch.tensor([-4.0, -3.0, 0.0], device=dev, dtype=dt)
    hi = torch.tensor([4.0, 3.0, 3.0], device=dev, dtype=dt)
    safe = torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    t = torch.where(d > 0, (hi - c) / safe, (lo - c) / safe).amin(-1)
    for s in spheres:
        oc = c - s[:3]
        a = (d * d).sum(-1)
        b = (d * oc).sum(-1)
        disc = b * b - a * ((oc * oc).sum() - s[3] ** 2)
        ts = (-b - disc.clamp_min(0).sqrt()) / a
        t = torch.where((disc > 0) & (ts > 0) & (ts < t), ts, t)
    return t


def make_case(n_views: int = 6, size=(48, 64), path: str = "orbit", graph: str = "complete",
              noise: float = 0.01, pose_noise_deg: float = 0.5, outliers: float = 0.03,
              shared_focal: bool = False, seed: int = 0, device="cpu", shapes=None,
              dtype=torch.float32, intrinsics=None):
    """One synthetic scene. `shapes` (list of (H, W) per view) overrides `size` for mixed shapes.

    path: "orbit" (an arc of 160–250° around the room's centre), "loop" (a full circle, for long
    sequences with cyclic graphs) or "forward" (a 1.6 m walk along x looking ahead).
    graph: any `core.pairs.make_pairs` scene graph.
    intrinsics: optional (N, 3, 3) pixel intrinsics (any fx, fy, cx, cy) replacing the drawn focals.

    Returns (PairPredictions, truth) where truth = {"cam2world": (N,4,4) float64, "K": (N,3,3) float64,
    "meta": dict}. Point/conf tensors have `dtype` on `device`.
    """
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    shapes = [tuple(size)] * n_views if shapes is None else [tuple(s) for s in shapes]
    poses = _cameras(rng, n_views, path)
    f0 = rng.uniform(0.9, 1.4)
    focal = np.array([f0 if shared_focal else rng.uniform(0.8, 1.5) for _ in range(n_views)])
    focal = focal * np.array([max(s) for s in shapes])
    spheres = []
    while len(spheres) < 4:
        ctr = np.array([0, 0, 1.0]) + rng.uniform(-1, 1, 3) * np.array([1.0, 1.0, 0.5])
        rad = rng.uniform(0.25, 0.5)
        # A walk through the room must not pass through a sphere (orbits stay outside them anyway).
        if path == "shot" and np.linalg.norm(poses[:, :3, 3] - ctr, axis=1).min() < rad + 0.5:
            continue
        spheres.append([*ctr, rad])
    sph = torch.tensor(spheres, device=device, dtype=torch.float64)
    cams = torch.tensor(poses, device=device, dtype=torch.float64)
    K = np.stack([np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]]) for f, (h, w) in zip(focal, shapes, strict=True)])
    if intrinsics is not None:
        K = np.asarray(intrinsics, np.float64).reshape(n_views, 3, 3)
    depth = [_raycast(cams[k], float(focal[k]), *shapes[k], sph, K=K[k]).float() for k in range(n_views)]
    rays = []
    for k, (h, w) in enumerate(shapes):
        u = (torch.arange(w, device=device) - K[k, 0, 2]) / K[k, 0, 0]
        v = (torch.arange(h, device=device) - K[k, 1, 2]) / K[k, 1, 1]
        rays.append(torch.stack(torch.broadcast_tensors(u[None, :], v[:, None], torch.ones(1, 1, device=device)), -1).float())
    edges = make_pairs(n_views, graph).edges

    def noisy_cam_points(k):
        d = depth[k] * (1 + noise * torch.randn(depth[k].shape, device=device, generator=gen))
        return d[..., None] * rays[k]

    def corrupt(pts, conf, scale):
        m = torch.rand(pts.shape[:2], device=device, generator=gen) < outliers
        junk = torch.randn(pts.shape, device=device, generator=gen) * 2.0 * scale
        pts = torch.where(m[..., None], junk, pts)
        low = 1 + 0.5 * torch.rand(pts.shape[:2], device=device, generator=gen)
        return pts, torch.where(m, low, conf)

    out = {"pts_i": [], "pts_j": [], "conf_i": [], "conf_j": []}
    for i, j in edges:
        s = float(np.exp(rng.uniform(-0.7, 0.7)))
        rel = np.linalg.inv(poses[i]) @ poses[j]
        err = _rot(rng.normal(size=3), math.radians(pose_noise_deg) * rng.normal()) if pose_noise_deg else np.eye(3)
        r_ij = torch.tensor(rel[:3, :3] @ err, device=device, dtype=torch.float32)
        t_ij = torch.tensor(rel[:3, 3], device=device, dtype=torch.float32)
        xi = s * noisy_cam_points(i)
        xj = s * (noisy_cam_points(j) @ r_ij.T + t_ij)
        for side, x, k in (("i", xi, i), ("j", xj, j)):
            conf = 3 + 17 * torch.rand(shapes[k], device=device, generator=gen)
            x, conf = corrupt(x, conf, s)
            out["pts_" + side].append(x.to(dtype))
            out["conf_" + side].append(conf.to(dtype))
    pred = PairPredictions.from_tensors(edges, shapes, **out)
    meta = {"seed": seed, "views": n_views, "size": [list(s) for s in sorted(set(shapes))], "path": path, "graph": graph,
            "noise": noise, "pose_noise_deg": pose_noise_deg, "outliers": outliers, "shared_focal": shared_focal}
    return pred, {"cam2world": poses, "K": K, "meta": meta}


def case_to_npz(pred: PairPredictions, truth: dict) -> dict:
    """The fixture format (arrays for np.savez); needs a single image size."""
    h, w = pred.image_shapes[0]
    return {
        "edges": pred.edges.astype(np.int32),
        **{k: torch.stack(list(getattr(pred, k))).cpu().numpy().astype(np.float16) for k in ("pts_i", "pts_j", "conf_i", "conf_j")},
        "gt_cam2world": truth["cam2world"], "gt_K": truth["K"], "image_size": np.array([h, w], np.int32),
        "meta": np.array(json.dumps(truth["meta"])),
    }


def load_npz_case(path, device="cpu", dtype=torch.float32):
    """Read a fixture-format case → (PairPredictions, truth)."""
    with np.load(path, allow_pickle=False) as z:
        h, w = (int(x) for x in z["image_size"])
        e = len(z["edges"])
        lists = {}
        for k in ("pts_i", "pts_j", "conf_i", "conf_j"):
            # Decompress each array once (z[k] reads the whole member every time it is indexed).
            arr = torch.from_numpy(z[k]).to(device=device, dtype=dtype)
            lists[k] = list(arr.unbind(0)) if len(arr) == e else [arr[n] for n in range(e)]
        n = len(z["gt_cam2world"])
        pred = PairPredictions.from_tensors(z["edges"].astype(np.int64), [(h, w)] * n, **lists)
        truth = {"cam2world": z["gt_cam2world"], "K": z["gt_K"], "meta": json.loads(str(z["meta"]))}
    return pred, truth


def _angle(r: np.ndarray) -> np.ndarray:
    """Rotation angle (deg) by atan2 of the skew and symmetric parts (accurate near 0, unlike arccos)."""
    skew = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    return float(np.degrees(np.arctan2(np.linalg.norm(skew) / 2, (np.trace(r) - 1) / 2)))


def score(cam2world: np.ndarray, focal: np.ndarray, truth: dict) -> dict:
    """Scores of the fixture README: mean/max relative rotation error (deg), mean translation-direction
    error (deg), camera-centre error after a similarity fit (fraction of scene extent), focal error (%)."""
    gt, est = truth["cam2world"], np.asarray(cam2world, np.float64)
    n = len(gt)
    rot, tdir = [], []
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            rel_gt = gt[i, :3, :3].T @ gt[j, :3, :3]
            rel_est = est[i, :3, :3].T @ est[j, :3, :3]
            if i < j:
                rot.append(_angle(rel_gt.T @ rel_est))
            a = gt[i, :3, :3].T @ (gt[j, :3, 3] - gt[i, :3, 3])
            b = est[i, :3, :3].T @ (est[j, :3, 3] - est[i, :3, 3])
            tdir.append(float(np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b)), a @ b))))
    ce = gt[:, :3, 3]
    out = {"rot_mean_deg": float(np.mean(rot)) if rot else 0.0, "rot_max_deg": float(np.max(rot)) if rot else 0.0,
           "tdir_mean_deg": float(np.mean(tdir)) if tdir else 0.0}
    if n >= 2:
        src, dst = est[:, :3, 3], ce
        ms, md = src.mean(0), dst.mean(0)
        cov = (dst - md).T @ (src - ms) / n
        u, sg, vt = np.linalg.svd(cov)
        d = np.diag([1, 1, np.sign(np.linalg.det(u @ vt))])
        r = u @ d @ vt
        var = ((src - ms) ** 2).sum(1).mean()
        s = np.trace(np.diag(sg) @ d) / max(var, 1e-30)
        fit = s * (src - ms) @ r.T + md
        extent = np.linalg.norm(dst - md, axis=1).mean()
        out["centre_err_frac"] = float(np.linalg.norm(fit - dst, axis=1).mean() / max(extent, 1e-30))
    else:
        out["centre_err_frac"] = 0.0
    fgt = (truth["K"][:, 0, 0] + truth["K"][:, 1, 1]) / 2
    out["focal_err_pct"] = float(np.mean(np.abs(np.asarray(focal) - fgt) / fgt) * 100)
    return out


TARGETS = {"rot_mean_deg": 0.5, "tdir_mean_deg": 1.5, "focal_err_pct": 1.0, "centre_err_frac": 0.02}


def passes(scores: dict) -> bool:
    return all(scores[k] <= v for k, v in TARGETS.items())
