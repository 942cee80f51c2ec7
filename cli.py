"""Command line: `blender -b -c pointmap PHOTOS_DIR -o OUT.blend [options]`.

A shot: `blender -b -c pointmap SHOT.mp4 -o shot.blend --animated-camera [--first-frame 1001] [--frames A:B]
[--stride N]` (a movie file, or an image-sequence folder with --shot); `--from-reconstruction FILE.npz` rebuilds
a scene from a saved Reconstruction without any network.

Registered with `bpy.utils.register_cli_command("pointmap", main)`; `demo.py` reuses `run()`.
Also `python -m pointmap PHOTOS_DIR -o OUT.blend` (the bpy module, no Blender binary).

Exit codes: 0 success; 1 the reconstruction or the scene build failed; 2 usage error (bad option,
unusable output path, --device naming a GPU the machine lacks), reported before any work starts;
3 no usable checkpoint (the message says how to get one). Every error is printed once.
"""

from __future__ import annotations

import argparse
import os

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_WEIGHTS = 0, 1, 2, 3
MAX_TEXTURE = 16384     # --mesh-texture: Blender images beyond this are impractical (16384^2 RGBA float is 4 GiB)

EXIT_CODES_HELP = ("exit codes: 0 success, 1 reconstruction or scene build failed, 2 usage error (bad option, "
                   "unusable output path, missing GPU), 3 no usable checkpoint")


