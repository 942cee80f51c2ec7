"""`reconstruct()`: photos in, `Reconstruction` out — the one call the Blender side and scripts use.

Stages and their share of the overall progress (reported through one callback):

    pairwise (DUSt3R / MASt3R):  load → encode (each image once) → pairs (decoder + heads) → align
    single pass (VGGT):          load → vggt
    single pass (DA3):           load → da3

A shot (a movie file, or an image-sequence folder with `sequence.is_shot`) is decoded frame by frame at
network size (`core.io.video.load_sequence`, stage "decode"), then solved as one: the pairwise backend
over the `seq-K` graph with one shared focal by default, VGGT and DA3 in overlapping chunks joined into
one world (`backends.vggt_chunked`, stage "chunks"). The result carries the clip's frame numbers and fps;
every progress message of a shot ends with the share of the whole shot done and an ETA.

Everything heavy is imported inside the function so `import pointmap.core` stays free of torch.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .align.anchor import anchor_to_known_poses, anchor_warnings
from .align.schedule import for_shot
from .errors import CheckpointError, DependencyError, InputError, PointmapError, UnsupportedOption, check_cancel
from .options import AlignOptions, PairwiseOptions, ReconstructOptions, SequenceOptions
from .priors import intrinsics_from_focal_mm, intrinsics_in_network_pixels, resolve_priors
from .progress import Progress, ProgressFn, eta_text, warn
from .reconstruction import Reconstruction
from .weights.bundled import DEMO_LABEL, DEMO_NAME, is_demo

# Rough share of the wall time of each stage (used for the overall fraction and the ETA in the UI).
_STAGE_WEIGHTS = {
    "pairs": {"load": 0.05, "encode": 0.10, "pairs": 0.50, "align": 0.35},
    "vggt": {"load": 0.10, "vggt": 0.90},
    "da3": {"load": 0.10, "da3": 0.90},
}
_SHOT_STAGE_WEIGHTS = {
    "pairs": {"decode": 0.10, "encode": 0.10, "pairs": 0.45, "align": 0.35},
    "vggt": {"decode": 0.10, "chunks": 0.90},
    "da3": {"decode": 0.10, "chunks": 0.90},
}
_RECIPES = {"pairs": "dust3r", "vggt": "vggt", "da3": "da3"}   # each backend's preprocessing
_SINGLE_PASS = ("vggt", "da3")   # families whose backend has the family's name

_ETA = re.compile(r"\s*ETA( \d+ min)? \d+ s")
_MODEL_CACHE: dict = {}   # (path, mtime, device, precision) -> (model, info); one entry, so repeated runs skip loading


def reconstruct(
    inputs,
    checkpoint,
    options: ReconstructOptions | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel=None,
) -> Reconstruction:
    """Reconstruct cameras, depth maps and a point cloud from photos.

    inputs:      a folder, a file path, a list of paths / PIL images / (H, W, 3) arrays; or a shot: a movie
                 file, or an image-sequence folder with `options.sequence.is_shot` (see the module doc and
                 `core.options.SequenceOptions`).
    checkpoint:  a registry name (looked up in `options.cache_dir`), a path to a .pth / .pt / .safetensors
                 file or a Hugging Face folder, or an already loaded model (e.g. a tiny test model).
    options:     `core.options.ReconstructOptions` (None: the defaults).
    progress:    callback receiving `core.progress.Progress` (with `overall` filled in).
    cancel:      `core.errors.CancelToken`; checked between batches and steps.

    Returns a validated `Reconstruction`. Raises `PointmapError` subclasses with user-facing messages,
    `ValueError` for option values no backend understands, `UnsupportedOption` for options the chosen
    backend cannot honour.
    """
    opt = options or ReconstructOptions()
    opt.check()
    _require_torch()
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    from .io.video import shot_path

    shot = shot_path(inputs, opt.sequence.is_shot)
    _check_sequence_options(opt, inputs, shot)
    model, model_name, family, input_size = _resolve_model(checkpoint, opt.device, opt.precision, opt.cache_dir)
    whole_frame = whole_frame_input(opt, model)
    backend = opt.backend
    if backend == "auto":
        backend = family if family in _SINGLE_PASS else "pairs"
    if backend != (family if family in _SINGLE_PASS else "pairs"):
        raise CheckpointError(f"The {backend!r} backend cannot run a {family} checkpoint ({model_name}).")
    if backend in _SINGLE_PASS:
        _refuse_unsupported_vggt(opt, backend)
    if shot is not None:
        _refuse_unsupported_shot(opt, backend)
        if backend == "da3":
            from .backends.da3 import check_da3_shot

            check_da3_shot(model, opt)
    report = _overall_reporter(progress, (_SHOT_STAGE_WEIGHTS if shot else _STAGE_WEIGHTS)[backend],
                               with_eta=shot is not None)
    check_cancel(cancel)

    t = time.perf_counter()
    frames = None
    if shot is not None:
        from .io.video import load_sequence, open_sequence

        seq = opt.sequence
        source = open_sequence(shot, start=seq.start, end=seq.end, stride=seq.stride, first_frame=seq.first_frame)
        # Known cameras name clip frames: a frame outside the selection is refused before decoding starts.
        resolve_priors(opt.intrinsics, opt.known_poses, [None] * len(source.frame_numbers), source.frame_numbers)
        frames = load_sequence(source, _RECIPES[backend], opt.image_size or input_size, vggt_mode=opt.vggt.mode,
                               da3_method=opt.da3.method, on_error=seq.on_bad_frame, progress=report,
                               cancel=cancel, whole_frame=whole_frame)
        images = frames.images
    elif backend == "da3":
        from .backends.da3 import load_for_da3

        images = load_for_da3(inputs, opt, input_size, report, cancel)
    elif backend == "vggt":
        from .io.images import load_images_vggt

        images = load_images_vggt(inputs, mode=opt.vggt.mode, target=opt.image_size or input_size,
                                  on_error=opt.on_bad_image, progress=report, cancel=cancel)
    else:
        from .io.images import load_images

        images = load_images(inputs, size=opt.image_size or input_size, on_error=opt.on_bad_image,
                             progress=report, cancel=cancel, whole_frame=whole_frame)
    timings["load" if frames is None else "decode"] = time.perf_counter() - t
    if frames is not None:
        warnings = [f"Frame {number} skipped (it gets no camera): {message}." for number, message in frames.failures]
        warnings += _summarise_repeats(images.duplicate_warnings())
    else:
        # The loaders' messages already name the file: say "Skipped" once, not the path twice.
        warnings = [f"Skipped: {message}" if path and path in message else f"Skipped {path}: {message}"
                    for path, message in images.failures]
        warnings += images.duplicate_warnings()
    if model_name == DEMO_NAME:
        warnings.insert(0, DEMO_LABEL)
    warnings += opt.unit_warnings()
    priors = resolve_priors(opt.intrinsics, opt.known_poses, images.images,
                            frames.frame_numbers if frames is not None else None,
                            len(frames.failures if frames is not None else images.failures))
    for w in warnings:     # known before any network runs: said now, not after a long run
        warn(progress, w)
    n_said = len(warnings)

    anchor = priors.known_poses if backend in _SINGLE_PASS else None
    if backend == "vggt":
        t = time.perf_counter()
        known_K = priors.intrinsics
        if known_K is None and opt.known_focal_mm:
            known_K = intrinsics_from_focal_mm(images.images, opt.known_focal_mm, opt.sensor_width_mm)
        if frames is not None:
            from .backends.vggt_chunked import run_vggt_chunked

            recon = run_vggt_chunked(model, images.images, chunk=opt.sequence.chunk, overlap=opt.sequence.overlap,
                                     device=opt.device, precision=opt.precision, points=opt.vggt.points,
                                     fused=opt.vggt.fused, progress=report, cancel=cancel, intrinsics=known_K)
        else:
            from .backends.vggt import run_vggt

            recon = run_vggt(model, images.images, device=opt.device, precision=opt.precision,
                             points=opt.vggt.points, fused=opt.vggt.fused, progress=report, cancel=cancel,
                             intrinsics=known_K)
        timings["vggt" if frames is None else "chunks"] = time.perf_counter() - t
        meta = {"graph": None}
    elif backend == "da3":
        t = time.perf_counter()
        da3_opt = opt
        if priors.intrinsics is not None and frames is None:
            da3_opt = replace(opt, intrinsics=None, da3=replace(opt.da3, intrinsics=priors.intrinsics))
        if (frames is None and anchor and len(anchor) == len(images.images)
                and da3_opt.da3.intrinsics is not None
                and getattr(getattr(model, "da3", model), "cam_enc", None) is not None):   # nested: its any-view net
            # Every camera known: the model's camera-conditioned mode takes them as input.
            w2c = np.linalg.inv(np.stack([anchor[k] for k in range(len(images.images))]))
            da3_opt = replace(da3_opt, known_poses=None, da3=replace(da3_opt.da3, world2cam=w2c))
            anchor = None
        if frames is not None:
            from .backends.da3 import run_da3_chunked

            recon = run_da3_chunked(model, images, da3_opt, opt.sequence.chunk, opt.sequence.overlap, report,
                                    cancel, intrinsics=priors.intrinsics)
        else:
            from .backends.da3 import run_da3_options

            recon = run_da3_options(model, images, da3_opt, report, cancel)
        timings["da3" if frames is None else "chunks"] = time.perf_counter() - t
        meta = {"graph": None}
    else:
        from .backends.pairwise import run_pairwise

        run_opt = opt if frames is None else _shot_pairwise_options(opt)
        if priors.intrinsics is not None or priors.known_poses:
            align = run_opt.align
            if priors.intrinsics is not None:
                align = replace(align, intrinsics=list(intrinsics_in_network_pixels(images.images, priors.intrinsics)))
            if priors.known_poses:
                align = replace(align, known_poses=priors.known_poses)
            run_opt = replace(run_opt, align=align)
        recon, meta = run_pairwise(model, model_name, images.images, run_opt, report, cancel, timings, warnings)
        # what the network saw of each photo: its central square (DUSt3R's 224 rule) or the whole frame
        meta["input_crop"] = "square" if (opt.image_size or input_size) == 224 and not whole_frame else "whole"
    if anchor:
        recon.cam2world, recon.points, recon.depth, info = anchor_to_known_poses(
            recon.cam2world, recon.points, recon.depth, anchor)
        meta["known_poses"] = info
        recon.warnings.extend(anchor_warnings(info, recon.names, anchor))

    if frames is not None:
        recon.frame_numbers = np.asarray(frames.frame_numbers, dtype=np.int64)
        recon.fps = frames.fps
        seq = opt.sequence
        movie = Path(shot).is_file()
        # first_frame: the clip number of a movie's first frame (its plate starts there); image files carry theirs.
        meta["shot"] = {"source": shot, "kind": "movie" if movie else "images",
                        "first_frame": int(seq.first_frame) if movie else None,
                        "start": seq.start, "end": seq.end, "stride": int(seq.stride),
                        "skipped_frames": [int(n) for n, _ in frames.failures]}
    _check_cameras(recon, model_name)
    timings["total"] = time.perf_counter() - t_start
    recon.model = model_name
    recon.family = family
    recon.warnings = warnings + list(recon.warnings)
    for w in recon.warnings[n_said:]:
        warn(progress, w)
    recon.meta = {**recon.meta, **meta, "timings": timings, "precision": opt.precision}
    recon.validate()
    return recon


def _refuse_unsupported_vggt(opt: ReconstructOptions, backend: str = "vggt") -> None:
    """VGGT and DA3 predict every camera in one pass: no scene graph, no alignment iterations, no shared
    focal. Options asking for those are refused, never silently dropped. Both take a known
    focal length or intrinsics (used to unproject depth), VGGT only with points from depth."""
    default_align, default_pairwise = AlignOptions(), PairwiseOptions()
    asked = []
    if opt.pairwise.graph != default_pairwise.graph:
        asked.append(f"scene graph {opt.pairwise.graph!r}")
    if opt.align.iterations is not None:
        asked.append("alignment iterations")
    if opt.align.shared_focal != default_align.shared_focal:
        asked.append("shared focal")
    if opt.vggt.points == "head" and backend == "vggt" and (opt.known_focal_mm or opt.intrinsics is not None):
        asked.append("known intrinsics with the point head (vggt.points='depth' uses them)")
    if asked:
        label = "VGGT" if backend == "vggt" else "Depth Anything 3"
        raise UnsupportedOption(f"The {label} backend cannot honour: {', '.join(asked)} (it predicts all cameras "
                                f"in one pass, without a scene graph or an alignment). Leave these unset, or use a "
                                f"DUSt3R / MASt3R checkpoint.")


def _check_sequence_options(opt: ReconstructOptions, inputs, shot: str | None) -> None:
    """Shot options on something that is no shot are refused, never silently dropped."""
    seq, default = opt.sequence, SequenceOptions()
    if shot is not None:
        return
    if seq.is_shot:
        raise InputError(f"sequence.is_shot needs a folder holding an image sequence or a movie file; got "
                         f"{_describe(inputs)}.")
    asked = [name for name in ("start", "end", "stride") if getattr(seq, name) != getattr(default, name)]
    if asked:
        raise UnsupportedOption(f"sequence.{', sequence.'.join(asked)} select frames of a shot, but the input "
                                f"({_describe(inputs)}) is a set of photos; give a movie file, or set "
                                f"sequence.is_shot for an image-sequence folder.")


def _describe(inputs) -> str:
    if isinstance(inputs, (str, Path)):
        return str(inputs)
    try:
        return f"{len(inputs)} inputs"
    except TypeError:
        return type(inputs).__name__


def _refuse_unsupported_shot(opt: ReconstructOptions, backend: str) -> None:
    """Options a shot cannot honour on this backend (module doc of `core.options.SequenceOptions`)."""
    seq = opt.sequence
    if backend == "pairs" and (seq.chunk is not None or seq.overlap is not None):
        raise UnsupportedOption("sequence.chunk and sequence.overlap cut a shot into chunks for VGGT and Depth "
                                "Anything 3; the pairwise backend solves the whole shot at once. Leave them unset.")
    if backend == "pairs" and opt.align.shared_focal and not seq.shared_focal:
        raise UnsupportedOption("align.shared_focal and sequence.shared_focal=False contradict each other; on a "
                                "shot, sequence.shared_focal decides (False: one focal per frame, for zooms).")


def _shot_pairwise_options(opt: ReconstructOptions) -> ReconstructOptions:
    """A shot's pairwise run: the seq-K graph unless a graph was chosen, the shot's focal sharing, and the
    shot's refinement schedule (`align.schedule.for_shot`) where the alignment options are the defaults."""
    graph = opt.pairwise.graph
    if graph == PairwiseOptions().graph:
        graph = f"seq-{opt.sequence.window}"
    align = for_shot(replace(opt.align, shared_focal=opt.sequence.shared_focal))
    return replace(opt, pairwise=replace(opt.pairwise, graph=graph), align=align)


