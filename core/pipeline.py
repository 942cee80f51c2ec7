"""`reconstruct()`: photos in, `Reconstruction` out — the one call the Blender side and scripts use.

Stages and their share of the overall progress (reported through one callback):

    pairwise (DUSt3R / MASt3R):  load → encode (each image once) → pairs (decoder + heads) → align
    single pass (VGGT):          load → vggt

Everything heavy is imported inside the function so `import pointmap.core` stays free of torch.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import CheckpointError, DependencyError, PointmapError, check_cancel
from .progress import Progress, ProgressFn
from .reconstruction import Reconstruction

# Rough share of the wall time of each stage (used for the overall fraction and the ETA in the UI).
_STAGE_WEIGHTS = {
    "pairs": {"load": 0.05, "encode": 0.10, "pairs": 0.50, "align": 0.35},
    "vggt": {"load": 0.10, "vggt": 0.90},
}

_MODEL_CACHE: dict = {}   # (path, mtime, device, precision) -> (model, info); one entry, so repeated runs skip loading


def reconstruct(
    inputs,
    checkpoint,
    *,
    backend: str = "auto",
    graph: str = "complete",
    image_size: int | None = None,
    device=None,
    precision: str = "auto",
    iterations: int | None = None,
    shared_focal: bool = False,
    known_focal_mm: float | None = None,
    sensor_width_mm: float = 36.0,
    min_conf: float | None = None,
    on_bad_image: str = "skip",
    vggt_points: str = "depth",
    vggt_mode: str = "crop",
    vggt_fused: bool = False,
    memory_budget: int | None = None,
    offload: bool | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
    cancel=None,
) -> Reconstruction:
    """Reconstruct cameras, depth maps and a point cloud from photos.

    inputs:          a folder, a file path, a list of paths / PIL images / (H, W, 3) arrays.
    checkpoint:      a registry name (looked up in `cache_dir`), a path to a .pth / .pt / .safetensors file
                     or a Hugging Face folder, or an already loaded model (e.g. a tiny test model).
    backend:         "auto" (from the checkpoint), "pairs" (DUSt3R / MASt3R) or "vggt".
    graph:           scene graph for pairwise models: complete, swin-K, logwin-K, oneref-R, retrieval-K.
    image_size:      network input size (default: what the checkpoint was trained for, 224 / 512 / 518).
    device:          "cuda", "cpu", "mps" or None (CUDA when available).
    precision:       "auto", "fp32", "bf16", "fp16".
    iterations:      most alignment iterations (None: the aligner's default).
    shared_focal:    one focal length for every image (same camera and zoom).
    known_focal_mm:  the lens, if known, with `sensor_width_mm` = the sensor's long side (36 for full frame).
    min_conf:        alignment confidence threshold (None: the aligner's default).
    on_bad_image:    "skip" (report in `warnings`, use the rest) or "raise" (stop at the first bad file).
    vggt_points:     "depth" (depth map + camera, the reference's recommendation) or "head" (point head).
    vggt_mode:       VGGT preprocessing, "crop" or "pad".
    vggt_fused:      compile VGGT's blocks (CUDA; ~4 % faster on long runs, ~15 s one-time compile).
    memory_budget:   pairwise models: bytes the pair predictions + alignment may take on the device (None:
                     the free GPU memory; on the CPU: the available RAM). Above it the predictions are
                     kept in host memory and streamed to the GPU (a warning says so).
    offload:         pairwise models: True keeps the predictions in host memory whatever the estimate,
                     False never does, None decides from `memory_budget`.
    progress:        callback receiving `core.progress.Progress` (with `overall` filled in).
    cancel:          `core.errors.CancelToken`; checked between batches and steps.

    Returns a validated `Reconstruction`. Raises `PointmapError` subclasses with user-facing messages.
    """
    if on_bad_image not in ("skip", "raise"):
        raise ValueError(f"on_bad_image must be 'skip' or 'raise', not {on_bad_image!r}")
    _require_torch()
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    model, model_name, family, input_size = _resolve_model(checkpoint, device, precision, cache_dir)
    if backend == "auto":
        backend = "vggt" if family == "vggt" else "pairs"
    if backend not in ("pairs", "vggt"):
        raise ValueError(f"backend must be 'auto', 'pairs' or 'vggt', not {backend!r}")
    if (backend == "vggt") != (family == "vggt"):
        raise CheckpointError(f"The {backend!r} backend cannot run a {family} checkpoint ({model_name}).")
    report = _overall_reporter(progress, _STAGE_WEIGHTS[backend])
    check_cancel(cancel)

    t = time.perf_counter()
    if backend == "vggt":
        from .io.images import load_images_vggt

        images = load_images_vggt(inputs, mode=vggt_mode, target=image_size or input_size,
                                  on_error=on_bad_image, progress=report, cancel=cancel)
    else:
        from .io.images import load_images

        images = load_images(inputs, size=image_size or input_size, on_error=on_bad_image,
                             progress=report, cancel=cancel)
    timings["load"] = time.perf_counter() - t
    warnings = [f"Skipped {path}: {message}" for path, message in images.failures]

    if backend == "vggt":
        from .backends.vggt import run_vggt

        t = time.perf_counter()
        recon = run_vggt(model, images.images, device=device, precision=precision, points=vggt_points,
                         fused=vggt_fused, progress=report, cancel=cancel)
        timings["vggt"] = time.perf_counter() - t
        meta = {"graph": None}
    else:
        recon, meta = _pairwise(model, model_name, images.images, graph, device, precision, iterations, shared_focal,
                                known_focal_mm, sensor_width_mm, min_conf, report, cancel, timings, warnings,
                                memory_budget, offload)

    _check_cameras(recon, model_name)
    timings["total"] = time.perf_counter() - t_start
    recon.model = model_name
    recon.family = family
    recon.warnings = warnings + list(recon.warnings)
    recon.meta = {**recon.meta, **meta, "timings": timings, "precision": precision}
    recon.validate()
    return recon


def _pairwise(model, model_name, images, graph, device, precision, iterations, shared_focal, known_focal_mm,
              sensor_width_mm, min_conf, report, cancel, timings, warnings, memory_budget=None, offload=None):
    """Encode → scene graph → memory plan → pair inference → global alignment → Reconstruction."""
    from .align.refine import AlignOptions, global_align
    from .pairwise.engine import PairInference
    from .pairwise.graph import make_pairs
    from .pairwise.memory import estimate_pairwise_memory, plan_pairwise_memory

    engine = PairInference(model, device=device, precision=precision)
    t = time.perf_counter()
    encoded = engine.encode([im.rgb for im in images], progress=report, cancel=cancel)
    timings["encode"] = time.perf_counter() - t

    descriptors = None
    if graph.startswith("retrieval"):
        descriptors = engine.global_descriptors(encoded).float().cpu().numpy()
    pair_graph = make_pairs(len(images), graph, descriptors=descriptors)
    warnings.extend(pair_graph.notes)

    estimate = estimate_pairwise_memory(encoded.shapes, pair_graph.edges, engine.storage_dtype,
                                        desc_dim=getattr(model, "desc_dim", None) or 0)
    plan = plan_pairwise_memory(estimate, engine.device, memory_budget, offload, graph)
    if plan.warning:
        warnings.append(plan.warning)

    t = time.perf_counter()
    pred = engine.run_pairs(encoded, pair_graph.edges, progress=report, cancel=cancel,
                            out_device=plan.storage_device)
    timings["pairs"] = time.perf_counter() - t
    del encoded
    if not engine.outputs_finite():
        raise PointmapError(f"The network returned invalid pointmaps (NaN or infinite values). The checkpoint "
                            f"{model_name} may be damaged or not a trained model.")

    options = AlignOptions(shared_focal=shared_focal, device=str(plan.align_device))
    if iterations is not None:
        options.iterations = int(iterations)
    if min_conf is not None:
        options.min_conf = float(min_conf)
    if known_focal_mm:
        options.focals = [focal_mm_to_net_px(known_focal_mm, sensor_width_mm, im) for im in images]
    t = time.perf_counter()
    aligned = global_align(pred, options, progress=report, cancel=cancel)
    timings["align"] = time.perf_counter() - t
    del pred

    net_to_orig = np.stack([im.net_to_orig for im in images]).astype(np.float64)
    recon = Reconstruction(
        names=[im.name for im in images],
        paths=[im.path for im in images],
        image_sizes=np.array([im.original_size for im in images], dtype=np.int32),
        cam2world=aligned.cam2world,
        K=net_to_orig @ aligned.K_net,
        K_net=aligned.K_net,
        net_to_orig=net_to_orig,
        depth=aligned.depth,
        points=aligned.points,
        conf=aligned.conf,
        colors=[im.rgb for im in images],
    )
    meta = {"graph": graph, "n_pairs": pair_graph.n_edges, "align": _jsonable(aligned.info),
            "memory": {**estimate.as_dict(), "plan": plan.mode}}
    return recon, meta


def _check_cameras(recon: Reconstruction, model_name: str) -> None:
    """Refuse to hand non-finite cameras to the scene builder: they come from broken weights or inputs."""
    bad = [recon.names[i] for i in range(recon.n_views)
           if not (np.isfinite(recon.cam2world[i]).all() and np.isfinite(recon.K[i]).all())]
    if bad:
        raise PointmapError(
            f"The network returned invalid cameras (NaN or infinite values) for {len(bad)} of {recon.n_views} "
            f"images ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}). The checkpoint {model_name} may be "
            f"damaged or not a trained model.")


def focal_mm_to_net_px(focal_mm: float, sensor_width_mm: float, image) -> float:
    """Focal length in network pixels of `image` (a LoadedImage) from a lens in mm.

    The sensor width is taken along the image's long side (how camera sensors are specified), so the
    focal in original pixels is focal_mm / sensor_mm · max(W0, H0); network pixels divide by the resize scale.
    """
    if focal_mm <= 0 or sensor_width_mm <= 0:
        raise ValueError("focal length and sensor width must be positive (mm)")
    h0, w0 = image.original_size
    f_orig = focal_mm / sensor_width_mm * max(w0, h0)
    return float(f_orig / image.net_to_orig[0, 0])


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
        family = getattr(checkpoint, "family", None) or ("vggt" if "vggt" in type(checkpoint).__name__.lower()
                                                        else "dust3r")
        size = 518 if family == "vggt" else 512
        if device is not None:
            checkpoint.to(device)
        return checkpoint.eval(), type(checkpoint).__name__, family, size

    from .weights import registry
    from .weights.checkpoint import load_checkpoint

    found = registry.resolve(checkpoint)
    if isinstance(found, registry.CheckpointSpec):
        from .weights.download import cached_checkpoint

        path = cached_checkpoint(found.name, cache_dir)
        if path is None:
            where = Path(cache_dir) if cache_dir else _default_cache_dir()
            raise CheckpointError(
                f"The weights of {found.name} are not downloaded yet (looked in {where / found.name}). "
                f"Download them (Blender: Preferences > Add-ons > Pointmap > Download weights; Python: "
                f"pointmap.core.weights.download.download_checkpoint({found.name!r}, cache_dir)) or pass the path of "
                f"a local checkpoint file. Licence: {found.license}")
        name = found.name
    else:
        path, name = found, str(found)
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
        import timm  # noqa: F401  (timm imports torchvision, which needs the matching torch build)
        import torch  # noqa: F401
    except Exception as err:  # ImportError, or a broken CUDA/torchvision install raising at import
        raise DependencyError(
            f"pointmap needs torch, torchvision and timm, which could not be imported ({err}). Install them "
            f"(Blender: Preferences > Add-ons > Pointmap > Install dependencies).") from err


def _jsonable(info: dict) -> dict:
    out = {}
    for k, v in info.items():
        if isinstance(v, (np.floating, np.integer)):
            v = v.item()
        if isinstance(v, (str, int, float, bool, type(None), list, dict)):
            out[k] = v
    return out


__all__ = ["reconstruct", "focal_mm_to_net_px"]
