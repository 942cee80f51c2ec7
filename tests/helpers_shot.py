"""Synthetic video shots (hand-held walks) and the sequence scores of the alignment fixture README.

The recipe is the "Video shots" section of `../shared/fixtures/alignment/README.md`: a walk of 4–5 m
with a gentle curve through the box room of `helpers_synth`, a pan of 30–60° and a slow wander of
yaw, pitch and roll, looking roughly along the motion, with per-frame hand-held jitter (about 0.3°
rotation, 5 mm translation); one shared focal; a sliding-window scene graph (`swin-K-noncyclic`).
Pointmaps keep 8 of float16's 10 mantissa bits and confidences 4, as the shipped shot fixtures do.

`make_shot_case` returns (PairPredictions, truth) like `helpers_synth.make_case`; `sequence_scores`
scores a solve; `drift_floor` is the README's floor (what an ideal least-squares solver keeps of the
noisy pair rotations).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from helpers_synth import _angle, make_case
from pointmap.core.pairwise.predictions import PairPredictions


def shot_poses(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4, 4) cam2world (OpenCV axes, world z up) of a hand-held walk through the room."""
    length = rng.uniform(4.0, 5.0)
    s = np.linspace(0.0, 1.0, n)
    # Path: an arc of gentle, slowly varying curvature through the middle of the 8 x 6 m room.
    heading0 = rng.uniform(-0.3, 0.3)
    bend = rng.uniform(0.4, 0.8) * rng.choice([-1, 1])
    heading = heading0 + bend * (s - 0.5) + 0.1 * np.sin(2 * np.pi * s * rng.uniform(0.5, 1.5))
    step = length / max(n - 1, 1)
    xy = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1) * step, 0)
    xy -= xy.mean(0)
    z = 1.5 + 0.1 * np.sin(2 * np.pi * s * rng.uniform(0.5, 1.5) + rng.uniform(0, 6))
    centres = np.concatenate([xy, z[:, None]], 1)
    # View direction: along the motion plus a pan of 30–60° across the shot and slow wander.
    pan = np.radians(rng.uniform(30, 60)) * rng.choice([-1, 1])
    ph = rng.uniform(0, 2 * np.pi, 3)
    yaw = heading + pan * (s - 0.5) + np.radians(5) * np.sin(2 * np.pi * 0.8 * s + ph[0])
    pitch = np.radians(-5) + np.radians(4) * np.sin(2 * np.pi * 0.6 * s + ph[1])
    roll = np.radians(3) * np.sin(2 * np.pi * 0.7 * s + ph[2])
    poses = []
    for k in range(n):
        fwd = np.array([math.cos(yaw[k]) * math.cos(pitch[k]), math.sin(yaw[k]) * math.cos(pitch[k]),
                        math.sin(pitch[k])])
        x = np.cross(fwd, [0.0, 0.0, 1.0])
        x /= np.linalg.norm(x)
        y = np.cross(fwd, x)
        r = np.stack([x, y, fwd], 1)
        r = r @ _rot_about(np.array([0.0, 0.0, 1.0]), roll[k])          # roll about the optical axis
        jitter = rng.normal(size=3)
        r = _rot_about(jitter, np.radians(0.3) * rng.normal()) @ r
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = centres[k] + rng.normal(0, 0.005, 3)
        poses.append(m)
    return np.stack(poses)


def _rot_about(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def _keep_mantissa(x: torch.Tensor, bits: int) -> torch.Tensor:
    """float16 with only `bits` of its 10 mantissa bits (truncated), as the shot fixtures store them."""
    h = x.to(torch.float16).view(torch.int16)
    mask = ~((1 << (10 - bits)) - 1)
    return (h & mask).view(torch.float16)


def make_shot_case(n_frames: int = 60, size=(32, 48), window: int = 3, seed: int = 0, noise: float = 0.01,
                   pose_noise_deg: float = 0.5, outliers: float = 0.03, dtype=torch.float32):
    """One synthetic shot: (PairPredictions, truth) with truth["meta"]["path"] == "shot".

    size: (H, W); window: K of the non-cyclic sliding window swin-K (both directions).
    """
    pred, truth = make_case(n_views=n_frames, size=size, path="shot", graph=f"swin-{window}-noncyclic",
                            noise=noise, pose_noise_deg=pose_noise_deg, outliers=outliers, shared_focal=True,
                            seed=seed, dtype=torch.float16)
    kept = {key: [_keep_mantissa(t, bits).to(dtype) for t in getattr(pred, key)]
            for key, bits in (("pts_i", 8), ("pts_j", 8), ("conf_i", 4), ("conf_j", 4))}
    pred = PairPredictions.from_tensors(pred.edges, pred.image_shapes, **kept)
    truth["meta"]["graph"] = f"swin-{window}"
    return pred, truth


def drift_floor(edges: np.ndarray, n: int, sigma_deg: float, draws: int = 200, seed: int = 0) -> dict:
    """The README's drift floor: mean and max over frames of the error of the least-squares frame
    rotations from pair rotations with isotropic noise of `sigma_deg` (per axis σ/√3), mean removed,
    averaged over noise draws. edges: (E, 2) directed pairs (each direction has its own noise)."""
    e = np.asarray(edges, np.int64).reshape(-1, 2)
    e = e[e[:, 0] != e[:, 1]]
    lap = np.zeros((n, n))
    np.add.at(lap, (e[:, 0], e[:, 0]), 1.0)
    np.add.at(lap, (e[:, 1], e[:, 1]), 1.0)
    np.add.at(lap, (e[:, 0], e[:, 1]), -1.0)
    np.add.at(lap, (e[:, 1], e[:, 0]), -1.0)
    pinv = np.linalg.pinv(lap)
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, sigma_deg / math.sqrt(3), (draws, len(e), 3))
    div = np.zeros((draws, n, 3))
    np.add.at(div, (slice(None), e[:, 1]), noise)
    np.add.at(div, (slice(None), e[:, 0]), -noise)
    r = np.einsum("kn,dnc->dkc", pinv, div)
    r -= r.mean(1, keepdims=True)
    err = np.linalg.norm(r, axis=-1)
    return {"mean_deg": float(err.mean()), "max_deg": float(err.max(1).mean())}