def _summarise_repeats(duplicates: list[str]) -> list[str]:
    """A shot may hold many repeated frames (a hold, a locked-off camera): one sentence beyond three."""
    if len(duplicates) <= 3:
        return duplicates
    return [f"{len(duplicates)} frames repeat an earlier frame exactly (e.g. {duplicates[0]})"]


def _check_cameras(recon: Reconstruction, model_name: str) -> None:
    """Refuse to hand non-finite cameras to the scene builder: they come from broken weights or inputs."""
    bad = [recon.names[i] for i in range(recon.n_views)
           if not (np.isfinite(recon.cam2world[i]).all() and np.isfinite(recon.K[i]).all())]
    if bad:
        raise PointmapError(
            f"The network returned invalid cameras (NaN or infinite values) for {len(bad)} of {recon.n_views} "
            f"images ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}). The checkpoint {model_name} may be "
            f"damaged or not a trained model.")


def _overall_reporter(progress: ProgressFn | None, weights: dict[str, float],
                      with_eta: bool = False) -> ProgressFn | None:
    """Wrap `progress` so every event also carries the fraction of the whole run; with_eta: its message
    also says how much of the whole run is done and the time left at that pace (shots)."""
    if progress is None:
        return None
    order = list(weights)
    total = sum(weights.values())
    started = time.perf_counter()

    def report(p: Progress) -> None:
        if p.stage in weights:
            before = sum(weights[s] for s in order[: order.index(p.stage)])
            overall = (before + weights[p.stage] * p.fraction) / total
        else:
            overall = None
        message = p.message
        if with_eta and overall is not None:
            # The stage's own ETA (if any) covers the stage only; the run's ETA replaces it.
            message = _ETA.sub("", message).rstrip(" ,")
            eta = eta_text(started, int(overall * 10000), 10000)
            message = f"{message} · shot {overall:.0%}{', ' + eta if eta else ''}".lstrip(" ·")
        progress(replace(p, overall=overall, message=message))

    return report


