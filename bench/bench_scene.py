"""Scene-builder benchmark: ~10 M points, 100 cameras, 100 depth + 100 confidence 512x384 textures.

Run: .venv/bin/python bench/bench_scene.py [--views 100] [--textures pack|exr|none] [--photos]
Prints one JSON object: seconds per part (from the builder's progress reports) and in total.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=int, default=100)
    ap.add_argument("--textures", choices=["pack", "exr", "none"], default="pack")
    ap.add_argument("--photos", action="store_true", help="also make background images from the colours")
    args = ap.parse_args()

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
