"""`reconstruct()`: photos in, `Reconstruction` out — the one call the Blender side and scripts use.

Stages and their share of the overall progress (reported through one callback):

    pairwise (DUSt3R / MASt3R):  load → encode (each image once) → pairs (decoder + heads) → align
    single pass (VGGT):          load → vggt
    single pass (DA3):           load → da3

Everything heavy is imported inside the function so `import pointmap.core` stays free of torch.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import CheckpointError, DependencyError, PointmapError, UnsupportedOption, check_cancel
from .options import AlignOptions, PairwiseOptions, ReconstructOptions
from .progress import Progress, ProgressFn, warn
from .reconstruction import Reconstruction
from .weights.bundled import DEMO_LABEL, DEMO_NAME, is_demo

# Rough share of the wall time of each stage (used for the overall fraction and the ETA in the UI).
_STAGE_WEIGHTS = {
    "pairs": {"load": 0.05, "encode": 0.10, "pairs": 0.50, "align": 0.35},
    "vggt": {"load": 0.10, "vggt": 0.90},
    "da3": {"load": 0.10, "da3": 0.90},
}
_SINGLE_PASS = ("vggt", "da3")   # families whose backend has the family's name

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

    inputs:      a folder, a file path, a list of paths / PIL images / (H, W, 3) arrays.
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

    model, model_name, family, input_size = _resolve_model(checkpoint, opt.device, opt.precision, opt.cache_dir)
    backend = opt.backend
    if backend == "auto":
        backend = family if family in _SINGLE_PASS else "pairs"
    if backend != (family if family in _SINGLE_PASS else "pairs"):
        raise CheckpointError(f"The {backend!r} backend cannot run a {family} checkpoint ({model_name}).")
    if backend in _SINGLE_PASS:
        _refuse_unsupported_vggt(opt, backend)
    report = _overall_reporter(progress, _STAGE_WEIGHTS[backend])
    check_cancel(cancel)

    t = time.perf_counter()
    if backend == "da3":
        from .backends.da3 import load_for_da3

        images = load_for_da3(inputs, opt, input_size, report, cancel)
    elif backend == "vggt":
        from .io.images import load_images_vggt

        images = load_images_vggt(inputs, mode=opt.vggt.mode, target=opt.image_size or input_size,
                                  on_error=opt.on_bad_image, progress=report, cancel=cancel)
    else:
        from .io.images import load_images

        images = load_images(inputs, size=opt.image_size or input_size, on_error=opt.on_bad_image,
                             progress=report, cancel=cancel)
    timings["load"] = time.perf_counter() - t
    # The loaders' messages already name the file: say "Skipped" once, not the path twice.
    warnings = [f"Skipped: {message}" if path and path in message else f"Skipped {path}: {message}"
                for path, message in images.failures]
    warnings += images.duplicate_warnings()
    if model_name == DEMO_NAME:
        warnings.insert(0, DEMO_LABEL)
    warnings += opt.unit_warnings()
    for w in warnings:     # known before any network runs: said now, not after a long run
        warn(progress, w)
    n_said = len(warnings)

    if backend == "vggt":
        from .backends.vggt import run_vggt

        t = time.perf_counter()
        recon = run_vggt(model, images.images, device=opt.device, precision=opt.precision, points=opt.vggt.points,
                         fused=opt.vggt.fused, progress=report, cancel=cancel)
        timings["vggt"] = time.perf_counter() - t
        meta = {"graph": None}
    elif backend == "da3":
        from .backends.da3 import run_da3_options

        t = time.perf_counter()
        recon = run_da3_options(model, images, opt, report, cancel)
        timings["da3"] = time.perf_counter() - t
        meta = {"graph": None}
    else:
        from .backends.pairwise import run_pairwise

        recon, meta = run_pairwise(model, model_name, images.images, opt, report, cancel, timings, warnings)

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
    """VGGT and DA3 predict every camera in one pass: no scene graph, no alignment iterations and (VGGT) no
    focal constraints. Options asking for those are refused, never silently dropped. DA3 takes a known
    focal length (turned into known intrinsics)."""
    default_align, default_pairwise = AlignOptions(), PairwiseOptions()
    asked = []
    if opt.pairwise.graph != default_pairwise.graph:
        asked.append(f"scene graph {opt.pairwise.graph!r}")
    if opt.align.iterations is not None:
        asked.append("alignment iterations")
    if opt.align.shared_focal != default_align.shared_focal:
        asked.append("shared focal")
    if opt.known_focal_mm and backend == "vggt":
        asked.append("known focal length")
    if asked:
        label = "VGGT" if backend == "vggt" else "Depth Anything 3"
        raise UnsupportedOption(f"The {label} backend cannot honour: {', '.join(asked)} (it predicts all cameras "
                                f"in one pass, without a scene graph or an alignment). Leave these unset, or use a "
                                f"DUSt3R / MASt3R checkpoint.")


def _check_cameras(recon: Reconstruction, model_name: str) -> None:
    """Refuse to hand non-finite cameras to the scene builder: they come from broken weights or inputs."""
    bad = [recon.names[i] for i in range(recon.n_views)
           if not (np.isfinite(recon.cam2world[i]).all() and np.isfinite(recon.K[i]).all())]
    if bad:
        raise PointmapError(
            f"The network returned invalid cameras (NaN or infinite values) for {len(bad)} of {recon.n_views} "
            f"images ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}). The checkpoint {model_name} may be "
            f"damaged or not a trained model.")


def _overall_reporter(progress: ProgressFn | None, weights: dict[str, float]) -> ProgressFn | None:
    """Wrap `progress` so every event also carries the fraction of the whole run."""
    if progress is None:
        return None
    order = list(weights)
    total = sum(weights.values())

    def report(p: Progress) -> None:
        if p.stage in weights:
            before = sum(weights[s] for s in order[: order.index(p.stage)])
            overall = (before + weights[p.stage] * p.fraction) / total
        else:
            overall = None
        progress(replace(p, overall=overall))

    return report


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
