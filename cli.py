"""Command line: `blender -b -c pointmap PHOTOS_DIR -o OUT.blend [options]`.

Registered with `bpy.utils.register_cli_command("pointmap", main)`; `demo.py` reuses `run()`.
Exit codes: 0 success, 1 reconstruction failed, 2 no usable checkpoint (the message says how to get one).
"""

from __future__ import annotations

import argparse
import os

EXIT_OK, EXIT_FAILED, EXIT_NO_WEIGHTS = 0, 1, 2


def build_parser(prog: str = "blender -b -c pointmap") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Reconstruct cameras and a point cloud from photos "
                                                       "into a .blend file.")
    p.add_argument("photos", help="folder of photos")
    p.add_argument("-o", "--output", required=True, help="the .blend file to write")
    p.add_argument("--checkpoint", default="",
                   help="registry name or local .pth/.safetensors file/folder "
                        "(default: $POINTMAP_CHECKPOINT, else the registry default in the weights folder)")
    p.add_argument("--weights-dir", default="", help="folder holding downloaded weights")
    p.add_argument("--download", action="store_true",
                   help="download the chosen registry checkpoint if it is missing (needs Blender's online "
                        "access: run blender with --online-mode); its licence is printed first")
    p.add_argument("--backend", choices=["auto", "pairs", "vggt"], default="auto")
    p.add_argument("--graph", default="complete",
                   help="scene graph: complete, swin-K, logwin-K, oneref-K, retrieval-K")
    p.add_argument("--image-size", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"], default="auto")
    p.add_argument("--iterations", type=int, default=0, help="alignment iterations (0: default)")
    p.add_argument("--shared-focal", action="store_true")
    p.add_argument("--focal-mm", type=float, default=0.0, help="known focal length in mm")
    p.add_argument("--sensor-mm", type=float, default=36.0, help="sensor width in mm")
    p.add_argument("--on-bad-image", choices=["skip", "stop"], default="skip")
    p.add_argument("--name", default="", help="name of the created collection (default: from the photos)")
    p.add_argument("--min-conf", type=float, default=1.5)
    p.add_argument("--no-points", action="store_true", help="do not create the point cloud")
    p.add_argument("--no-cameras", action="store_true", help="do not create cameras")
    p.add_argument("--no-background-images", action="store_true")
    p.add_argument("--depth-textures", choices=["none", "pack", "exr"], default="none")
    p.add_argument("--per-view-meshes", action="store_true")
    p.add_argument("--export-colmap", default="", metavar="DIR",
                   help="also write a COLMAP text model (cameras.txt, images.txt, points3D.txt) into DIR")
    p.add_argument("--export-ply", default="", metavar="FILE", help="also write the point cloud as binary PLY")
    p.add_argument("--save-reconstruction", default="", metavar="FILE",
                   help="also save the Reconstruction (.npz) for pointmap.build_scene / scripts")
    return p


def _split_graph(graph: str) -> tuple[str, int]:
    """"swin-3" → ("SWIN", 3): the operator's graph and graph_k options (K defaults to 4)."""
    from .ui.properties import GRAPH_ITEMS

    kind, _, k = graph.partition("-")
    kind = kind.upper()
    if kind not in {item[0] for item in GRAPH_ITEMS} or (k and not k.isdigit()):
        raise ValueError(f"unknown scene graph '{graph}' (use complete, swin-K, logwin-K, oneref-K or retrieval-K)")
    return kind, int(k) if k else 4


def run(args: argparse.Namespace, online: bool | None = None) -> int:
    """Reconstruct `args.photos` into a new scene of the current file and save it as `args.output`.

    Needs the pointmap operators registered (the extension enabled, or `pointmap.register()`).
    online: may `--download` use the network (default: `bpy.app.online_access`).
    """
    import bpy

    from .core.errors import CheckpointError
    from .operators.checkpoint import resolve_checkpoint
    from .ui.preferences import get_settings

    settings = get_settings()
    explicit = args.checkpoint or os.environ.get("POINTMAP_CHECKPOINT", "")
    try:
        checkpoint = resolve_checkpoint(explicit, settings.checkpoint, args.weights_dir or settings.cache_dir)
    except CheckpointError as err:
        cache_dir = args.weights_dir or settings.cache_dir
        checkpoint = _download(explicit or settings.checkpoint, cache_dir, online) if args.download else None
        if checkpoint is None:
            print(f"pointmap: {err}", flush=True)
            print("pointmap: pass --checkpoint /path/to/model.pth or set POINTMAP_CHECKPOINT to use local weights"
                  + ("." if args.download else ", or --download to fetch them."), flush=True)
            return EXIT_NO_WEIGHTS
    try:
        graph, graph_k = _split_graph(args.graph)
    except ValueError as err:
        print(f"pointmap: {err}", flush=True)
        return EXIT_FAILED

    try:
        result = _reconstruct(bpy, args, checkpoint, graph, graph_k)
    except RuntimeError as err:   # bpy.ops turns the operator's ERROR report into RuntimeError
        print(f"pointmap: {str(err).removeprefix('Error: ').strip()}", flush=True)
        return EXIT_FAILED
    if "FINISHED" not in result:
        return EXIT_FAILED
    out = os.path.abspath(args.output)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=out)
    print(f"pointmap: wrote {out}", flush=True)
    _export(args)
    return EXIT_OK


