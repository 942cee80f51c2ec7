"""Make the demo's sample photos and the README picture, in Blender (the bpy module).

  .venv/bin/python samples/make_samples.py photos    # samples/photos/*.jpg (7 views, 512x384)
  .venv/bin/python samples/make_samples.py cameras   # samples/photos/cameras.json (true cameras, no render)
  .venv/bin/python samples/make_samples.py picture   # docs/scene.png (a built synthetic reconstruction)
  .venv/bin/python samples/make_samples.py           # both

photos: a small textured still life (procedural wood floor, plaster wall, brick block, marbled
sphere, striped cylinder, checker box, Suzanne) lit by a sun and a sky, rendered with Cycles on the
CPU (few samples + denoising) from 7 cameras on an arc. Textures are rich so that the pairwise
networks find correspondences; the arc spans ~60 degrees so every pair overlaps.
picture: the synthetic ray-cast room (tests/helpers_synthrecon.py) built with pointmap.scene, plus
wireframe frustums for its cameras, rendered in Workbench with attribute colours.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "samples" / "photos"
PICTURE = ROOT / "docs" / "scene.png"


# --- photos ------------------------------------------------------------------------------------

def _material(name, build):
    import bpy

    mat = bpy.data.materials.new(name)
    if mat.node_tree is None:
        mat.use_nodes = True
    nt = mat.node_tree
    bsdf = next(n for n in nt.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
    build(nt, bsdf)
    return mat


def _coord(nt, scale, space="Object"):
    tc = nt.nodes.new("ShaderNodeTexCoord")
    mp = nt.nodes.new("ShaderNodeMapping")
    mp.inputs["Scale"].default_value = scale
    nt.links.new(tc.outputs[space], mp.inputs["Vector"])
    return mp.outputs["Vector"]


def _ramp(nt, fac, colors):
    ramp = nt.nodes.new("ShaderNodeValToRGB")
    els = ramp.color_ramp.elements
    for k, (pos, col) in enumerate(colors):
        el = els[k] if k < len(els) else els.new(pos)
        el.position = pos
        el.color = (*col, 1.0)
    nt.links.new(fac, ramp.inputs["Fac"])
    return ramp.outputs["Color"]


def _wood(nt, bsdf):
    wave = nt.nodes.new("ShaderNodeTexWave")
    wave.wave_type = "RINGS"
    wave.inputs["Scale"].default_value = 0.5
    wave.inputs["Distortion"].default_value = 14.0
    wave.inputs["Detail"].default_value = 6.0
    wave.inputs["Detail Scale"].default_value = 2.0
    nt.links.new(_coord(nt, (1.0, 2.5, 1.0)), wave.inputs["Vector"])
    noise = nt.nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = 3.0
    noise.inputs["Detail"].default_value = 8.0
    nt.links.new(_coord(nt, (1.0, 1.0, 1.0)), noise.inputs["Vector"])
    mix = nt.nodes.new("ShaderNodeMath")
    mix.operation = "MULTIPLY_ADD"
    nt.links.new(noise.outputs["Fac"], mix.inputs[0])
    mix.inputs[1].default_value = 0.6
    nt.links.new(wave.outputs["Fac"], mix.inputs[2])
    col = _ramp(nt, mix.outputs["Value"], [(0.2, (0.22, 0.10, 0.04)), (1.2, (0.70, 0.48, 0.26))])
    nt.links.new(col, bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.55


def _plaster(nt, bsdf):
    noise = nt.nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = 6.0
    noise.inputs["Detail"].default_value = 10.0
    nt.links.new(_coord(nt, (1.0, 1.0, 1.0)), noise.inputs["Vector"])
    col = _ramp(nt, noise.outputs["Fac"], [(0.3, (0.55, 0.62, 0.70)), (0.7, (0.85, 0.80, 0.68))])
    nt.links.new(col, bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.9


def _brick(nt, bsdf):
    brick = nt.nodes.new("ShaderNodeTexBrick")
    brick.inputs["Color1"].default_value = (0.55, 0.12, 0.06, 1)
    brick.inputs["Color2"].default_value = (0.75, 0.32, 0.15, 1)
    brick.inputs["Mortar"].default_value = (0.85, 0.85, 0.8, 1)
    brick.inputs["Scale"].default_value = 8.0
    nt.links.new(_coord(nt, (1.0, 1.0, 1.0), "UV"), brick.inputs["Vector"])
    nt.links.new(brick.outputs["Color"], bsdf.inputs["Base Color"])


def _marble(nt, bsdf):
    vor = nt.nodes.new("ShaderNodeTexVoronoi")
    vor.inputs["Scale"].default_value = 4.0
    nt.links.new(_coord(nt, (1.0, 1.0, 1.0)), vor.inputs["Vector"])
    nt.links.new(vor.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.3


def _stripes(nt, bsdf):
    wave = nt.nodes.new("ShaderNodeTexWave")
    wave.bands_direction = "Z"
    wave.inputs["Scale"].default_value = 3.0
    nt.links.new(_coord(nt, (1.0, 1.0, 1.0)), wave.inputs["Vector"])
    col = _ramp(nt, wave.outputs["Fac"], [(0.45, (0.05, 0.25, 0.6)), (0.55, (0.95, 0.85, 0.2))])
    nt.links.new(col, bsdf.inputs["Base Color"])


def _checker(nt, bsdf):
    chk = nt.nodes.new("ShaderNodeTexChecker")
    chk.inputs["Color1"].default_value = (0.1, 0.5, 0.15, 1)
    chk.inputs["Color2"].default_value = (0.9, 0.9, 0.85, 1)
    chk.inputs["Scale"].default_value = 12.0
    nt.links.new(_coord(nt, (1.0, 1.0, 1.0), "UV"), chk.inputs["Vector"])
    nt.links.new(chk.outputs["Color"], bsdf.inputs["Base Color"])


def _magic(nt, bsdf):
    mg = nt.nodes.new("ShaderNodeTexMagic")
    mg.inputs["Scale"].default_value = 4.0
    nt.links.new(_coord(nt, (1.0, 1.0, 1.0)), mg.inputs["Vector"])
    nt.links.new(mg.outputs["Color"], bsdf.inputs["Base Color"])


def _add(op, material, **kw):
    import bpy

    op(**kw)
    obj = bpy.context.active_object
    obj.data.materials.append(material)
    return obj


def build_still_life():
    """The photographed scene: objects around the origin on a floor, a wall behind (z up, metres)."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    m = bpy.ops.mesh
    _add(m.primitive_plane_add, _material("wood", _wood), size=8, location=(0, 0, 0))
    wall = _add(m.primitive_plane_add, _material("plaster", _plaster), size=8, location=(0, 2.2, 2))
    wall.rotation_euler = (math.radians(90), 0, 0)
    _add(m.primitive_cube_add, _material("brick", _brick), size=0.8, location=(-0.9, 0.4, 0.4))
    _add(m.primitive_uv_sphere_add, _material("marble", _marble), radius=0.45, location=(0.5, 0.6, 0.45),
         segments=48, ring_count=24)
    _add(m.primitive_cylinder_add, _material("stripes", _stripes), radius=0.25, depth=1.2,
         location=(1.35, 1.2, 0.6), vertices=48)
    box = _add(m.primitive_cube_add, _material("checker", _checker), size=0.5, location=(0.1, -0.5, 0.25))
    box.rotation_euler = (0, 0, math.radians(30))
    monkey = _add(m.primitive_monkey_add, _material("magic", _magic), size=0.7, location=(-1.35, -0.55, 0.4))
    monkey.rotation_euler = (math.radians(-15), 0, math.radians(25))
    smooth = monkey.modifiers.new("smooth", "SUBSURF")
    smooth.levels = smooth.render_levels = 1
    monkey.data.polygons.foreach_set("use_smooth", [True] * len(monkey.data.polygons))

    sun = bpy.data.lights.new("sun", "SUN")
    sun.energy = 2.5
    sun.angle = math.radians(10)
    sun_obj = bpy.data.objects.new("sun", sun)
    sun_obj.rotation_euler = (math.radians(50), math.radians(10), math.radians(-35))
    bpy.context.scene.collection.objects.link(sun_obj)
    world = bpy.data.worlds.new("sky")
    bpy.context.scene.world = world
    if world.node_tree is None:
        world.use_nodes = True
    bg = world.node_tree.nodes.get("Background")
    bg.inputs["Color"].default_value = (0.55, 0.65, 0.8, 1)
    bg.inputs["Strength"].default_value = 0.6


