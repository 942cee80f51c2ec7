"""Where to look at a built run from: behind and above its cameras, facing its points.

Shared by the README pictures (`overview`) and the 3D viewports of a .blend saved by the command line
(`viewport`). World coordinates are Blender's; a Blender camera looks down its local -Z with +Y up.
"""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Vector


def run_cameras(collection: bpy.types.Collection) -> list[bpy.types.Object]:
    return [o for o in collection.all_objects if o.type == "CAMERA"]


def run_points(collection: bpy.types.Collection, limit: int = 500_000) -> np.ndarray:
    """(N, 3) world positions of the run's point clouds and meshes (their stored vertices, before the display
    modifier; frustum wireframes left out), for framing statistics: a regular subsample of at most about
    `limit` points. Empty (0, 3) when the run has none."""
    clouds = []
    for obj in collection.all_objects:
        if obj.type != "MESH" or "frustum" in obj.name or "position" not in obj.data.attributes:
            continue
        co = np.empty(3 * len(obj.data.attributes["position"].data), np.float32)
        obj.data.attributes["position"].data.foreach_get("vector", co)
        m = np.asarray(obj.matrix_world, np.float64)
        clouds.append(co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3])
    if not clouds:
        return np.zeros((0, 3))
    points = np.concatenate(clouds)
    return points[::-(-len(points) // limit)]


def behind_the_cameras(cams: list[bpy.types.Object], points: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(target, eye), world (3,) each: the points' median (the cameras' centre without points), seen from
    behind, above and a little to the side of the cameras along their mean viewing direction, so the view
    shows what the photos show (a fixed world offset looks at an arbitrary side of a run whose world frame
    comes from its first camera). None without cameras, or when they look every way (a turntable)."""
    if not cams:
        return None
    centres = np.array([list(c.matrix_world.translation) for c in cams], np.float64)
    rotations = np.array([list(map(list, c.matrix_world.to_3x3())) for c in cams], np.float64)
    look = -rotations[:, :, 2].mean(axis=0)
    up = rotations[:, :, 1].mean(axis=0)
    if np.linalg.norm(look) < 0.3 or np.linalg.norm(np.cross(look, up)) < 1e-3:
        return None
    look /= float(np.linalg.norm(look))
    side = np.cross(look, up)
    side /= float(np.linalg.norm(side))
    up = np.cross(side, look)
    centre = centres.mean(axis=0)
    target = np.median(points, axis=0) if len(points) else centre + look
    dist = max(float(np.linalg.norm(target - centre)), 1e-6)
    return target, centre + (-0.6 * look + 0.5 * up + 0.3 * side) * dist


def look_rotation(eye: np.ndarray, target: np.ndarray):
    """The world rotation (a mathutils Quaternion) of a camera or view at `eye` looking at `target`, world +Z
    kept up."""
    return (Vector(target.tolist()) - Vector(eye.tolist())).to_track_quat("-Z", "Y")
