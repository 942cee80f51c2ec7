"""Move a single-pass solve (VGGT, Depth Anything 3) onto the cameras the user already knows.

The pairwise aligner holds known poses fixed while it optimises (`refine.global_align`). A single-pass network
predicts every camera at once in its own frame, so the known poses are honoured afterwards: one similarity
(rotation, scale, translation) takes the whole solve into the user's world so that the predicted cameras of
the known views best match the known ones, then each known view is set exactly to its known pose, its points
moving rigidly with it (its depth map is unchanged). The views the user did not give keep their solved
relation to each other. What the fit could not reconcile is reported per view.
"""

from __future__ import annotations

import numpy as np


def _angle_deg(R: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0))))


def similarity_to_known(R_pred: np.ndarray, c_pred: np.ndarray, R_known: np.ndarray,
                        c_known: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, bool]:
    """(s, R, t, scale_fixed) with known ≈ S · predicted (S x = s R x + t) for K cameras.

    R_pred, R_known: (K, 3, 3) camera-to-world rotations; c_pred, c_known: (K, 3) camera centres.
    R: chordal mean of R_known R_predᵀ. With two or more centres apart, s and t by least squares on the
    centres (scale_fixed); otherwise s = 1 (one camera fixes no scale) and t matches the centres' means.
    Shared by the aligner's known poses (`refine`), this module and the camera scores of `training/`.
    """
    U, _, Vt = np.linalg.svd(np.einsum("nij,nkj->ik", np.asarray(R_known, np.float64), np.asarray(R_pred, np.float64)))
    R = U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt
    cp = np.asarray(c_pred, np.float64) @ R.T
    ck = np.asarray(c_known, np.float64)
    cp0, ck0 = cp - cp.mean(0), ck - ck.mean(0)
    spread = float((cp0 * cp0).sum())
    s = float((cp0 * ck0).sum() / spread) if len(cp) >= 2 and spread > 1e-12 * (1 + float((cp * cp).sum())) else 0.0
    scale_fixed = s > 0 and np.isfinite(s)
    if not scale_fixed:
        s = 1.0
    return s, R, ck.mean(0) - s * cp.mean(0), scale_fixed


def anchor_to_known_poses(cam2world: np.ndarray, points: list[np.ndarray], depth: list[np.ndarray],
                          known: dict[int, np.ndarray]) -> tuple[np.ndarray, list, list, dict]:
    """The solve moved into the user's world (module doc).

    cam2world: (N, 4, 4) solved cameras (OpenCV); points: N world-point maps (H, W, 3); depth: N z-depth maps.
    known: view index -> (4, 4) known cam2world.
    Returns (cam2world, points, depth, info): the known views' cameras equal `known` exactly; info holds the
    similarity (scale, rotation, translation) and, per known view, how far the similarity left its camera from
    the known one before it was set ("rotation_deg", "centre_error" in the known poses' units), and
    "scale_fixed": False when the known cameras (one, or all at one place) left the scale as solved.
    """
    idx = sorted(known)
    kn = np.stack([known[i] for i in idx])
    s, R, t, scale_fixed = similarity_to_known(cam2world[idx, :3, :3], cam2world[idx, :3, 3], kn[:, :3, :3],
                                               kn[:, :3, 3])
    out = np.array(cam2world, dtype=np.float64, copy=True)
    out[:, :3, :3] = R @ out[:, :3, :3]
    out[:, :3, 3] = s * out[:, :3, 3] @ R.T + t
    pts = [(s * (np.asarray(p, np.float64) @ R.T) + t).astype(np.float32) for p in points]
    dep = [(np.asarray(d, np.float64) * s).astype(np.float32) for d in depth]
    residual = {}
    for i, T in known.items():
        delta = T @ np.linalg.inv(out[i])          # rigid: what is left between the fitted and the known camera
        residual[int(i)] = {"rotation_deg": round(_angle_deg(delta[:3, :3]), 4),
                            "centre_error": float(np.linalg.norm(T[:3, 3] - out[i, :3, 3]))}
        pts[i] = (np.asarray(pts[i], np.float64) @ delta[:3, :3].T + delta[:3, 3]).astype(np.float32)
        out[i] = T
    info = {"scale": s, "rotation": R.tolist(), "translation": t.tolist(), "scale_fixed": scale_fixed,
            "residual": residual}
    return out, pts, dep, info


def anchor_warnings(info: dict, names: list[str], known: dict[int, np.ndarray],
                    max_rotation_deg: float = 2.0, max_centre_share: float = 0.05) -> list[str]:
    """Sentences for the report: a single known camera fixes no scale; known cameras that the solve does not
    reproduce (rotation beyond `max_rotation_deg`, or a centre off by more than `max_centre_share` of the
    known centres' spread) are named — their views were set to the given pose anyway."""
    out = []
    if not info["scale_fixed"]:
        out.append("The known camera poses (one, or all at one place) fix where the solve sits and how it is "
                   "turned, not its scale: the scale is the network's. Give two or more poses apart to fix it.")
    centres = np.stack([T[:3, 3] for T in known.values()])
    spread = float(np.linalg.norm(centres - centres.mean(0), axis=1).mean()) if len(known) > 1 else 0.0
    bad = []
    for i, r in info["residual"].items():
        far = spread > 0 and r["centre_error"] > max_centre_share * spread
        if r["rotation_deg"] > max_rotation_deg or far:
            bad.append(f"{names[i]} ({r['rotation_deg']:.1f} deg"
                       + (f", centre off by {r['centre_error'] / spread:.0%} of the spread" if far else "") + ")")
    if bad:
        out.append(f"The solve disagrees with {len(bad)} known camera pose(s): {', '.join(bad[:4])}"
                   f"{', ...' if len(bad) > 4 else ''}. Those views were set to the given poses; check that the "
                   f"poses are camera-to-world with OpenCV axes (x right, y down, z forward).")
    return out