PHOTO_SIZE = (512, 384)      # width, height
PHOTO_LENS_MM, PHOTO_SENSOR_MM = 30.0, 36.0   # Blender's default sensor width, horizontal fit


def photo_poses(n: int = 7):
    """(location, rotation quaternion) of each photo's Blender camera: a 60-degree arc around the still life."""
    import bpy  # noqa: F401  (mathutils comes with the bpy module)
    from mathutils import Vector

    target = Vector((0.1, 0.6, 0.45))
    poses = []
    for k in range(n):
        a = math.radians(-30 + 60 * k / max(1, n - 1))
        eye = target + Vector((4.2 * math.sin(a), -4.2 * math.cos(a), 1.5 + 0.15 * math.cos(3 * a)))
        poses.append((eye, (target - eye).to_track_quat("-Z", "Y")))
    return poses


def write_cameras(n: int = 7, path: Path = PHOTOS / "cameras.json") -> Path:
    """The photos' true cameras (the ones `render_photos` used) in pointmap's convention: OpenCV camera axes
    (x right, y down, z forward), cam2world in Blender's world frame (metres, z up), K in pixels with pixel
    centres at integers."""
    import json

    import numpy as np

    w, h = PHOTO_SIZE
    f = PHOTO_LENS_MM / PHOTO_SENSOR_MM * w
    K = [[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]]
    cams = {}
    for k, (eye, rotation) in enumerate(photo_poses(n)):
        R = np.array(rotation.to_matrix()) @ np.diag([1.0, -1.0, -1.0])   # Blender camera -> OpenCV axes
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, np.array(eye)
        cams[f"still_life_{k + 1:02d}.jpg"] = {"cam2world": T.round(9).tolist(), "K": K, "width": w, "height": h}
    path.write_text(json.dumps({"convention": "OpenCV camera axes; world z up (Blender); pixel centres at "
                                "integers", "cameras": cams}, indent=1) + "\n")
    return path


