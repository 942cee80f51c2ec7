"""Pairwise backend (DUSt3R / MASt3R): encode → scene graph → memory plan → pair inference → global
alignment → `Reconstruction`.

Frames: the aligned cameras are cam2world in OpenCV axes with the first camera at the identity; K_net is
in network pixels, K in original-image pixels (K = net_to_orig @ K_net).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from ..errors import PointmapError
from ..options import ReconstructOptions
from ..priors import focal_mm_to_net_px
from ..progress import ProgressFn
from ..reconstruction import Reconstruction


def run_pairwise(model, model_name: str, images, options: ReconstructOptions, progress: ProgressFn | None,
                 cancel, timings: dict[str, float], warnings: list[str]) -> tuple[Reconstruction, dict]:
    """Reconstruct `images` (list of `core.io.images.LoadedImage`) with a pairwise model.

    Appends stage times to `timings` and user-facing notes to `warnings`. Returns the reconstruction and
    the run's metadata (graph, pair count, alignment info, memory plan).
    """
    from ..align.refine import global_align
    from ..devices import release_cached
    from ..pairwise.engine import PairInference
    from ..pairwise.graph import make_pairs
    from ..pairwise.memory import estimate_pairwise_memory, plan_pairwise_memory

    graph = options.pairwise.graph
    engine = PairInference(model, device=options.device, precision=options.precision)
    t = time.perf_counter()
    encoded = engine.encode([im.rgb for im in images], progress=progress, cancel=cancel)
    timings["encode"] = time.perf_counter() - t

    descriptors = None
    if graph.startswith(("retrieval", "seq")):   # seq-K finds its loop closures by retrieval
        descriptors = engine.global_descriptors(encoded).float().cpu().numpy()
    pair_graph = make_pairs(len(images), graph, descriptors=descriptors)
    warnings.extend(pair_graph.notes)

    estimate = estimate_pairwise_memory(encoded.shapes, pair_graph.edges, engine.storage_dtype,
                                        desc_dim=getattr(model, "desc_dim", None) or 0,
                                        fine_samples=options.align.fine_samples)
    plan = plan_pairwise_memory(estimate, engine.device, options.pairwise.memory_budget, options.pairwise.offload,
                                graph)
    if plan.warning:
        warnings.append(plan.warning)

    t = time.perf_counter()
    pred = engine.run_pairs(encoded, pair_graph.edges, progress=progress, cancel=cancel,
                            out_device=plan.storage_device)
    timings["pairs"] = time.perf_counter() - t
    del encoded
    release_cached(engine.device)   # decoder activations and tokens: the aligner allocates other shapes
    if not engine.outputs_finite():
        raise PointmapError(f"The network returned invalid pointmaps (NaN or infinite values). The checkpoint "
                            f"{model_name} may be damaged or not a trained model.")

    align = dataclasses.replace(options.align, device=str(plan.align_device))
    if plan.fine_samples is not None:
        align.fine_samples = plan.fine_samples
    if options.known_focal_mm:
        align.focals = [focal_mm_to_net_px(options.known_focal_mm, options.sensor_width_mm, im) for im in images]
    t = time.perf_counter()
    aligned = global_align(pred, align, progress=progress, cancel=cancel)
    timings["align"] = time.perf_counter() - t
    del pred

    recon = Reconstruction.from_views(images, aligned.cam2world, aligned.K_net, aligned.depth, aligned.points,
                                      aligned.conf)
    meta = {"graph": graph, "n_pairs": pair_graph.n_edges, "align": _jsonable(aligned.info),
            "memory": {**estimate.as_dict(), "plan": plan.mode,
                       **({"fine_samples": plan.fine_samples} if plan.fine_samples else {})}}
    return recon, meta


def _jsonable(info: dict) -> dict:
    out = {}
    for k, v in info.items():
        if isinstance(v, (np.floating, np.integer)):
            v = v.item()
        if isinstance(v, (str, int, float, bool, type(None), list, dict)):
            out[k] = v
    return out


__all__ = ["focal_mm_to_net_px", "run_pairwise"]
