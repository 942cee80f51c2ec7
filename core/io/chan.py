"""Nuke `.chan` camera files: one line per frame, `frame tx ty tz rx ry rz vfov`.

Format, as documented for Nuke's Camera "import chan file" (Foundry, Nuke user guide, "Applying
Tracks to an Object": channel files hold the translation and rotation of a camera per frame) and
spelled out column by column in Blender's manual for its Nuke chan add-on
(docs.blender.org/manual/.../addons/import_export/anim_nuke_chan.html: "frame location.x location.y
location.z rotation_euler.x rotation_euler.y rotation_euler.z angle_y", angle_y being the VERTICAL
field of view, rotations in degrees, and "the rotation orders during export and import must be the
same"); Nuke's boujou importer documents the same columns ("FRAME TX TY TZ RX RY RZ VFOV",
nukescripts.import_boujou).

Conventions written here:
* World: Nuke's, Y up (a Nuke camera looks down its −Z with +Y up, like Blender's and OpenGL's).
* Rotations: Euler angles in degrees in Nuke's default camera rotation order ZXY (rotate about Z
  first, then X, then Y: R = Ry · Rx · Rz); set the Camera node's "rot order" to ZXY (the default)
  before importing. Angles are unwrapped so they never jump by 360°.
* vfov: the vertical field of view in degrees, 2·atan(H / (2·fy)). Nuke derives the focal from it
  and the camera's vertical aperture, so set haperture/vaperture to the plate's aspect first. A
  principal point off the image centre is not representable in .chan (Nuke's win_translate).
Pure numpy; no bpy.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import PointmapError

# OpenCV world (y down, z forward) → a Y-up world: flip y and z. Also OpenCV camera → Nuke camera axes.
CV_TO_YUP = np.diag([1.0, -1.0, -1.0, 1.0])
# Blender world (Z up) → Nuke world (Y up): (x, y, z) → (x, z, −y).
BLENDER_TO_NUKE = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1.0]])


class ChanError(PointmapError):
    """A .chan file cannot be written (bad input or unwritable path)."""


def euler_zxy_degrees(R: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations → (N, 3) angles (rx, ry, rz) in degrees with R = Ry(ry) · Rx(rx) · Rz(rz).

    The angles are unwrapped along N so consecutive frames never differ by a full turn.
    """
    R = np.asarray(R, np.float64).reshape(-1, 3, 3)
    rx = np.arcsin(np.clip(-R[:, 1, 2], -1.0, 1.0))
    ry = np.arctan2(R[:, 0, 2], R[:, 2, 2])
    rz = np.arctan2(R[:, 1, 0], R[:, 1, 1])
    ang = np.unwrap(np.stack([rx, ry, rz], 1), axis=0)
    return np.degrees(ang)


def matrix_from_euler_zxy_degrees(angles: np.ndarray) -> np.ndarray:
    """(N, 3) (rx, ry, rz) degrees → (N, 3, 3) Ry · Rx · Rz (the inverse of `euler_zxy_degrees`)."""
    a = np.radians(np.asarray(angles, np.float64).reshape(-1, 3))
    cx, sx, cy, sy, cz, sz = np.cos(a[:, 0]), np.sin(a[:, 0]), np.cos(a[:, 1]), np.sin(a[:, 1]), \
        np.cos(a[:, 2]), np.sin(a[:, 2])
    o, z = np.ones_like(cx), np.zeros_like(cx)
    Rx = np.stack([np.stack([o, z, z], -1), np.stack([z, cx, -sx], -1), np.stack([z, sx, cx], -1)], -2)
    Ry = np.stack([np.stack([cy, z, sy], -1), np.stack([z, o, z], -1), np.stack([-sy, z, cy], -1)], -2)
    Rz = np.stack([np.stack([cz, -sz, z], -1), np.stack([sz, cz, z], -1), np.stack([z, z, o], -1)], -2)
    return Ry @ Rx @ Rz


def write_chan(path: str | os.PathLike, frames: np.ndarray, cam_matrices: np.ndarray, vfov_deg: np.ndarray) -> None:
    """Write `frames` (N,), Nuke-world camera matrices (N, 4, 4; camera looks down −Z, +Y up, no
    scale) and vertical fields of view (N,) in degrees as a .chan file."""
    frames = np.asarray(frames)
    M = np.asarray(cam_matrices, np.float64).reshape(-1, 4, 4)
    vfov = np.broadcast_to(np.asarray(vfov_deg, np.float64), (len(M),))
    if len(frames) != len(M):
        raise ChanError(f"{len(frames)} frames for {len(M)} camera matrices")
    if not (np.isfinite(M).all() and np.isfinite(vfov).all()):
        raise ChanError(f"{path}: the camera path holds non-finite values")
    table = np.column_stack([frames.astype(np.float64), M[:, :3, 3], euler_zxy_degrees(M[:, :3, :3]), vfov])
    try:
        np.savetxt(path, table, fmt=["%d"] + ["%.10g"] * 7, delimiter="\t")
    except OSError as err:
        raise ChanError(f"{path}: cannot be written ({err.strerror or err})") from err


def vertical_fov_degrees(K: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """(N,) vertical field of view 2·atan(H / (2·fy)) in degrees of (N, 3, 3) intrinsics."""
    K = np.asarray(K, np.float64).reshape(-1, 3, 3)
    return np.degrees(2.0 * np.arctan(np.asarray(heights, np.float64) / (2.0 * K[:, 1, 1])))


def write_chan_from_reconstruction(rec, path: str | os.PathLike, world: np.ndarray | None = None) -> None:
    """The reconstruction's cameras (one line per view, in frame order) as a Nuke .chan file.

    world: 4x4 similarity from the reconstruction's world to Nuke's Y-up world; default flips the
    OpenCV world's y and z (y down → Y up). Frames: `rec.frame_numbers`, else 1..N. Only solved
    frames are written; Nuke interpolates the keys in between.
    """
    n = rec.n_views
    frames = np.arange(1, n + 1) if rec.frame_numbers is None else np.asarray(rec.frame_numbers, np.int64)
    order = np.argsort(frames, kind="stable")
    G = CV_TO_YUP if world is None else np.asarray(world, np.float64)
    M = G @ np.asarray(rec.cam2world, np.float64) @ CV_TO_YUP
    # A similarity's scale belongs to the positions only: normalise the rotation columns.
    M[:, :3, :3] /= np.linalg.norm(M[:, :3, :3], axis=1, keepdims=True)
    heights = np.asarray(rec.image_sizes)[:, 0]
    write_chan(path, frames[order], M[order], vertical_fov_degrees(rec.K, heights)[order])