def render_photos(n: int = 7, out_dir: Path = PHOTOS, samples: int = 24) -> list[Path]:
    """Render n JPEGs (512x384) from a 60-degree arc of cameras looking at the still life."""
    import bpy

    build_still_life()
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = True
    scene.render.resolution_x, scene.render.resolution_y = 512, 384
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "JPEG"
    scene.render.image_settings.quality = 88
    cam_data = bpy.data.cameras.new("photo")
    cam_data.lens = 30
    cam = bpy.data.objects.new("photo", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, (eye, rotation) in enumerate(photo_poses(n)):
        cam.location = eye
        cam.rotation_euler = rotation.to_euler()
        path = out_dir / f"still_life_{k + 1:02d}.jpg"
        scene.render.filepath = str(path)
        bpy.ops.render.render(write_still=True)
        paths.append(path)
    return paths


# --- README picture ----------------------------------------------------------------------------

def render_picture(path: Path = PICTURE) -> Path:
    import bpy

    sys.path.insert(0, str(ROOT / "tests"))
    from helpers_synthrecon import ViewSpec, make_synthetic_recon
    from pointmap.scene import SceneOptions, build_scene
    from pointmap.scene.overview import render_overview

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    views = [ViewSpec((300, 400), 2.5, pp_offset=(8.0, -5.0)), ViewSpec((400, 300), 2.5)]
    recon = make_synthetic_recon(views=views, n_views=6)
    coll = build_scene(recon, scene, SceneOptions(depth_textures=None, background_images=False,
                                                  mesh_points=True))
    return render_overview(coll, scene, path, frustum_depth=0.7)


def main(argv: list[str]) -> None:
    what = argv[1] if len(argv) > 1 else "all"
    if what in ("photos", "all"):
        for p in render_photos():
            print(p, os.path.getsize(p), "bytes")
    if what in ("photos", "cameras", "all"):
        print(write_cameras())
    if what in ("picture", "all"):
        p = render_picture()
        print(p, os.path.getsize(p), "bytes")


if __name__ == "__main__":
    main(sys.argv)