def build_parser(prog: str = "blender -b -c pointmap") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Reconstruct cameras and a point cloud from photos "
                                                       "into a .blend file.",
                                epilog=EXIT_CODES_HELP)
    p.add_argument("photos", nargs="?", default="",
                   help="folder of photos, an image sequence folder or a movie file (not needed with "
                        "--from-reconstruction)")
    p.add_argument("-o", "--output", required=True, help="the .blend file to write")
    p.add_argument("--checkpoint", default="",
                   help="registry name or local .pth/.safetensors file/folder "
                        "(default: $POINTMAP_CHECKPOINT, else the registry default in the weights folder)")
    p.add_argument("--weights-dir", default="", help="folder holding downloaded weights")
    p.add_argument("--download", action="store_true",
                   help="download the chosen registry checkpoint if it is missing (needs Blender's online "
                        "access: run blender with --online-mode); its licence is printed first")
    p.add_argument("--backend", choices=["auto", "pairs", "vggt", "da3"], default="auto")
    p.add_argument("--graph", default=None,
                   help="scene graph: complete, swin-K, swin-K-noncyclic, logwin-K, logwin-K-noncyclic, "
                        "oneref-R, retrieval-K, seq-K (default: complete for photos, seq-4 for a shot)")
    p.add_argument("--image-size", type=int, default=0)
    p.add_argument("--input-crop", choices=["auto", "square", "whole"], default="auto",
                   help="DUSt3R/MASt3R at 224: the central square (the official rule) or the whole photo (long side "
                        "224); auto: what the checkpoint was trained on (the demo model says so in its config.json)")
    p.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"], default="auto")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto")
    p.add_argument("--memory-budget", type=float, default=None, metavar="GIB",
                   help="pairwise models: GiB the predictions + alignment may take on the device (default: free memory)")
    p.add_argument("--offload", choices=["auto", "yes", "no"], default="auto",
                   help="pairwise models: keep predictions in host memory (auto: when they do not fit)")
    p.add_argument("--vggt-points", choices=["depth", "head"], default="depth",
                   help="VGGT: points from depth + cameras (default) or from the point head")
    p.add_argument("--vggt-mode", choices=["crop", "pad"], default="crop", help="VGGT preprocessing")
    p.add_argument("--vggt-fused", action="store_true", help="VGGT: compile the blocks (CUDA, one-time compile)")
    p.add_argument("--iterations", type=int, default=0, help="alignment iterations (0: default)")
    p.add_argument("--shared-focal", action="store_true")
    p.add_argument("--focal-mm", type=float, default=0.0, help="known focal length in mm")
    p.add_argument("--sensor-mm", type=float, default=36.0, help="sensor width in mm")
    p.add_argument("--intrinsics", type=float, nargs=4, default=None, metavar=("FX", "FY", "CX", "CY"),
                   help="known lens for every photo or frame, in original pixels (pixel centres at integers); "
                        "kept by every backend")
    p.add_argument("--known-poses", default="", metavar="FILE",
                   help="known camera poses held fixed: JSON {\"cameras\": {file name or frame: 4x4 cam2world, "
                        "OpenCV axes}} or a saved reconstruction (.npz, an earlier solve)")
    p.add_argument("--on-bad-image", choices=["skip", "stop"], default="skip",
                   help="a photo (or a shot's frame) that cannot be read: skip it with a warning, or stop")
    p.add_argument("--name", default="", help="name of the created collection (default: from the photos)")
    p.add_argument("--min-conf", type=float, default=1.5,
                   help="display / export confidence threshold: points below it are hidden in the scene and left "
                        "out of --export-ply / --export-colmap (the alignment has its own, --align-conf)")
    p.add_argument("--align-conf", type=float, default=None,
                   help="alignment confidence threshold: pixels below it get no weight in global alignment "
                        "(default 1.0)")
    p.add_argument("--no-points", action="store_true", help="do not create the point cloud")
    p.add_argument("--no-cameras", action="store_true", help="do not create cameras")
    p.add_argument("--no-background-images", action="store_true")
    p.add_argument("--depth-textures", choices=["none", "pack", "exr"], default="none")
    p.add_argument("--per-view-meshes", action="store_true")
    p.add_argument("--fused-mesh", action="store_true",
                   help="also fuse all depth maps into one coloured surface mesh (TSDF fusion)")
    p.add_argument("--voxel-size", type=float, default=0.0, metavar="S",
                   help="fused mesh: TSDF voxel edge in scene units (0: automatic)")
    p.add_argument("--mesh-texture", type=int, nargs="?", const=2048, default=0, metavar="SIZE",
                   help="fused mesh (implies --fused-mesh) textured by a SIZE x SIZE atlas projected from the best "
                        "photo per face (default SIZE 2048; 0: vertex colours only)")
    p.add_argument("--no-refine-views", action="store_true",
                   help="fused mesh: fuse the depth maps and cameras as solved, without fitting each view's smooth "
                        "depth error and small camera turn to the other views first")
    p.add_argument("--export-colmap", default="", metavar="DIR",
                   help="also write a COLMAP text model (cameras.txt, images.txt, points3D.txt) into DIR")
    p.add_argument("--export-ply", default="", metavar="FILE", help="also write the point cloud as binary PLY")
    p.add_argument("--save-reconstruction", default="", metavar="FILE",
                   help="also save the Reconstruction (.npz) for pointmap.build_scene / scripts")
    shot = p.add_argument_group("shots and matchmoving")
    shot.add_argument("--from-reconstruction", default="", metavar="FILE.npz",
                      help="build the scene from a saved Reconstruction (--save-reconstruction) without running "
                           "any network")
    shot.add_argument("--animated-camera", action="store_true",
                      help="one camera animated over the shot's frames (with the plate as its background)")
    shot.add_argument("--static-cameras", action="store_true",
                      help="with --animated-camera: also create one static camera per frame")
    shot.add_argument("--shot", action="store_true",
                      help="the input folder is one image sequence (frame numbers from the file names, e.g. "
                           "plate.1001.png), solved as a shot; a movie file always is one")
    shot.add_argument("--first-frame", type=int, default=None, metavar="N",
                      help="a movie's first frame number (default 1; VFX plates often start at 1001)")
    shot.add_argument("--frames", default="", metavar="A:B",
                      help="frames to solve (a shot) or to use (--from-reconstruction): clip frame numbers, "
                           "inclusive; A: or :B ok")
    shot.add_argument("--stride", type=int, default=1,
                      help="solve (or use) every N-th frame; the frames between are interpolated and marked")
    shot.add_argument("--per-frame-focal", action="store_true",
                      help="a shot: one focal length per frame (a zoom) instead of one for the whole shot")
    shot.add_argument("--chunk", type=int, default=0, metavar="N",
                      help="a shot with VGGT / Depth Anything 3: frames per chunk (default: from free GPU memory; "
                           "32 on the CPU)")
    shot.add_argument("--export-chan", default="", metavar="FILE", help="also write the camera as a Nuke .chan")
    shot.add_argument("--export-transforms", default="", metavar="FILE",
                      help="also write transforms.json (nerfstudio convention; points.ply beside it)")
    return p


class UsageError(Exception):
    """A command line that cannot work (bad option value, unusable output path, missing device)."""