def whole_frame_input(options: ReconstructOptions, model) -> bool:
    """Whether the DUSt3R-family loader keeps whole photos at 224 (`ReconstructOptions.input_crop`): forced by
    the option, else what the model declares (`input_crop`, set by the checkpoint loader; absent: square)."""
    if options.input_crop != "auto":
        return options.input_crop == "whole"
    return getattr(model, "input_crop", "square") == "whole"


def _resolve_model(checkpoint, device, precision, cache_dir):
    """(model, display name, family, input size) for a loaded module, a path or a registry name."""
    import torch

    if isinstance(checkpoint, torch.nn.Module):
        from .weights.checkpoint import model_input_size

        family = getattr(checkpoint, "family", None)
        if family is None:
            raise CheckpointError(f"{type(checkpoint).__name__} is not a pointmap network (DUSt3R, MASt3R or VGGT "
                                  f"built by pointmap.core.models).")
        size = model_input_size(checkpoint)
        if device is not None:
            checkpoint.to(device)
        return checkpoint.eval(), type(checkpoint).__name__, family, size

    from .weights.checkpoint import load_checkpoint
    from .weights.resolve import resolve_checkpoint

    path = resolve_checkpoint(str(checkpoint), cache_dir=str(cache_dir or _default_cache_dir()))
    name = str(checkpoint) if not Path(str(checkpoint)).expanduser().exists() else path
    if is_demo(path):
        name = DEMO_NAME
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # The engines cast weights to the run's precision in place, so precision is part of the key.
    key = (str(Path(path).resolve()), Path(path).stat().st_mtime, str(dev), precision)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()   # one model at a time: they are gigabytes
        _MODEL_CACHE[key] = load_checkpoint(path, device=dev)
    model, info = _MODEL_CACHE[key]
    return model, name, info.family, info.input_size


def _default_cache_dir() -> Path:
    from .weights.download import default_cache_dir

    return Path(default_cache_dir())


def _require_torch() -> None:
    from .llvm_guard import guard_triton

    guard_triton()
    try:
        import safetensors  # noqa: F401
        import timm  # noqa: F401  (timm imports torchvision, which needs the matching torch build)
        import torch  # noqa: F401
    except Exception as err:  # ImportError, or a broken CUDA/torchvision install raising at import
        raise DependencyError(
            f"pointmap needs torch, torchvision, timm and safetensors, which could not be imported ({err}). Install them "
            f"(Blender: Preferences > Add-ons > Pointmap > Install dependencies).") from err


__all__ = ["reconstruct"]