def _chordal_mean(rs: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(rs.sum(0))
    d = np.diag([1, 1, np.sign(np.linalg.det(u @ vt))])
    return u @ d @ vt


def _umeyama(src: np.ndarray, dst: np.ndarray):
    ms, md = src.mean(0), dst.mean(0)
    cov = (dst - md).T @ (src - ms) / len(src)
    u, sg, vt = np.linalg.svd(cov)
    d = np.diag([1, 1, np.sign(np.linalg.det(u @ vt))])
    r = u @ d @ vt
    s = np.trace(np.diag(sg) @ d) / max(((src - ms) ** 2).sum(1).mean(), 1e-30)
    return s, r, md - s * ms @ r.T


def sequence_scores(cam2world: np.ndarray, focal: np.ndarray, truth: dict) -> dict:
    """The README's sequence scores (degrees, fractions of the path length, percent)."""
    gt, est = truth["cam2world"], np.asarray(cam2world, np.float64)
    g = _chordal_mean(gt[:, :3, :3] @ est[:, :3, :3].transpose(0, 2, 1))
    rot = np.array([_angle(g @ est[k, :3, :3] @ gt[k, :3, :3].T) for k in range(len(gt))])
    cg, ce = gt[:, :3, 3], est[:, :3, 3]
    path = np.linalg.norm(np.diff(cg, axis=0), axis=1).sum()
    s, r, t = _umeyama(ce, cg)
    fit = s * ce @ r.T + t
    cerr = np.linalg.norm(fit - cg, axis=1) / path
    rel_rot, rel_dir = [], []
    for k in range(len(gt) - 1):
        a = gt[k, :3, :3].T @ gt[k + 1, :3, :3]
        b = est[k, :3, :3].T @ est[k + 1, :3, :3]
        rel_rot.append(_angle(a.T @ b))
        ta = gt[k, :3, :3].T @ (cg[k + 1] - cg[k])
        tb = est[k, :3, :3].T @ (ce[k + 1] - ce[k])
        rel_dir.append(float(np.degrees(np.arctan2(np.linalg.norm(np.cross(ta, tb)), ta @ tb))))
    mean_step = np.linalg.norm(np.diff(cg, axis=0), axis=1).mean()
    d2f, d2g = np.diff(fit, 2, axis=0), np.diff(cg, 2, axis=0)
    jitter = (np.linalg.norm(d2f, axis=1).mean() - np.linalg.norm(d2g, axis=1).mean()) / mean_step
    fgt = (truth["K"][:, 0, 0] + truth["K"][:, 1, 1]) / 2
    return {"rot_mean_deg": float(rot.mean()), "rot_max_deg": float(rot.max()),
            "centre_mean_frac": float(cerr.mean()), "centre_max_frac": float(cerr.max()),
            "rel_rot_deg": float(np.mean(rel_rot)), "rel_tdir_deg": float(np.mean(rel_dir)),
            "jitter": float(jitter), "jitter_err": float(np.linalg.norm(d2f - d2g, axis=1).mean() / mean_step),
            "focal_err_pct": float(np.mean(np.abs(np.asarray(focal) - fgt) / fgt) * 100)}


def shot_targets(floor: dict) -> dict:
    """The README's targets for a shot whose drift floor is `floor`."""
    return {"rot_mean_deg": max(0.3, 1.25 * floor["mean_deg"]), "rot_max_deg": max(1.0, 1.25 * floor["max_deg"]),
            "centre_max_frac": 0.01, "focal_err_pct": 0.5, "jitter": 0.1}


def shot_passes(scores: dict, targets: dict) -> bool:
    return all(scores[k] <= v for k, v in targets.items())


def seam_pairs(chunks):
    """Consecutive frame pairs (k, k+1) inside an overlap or at its ends (where chunks hand over)."""
    out = set()
    for a, b in zip(chunks, chunks[1:], strict=False):
        shared = sorted(set(a.tolist()) & set(b.tolist()))
        out |= set(range(shared[0] - 1, shared[-1] + 1))
    return out


def rel_rot_errors(est, gt):
    return np.array([_angle((gt[k, :3, :3].T @ gt[k + 1, :3, :3]).T @ (est[k, :3, :3].T @ est[k + 1, :3, :3]))
                     for k in range(len(gt) - 1)])


def rel_dir_errors(est, gt):
    """(n-1,) angle (deg) between the estimated and true step k -> k+1, each in camera k's axes."""
    def steps(m):
        d = np.einsum("kji,kj->ki", m[:-1, :3, :3], m[1:, :3, 3] - m[:-1, :3, 3])
        return d / np.linalg.norm(d, axis=1, keepdims=True)
    return np.degrees(np.arccos(np.clip((steps(est) * steps(gt)).sum(1), -1.0, 1.0)))
