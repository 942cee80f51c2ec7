"""An overview picture of a built run: its points and wireframe camera frustums seen from above and behind.

Used for the README pictures (`samples/make_samples.py`, the demo model's end-to-end test). Workbench with
attribute colours renders headless on a CPU, so the picture is made by the same code in CI and by hand.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

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


def render_overview(collection: bpy.types.Collection, scene: bpy.types.Scene, path: str | Path,
                    size: tuple[int, int] = (720, 450), frustum_depth: float | None = None) -> Path:
    """Render `collection` (a run built by `build_scene`) from an overview camera into the PNG `path`.

    Adds frustums for the run's cameras and an "overview" camera to `scene` (the scene is meant to be thrown
    away). The picture has a dark background and a 256-colour palette, which keeps it small (< 300 KB).
    """
    from PIL import Image

    cams = [o for o in collection.objects if o.type == "CAMERA"]
    points = [o for o in collection.objects if o.type in ("MESH", "POINTCLOUD") and "frustum" not in o.name]
    P = [np.array([list(c.matrix_world.translation) for c in cams], np.float64).reshape(-1, 3)]
    for obj in points:
        co = np.empty(3 * len(obj.data.attributes["position"].data), np.float32)
        obj.data.attributes["position"].data.foreach_get("vector", co)
        P.append((np.asarray(obj.matrix_world, np.float64)[:3, :3] @ co.reshape(-1, 3).T).T
                 + np.asarray(obj.matrix_world.translation))
    P = np.concatenate(P)
    lo, hi = np.percentile(P, 1, axis=0), np.percentile(P, 99, axis=0)
    extent = float(np.linalg.norm(hi - lo))
    for c in cams:
        if WIDTH in c and HEIGHT in c:
            scene.render.resolution_x, scene.render.resolution_y = int(c[WIDTH]), int(c[HEIGHT])
        frustum_object(c, scene, depth=frustum_depth or 0.12 * extent)
    cam_centre = np.mean([list(c.matrix_world.translation) for c in cams], axis=0) if cams else (lo + hi) / 2
    centre = Vector((0.65 * (lo + hi) / 2 + 0.35 * cam_centre).tolist())
    view = bpy.data.objects.new("overview", bpy.data.cameras.new("overview"))
    view.data.lens = 30
    view.data.clip_end = 100 * extent
    scene.collection.objects.link(view)
    view.location = centre + Vector((0.8, -0.85, 0.75)) * extent * 0.85
    view.rotation_euler = (centre - view.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = view
    r = scene.render
    r.resolution_x, r.resolution_y = size
    r.resolution_percentage = 100
    r.pixel_aspect_x = r.pixel_aspect_y = 1.0
    r.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "VERTEX"
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
