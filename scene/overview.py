"""An overview picture of a built run: its points and wireframe camera frustums seen from above and behind.

Used for the README pictures (`samples/make_samples.py`, the demo model's end-to-end test). Workbench with
attribute colours renders headless on a CPU, so the picture is made by the same code in CI and by hand.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

from .framing import behind_the_cameras, look_rotation, run_cameras, run_points
from .geonodes import INPUT_RADIUS, get_modifier_input, set_modifier_input
from .keys import HEIGHT, WIDTH


def frustum_object(cam_obj: bpy.types.Object, scene: bpy.types.Scene, depth: float,
                   rgb: tuple[float, float, float] = (1.0, 0.45, 0.05)) -> bpy.types.Object:
    """A wireframe pyramid mesh matching `cam_obj`'s view (apex at the camera, base `depth` in front of it),
    linked into the camera's collections, so cameras show up in renders."""
    corners = [np.array(v) / abs(v.z) * depth for v in cam_obj.data.view_frame(scene=scene)]
    verts = np.array([[0.0, 0.0, 0.0], *corners], np.float32)
    me = bpy.data.meshes.new(f"{cam_obj.name} frustum")
    me.from_pydata(verts.tolist(), [], [(0, 1, 2), (0, 2, 3), (0, 3, 4), (0, 4, 1), (1, 2, 3, 4)])
    col = me.color_attributes.new("Color", "FLOAT_COLOR", "POINT")
    col.data.foreach_set("color", np.tile(np.array([*rgb, 1.0], np.float32), len(verts)))
    me.color_attributes.active_color = col
    obj = bpy.data.objects.new(me.name, me)
    obj.matrix_world = cam_obj.matrix_world
    wire = obj.modifiers.new("wire", "WIREFRAME")
    wire.thickness = depth * 0.025
    for c in cam_obj.users_collection:
        c.objects.link(obj)
    return obj


def _frame(rotation, eye: np.ndarray, cloud: np.ndarray, always: np.ndarray, aspect: float
           ) -> tuple[float, float, float]:
    """(horizontal field of view in radians, shift_x, shift_y) of a camera at `eye` with `rotation` (Blender:
    looking down -Z) whose frame of height/width `aspect` holds all of `always` (N, 3: the frustums) and all
    but the outer 1 % on each side of `cloud` (M, 3), centred by lens shift, with a margin."""
    def tangents(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = (p - eye) @ np.asarray(rotation, np.float64)                      # camera-frame coordinates
        q = q[q[:, 2] < -1e-9]
        return q[:, 0] / -q[:, 2], q[:, 1] / -q[:, 2]

    (cx, cy), (ax, ay) = tangents(cloud), tangents(always)
    xs = np.concatenate([np.percentile(cx, [1, 99]) if len(cx) else [], ax])
    ys = np.concatenate([np.percentile(cy, [1, 99]) if len(cy) else [], ay])
    if not len(xs):
        return float(np.radians(70.0)), 0.0, 0.0
    (x0, x1), (y0, y1) = (xs.min(), xs.max()), (ys.min(), ys.max())
    half = min(1.06 * max((x1 - x0) / 2, (y1 - y0) / 2 / aspect, 1e-3), float(np.tan(np.radians(60.0))))
    return float(2 * np.arctan(half)), float((x0 + x1) / 2 / (2 * half)), float((y0 + y1) / 2 / (2 * half))


def render_overview(collection: bpy.types.Collection, scene: bpy.types.Scene, path: str | Path,
                    size: tuple[int, int] = (720, 450), frustum_depth: float | None = None,
                    point_scale: float = 1.0) -> Path:
    """Render `collection` (a run built by `build_scene`) from an overview camera into the PNG `path`.

    Adds frustums for the run's cameras and an "overview" camera to `scene` (the scene is meant to be thrown
    away). point_scale multiplies the points' display radius (seen from further back than the photos, a
    sparse cloud shows its gaps). The picture has a dark background and a 256-colour palette, which keeps it
    small (< 300 KB).
    """
    from PIL import Image

    cams = run_cameras(collection)
    if point_scale != 1.0:
        for obj in collection.all_objects:
            for mod in obj.modifiers:
                if mod.type == "NODES" and mod.node_group is not None:
                    with contextlib.suppress(KeyError):
                        set_modifier_input(obj, mod, INPUT_RADIUS,
                                           point_scale * get_modifier_input(mod, INPUT_RADIUS))
    centres = np.array([list(c.matrix_world.translation) for c in cams], np.float64).reshape(-1, 3)
    cloud = run_points(collection)
    if not len(cloud):
        cloud = centres
    P = np.concatenate([centres, cloud])
    lo, hi = np.percentile(P, 1, axis=0), np.percentile(P, 99, axis=0)
    extent = float(np.linalg.norm(hi - lo))
    view = bpy.data.objects.new("overview", bpy.data.cameras.new("overview"))
    view.data.clip_end = 100 * extent
    scene.collection.objects.link(view)
    behind = behind_the_cameras(cams, cloud)
    if behind is not None:
        target, eye = behind
        depth = frustum_depth or 0.15 * float(np.linalg.norm(target - centres.mean(axis=0)))
    else:
        target = (lo + hi) / 2
        eye = target + np.array([0.8, -0.85, 0.75]) * extent * 0.85
        view.data.lens = 30
        depth = frustum_depth or 0.12 * extent
    frustum_corners = []
    for c in cams:
        if WIDTH in c and HEIGHT in c:
            scene.render.resolution_x, scene.render.resolution_y = int(c[WIDTH]), int(c[HEIGHT])
        frustum = frustum_object(c, scene, depth=depth)
        frustum_corners.append(np.array([list(frustum.matrix_world @ v.co) for v in frustum.data.vertices]))
    view.location = Vector(eye.tolist())
    view.rotation_euler = look_rotation(eye, target).to_euler()
    if behind is not None:
        view.data.sensor_fit = "HORIZONTAL"
        view.data.angle, view.data.shift_x, view.data.shift_y = _frame(
            view.rotation_euler.to_matrix(), eye, cloud, np.concatenate(frustum_corners), size[1] / size[0])
    scene.camera = view
    r = scene.render
    r.resolution_x, r.resolution_y = size
    r.resolution_percentage = 100
    r.pixel_aspect_x = r.pixel_aspect_y = 1.0
    r.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light = "FLAT"                   # the points' own colours, unshaded
    shading.color_type = "VERTEX"
    scene.view_settings.view_transform = "Standard"      # the photos' colours (AgX, the default, washes them out)
    scene.display.render_aa = "8"
    r.film_transparent = True
    r.image_settings.file_format = "PNG"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw_path = path.with_suffix(".raw.png")
    r.filepath = str(raw_path)
    bpy.ops.render.render(write_still=True)
    raw = Image.open(raw_path).convert("RGBA")
    out = Image.new("RGBA", raw.size, (30, 32, 38, 255))
    out.alpha_composite(raw)
    out.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    raw_path.unlink()
    return path
