"""Scene-builder benchmark: ~10 M points, 100 cameras, 100 depth + 100 confidence 512x384 textures.

Run: .venv/bin/python bench/bench_scene.py [--views 100] [--textures pack|exr|none] [--photos]
     .venv/bin/python bench/bench_scene.py --case shot [--frames 3000] [--points 5000000] [--tools]
Prints one JSON object: seconds per part (from the builder's progress reports) and in total.
The "shot" case (issue #11): one camera animated over 3,000 frames plus 5 M points, no static cameras,
no textures; --tools also times each scene tool on the built run (with --points 10000000 for the
10 M-point target).
The reconstruction is synthetic and cheap to make: each view sees a noisy, coloured slanted plane;
the top 188 rows of every image are "sky" (non-finite points, as a masked backend would return),
so 100 views of 512x384 give 10.04 M valid points.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict

import numpy as np
from record import stamp  # noqa: E402  (bench/ is on sys.path when run as a script)


def make_recon(n_views: int, h: int = 384, w: int = 512, sky_rows: int = 188, seed: int = 0):
    from pointmap.core import Reconstruction

    rng = np.random.default_rng(seed)
    f = 0.9 * w
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    rays = np.stack([(u - K[0, 2]) / f, (v - K[1, 2]) / f, np.ones_like(u)], -1)
    depth, points, conf, colors, poses = [], [], [], [], []
    for i in range(n_views):
        a = 2 * np.pi * i / n_views
        T = np.eye(4)
        T[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
        T[:3, 3] = [3 * np.sin(a), 0, -3 * np.cos(a)]
        z = (2.0 + 0.3 * (v / h) + 0.05 * rng.random((h, w), dtype=np.float32)).astype(np.float32)
        p = (rays * z[..., None]) @ T[:3, :3].T.astype(np.float32) + T[:3, 3].astype(np.float32)
        p[:sky_rows] = np.nan
        depth.append(z)
        points.append(p.astype(np.float32))
        conf.append(1 + 4 * rng.random((h, w), dtype=np.float32))
        colors.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        poses.append(T)
    n = n_views
    return Reconstruction(
        names=[f"frame_{i:03d}" for i in range(n)], paths=[None] * n,
        image_sizes=np.array([[h, w]] * n, np.int32), cam2world=np.stack(poses),
        K=np.stack([K] * n), K_net=np.stack([K] * n), net_to_orig=np.stack([np.eye(3)] * n),
        depth=depth, points=points, conf=conf, colors=colors, family="bench")


def make_shot_recon(n_frames: int, n_points: int, seed: int = 0):
    """A shot of `n_frames` frames (1001, 1002, ...) whose maps hold about `n_points` points in all."""
    from pointmap.core import Reconstruction

    rng = np.random.default_rng(seed)
    per = max(1, n_points // n_frames)
    w = int(np.ceil(np.sqrt(per * 4 / 3)))
    h = int(np.ceil(per / w))
    W0, H0 = 1920, 1080
    f = 1400.0
    K = np.array([[f, 0, (W0 - 1) / 2 + 7], [0, f, (H0 - 1) / 2 - 5], [0, 0, 1.0]])
    n2o = np.diag([W0 / w, H0 / h, 1.0])
    t = np.linspace(0, 1, n_frames)
    poses = np.tile(np.eye(4), (n_frames, 1, 1))
    yaw = np.radians(-120 + 240 * t)
    poses[:, 0, 0], poses[:, 0, 2], poses[:, 2, 0], poses[:, 2, 2] = np.cos(yaw), np.sin(yaw), -np.sin(yaw), np.cos(yaw)
    poses[:, :3, 3] = np.stack([4 * t, 0.1 * np.sin(20 * t), 2 * t], 1)
    depth, points, conf, colors = [], [], [], []
    for _ in range(n_frames):
        z = (2.0 + rng.random((h, w), dtype=np.float32)).astype(np.float32)
        p = rng.normal(size=(h, w, 3)).astype(np.float32) * 3
        depth.append(z)
        points.append(p)
        conf.append(1 + rng.random((h, w), dtype=np.float32))
        colors.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return Reconstruction(
        names=[f"plate.{1001 + i:04d}" for i in range(n_frames)], paths=[None] * n_frames,
        image_sizes=np.array([[H0, W0]] * n_frames, np.int32), cam2world=poses,
        K=np.stack([K] * n_frames), K_net=np.stack([np.linalg.inv(n2o) @ K] * n_frames),
        net_to_orig=np.stack([n2o] * n_frames), depth=depth, points=points, conf=conf, colors=colors,
        family="bench", frame_numbers=1001 + np.arange(n_frames), fps=24.0)


def _time_tools(bpy, coll) -> dict[str, dict[str, float]]:
    """Seconds of each scene tool on the built run, selection 2,000 vertices of the point cloud:
    "object_mode" (the point cloud active in Object Mode with its stored vertex selection) and
    "from_edit_mode" (started in Edit Mode: includes Blender's own Edit → Object Mode conversion)."""
    from pointmap.scene import orient, tools

    obj = next(o for o in coll.objects if o.type == "MESH")
    out: dict[str, dict[str, float]] = {"object_mode": {}, "from_edit_mode": {}}
    n = len(obj.data.vertices)
    sel = np.zeros(n, bool)
    sel[np.random.default_rng(0).choice(n, 2000, replace=False)] = True
    obj.data.vertices.foreach_set("select", sel)
    bpy.context.view_layer.objects.active = obj
    cases = {
        "set_floor": lambda P, c: orient.floor_transform(P),
        "set_origin": lambda P, c: orient.origin_transform(P.mean(0)),
        "set_axis": lambda P, c: orient.axis_transform(P[0], P[-1], "X"),
        "set_scale": lambda P, c: orient.scale_transform(P[0], P[-1], 2.0),
        "flip_floor": lambda P, c: orient.flip_transform(),
    }
    for name, fn in cases.items():
        t0 = time.perf_counter()
        tools.run_tool(bpy.context, fn)
        out["object_mode"][name] = round(time.perf_counter() - t0, 3)
    for name, fn in cases.items():
        bpy.ops.object.mode_set(mode="EDIT")
        t0 = time.perf_counter()
        tools.run_tool(bpy.context, fn)      # leaves Edit Mode, reads the selection, applies
        out["from_edit_mode"][name] = round(time.perf_counter() - t0, 3)
    return out


def _provenance() -> dict:
    """Commit, machine and versions this result belongs to (bench records must say where they ran)."""
    import os
    import platform
    import subprocess
    import sys

    import bpy

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__)), check=False).stdout.strip()
    except OSError:
        commit = ""
    return {"commit": commit, "command": " ".join(sys.argv), "bpy": bpy.app.version_string,
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "gpu": None}