def core_options(args: argparse.Namespace):
    """`core.options.ReconstructOptions` from parsed arguments; UsageError for values the core rejects."""
    from .core.options import AlignOptions, PairwiseOptions, ReconstructOptions, VGGTOptions
    from .core.pairwise.graph import check_graph

    graph = args.graph or PairwiseOptions().graph   # left unset, a shot's run picks seq-K itself
    try:
        check_graph(graph)   # the core's own parser: every spec it knows is accepted
    except ValueError as err:
        raise UsageError(f"--graph {args.graph!r}: {err}") from None
    sequence = sequence_options(args)
    align = AlignOptions(iterations=args.iterations or None, shared_focal=args.shared_focal)
    if args.align_conf is not None:
        align.conf_threshold = args.align_conf
    intrinsics = None
    if args.intrinsics:
        import numpy as np

        fx, fy, cx, cy = args.intrinsics
        intrinsics = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    known_poses = None
    if args.known_poses:
        from .core.errors import InputError
        from .core.io.poses import read_known_poses

        try:
            known_poses = read_known_poses(args.known_poses)
        except InputError as err:
            raise UsageError(str(err)) from None
    options = ReconstructOptions(
        intrinsics=intrinsics, known_poses=known_poses,
        backend=args.backend, device=None if args.device == "auto" else args.device, image_size=args.image_size or None,
        input_crop=args.input_crop,
        on_bad_image="raise" if args.on_bad_image == "stop" else "skip", known_focal_mm=args.focal_mm or None,
        sensor_width_mm=args.sensor_mm, precision=args.precision, align=align,
        sequence=sequence, pairwise=PairwiseOptions(graph=graph, offload={"auto": None, "yes": True, "no": False}[args.offload],
                                 memory_budget=None if args.memory_budget is None else int(args.memory_budget * 2**30)),
        vggt=VGGTOptions(points=args.vggt_points, mode=args.vggt_mode, fused=args.vggt_fused))
    try:
        options.check()
    except ValueError as err:
        raise UsageError(str(err)) from None
    return options


def input_shot(args: argparse.Namespace) -> str | None:
    """The shot the positional input is (a movie file, or a folder with --shot), else None."""
    if not args.photos or args.from_reconstruction:
        return None
    from .core.io.video import shot_path

    return shot_path(os.path.abspath(args.photos), args.shot)


def sequence_options(args: argparse.Namespace):
    """`core.options.SequenceOptions` for a shot input (the defaults otherwise); UsageError for shot flags
    given to photos, and for contradicting flags."""
    from .core.frames import parse_frame_range
    from .core.options import SequenceOptions

    shot = input_shot(args)
    movie = shot is not None and os.path.isfile(shot)
    if args.per_frame_focal and args.shared_focal:
        raise UsageError("--per-frame-focal and --shared-focal contradict each other; give one.")
    if args.chunk and args.chunk < 8:
        raise UsageError(f"--chunk {args.chunk}: a chunk holds at least 8 frames.")
    if shot is None:
        for flag, given in (("--first-frame", args.first_frame is not None), ("--per-frame-focal", args.per_frame_focal),
                            ("--chunk", bool(args.chunk))):
            if given:
                raise UsageError(f"{flag} applies to a shot: give a movie file, or an image-sequence folder "
                                 f"with --shot.")
        if args.shot and not args.from_reconstruction:
            raise UsageError(f"--shot: {args.photos} is not a folder or a movie file.")
        return SequenceOptions()
    if args.first_frame is not None and not movie:
        raise UsageError("--first-frame applies to a movie file; an image sequence takes its frame numbers from "
                         "its file names.")
    start, end = (None, None)
    if args.frames:
        try:
            start, end = parse_frame_range(args.frames)
        except Exception as err:
            raise UsageError(f"--frames {args.frames}: {err}") from None
    return SequenceOptions(is_shot=True, first_frame=1 if args.first_frame is None else args.first_frame,
                           start=start, end=end, stride=max(1, args.stride),
                           on_bad_frame="raise" if args.on_bad_image == "stop" else "skip",
                           shared_focal=not args.per_frame_focal, chunk=args.chunk or None)