def _export(args: argparse.Namespace) -> None:
    from .core.io.export import write_colmap, write_ply
    from .operators.reconstruct import last_reconstruction as rec

    if rec is None:
        return
    if args.export_colmap:
        print(f"pointmap: wrote COLMAP model {write_colmap(rec, args.export_colmap, min_conf=args.min_conf)}",
              flush=True)
    if args.export_ply:
        n = write_ply(rec, args.export_ply, min_conf=args.min_conf)
        print(f"pointmap: wrote {n} points to {os.path.abspath(args.export_ply)}", flush=True)
    if args.save_reconstruction:
        rec.save(args.save_reconstruction)
        print(f"pointmap: wrote {os.path.abspath(args.save_reconstruction)}", flush=True)


def _download(name: str, cache_dir: str, online: bool | None) -> str | None:
    """Download registry checkpoint `name` (default: the registry default) into `cache_dir`; None on failure."""
    import bpy

    from .core.errors import PointmapError
    from .core.weights import registry
    from .core.weights.download import download_checkpoint
    from .operators.checkpoint import default_name

    try:
        spec = registry.get(name or default_name())
    except PointmapError:
        return None   # a local path that does not exist: nothing to download
    if online is False:   # the caller forbade it (the demo with POINTMAP_OFFLINE set)
        print("pointmap: downloads are disabled (POINTMAP_OFFLINE is set), so nothing is downloaded.", flush=True)
        return None
    if online is None and not bpy.app.online_access:
        print("pointmap: Blender's online access is off, so nothing is downloaded (run blender with "
              "--online-mode, or allow online access in Preferences > System).", flush=True)
        return None
    print(f"pointmap: downloading {spec.name} (~{spec.approx_size / 1e9:.1f} GB) into {cache_dir}.\n"
          f"pointmap: licence: {spec.license}", flush=True)
    last = [-1]

    def progress(p):
        pct = int(100 * p.fraction)
        if pct >= last[0] + 5:
            last[0] = pct
            print(f"pointmap: download {pct}%", flush=True)

    try:
        return str(download_checkpoint(spec.name, cache_dir, progress=progress))
    except PointmapError as err:
        print(f"pointmap: download failed: {err}", flush=True)
        return None


def _reconstruct(bpy, args, checkpoint: str, graph: str, graph_k: int) -> set:
    return bpy.ops.pointmap.reconstruct(
        source="FOLDER", directory=os.path.abspath(args.photos), checkpoint=checkpoint,
        backend=args.backend.upper(), device=args.device.upper(), image_size=args.image_size,
        graph=graph, graph_k=graph_k, iterations=args.iterations, shared_focal=args.shared_focal,
        focal_mm=args.focal_mm, sensor_mm=args.sensor_mm, on_bad_image=args.on_bad_image.upper(),
        name=args.name, min_conf=args.min_conf, point_cloud=not args.no_points, cameras=not args.no_cameras,
        background_images=not args.no_background_images, depth_textures=args.depth_textures.upper(),
        per_view_meshes=args.per_view_meshes,
    )


def main(argv: list[str]) -> int:
    """Entry point for `blender -c pointmap ...` (argv: the arguments after the command id)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:   # argparse exits on --help / bad arguments; Blender wants a code back
        return int(exc.code or 0)
    return run(args)
