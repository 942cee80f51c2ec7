"""Long shots through a multi-view network in overlapping chunks (VGGT; any backend with a chunk runner).

A network that sees all frames of a chunk at once (VGGT, DA3) cannot take a 3,000-frame shot in one
pass. Here the shot is cut into overlapping chunks (`plan_chunks`: overlap at least 10 % of the chunk
and at least 4 frames), each chunk runs once through a caller-supplied runner, and the chunks are put
into one world:

1. Every two chunks that share frames (consecutive chunks, and loop-closure chunks the caller adds,
   e.g. frames found by retrieval around a revisit) are related by a robust, confidence-weighted
   similarity fitted on the shared frames' pointmaps (`init.robust_similarity`).
2. One global Sim(3) solve over all chunks (rotation averaging, then log-scale and position least
   squares on the chunk graph; `align.rotation_averaging`) — a loop closure spreads its correction
   over the whole shot instead of piling it on the last seam.
3. A frame seen by several chunks gets the weighted mean of their poses (chordal mean of rotations,
   mean of centres), the weight ramping down towards each chunk's ends, so consecutive frames across
   a seam move as smoothly as anywhere else; its pointmap comes from the chunk that sees it most
   centrally.

The runner is a callback `runner(frames) -> ChunkPrediction`, so the same joiner serves every backend.
It may instead return a zero-argument callable that finishes the chunk on the CPU (a network's
post-processing): `run_chunked` then calls it, and fits the chunk's links to the chunks before it (step 1),
on one worker thread while the runner already computes the next chunk on the GPU. At most one finished
chunk waits for the worker, so host memory stays bounded. Results are identical to the serial order:
every link is fitted from the same inputs and the joins use them in the same (a, b) order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import CancelToken, PointmapError, check_cancel
from ..progress import ProgressFn, eta_text, report

MIN_OVERLAP_FRAMES = 4
MIN_OVERLAP_FRACTION = 0.1


@dataclass
class ChunkPrediction:
    """One chunk's network output, in the chunk's own frame (any similarity of the world).

    frames:    (L,) global frame indices, increasing
    cam2world: (L, 4, 4) float64 camera poses (OpenCV axes) in the chunk frame
    points:    (L, H, W, 3) world points in the chunk frame (torch, any float dtype)
    conf:      (L, H, W) confidences (higher is better, > 0)
    K_net:     optional (L, 3, 3) intrinsics in network pixels
    """

    frames: np.ndarray
    cam2world: np.ndarray
    points: torch.Tensor
    conf: torch.Tensor
    K_net: np.ndarray | None = None


@dataclass
class ChunkedResult:
    """The joined shot. cam2world (N, 4, 4); points (N, H, W, 3) and conf (N, H, W) of the chosen chunk,
    in the world; K_net (N, 3, 3) or None; chunks: frame indices of every chunk; chunk_sim: per chunk
    (s, R (3, 3), t) chunk → world; info: seconds, seam fits."""

    cam2world: np.ndarray
    points: torch.Tensor
    conf: torch.Tensor
    K_net: np.ndarray | None
    chunks: list[np.ndarray]
    chunk_sim: list[tuple[float, np.ndarray, np.ndarray]]
    info: dict = field(default_factory=dict)


def plan_chunks(n: int, chunk: int, overlap: int | None = None) -> list[np.ndarray]:
    """Frame indices of overlapping chunks covering 0..n-1 (the last chunk ends at n-1).

    overlap defaults to max(4, ceil(10 % of chunk)) and is raised to that minimum when lower.
    """
    min_ov = max(MIN_OVERLAP_FRAMES, math.ceil(MIN_OVERLAP_FRACTION * chunk))
    overlap = max(min_ov, overlap or 0)
    if chunk <= overlap:
        raise PointmapError(f"Chunk length {chunk} must exceed its overlap of {overlap} frames "
                            f"(at least {MIN_OVERLAP_FRAMES} frames and {MIN_OVERLAP_FRACTION:.0%} of a chunk).")
    if n <= chunk:
        return [np.arange(n)]
    step = chunk - overlap
    starts = list(range(0, n - chunk, step)) + [n - chunk]
    return [np.arange(s, s + chunk) for s in starts]


def chunk_length_for_memory(free_bytes: int, bytes_per_frame: int, fixed_bytes: int = 0,
                            most: int = 512, least: int = 2 * MIN_OVERLAP_FRAMES + 1) -> int:
    """Longest chunk whose activations fit: (free − fixed) / per-frame bytes, within [least, most]."""
    fit = int((free_bytes - fixed_bytes) // max(bytes_per_frame, 1))
    if fit < least:
        raise PointmapError(f"Not enough memory for even {least} frames per chunk "
                            f"({free_bytes / 2**30:.1f} GiB free, {bytes_per_frame / 2**20:.0f} MiB per frame).")
    return min(fit, most)


def run_chunked(n: int, runner: Callable[[np.ndarray], ChunkPrediction | Callable[[], ChunkPrediction]],
                chunk: int, overlap: int | None = None, extra_chunks: list[np.ndarray] | None = None,
                samples: int = 4096, progress: ProgressFn | None = None, cancel: CancelToken | None = None,
                background: bool = True) -> ChunkedResult:
    """Run `runner` on every chunk of `plan_chunks(n, chunk, overlap)` plus `extra_chunks` (loop closures),
    then join them (module doc). Progress: stage "chunks", frames done of n (then the extra chunks).
    Cancel is checked between chunks. background: finish chunks and fit their links on a worker thread
    (module doc); False does the same work in the calling thread, in the same order."""
    import time

    t0 = time.perf_counter()
    plan = plan_chunks(n, chunk, overlap) + [np.asarray(c, np.int64) for c in (extra_chunks or [])]
    n_main = len(plan) - len(extra_chunks or [])
    preds: list[ChunkPrediction | None] = [None] * len(plan)
    fits: dict = {}
    worker_seconds = [0.0]

    def finish(c: int, out) -> None:
        t = time.perf_counter()
        pred = out() if callable(out) else out
        if not np.array_equal(np.asarray(pred.frames), plan[c]):
            raise PointmapError(f"Chunk {c}: the runner returned frames other than the ones asked for.")
        preds[c] = pred
        for a in range(c):   # chunks 0..c-1 are finished: the worker runs in submission order
            fit = link_similarity(preds[a], pred, samples)
            if fit is not None:
                fits[(a, c)] = fit
        worker_seconds[0] += time.perf_counter() - t

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-join") if background else None
    futures = []
    covered = 0
    try:
        for c, frames in enumerate(plan):
            check_cancel(cancel)
            out = runner(np.asarray(frames, np.int64))
            if pool is None:
                finish(c, out)
            else:
                if c >= 2:
                    futures[c - 2].result()   # at most one finished chunk waiting (bounded host memory)
                futures.append(pool.submit(finish, c, out))
            covered = max(covered, int(frames.max()) + 1) if c < n_main else covered
            report(progress, "chunks", min(covered, n), n,
                   f"chunk {c + 1} of {len(plan)}, frames {min(covered, n)}/{n} "
                   f"{eta_text(t0, c + 1, len(plan))}".strip())
        for f in futures:
            f.result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    check_cancel(cancel)
    t_run = time.perf_counter()
    out = join_chunks(n, preds, samples, fits)
    out.info.update(run_seconds=t_run - t0, join_seconds=time.perf_counter() - t_run, chunks=len(plan),
                    worker_seconds=worker_seconds[0])
    return out


def link_similarity(pa: ChunkPrediction, pb: ChunkPrediction, samples: int = 4096):
    """Similarity (s, R (3, 3), t) float64 tensors mapping chunk b's frame into chunk a's, fitted robustly on
    the frames they share (confidence-weighted); None when they share fewer than two frames."""
    from ..align.init import robust_similarity

    where_a = {int(f): k for k, f in enumerate(pa.frames)}
    where_b = {int(f): k for k, f in enumerate(pb.frames)}
    shared = sorted(set(where_a) & set(where_b))
    if len(shared) < 2:
        return None
    dev = pa.points.device
    ia = torch.tensor([where_a[f] for f in shared], device=dev)
    ib = torch.tensor([where_b[f] for f in shared], device=dev)
    src = _sample(pb.points.index_select(0, ib), samples)
    dst = _sample(pa.points.index_select(0, ia), samples)
    ca = _sample(pa.conf.index_select(0, ia)[..., None], samples)[..., 0]
    cb = _sample(pb.conf.index_select(0, ib)[..., None], samples)[..., 0]
    w = torch.sqrt(ca.clamp_min(0).double() * cb.clamp_min(0).double())
    s, r, t = robust_similarity([(src.reshape(1, -1, 3), dst.reshape(1, -1, 3), w.reshape(1, -1),
                                  torch.zeros(1, dtype=torch.long, device=dev))], 1)
    return s[0], r[0], t[0]


def join_chunks(n: int, preds: list[ChunkPrediction], samples: int = 4096, fits: dict | None = None) -> ChunkedResult:
    """Put chunk predictions into one world (steps 1–3 of the module doc). fits: {(a, b): link_similarity}
    already computed (e.g. by `run_chunked`'s worker); the other links are fitted here."""
    from ..align.rotation_averaging import average_rotations, solve_differences

    m = len(preds)
    fits = fits or {}
    seen = np.zeros(n, bool)
    for p in preds:
        seen[np.asarray(p.frames)] = True
    if not seen.all():
        raise PointmapError(f"Chunked run: frames {np.nonzero(~seen)[0][:10].tolist()} are in no chunk.")
    dev = preds[0].points.device

    # 1. Pairwise chunk similarities from shared frames: S_ab maps chunk b's frame into chunk a's.
    links, rel_s, rel_R, rel_t = [], [], [], []
    for a in range(m):
        for b in range(a + 1, m):
            fit = fits[(a, b)] if (a, b) in fits else link_similarity(preds[a], preds[b], samples)
            if fit is None:
                continue
            links.append((a, b))
            rel_s.append(fit[0])
            rel_R.append(fit[1])
            rel_t.append(fit[2])
    if m > 1 and not links:
        raise PointmapError("Chunked run: the chunks share no frames, so they cannot be joined.")

    # 2. Global Sim(3) of every chunk (chunk → world): S_b = S_a ∘ S_ab.
    if m == 1:
        g_s = torch.ones(1, dtype=torch.float64)
        g_R = torch.eye(3, dtype=torch.float64)[None]
        g_t = torch.zeros(1, 3, dtype=torch.float64)
    else:
        e = np.asarray(links, np.int64)
        rs, rr, rt = torch.stack(rel_s).cpu(), torch.stack(rel_R).cpu(), torch.stack(rel_t).cpu()
        # Rotation of chunk b in chunk a's frame is R_ab: R_b = R_a R_ab, the averaging's convention.
        g_R = average_rotations(m, e, rr)
        ia, ib = torch.as_tensor(e[:, 0]), torch.as_tensor(e[:, 1])
        ones = torch.ones(len(e), dtype=torch.float64)
        log_s = solve_differences(m, ia, ib, torch.log(rs)[:, None], ones)[:, 0]
        g_s = torch.exp(log_s)
        # t_b − t_a = s_a R_a t_ab.
        d = g_s[ia, None] * (g_R[ia] @ rt[..., None])[..., 0]
        g_t = solve_differences(m, ia, ib, d, ones)

    # 3. Per-frame poses: weighted chordal mean over the chunks that see the frame.
    acc_R = np.zeros((n, 3, 3))
    acc_c = np.zeros((n, 3))
    acc_w = np.zeros(n)
    best_w = np.full(n, -1.0)
    best = np.zeros((n, 2), np.int64)
    for c, p in enumerate(preds):
        length = len(p.frames)
        pos = np.arange(length)
        w = 1.0 + np.minimum(pos, length - 1 - pos).astype(np.float64)
        s, r, t = float(g_s[c]), g_R[c].numpy(), g_t[c].numpy()
        rw = r @ p.cam2world[:, :3, :3]
        cw = s * p.cam2world[:, :3, 3] @ r.T + t
        f = np.asarray(p.frames)
        np.add.at(acc_R, f, w[:, None, None] * rw)
        np.add.at(acc_c, f, w[:, None] * cw)
        np.add.at(acc_w, f, w)
        upd = w > best_w[f]
        best_w[f[upd]] = w[upd]
        best[f[upd]] = np.stack([np.full(upd.sum(), c), pos[upd]], 1)
    u, _, vt = np.linalg.svd(acc_R)
    fix = np.ones((n, 3))
    fix[:, 2] = np.sign(np.linalg.det(u @ vt))
    cam2world = np.tile(np.eye(4), (n, 1, 1))
    cam2world[:, :3, :3] = u @ (fix[..., None] * vt)
    cam2world[:, :3, 3] = acc_c / acc_w[:, None]

    p0 = preds[0]
    points = torch.empty((n, *p0.points.shape[1:]), dtype=p0.points.dtype, device=dev)
    conf = torch.empty((n, *p0.conf.shape[1:]), dtype=p0.conf.dtype, device=dev)
    K = None if p0.K_net is None else np.zeros((n, 3, 3))
    for c, p in enumerate(preds):
        mine = np.nonzero(best[:, 0] == c)[0]
        if len(mine) == 0:
            continue
        rows = torch.as_tensor(best[mine, 1], device=dev)
        sim = (g_s[c].to(dev), g_R[c].to(dev), g_t[c].to(dev))
        x = p.points.index_select(0, rows).double()
        points[torch.as_tensor(mine, device=dev)] = (sim[0] * x @ sim[1].T + sim[2]).to(points.dtype)
        conf[torch.as_tensor(mine, device=dev)] = p.conf.index_select(0, rows)
        if K is not None:
            K[mine] = p.K_net[best[mine, 1]]
    sims = [(float(g_s[c]), g_R[c].numpy(), g_t[c].numpy()) for c in range(m)]
    return ChunkedResult(cam2world, points, conf, K, [np.asarray(p.frames) for p in preds], sims,
                         {"links": links})


def _sample(x: torch.Tensor, target: int) -> torch.Tensor:
    """(F, H, W, C) → (F, P, C) on a regular pixel grid of about `target` pixels in all (float64)."""
    f, h, w = x.shape[:3]
    stride = max(1, int(round((f * h * w / max(target, 1)) ** 0.5)))
    off = stride // 2
    return x[:, off::stride, off::stride].reshape(f, -1, x.shape[-1]).double()
