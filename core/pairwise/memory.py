"""Memory planning of the pairwise path: estimate a run's bytes before any pair is decoded, then decide
where the predictions live (compute device, or pinned host memory streamed to it) or refuse with a
scene-graph hint.

The estimate follows the layouts the run will use: `predictions.PairStorage` for the predictions, the
aligner's sample counts (`align_init.INIT_SAMPLES`, `AlignOptions.fine_samples`) and depth-solve chunk,
and the inference engine's per-pixel activation figure. Imports torch lazily (called from `reconstruct`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..errors import PointmapError

_GIB = 2 ** 30

# Rough peak activation bytes per pixel of one pair during decoding + heads (measured on the DPT head,
# which dominates), by bytes per element of the compute dtype; used to size batches against free memory.
PAIR_BYTES_PER_PIXEL = {4: 2600, 2: 1300}
# ... and of one image through the encoder.
ENCODE_BYTES_PER_PIXEL = 200


def pair_bytes_per_pixel(dtype) -> int:
    """Peak decoder + head activation bytes per pixel of one pair computed in torch `dtype`."""
    import torch

    return PAIR_BYTES_PER_PIXEL[torch.empty((), dtype=dtype).element_size()]


# Per-sample bytes of the alignment stages (float32 working tensors with autograd, CUDA-graph pools):
# the fine stage measured ~100 B per sampled pixel on the H200 (1,000-frame shot: 27,736 observations x
# 8,192 samples took ~21 GiB); 120 keeps a margin.
FINE_BYTES_PER_SAMPLE = 120
INIT_BYTES_PER_SAMPLE = 150
# Predictions above this stay in pinned host memory even when the GPU could hold them. The aligner reads
# them only a few times (one strided sample per stage, three passes of the depth solve), so streaming costs
# a few seconds per 10 GiB, while keeping them resident would add their whole size to the peak (a
# 1,000-frame shot: 30.5 GiB of predictions on top of a ~21 GiB alignment). Runs of 8-50 photos (at most
# ~7.2 GiB: 50 photos, complete graph, 512x384) stay on the GPU.
DEVICE_PREDICTIONS_MAX = 16 * _GIB
# The fewest fine-stage samples per observation the plan lowers `AlignOptions.fine_samples` to when the
# alignment would not fit on the GPU otherwise (the coarse stage samples 1,024).
MIN_FINE_SAMPLES = 2048


@dataclass
class PairwiseMemory:
    """Estimated bytes of a pairwise run (see `estimate_pairwise_memory`)."""

    predictions: int   # stored pointmaps + confidences (+ MASt3R descriptors) of every directed pair
    alignment: int     # the aligner's peak working set besides the predictions (largest of its stages)
    inference: int     # decoder + head activations of a batch of one pair
    n_images: int
    n_pairs: int
    obs_px: np.ndarray | None = field(default=None, repr=False)   # (2E,) pixels of every observation
    view_px: np.ndarray | None = field(default=None, repr=False)  # (N,) pixels of every view
    fine_samples: int = 0                                           # the fine-stage samples estimated for

    @property
    def total(self) -> int:
        return self.predictions + self.alignment + self.inference

    def with_fine_samples(self, fine_samples: int) -> PairwiseMemory:
        """The same run with the aligner's fine stage on `fine_samples` pixels per observation."""
        return dataclasses.replace(self, alignment=alignment_bytes(self.obs_px, self.view_px, fine_samples),
                                   fine_samples=int(fine_samples))

    def as_dict(self) -> dict:
        return {"predictions_gib": round(self.predictions / _GIB, 3), "alignment_gib": round(self.alignment / _GIB, 3),
                "inference_gib": round(self.inference / _GIB, 3)}


@dataclass
class MemoryPlan:
    """Where the predictions are stored and where the alignment runs.

    fine_samples: when set, the aligner's fine stage must use this many samples per observation (fewer
    than asked) so that its working set fits on the alignment device.
    """

    mode: str              # "device" (all on the compute device), "offload" (predictions in host memory)
    storage_device: object
    align_device: object
    warning: str | None = None
    fine_samples: int | None = None


