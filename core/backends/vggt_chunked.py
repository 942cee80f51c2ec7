"""VGGT on long shots: `run_vggt` per overlapping chunk, joined by `chunked.run_chunked`.

`run_vggt_chunked(model, images, ...)` returns one `Reconstruction` of all frames. The chunk length
comes from free GPU memory (`estimate_activation_bytes` per frame, weights already resident, at most
`MAX_CHUNK` for speed) unless given; on the CPU it defaults to `CPU_CHUNK`. Loop-closure chunks
(`extra_chunks`, frame index arrays, e.g. a few frames around each end of a revisit found by retrieval)
tie distant parts of the shot together. `reconstruction_runner` turns any backend function images → Reconstruction into a chunk
runner, so the DA3 backend can use the same joiner.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..reconstruction import Reconstruction
from .chunked import ChunkPrediction, chunk_length_for_memory, run_chunked

CPU_CHUNK = 32
# Longest chunk chosen on a GPU. Global attention costs grow with the square of a chunk's tokens, so
# per frame a chunk of L frames costs ~a + b*L: on an H200 at 518x294, 1,000 frames take an estimated
# ~23 s in chunks of 100 (11 chunks) against ~40 s in chunks of 200 and ~110 s in chunks of 512, while
# the joins and the global Sim(3) solve keep long-range consistency. Smaller GPUs get shorter chunks
# from their free memory.
MAX_CHUNK = 100
HEADROOM = 0.85     # share of the free GPU memory a chunk may plan for


def reconstruction_runner(images, run: Callable[[list], Reconstruction | Callable[[], Reconstruction]],
                          keep: dict | None = None):
    """A chunk runner: frames (indices into `images`) → ChunkPrediction from `run(list of images)`.

    `run` may return a zero-argument callable finishing the Reconstruction on the CPU (`run_vggt`'s
    finish_later); the runner then returns one too, which `run_chunked` calls on its worker thread.
    keep: optional dict that collects each chunk's Reconstruction meta under its first frame (timings).
    """
    import torch

    def to_chunk(frames: np.ndarray, rec: Reconstruction) -> ChunkPrediction:
        if keep is not None:
            keep[int(frames[0])] = rec.meta
        return ChunkPrediction(np.asarray(frames, np.int64), rec.cam2world,
                               torch.from_numpy(np.stack(rec.points)), torch.from_numpy(np.stack(rec.conf)),
                               rec.K_net)

    def runner(frames: np.ndarray):
        out = run([images[int(k)] for k in frames])
        return (lambda: to_chunk(frames, out())) if callable(out) else to_chunk(frames, out)

    return runner


def run_vggt_chunked(model, images, chunk: int | None = None, overlap: int | None = None,
                     extra_chunks: list[np.ndarray] | None = None, device=None, progress=None, cancel=None,
                     background: bool = True, **run_options) -> Reconstruction:
    """Reconstruct a long shot with VGGT in chunks (module doc). `run_options` go to `run_vggt`.
    background: each chunk's CPU side (unprojection, link fits) runs on a worker thread while the GPU
    runs the next chunk (`run_chunked`); False runs it in order in this thread (same result)."""
    from ..devices import resolve_device_precision
    from ..pairwise.memory import cuda_free_bytes
    from .vggt import estimate_activation_bytes, run_vggt

    images = list(images)
    n = len(images)
    device, precision = resolve_device_precision(device, run_options.pop("precision", "auto"))
    h, w = images[0].true_shape
    if chunk is None:
        if device.type == "cuda":
            model.to(device)
            per_frame = estimate_activation_bytes(2, h, w, model.config["embed_dim"], model.aggregator.patch_size,
                                                  model.aggregator.patch_start_idx, len(model.head_layers),
                                                  4 if precision == "fp32" else 2) // 2
            chunk = chunk_length_for_memory(int(HEADROOM * cuda_free_bytes(device, headroom=0.0)), per_frame,
                                            most=MAX_CHUNK)
        else:
            chunk = CPU_CHUNK
    metas: dict = {}
    runner = reconstruction_runner(images, lambda ims: run_vggt(model, ims, device=device, precision=precision,
                                                                cancel=cancel, finish_later=background,
                                                                **run_options), metas)
    joined = run_chunked(n, runner, chunk, overlap, extra_chunks, progress=progress, cancel=cancel,
                         background=background)
    # Depth in each camera of the joined world: z of the world points in that camera.
    depth = []
    for k in range(n):
        r, c = joined.cam2world[k, :3, :3], joined.cam2world[k, :3, 3]
        pts = joined.points[k].double().numpy()
        depth.append(np.ascontiguousarray(((pts - c) @ r)[..., 2], dtype=np.float32))
    K_net = joined.K_net if joined.K_net is not None else np.tile(np.eye(3), (n, 1, 1))
    net_to_orig = np.stack([np.asarray(im.net_to_orig, dtype=np.float64) for im in images])
    return Reconstruction(
        names=[im.name for im in images], paths=[im.path for im in images],
        image_sizes=np.array([im.original_size for im in images], dtype=np.int32).reshape(n, 2),
        cam2world=joined.cam2world, K=net_to_orig @ K_net, K_net=K_net, net_to_orig=net_to_orig, depth=depth,
        points=[joined.points[k].float().numpy() for k in range(n)],
        conf=[joined.conf[k].float().numpy() for k in range(n)],
        colors=[np.ascontiguousarray(im.rgb, dtype=np.uint8) for im in images],
        family="vggt", model=str(getattr(model, "name", "")),
        meta={"chunked": {"chunk": int(chunk), "chunks": [c.tolist() for c in joined.chunks],
                          "links": joined.info["links"], "run_seconds": joined.info["run_seconds"],
                          "join_seconds": joined.info["join_seconds"],
                          "worker_seconds": joined.info["worker_seconds"]},
              "device": str(device), "precision": precision,
              "seconds_total": round(joined.info["run_seconds"] + joined.info["join_seconds"], 3)},
    )
