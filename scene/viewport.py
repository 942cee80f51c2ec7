"""Point the 3D viewports of the file at a run, for a .blend that opens on the reconstruction.

The command line builds into a fresh file and saves it; without this, the file would open on Blender's
default view of the origin with material colours, where a point cloud is a grey haze. The panel leaves the
artist's viewports alone after a run; its "View Run" tool (`pointmap.view_run`) does this for one view.
"""

from __future__ import annotations

import bpy
import numpy as np

from .framing import behind_the_cameras, look_rotation, run_cameras, run_points


def frame_viewports(collection: bpy.types.Collection) -> int:
    """Every 3D viewport of every screen in the file: see `frame_view`. Returns how many it set."""
    spaces = [a.spaces.active for screen in bpy.data.screens for a in screen.areas if a.type == "VIEW_3D"]
    points = run_points(collection)                     # read once: a run may hold millions of points
    behind = behind_the_cameras(run_cameras(collection), points)
    for space in spaces:
        _show(space, behind, points)
    return len(spaces)


def frame_view(space: bpy.types.SpaceView3D, collection: bpy.types.Collection) -> bool:
    """One 3D viewport: look at the run from behind and above its cameras (`framing.behind_the_cameras`), far
    enough back to hold its points, clip range to the run's size, and Solid shading coloured by attribute (the
    points' and meshes' `Color`). False when the run has no cameras to look along (the view stays where it
    is; only the colour is set)."""
    points = run_points(collection)
    behind = behind_the_cameras(run_cameras(collection), points)
    _show(space, behind, points)
    return behind is not None


def _show(space: bpy.types.SpaceView3D, behind: tuple[np.ndarray, np.ndarray] | None, points: np.ndarray) -> None:
    space.shading.color_type = "VERTEX"                 # "Attribute" in the UI
    if behind is not None:
        _look(space, *behind, points)


def _look(space: bpy.types.SpaceView3D, target: np.ndarray, eye: np.ndarray, points: np.ndarray) -> None:
    r3d = space.region_3d
    rotation = look_rotation(eye, target)
    # Far enough back that the points' spread (the middle 96 %) fits the width of a view with the viewport's
    # lens (36 mm along the width), never nearer than the view point found behind the cameras.
    if len(points):
        lo, hi = np.percentile(points, [2, 98], axis=0)
        radius = 0.5 * float(np.linalg.norm(hi - lo))
    else:
        radius = float(np.linalg.norm(eye - target))
    half_fov = np.arctan(18.0 / max(space.lens, 1.0))
    distance = max(float(np.linalg.norm(eye - target)), 1.1 * radius / np.tan(half_fov))
    r3d.view_perspective = "PERSP"
    r3d.view_location = target.tolist()
    r3d.view_rotation = rotation
    r3d.view_distance = distance
    space.clip_start = max(distance * 1e-4, 1e-4)
    space.clip_end = max(space.clip_end, 20.0 * (distance + radius))
