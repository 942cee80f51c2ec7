"""A synthetic shot: one lens walking through the ray-cast room of `helpers_synthrecon`.

Frames are clip frames `start, start + stride, ...`; the camera pans through a wide yaw range (so the
rotation crosses 180° in Blender's frame and naive quaternions would flip sign), bobs and rolls like
a hand-held camera. Ground truth is exact: each network pixel's point projects through K onto
`net_to_orig @ (u, v, 1)`. Optionally writes a numbered image-sequence plate (tiny PNGs whose
file numbers are the clip frames) so background-image tests can check which file shows.
"""

from __future__ import annotations

import os

import numpy as np
from helpers_synthrecon import look_at_cv, raycast_room
from pointmap.core import Reconstruction


def shot_poses(n: int, yaw_deg: tuple[float, float] = (-110.0, 80.0)) -> np.ndarray:
    """(n, 4, 4) OpenCV cam2world in the room frame: a walk with pan, bob and roll."""
    s = np.linspace(0.0, 1.0, n)
    yaw = np.radians(yaw_deg[0] + (yaw_deg[1] - yaw_deg[0]) * s)
    eye = np.stack([-1.2 + 2.4 * s, -0.3 + 0.05 * np.sin(9 * s), 1.0 + 1.5 * s], -1)
    poses = []
    for k in range(n):
        fwd = np.array([np.sin(yaw[k]), 0.15 * np.sin(5 * s[k]), np.cos(yaw[k])])
        roll = np.radians(4.0 * np.sin(7 * s[k]))
        down = np.array([np.sin(roll), np.cos(roll), 0.0])
        poses.append(look_at_cv(eye[k], eye[k] + fwd, down))
    return np.stack(poses)


def make_synthetic_shot(n_frames: int = 60, stride: int = 1, start: int = 1001, orig_hw=(270, 480),
                        scale: float = 15.0, fov_x_deg: float = 55.0, pp_offset=(11.0, -7.0),
                        zoom: float = 0.0, fps: float | None = 24.0, plate_dir: str | None = None,
                        first_at_identity: bool = True) -> Reconstruction:
    """The shot as a Reconstruction (frame_numbers, fps set). zoom: relative focal change over the shot."""
    H0, W0 = orig_hw
    h, w = int(round(H0 / scale)), int(round(W0 / scale))
    room = shot_poses(n_frames)
    to_out = np.linalg.inv(room[0]) if first_at_identity else np.eye(4)
    frames = start + stride * np.arange(n_frames, dtype=np.int64)
    n2o = np.array([[scale, 0.0, (scale - 1) / 2.0], [0.0, scale, (scale - 1) / 2.0], [0.0, 0.0, 1.0]])
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    depth, points, conf, colors, Ks, Knets = [], [], [], [], [], []
    for k in range(n_frames):
        fx = (W0 / 2.0) / np.tan(np.radians(fov_x_deg) / 2.0) * (1.0 + zoom * k / max(1, n_frames - 1))
        K = np.array([[fx, 0.0, (W0 - 1) / 2.0 + pp_offset[0]], [0.0, fx, (H0 - 1) / 2.0 + pp_offset[1]],
                      [0.0, 0.0, 1.0]])
        K_net = np.linalg.inv(n2o) @ K
        rays = np.stack([(u - K_net[0, 2]) / K_net[0, 0], (v - K_net[1, 2]) / K_net[1, 1], np.ones_like(u)], -1)
        R, t = room[k][:3, :3], room[k][:3, 3]
        d = rays.reshape(-1, 3) @ R.T
        tt, _, col = raycast_room(np.broadcast_to(t, d.shape).copy(), d)
        hit = np.isfinite(tt)
        p = t + d * np.where(hit, tt, 1.0)[:, None]
        p = p @ to_out[:3, :3].T + to_out[:3, 3]
        p[~hit] = np.nan
        depth.append(np.where(hit, tt, 0.0).reshape(h, w).astype(np.float32))
        points.append(p.reshape(h, w, 3).astype(np.float32))
        conf.append(np.where(hit, 2.0, 0.0).reshape(h, w).astype(np.float32))
        colors.append(col.reshape(h, w, 3))
        Ks.append(K)
        Knets.append(K_net)
    names = [f"plate.{f:04d}" for f in frames]
    paths: list[str | None] = [None] * n_frames
    if plate_dir is not None:
        paths = write_plate(plate_dir, frames)
    rec = Reconstruction(
        names=names, paths=paths, image_sizes=np.tile([H0, W0], (n_frames, 1)).astype(np.int32),
        cam2world=to_out @ room, K=np.stack(Ks), K_net=np.stack(Knets), net_to_orig=np.tile(n2o, (n_frames, 1, 1)),
        depth=depth, points=points, conf=conf, colors=colors, family="synthetic", model="raycast-shot",
        frame_numbers=frames, fps=fps)
    rec.validate()
    return rec


def write_plate(folder: str, frames) -> list[str]:
    """Tiny numbered PNGs plate.NNNN.png for every frame from the first to the last (a full plate)."""
    import struct
    import zlib

    os.makedirs(folder, exist_ok=True)
    # A 2x2 grey PNG written by hand: the plate's content does not matter, only its file numbers.
    raw = b"".join(b"\x00" + bytes([128, 128, 128] * 2) for _ in range(2))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    frames = np.asarray(frames)
    out = {}
    for f in range(int(frames.min()), int(frames.max()) + 1):
        p = os.path.join(folder, f"plate.{f:04d}.png")
        with open(p, "wb") as fh:
            fh.write(png)
        out[f] = p
    return [out[int(f)] for f in frames]
