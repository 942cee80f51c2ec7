"""VGGT on long shots: `run_vggt` per overlapping chunk, joined by `chunked.run_chunked`.

`run_vggt_chunked(model, images, ...)` returns one `Reconstruction` of all frames. The chunk length
comes from free GPU memory (`estimate_activation_bytes` per frame, weights already resident, at most
`MAX_CHUNK` for speed) unless given; on the CPU it defaults to `CPU_CHUNK`. Loop-closure chunks (`extra_chunks`, frame index
arrays, e.g. a few frames around each end of a revisit found by retrieval) tie distant parts of the
shot together. `run_reconstruction_chunked` does the same for any backend function images → Reconstruction
(the DA3 backend uses it), with progress over the whole shot. A chunk's CPU side (unprojection,
Reconstruction, link fits) may run on a worker thread while the GPU runs the next chunk.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..progress import Progress, ProgressFn, eta_text, report
from ..reconstruction import Reconstruction
from .chunked import ChunkPrediction, chunk_length_for_memory, plan_chunks, run_chunked

CPU_CHUNK = 32
# Longest chunk chosen on a GPU. Global attention costs grow with the square of a chunk's tokens, so
# per frame a chunk of L frames costs ~a + b*L: on an H200 at 518x294, 1,000 frames take an estimated
# ~23 s in chunks of 100 (11 chunks) against ~40 s in chunks of 200 and ~110 s in chunks of 512, while
# the joins and the global Sim(3) solve keep long-range consistency. Smaller GPUs get shorter chunks
# from their free memory.
MAX_CHUNK = 100
HEADROOM = 0.85     # share of the free GPU memory a chunk may plan for


def run_vggt_chunked(model, images, chunk: int | None = None, overlap: int | None = None,
                     extra_chunks: list[np.ndarray] | None = None, device=None, progress=None, cancel=None,
                     background: bool = True, loops: bool = True, intrinsics=None,
                     **run_options) -> Reconstruction:
    """Reconstruct a long shot with VGGT in chunks (module doc). `run_options` go to `run_vggt`.
    background: each chunk's CPU side (unprojection, link fits) runs on a worker thread while the GPU
    runs the next chunk (`run_chunked`); False runs it in order in this thread (same result).
    loops: find loop closures by retrieval on VGGT's pooled frame tokens and run a loop chunk for each
    (`chunked.find_loop_chunks`). intrinsics: None or (N, 3, 3) known K per frame in original pixels
    (`run_vggt`'s, handed to each chunk for its frames)."""
    from ..devices import resolve_device_precision
    from .vggt import estimate_activation_bytes, run_vggt

    images = list(images)
    device, precision = resolve_device_precision(device, run_options.pop("precision", "auto"))
    h, w = images[0].true_shape
    if chunk is None:
        model.to(device)
        per_frame = estimate_activation_bytes(2, h, w, model.config["embed_dim"], model.aggregator.patch_size,
                                              model.aggregator.patch_start_idx, len(model.head_layers),
                                              4 if precision == "fp32" else 2) // 2
        chunk = chunk_for_device(device, per_frame)
    known = per_image_lookup(images, intrinsics)
    rec = run_reconstruction_chunked(
        images, lambda ims, report_chunk: run_vggt(model, ims, device=device, precision=precision,
                                                   progress=report_chunk, cancel=cancel, finish_later=background,
                                                   descriptors=loops, intrinsics=known(ims), **run_options),
        chunk, overlap, extra_chunks, progress, cancel, background=background, find_loops=loops)
    rec.family, rec.model = "vggt", str(getattr(model, "name", ""))
    rec.meta.update(device=str(device), precision=precision)
    return rec


def per_image_lookup(images, per_image):
    """A function giving, for a chunk's images, their rows of `per_image` ((N, ...) aligned with `images`),
    or None throughout when `per_image` is None."""
    if per_image is None:
        return lambda ims: None
    rows = {id(im): k for k, im in enumerate(images)}
    table = np.asarray(per_image)
    return lambda ims: table[[rows[id(im)] for im in ims]]


def chunk_for_device(device, per_frame_bytes: int) -> int:
    """Frames per chunk: from free memory on CUDA (`HEADROOM` of it, weights already resident), else `CPU_CHUNK`."""
    if getattr(device, "type", str(device)) != "cuda":
        return CPU_CHUNK
    from ..pairwise.memory import cuda_free_bytes

    return chunk_length_for_memory(int(HEADROOM * cuda_free_bytes(device, headroom=0.0)), per_frame_bytes,
                                   most=MAX_CHUNK)


def run_reconstruction_chunked(images, run: Callable[..., Reconstruction | Callable[[], Reconstruction]],
                               chunk: int, overlap: int | None = None, extra_chunks: list[np.ndarray] | None = None,
                               progress: ProgressFn | None = None, cancel=None,
                               background: bool = True, find_loops: bool = False) -> Reconstruction:
    """Any single-pass backend over a long shot in chunks.

    run: `run(list of LoadedImages, progress) -> Reconstruction` for one chunk (cameras in any frame), or a
    zero-argument callable finishing that Reconstruction on the CPU (`run_vggt`'s finish_later), which
    `run_chunked` calls on its worker thread when `background` is set. find_loops: loop chunks from the
    chunks' `meta["frame_descriptors"]` (`chunked.find_loop_chunks`; none when the backend gives none).
    Progress: stage "chunks", frames done of the shot (a chunk's own progress is spread over the frames
    it adds), each message with an ETA; cancel between chunks (and wherever `run` checks it).
    Returns one Reconstruction of all frames: poses and points joined by `chunked.run_chunked`, depth as z
    of the joined points in each joined camera, K from the chunk that sees the frame most centrally,
    the chunks' warnings once each.
    """
    import time

    import torch

    images = list(images)
    n = len(images)
    started = time.perf_counter()
    covered, calls = [0], [0]
    n_chunks = len(plan_chunks(n, chunk, overlap)) + len(extra_chunks or [])
    warnings: list[str] = []

    def to_chunk(frames: np.ndarray, rec: Reconstruction) -> ChunkPrediction:
        warnings.extend(w for w in rec.warnings if w not in warnings)
        # The frame the network anchors the chunk on: VGGT's world is its first camera; DA3's backbone
        # picks a reference view (`ref_strategy`) and reports it (the chunk's middle when unknown).
        reference = 0 if rec.family == "vggt" else rec.meta.get("reference_view")
        return ChunkPrediction(np.asarray(frames, np.int64), rec.cam2world,
                               torch.from_numpy(np.stack(rec.points)), torch.from_numpy(np.stack(rec.conf)),
                               rec.K_net, rec.meta.pop("frame_descriptors", None), reference)

    def runner(frames: np.ndarray):
        before = covered[0]
        after = max(before, int(frames.max()) + 1)
        calls[0] += 1

        def inner(p: Progress) -> None:
            done = int(before + p.fraction * (after - before))
            report(progress, "chunks", done, n, f"chunk {calls[0]} of {n_chunks}, frames {done}/{n} "
                                                f"{eta_text(started, done, n)}".strip())

        out = run([images[int(k)] for k in frames], inner if progress is not None else None)
        covered[0] = after
        return (lambda: to_chunk(frames, out())) if callable(out) else to_chunk(frames, out)

    joined = run_chunked(n, runner, chunk, overlap, extra_chunks, progress=progress, cancel=cancel,
                         background=background, find_loops=find_loops)
    # Depth in each camera of the joined world: z of the world points in that camera.
    depth = []
    axis = torch.from_numpy(joined.cam2world[:, :3, 2].copy())        # (n, 3) each camera's viewing axis
    centre = torch.from_numpy(joined.cam2world[:, :3, 3].copy())
    for k0 in range(0, n, 64):   # batches of frames: bounded float64 temporaries
        pts = joined.points[k0:k0 + 64].double()
        z = ((pts - centre[k0:k0 + 64, None, None].to(pts.device)) * axis[k0:k0 + 64, None, None].to(pts.device)).sum(-1)
        depth.extend(z.float().cpu().numpy())
    K_net = joined.K_net if joined.K_net is not None else np.tile(np.eye(3), (n, 1, 1))
    return Reconstruction.from_views(
        images, joined.cam2world, K_net, depth, [joined.points[k].float().numpy() for k in range(n)],
        [joined.conf[k].float().numpy() for k in range(n)], warnings=warnings,
        meta={"chunked": {"chunk": int(chunk), "chunks": [c.tolist() for c in joined.chunks],
                          "links": joined.info["links"], "loop_chunks": joined.info.get("loop_chunks", []),
                          "run_seconds": joined.info["run_seconds"],
                          "join_seconds": joined.info["join_seconds"],
                          "worker_seconds": joined.info["worker_seconds"]},
              "seconds_total": round(joined.info["run_seconds"] + joined.info["join_seconds"], 3)})