def alignment_bytes(obs_px, view_px, fine_samples: int) -> int:
    """Peak bytes of the aligner besides the predictions: the largest of its stages.

    obs_px: (2E,) pixels of every observation; view_px: (N,) pixels of every view. Stages: the
    initialisation's float64 samples; the coarse + fine refinement samples (the coarse stage's are still
    held while the fine stage samples); the full-resolution depth solve (one chunk of observations plus
    per-view depth / weight / ray maps).
    """
    from ..align.init import INIT_SAMPLES
    from ..align.refine import SOLVE_CHUNK_PIXELS
    from ..options import AlignOptions

    obs_px = np.asarray(obs_px, np.int64)
    init = int(np.minimum(obs_px, INIT_SAMPLES).sum()) * INIT_BYTES_PER_SAMPLE
    refine = int(np.minimum(obs_px, fine_samples).sum() + np.minimum(obs_px, AlignOptions.coarse_samples).sum()) \
        * FINE_BYTES_PER_SAMPLE
    solve = min(int(obs_px.sum()), SOLVE_CHUNK_PIXELS) * 80 + int(np.asarray(view_px, np.int64).sum()) * 32
    return max(init, refine, solve)


def estimate_pairwise_memory(shapes, edges, storage_dtype=None, desc_dim: int = 0,
                             fine_samples: int | None = None) -> PairwiseMemory:
    """Bytes the pair predictions and the global alignment need, before any pair is run.

    shapes: per image (H, W) at network resolution; edges: (E, 2) directed pairs; storage_dtype: the
    engine's storage dtype (default float16; float32 means the network itself runs in fp32, whose
    activations take twice the bytes); desc_dim: MASt3R descriptor channels (0: DUSt3R);
    fine_samples: the aligner's fine-stage samples per observation (default `AlignOptions`'). The
    alignment term is `alignment_bytes`.
    """
    import torch

    from ..options import AlignOptions

    dtype = storage_dtype or torch.float16
    fine_samples = fine_samples or AlignOptions.fine_samples
    elt = torch.empty((), dtype=dtype).element_size()
    px = np.array([h * w for h, w in shapes], np.int64)
    edges = np.asarray(edges, np.int64).reshape(-1, 2)
    obs_px = px[edges].reshape(-1)
    per_px = (4 + (desc_dim + 1 if desc_dim else 0)) * elt
    predictions = int(obs_px.sum()) * per_px
    # The storage dtype is float32 exactly when the network runs in fp32 (PairInference.storage_dtype).
    inference = int(px.max(initial=0)) * pair_bytes_per_pixel(dtype)
    return PairwiseMemory(int(predictions), alignment_bytes(obs_px, px, fine_samples), int(inference), len(shapes),
                          len(edges), obs_px, px, int(fine_samples))