def main_shot(args) -> None:
    import bpy
    from pointmap.scene import SceneOptions, build_scene

    bpy.ops.wm.read_factory_settings(use_empty=True)
    t0 = time.perf_counter()
    recon = make_shot_recon(args.frames, args.points)
    t_make = time.perf_counter() - t0
    opts = SceneOptions(animated_camera=True, cameras=False, depth_textures=None, background_images=False)
    parts: dict[str, float] = defaultdict(float)
    last = {"t": None, "part": None}

    def progress(p):
        now = time.perf_counter()
        if last["part"] is not None:
            parts[last["part"]] += now - last["t"]
        last["part"], last["t"] = (None if p.message == "done" else p.message), now

    t0 = time.perf_counter()
    coll = build_scene(recon, options=opts, progress=progress)
    total = time.perf_counter() - t0
    cam = next(o for o in coll.objects if o.type == "CAMERA")
    result = {
        "case": "shot", "frames": args.frames,
        "points": next(len(o.data.vertices) for o in coll.objects if o.type == "MESH"),
        "keys_per_channel": len(cam["pointmap_solved_frames"]) + len(cam["pointmap_interpolated_frames"]),
        "seconds": {k: round(v, 3) for k, v in parts.items()}, "total_s": round(total, 3),
        "make_recon_s": round(t_make, 2), **_provenance(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        from pointmap.scene.exports import export_chan

        t0 = time.perf_counter()
        export_chan(cam, f"{tmp}/shot.chan")
        result["export_chan_s"] = round(time.perf_counter() - t0, 3)
    if args.tools:
        result["tools_s"] = _time_tools(bpy, coll)
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=["views", "shot"], default="views")
    ap.add_argument("--frames", type=int, default=3000, help="shot case: frames of the animated camera")
    ap.add_argument("--points", type=int, default=5_000_000, help="shot case: points in all")
    ap.add_argument("--tools", action="store_true", help="shot case: also time each scene tool")
    ap.add_argument("--views", type=int, default=100)
    ap.add_argument("--textures", choices=["pack", "exr", "none"], default="pack")
    ap.add_argument("--photos", action="store_true", help="also make background images from the colours")
    args = ap.parse_args()
    if args.case == "shot":
        main_shot(args)
        return

    import bpy
    from pointmap.scene import SceneOptions, build_scene

    bpy.ops.wm.read_factory_settings(use_empty=True)
    t0 = time.perf_counter()
    recon = make_recon(args.views)
    t_make = time.perf_counter() - t0

    parts: dict[str, float] = defaultdict(float)
    last = {"t": None, "part": None}

    def progress(p):
        now = time.perf_counter()
        if last["part"] is not None:
            parts[last["part"]] += now - last["t"]
        msg = p.message
        last["part"] = ("points" if msg == "point cloud" else msg.split(" ")[0] if msg != "done" else None)
        if msg.startswith("depth"):
            last["part"] = "textures"
        last["t"] = now

    with tempfile.TemporaryDirectory() as tmp:
        opts = SceneOptions(depth_textures=None if args.textures == "none" else args.textures,
                            texture_dir=tmp, background_images=args.photos)
        t0 = time.perf_counter()
        coll = build_scene(recon, options=opts, progress=progress)
        total = time.perf_counter() - t0
    n_points = next(len(o.data.vertices) for o in coll.objects if o.type == "MESH")
    print(json.dumps(stamp({
        "points": n_points, "cameras": sum(o.type == "CAMERA" for o in coll.objects),
        "textures": sum(1 for im in bpy.data.images if im.colorspace_settings.name == "Non-Color"),
        "texture_mode": args.textures, "background_photos": args.photos,
        "seconds": {k: round(v, 3) for k, v in parts.items()}, "total_s": round(total, 3),
        "make_recon_s": round(t_make, 2),
    })))


if __name__ == "__main__":
    main()