def check_outputs(args: argparse.Namespace) -> None:
    """Every output path is usable before any work starts: UsageError naming the first that is not."""
    out = os.path.abspath(args.output)
    if os.path.isdir(out):
        raise UsageError(f"-o {args.output}: is a folder; give the path of the .blend file to write.")
    if not out.lower().endswith(".blend"):
        raise UsageError(f"-o {args.output}: the output must be a .blend file.")
    _check_writable_parent(out, "-o")
    if not args.photos and not args.from_reconstruction:
        raise UsageError("give a folder of photos (or a movie / image sequence), or --from-reconstruction FILE.npz.")
    if args.from_reconstruction and not os.path.isfile(args.from_reconstruction):
        raise UsageError(f"--from-reconstruction {args.from_reconstruction}: no such file.")
    if args.voxel_size < 0:
        raise UsageError(f"--voxel-size {args.voxel_size}: must be 0 (automatic) or positive.")
    if not 0 <= args.mesh_texture <= MAX_TEXTURE:
        raise UsageError(f"--mesh-texture {args.mesh_texture}: must be 0 (off) up to {MAX_TEXTURE} texels.")
    if args.stride < 1:
        raise UsageError(f"--stride {args.stride}: must be 1 or more.")
    if args.frames:
        from .core.frames import parse_frame_range

        try:
            parse_frame_range(args.frames)
        except Exception as err:
            raise UsageError(f"--frames {args.frames}: {err}") from None
    for flag, path in (("--export-ply", args.export_ply), ("--save-reconstruction", args.save_reconstruction),
                       ("--export-chan", args.export_chan), ("--export-transforms", args.export_transforms)):
        if path:
            if os.path.isdir(path):
                raise UsageError(f"{flag} {path}: is a folder; give a file path.")
            _check_writable_parent(os.path.abspath(path), flag)
    if args.export_colmap:
        folder = os.path.abspath(args.export_colmap)
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise UsageError(f"--export-colmap {args.export_colmap}: exists and is not a folder.")
        # The model folder itself is created if missing; the folder it goes in must exist.
        _check_writable_parent(os.path.join(folder, "cameras.txt") if os.path.isdir(folder) else folder,
                               "--export-colmap")


def _check_writable_parent(path: str, flag: str) -> None:
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise UsageError(f"{flag} {path}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{flag} {path}: the folder {folder} is not writable.")


def check_device(device: str) -> None:
    """`--device cuda` / `mps` on a machine without one is a usage error, said before loading anything."""
    if device not in ("cuda", "mps"):
        return
    try:
        import torch
    except Exception:
        return   # the core reports the missing dependency itself
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: this machine has no usable CUDA GPU (use --device cpu or auto).")
    if device == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--device mps: this machine has no Apple GPU (use --device cpu or auto).")


def scene_options(args: argparse.Namespace):
    """`scene.SceneOptions` from parsed arguments (textures as files lie beside the .blend)."""
    from .scene import SceneOptions

    return SceneOptions(
        name=args.name or None, point_cloud=not args.no_points, min_conf=args.min_conf, cameras=not args.no_cameras,
        background_images=not args.no_background_images,
        depth_textures=None if args.depth_textures == "none" else args.depth_textures,
        texture_dir=os.path.join(os.path.dirname(os.path.abspath(args.output)), "pointmap_textures"),
        per_view_meshes=args.per_view_meshes, sensor_mm=args.sensor_mm)


def run(args: argparse.Namespace, online: bool | None = None) -> int:
    """Reconstruct `args.photos` into a new scene of the current file and save it as `args.output`.

    argparse → ReconstructOptions → core.reconstruct → scene.build_scene → save → core.io exports.
    online: may `--download` use the network (default: `bpy.app.online_access`). Returns an exit code.
    """

    from .core.errors import CheckpointError, PointmapError
    from .core.weights.resolve import resolve_checkpoint
    from .ui.preferences import get_settings

    try:
        options = core_options(args)
        check_outputs(args)
        check_device(args.device)
        scene_opts = scene_options(args)
    except UsageError as err:
        print(f"pointmap: {err}", flush=True)
        return EXIT_USAGE

    if args.from_reconstruction:
        from .core.reconstruction import load_reconstruction

        try:
            rec = load_reconstruction(args.from_reconstruction)
        except PointmapError as err:
            print(f"pointmap: {err}", flush=True)
            return EXIT_FAILED
        return _build_and_save(args, rec, scene_opts)

    settings = get_settings()
    cache_dir = args.weights_dir or settings.cache_dir
    options.cache_dir = cache_dir or None
    explicit = args.checkpoint or os.environ.get("POINTMAP_CHECKPOINT", "")
    try:
        checkpoint = resolve_checkpoint(explicit, settings.checkpoint, cache_dir)
    except CheckpointError as err:
        checkpoint = _download(explicit or settings.checkpoint, cache_dir, online) if args.download else None
        if checkpoint is None:
            print(f"pointmap: {err}", flush=True)
            print("pointmap: pass --checkpoint /path/to/model.pth or set POINTMAP_CHECKPOINT to use local weights"
                  + ("." if args.download else ", or --download to fetch them."), flush=True)
            return EXIT_NO_WEIGHTS

    from .core.weights.bundled import DEMO_LABEL, is_demo

    if is_demo(checkpoint):
        print(f"pointmap: using the {DEMO_LABEL}.", flush=True)

    from .core.pipeline import reconstruct
    from .core.progress import console_progress

    show = console_progress()     # prints progress and each warning as it happens
    try:
        rec = reconstruct(os.path.abspath(args.photos), checkpoint, options, progress=show)
    except CheckpointError as err:
        print(f"pointmap: {err}", flush=True)
        return EXIT_NO_WEIGHTS
    except PointmapError as err:
        print(f"pointmap: {err}", flush=True)
        return EXIT_FAILED
    for warning in show.unshown(rec.warnings):
        print(f"pointmap: warning: {warning}", flush=True)
    return _build_and_save(args, rec, scene_opts)