def plan_pairwise_memory(est: PairwiseMemory, device, budget: int | None = None, offload: bool | None = None,
                         graph: str = "complete", host_available: int | None = None,
                         device_free: int | None = None) -> MemoryPlan:
    """Decide where predictions live and where the alignment runs (see `reconstruct`'s memory_budget).

    device: the compute device; budget: bytes allowed on it (None: measured free memory; on a non-CUDA
    device, host RAM). host_available: bytes of free host RAM (None: measured; unknown = unlimited).
    device_free: free bytes on the CUDA device (None: measured).

    On CUDA the predictions stay on the device when everything fits in the budget and, without an
    explicit budget, they take at most `DEVICE_PREDICTIONS_MAX`; otherwise they go to pinned host memory
    (if it can hold them) and are streamed to the GPU, whose alignment gets fewer fine samples (down to
    `MIN_FINE_SAMPLES`) before it falls back to the CPU. Raises PointmapError when even host memory
    cannot hold the run.
    """
    import torch

    dev = torch.device(device)
    host = host_available if host_available is not None else _host_available_bytes()
    if dev.type != "cuda":
        avail = budget if budget is not None else host
        if avail is not None and est.total > avail:
            raise _too_big(est, avail, "memory", graph)
        return MemoryPlan("offload" if offload else "device", dev, dev)
    free = budget if budget is not None else device_free if device_free is not None else cuda_free_bytes(dev)
    fits = est.total <= free
    host_fits = host is None or est.predictions <= 0.9 * host
    large = budget is None and est.predictions > DEVICE_PREDICTIONS_MAX
    if offload is False or (offload is None and fits and (not large or not host_fits)):
        return MemoryPlan("device", dev, dev)
    if not host_fits:
        raise _too_big(est, host, "host memory", graph)
    fine = None
    if est.alignment + est.inference > free and est.obs_px is not None:
        # Fewer fine samples before the (much slower) CPU alignment.
        n = est.fine_samples // 2
        while n >= MIN_FINE_SAMPLES and fine is None:
            if est.with_fine_samples(n).alignment + est.inference <= free:
                fine = n
            n //= 2
    if est.alignment + est.inference <= free or fine is not None:
        align_dev, how = dev, "streamed to the GPU during the alignment (somewhat slower)"
        if fine is not None:
            how += f", whose fine stage samples {fine} pixels per observation to fit"
    else:
        align_dev, how = torch.device("cpu"), "the alignment runs on the CPU (much slower)"
    if offload is None and fits and large:
        # The normal path of long shots (a few seconds of streaming), not a problem to warn about.
        return MemoryPlan("offload", torch.device("cpu"), align_dev, None, fine)
    why = "as requested" if offload else f"they do not fit in the {free / _GIB:.1f} GiB free on {dev}"
    warning = (f"Low GPU memory: the pair predictions ({est.predictions / _GIB:.1f} GiB for {est.n_pairs} pairs) "
               f"and alignment ({est.alignment / _GIB:.1f} GiB) are kept in host memory ({why}); {how}. A sparse "
               f"scene graph (swin-K, logwin-K, retrieval-K) keeps everything on the GPU.")
    return MemoryPlan("offload", torch.device("cpu"), align_dev, warning, fine)


def _too_big(est: PairwiseMemory, avail: int, where: str, graph: str) -> PointmapError:
    per_pair = (est.predictions + est.alignment) / max(est.n_pairs, 1)
    # swin-K pairs each image with K neighbours both ways: about 2·K·N directed pairs.
    k = int(0.8 * avail // max(per_pair * 2 * max(est.n_images, 1), 1))
    hint = (f"e.g. graph='swin-{min(k, 8)}' (about {2 * min(k, 8) * est.n_images * per_pair / _GIB:.1f} GiB)"
            if k >= 1 else "and fewer images or a smaller image size")
    return PointmapError(
        f"Not enough {where} for {est.n_images} images with the '{graph}' scene graph ({est.n_pairs} pairs): the "
        f"pair predictions need about {est.predictions / _GIB:.1f} GiB and the alignment {est.alignment / _GIB:.1f} "
        f"GiB, but only {avail / _GIB:.1f} GiB is available. Use a sparse scene graph (swin-K, logwin-K or "
        f"retrieval-K), {hint}.")


def cuda_free_bytes(dev, headroom: float = 0.1) -> int:
    """Free memory on a CUDA device, counting the allocator's cached but unused blocks, less `headroom`.

    A cap the process set on its allocator (`torch.cuda.set_per_process_memory_fraction`, e.g. to share a
    GPU or to size a run for a smaller one) bounds it: the plans then choose what fits under the cap."""
    import torch

    from ..devices import cuda_allocator_limit

    free, _ = torch.cuda.mem_get_info(dev)
    free += torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
    limit = cuda_allocator_limit(dev)
    if limit is not None:
        free = min(free, max(0, limit - torch.cuda.memory_allocated(dev)))
    return int((1.0 - headroom) * free)


def _host_available_bytes() -> int | None:
    """Available host RAM (Linux MemAvailable, else free physical pages); None when unknown."""
    import os

    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None