def _build_and_save(args: argparse.Namespace, rec, scene_opts) -> int:
    """Scene (static cameras, or the animated shot camera), .blend, exports. Returns an exit code."""
    import bpy

    from .core.errors import PointmapError
    from .core.progress import count
    from .scene import build_scene
    from .scene.viewport import frame_viewports

    fused = None
    if args.fused_mesh or args.mesh_texture:
        from .core.meshing import MeshOptions, fuse_reconstruction

        try:
            fused = fuse_reconstruction(rec, MeshOptions(voxel_size=args.voxel_size, texture_size=args.mesh_texture,
                                                         depth_fields=not args.no_refine_views))
        except PointmapError as err:
            print(f"pointmap: {err}", flush=True)
            return EXIT_FAILED
    n_warnings = len(rec.warnings)
    shot = args.animated_camera or args.export_chan or args.frames or args.stride != 1
    try:
        if shot:
            import dataclasses

            from .scene.shot import build_shot

            scene_opts = dataclasses.replace(scene_opts, cameras=args.static_cameras)
            # A shot solved from a movie / sequence holds exactly the --frames / --stride selection already.
            solved = input_shot(args) is not None
            coll = build_shot(rec, bpy.context.scene, scene_opts, frames=None if solved else args.frames or None,
                              stride=1 if solved else args.stride, export_chan=args.export_chan or None,
                              fused_mesh=fused)
        else:
            coll = build_scene(rec, scene=bpy.context.scene, options=scene_opts, fused_mesh=fused)
    except PointmapError as err:
        print(f"pointmap: {err}", flush=True)
        return EXIT_FAILED
    for warning in rec.warnings[n_warnings:]:   # the scene builder's own warnings
        print(f"pointmap: warning: {warning}", flush=True)
    print(f"pointmap: reconstructed {count(rec.n_views, 'view')} into collection '{coll.name}'", flush=True)
    frame_viewports(coll)                        # the saved file opens on the reconstruction, in colour
    out = os.path.abspath(args.output)
    bpy.ops.wm.save_as_mainfile(filepath=out)
    print(f"pointmap: wrote {out}", flush=True)
    try:
        _export(args, rec)
    except PointmapError as err:
        print(f"pointmap: {err}", flush=True)
        return EXIT_FAILED
    return EXIT_OK


def _export(args: argparse.Namespace, rec) -> None:
    from .core.io.export import write_colmap, write_ply

    if args.export_colmap:
        print(f"pointmap: wrote COLMAP model {write_colmap(rec, args.export_colmap, min_conf=args.min_conf)}",
              flush=True)
    if args.export_ply:
        n = write_ply(rec, args.export_ply, min_conf=args.min_conf)
        print(f"pointmap: wrote {n} points to {os.path.abspath(args.export_ply)}", flush=True)
    if args.export_transforms:
        from .core.io.transforms import write_transforms

        write_transforms(rec, args.export_transforms)
        print(f"pointmap: wrote {os.path.abspath(args.export_transforms)}", flush=True)
    if args.save_reconstruction:
        rec.save(args.save_reconstruction)
        print(f"pointmap: wrote {os.path.abspath(args.save_reconstruction)}", flush=True)


def _download(name: str, cache_dir: str, online: bool | None) -> str | None:
    """Download registry checkpoint `name` (default: the registry default) into `cache_dir`; None on failure."""
    import bpy

    from .core.errors import PointmapError
    from .core.weights import registry
    from .core.weights.download import download_checkpoint
    from .core.weights.resolve import default_name

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


def run_standalone(args: argparse.Namespace, online: bool | None = None) -> int:
    """`run` in the bpy module (no Blender binary): register the extension, start from an empty file."""
    import bpy

    from . import register, unregister

    register()
    try:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        return run(args, online=online)
    finally:
        unregister()


def main(argv: list[str]) -> int:
    """Entry point for `blender -c pointmap ...` (argv: the arguments after the command id)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:   # argparse exits on --help (0) / bad arguments (2); Blender wants a code back
        return int(exc.code or 0)
    return run(args)
