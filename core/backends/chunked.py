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
   mean of centres), the weight falling with the distance from each chunk's anchor frame (`anchor_ramp`),
   so consecutive frames across a seam move as smoothly as anywhere else; its pointmap comes from the
   chunk that sees it nearest its anchor.
4. One pose-graph refinement over all frames (`refine_frame_poses`): every chunk (loop chunks too) says
   how each of its frames sits relative to its next few frames (relative rotation; step in the first
   frame's axes, at the chunk's solved scale); least-squares rotation averaging and a least-squares
   solve of the centres over that frame graph start from step 3. A loop correction is then spread frame
   by frame instead of chunk by chunk (which would kink the path at every seam), and each frame's
   pointmap moves rigidly with its camera. Every frame pair weighs alike in both solves (overlap pairs
   too): a least-squares solve puts a loop's residual on its lightest edges, which were the seams.
   Inside a pair, the chunks that see it share that weight by how near the pair is to each chunk's
   anchor frame (`frame_pair_weights`): in an overlap the chunk that is at its far end (where its
   bend is largest) yields to the chunk that has just started. The rotation solve is not robust: the
   chunk links already passed a robust fit, and a robust kernel at frame level would call a loop's
   whole residual an outlier and leave it on one frame pair (a 2° kink at one seam). The centre solve
   also refines each chunk's scale, so a loop's translation correction goes into the chunks' scales
   (step lengths) rather than into bent step directions piled up at the seams.

Loop closures from retrieval (`find_loop_chunks`): when the runner gives per-frame descriptors (e.g. VGGT's
pooled frame tokens), after the main chunks every frame is compared with the frames more than two chunk
lengths away; a mutual best match that looks as much alike as the frame's own neighbours do is a revisit,
and a small extra chunk of frames around both places is run. It shares frames with the main chunks of
both places, so its links enter the global solve (step 2) as loop edges of the chunk pose graph; it only
constrains the solve (link-only: the frames' poses and points still come from the main chunks, so no
new seam appears inside a shot).

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
    descriptors: optional (L, C) float32 per-frame retrieval descriptors, unit rows (loop closures)
    reference: index (into frames) of the frame the network anchors the chunk on (VGGT: the first, whose
               camera is its world), or None when unknown (then the chunk's middle is assumed). A chunk's
               geometry bends and drifts away from its anchor, so its frame pairs weigh less the further
               they are from it (`frame_pair_weights`).
    """

    frames: np.ndarray
    cam2world: np.ndarray
    points: torch.Tensor
    conf: torch.Tensor
    K_net: np.ndarray | None = None
    descriptors: np.ndarray | None = None
    reference: int | None = 0


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


def find_loop_chunks(descriptors: np.ndarray, chunks: list[np.ndarray], half: int = MIN_OVERLAP_FRAMES,
                     neighbours: int = 4, most: int | None = None) -> list[np.ndarray]:
    """Loop-closure chunks from per-frame retrieval descriptors (module doc).

    descriptors: (n, C) unit rows, frames in order; chunks: the main chunks' frame indices (their length
    sets the reach: revisits are looked for beyond twice the longest chunk, where the chain of seams is
    long). A revisit (i, j): j is i's most similar frame beyond the reach, i lies within `half` frames of
    j's most similar frame there, and their similarity is at least the lower of the two frames' median
    similarity to their `neighbours` nearest frames on each side. Of the revisits between the same two
    main chunks only the most similar is kept, and `most` (default: one per main chunk) caps them, most
    similar first. Each becomes the frames within `half` of i and of j (about 4·half + 2 frames).
    Returns a list of increasing frame-index arrays (empty when nothing revisits).
    """
    desc = np.asarray(descriptors, np.float64)
    n = len(desc)
    reach = 2 * max(len(c) for c in chunks)
    if n <= reach + 1:
        return []
    sim = desc @ desc.T
    near = np.empty(n)
    for i in range(n):
        nb = [j for j in range(max(0, i - neighbours), min(n, i + neighbours + 1)) if j != i]
        near[i] = np.median(sim[i, nb]) if nb else 1.0
    idx = np.arange(n)
    cand = np.where(np.abs(idx[:, None] - idx[None, :]) > reach, sim, -np.inf)
    best = np.argmax(cand, axis=1)
    # The main chunk that holds a frame most centrally: revisits are grouped by the chunks they join.
    home = np.zeros(n, np.int64)
    centrality = np.full(n, -1.0)
    for c, fr in enumerate(chunks):
        fr = np.asarray(fr)
        pos = np.arange(len(fr))
        w = np.minimum(pos, len(fr) - 1 - pos).astype(np.float64)
        upd = w > centrality[fr]
        centrality[fr[upd]], home[fr[upd]] = w[upd], c
    found: dict = {}
    for i in range(n):
        j = int(best[i])
        if j <= i or not np.isfinite(cand[i, j]) or cand[i, j] < min(near[i], near[j]):
            continue
        if abs(int(best[j]) - i) > half:
            continue
        key = (int(home[i]), int(home[j]))
        if key not in found or cand[i, j] > found[key][0]:
            found[key] = (float(cand[i, j]), i, j)
    ranked = sorted(found.values(), key=lambda x: -x[0])[:most if most is not None else len(chunks)]
    out = []
    for _, i, j in ranked:
        a = np.arange(max(0, i - half), min(n, i + half + 1))
        b = np.arange(max(0, j - half), min(n, j + half + 1))
        out.append(np.union1d(a, b).astype(np.int64))
    return out


def frame_descriptors(n: int, preds: list[ChunkPrediction]) -> np.ndarray | None:
    """(n, C) unit per-frame descriptors: the mean over the chunks that gave one for the frame; None when
    a frame has none (the runner gives no descriptors)."""
    acc, cnt = None, np.zeros(n)
    for p in preds:
        if p.descriptors is None:
            continue
        d = np.asarray(p.descriptors, np.float64)
        acc = np.zeros((n, d.shape[1])) if acc is None else acc
        np.add.at(acc, np.asarray(p.frames), d)
        np.add.at(cnt, np.asarray(p.frames), 1)
    if acc is None or (cnt == 0).any():
        return None
    return acc / np.maximum(np.linalg.norm(acc, axis=1, keepdims=True), 1e-12)


def run_chunked(n: int, runner: Callable[[np.ndarray], ChunkPrediction | Callable[[], ChunkPrediction]],
                chunk: int, overlap: int | None = None, extra_chunks: list[np.ndarray] | None = None,
                samples: int = 4096, progress: ProgressFn | None = None, cancel: CancelToken | None = None,
                background: bool = True, find_loops: bool = False) -> ChunkedResult:
    """Run `runner` on every chunk of `plan_chunks(n, chunk, overlap)` plus `extra_chunks` (loop closures),
    then join them (module doc). find_loops: also the loop chunks `find_loop_chunks` finds from the
    descriptors of the main chunks (after them; nothing when the runner gives no descriptors).
    Progress: stage "chunks", frames done of n (then the extra chunks). Cancel is checked between chunks.
    background: finish chunks and fit their links on a worker thread (module doc); False does the same
    work in the calling thread, in the same order. info["loop_chunks"]: the loop chunks found."""
    import time

    t0 = time.perf_counter()
    main = plan_chunks(n, chunk, overlap)
    plan = main + [np.asarray(c, np.int64) for c in (extra_chunks or [])]
    n_main = len(main)
    preds: list[ChunkPrediction | None] = [None] * len(plan)
    fits: dict = {}
    worker_seconds = [0.0]
    found: list[np.ndarray] = []

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
        c = 0
        while c < len(plan):
            frames = plan[c]
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
            c += 1
            if find_loops and c == n_main:
                for f in futures:
                    f.result()   # every main chunk finished: its descriptors are in
                desc = frame_descriptors(n, preds[:n_main])
                found = find_loop_chunks(desc, main) if desc is not None else []
                plan += found
                preds += [None] * len(found)
        for f in futures:
            f.result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    check_cancel(cancel)
    t_run = time.perf_counter()
    out = join_chunks(n, preds, samples, fits, pose_chunks=n_main)
    out.info.update(run_seconds=t_run - t0, join_seconds=time.perf_counter() - t_run, chunks=len(plan),
                    worker_seconds=worker_seconds[0], loop_chunks=[f.tolist() for f in found])
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


def join_chunks(n: int, preds: list[ChunkPrediction], samples: int = 4096, fits: dict | None = None,
                pose_chunks: int | None = None, frame_graph: bool = True) -> ChunkedResult:
    """Put chunk predictions into one world (steps 1–3 of the module doc). fits: {(a, b): link_similarity}
    already computed (e.g. by `run_chunked`'s worker); the other links are fitted here. pose_chunks: only
    the first this many chunks give frames their poses and points (the rest, loop chunks, only enter the
    global solve); None: all. frame_graph: step 4 (off: the poses of step 3)."""
    from ..align.rotation_averaging import average_rotations, solve_differences

    m = len(preds)
    fits = fits or {}
    posing = preds if pose_chunks is None else preds[:pose_chunks]
    seen = np.zeros(n, bool)
    for p in posing:
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
    for c, p in enumerate(posing):
        length = len(p.frames)
        pos = np.arange(length)
        w = anchor_ramp(length, p.reference)
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

    chosen_R = np.zeros((n, 3, 3))   # each frame's pose in the world as its pointmap's chunk puts it
    chosen_c = np.zeros((n, 3))
    for c, p in enumerate(posing):
        mine = np.nonzero(best[:, 0] == c)[0]
        s_c, r_c, t_c = float(g_s[c]), g_R[c].numpy(), g_t[c].numpy()
        chosen_R[mine] = r_c @ p.cam2world[best[mine, 1], :3, :3]
        chosen_c[mine] = s_c * p.cam2world[best[mine, 1], :3, 3] @ r_c.T + t_c
    if m > 1 and frame_graph:
        cam2world = refine_frame_poses(n, preds, g_s.numpy(), g_R.numpy(), cam2world)

    p0 = preds[0]
    points = torch.empty((n, *p0.points.shape[1:]), dtype=p0.points.dtype, device=dev)
    conf = torch.empty((n, *p0.conf.shape[1:]), dtype=p0.conf.dtype, device=dev)
    K = None if p0.K_net is None else np.zeros((n, 3, 3))
    for c, p in enumerate(posing):
        mine = np.nonzero(best[:, 0] == c)[0]
        if len(mine) == 0:
            continue
        rows = torch.as_tensor(best[mine, 1], device=dev)
        # Into the world by the chunk's similarity, then rigidly with the frame's camera from its pose in
        # the chunk's world to its joined pose; both composed into one affine map per frame (float64), so
        # the points are touched once (a batched 3x3 product over every pixel in float64 took ~35 s for
        # 1,000 frames of 518x294 on the host).
        move = cam2world[mine, :3, :3] @ chosen_R[mine].transpose(0, 2, 1)             # (k, 3, 3)
        lin = move @ (float(g_s[c]) * g_R[c].numpy())
        off = np.einsum("kij,kj->ki", move, g_t[c].numpy() - chosen_c[mine]) + cam2world[mine, :3, 3]
        work = torch.float32 if points.dtype in (torch.float16, torch.bfloat16) else points.dtype
        x = p.points.index_select(0, rows).to(work)
        lin_t = torch.from_numpy(lin.transpose(0, 2, 1).copy()).to(dev, work)
        off_t = torch.from_numpy(off).to(dev, work)
        x = torch.baddbmm(off_t[:, None, :], x.reshape(len(mine), -1, 3), lin_t).reshape(x.shape)
        points[torch.as_tensor(mine, device=dev)] = x.to(points.dtype)
        conf[torch.as_tensor(mine, device=dev)] = p.conf.index_select(0, rows)
        if K is not None:
            K[mine] = p.K_net[best[mine, 1]]
    sims = [(float(g_s[c]), g_R[c].numpy(), g_t[c].numpy()) for c in range(m)]
    return ChunkedResult(cam2world, points, conf, K, [np.asarray(p.frames) for p in preds], sims,
                         {"links": links})


FRAME_GRAPH_REACH = 3   # step 4: each frame is tied to its next this many frames in every chunk
SCALE_PRIOR = 0.1       # step 4: weight of σ_c ≈ 1 per unit of a chunk's step energy (measured: 0.01–1 all
                        # keep seams within 1.1× on the loop walk; larger keeps open-chain drift lower)


def refine_frame_poses(n: int, preds: list[ChunkPrediction], g_s: np.ndarray, g_R: np.ndarray,
                       cam2world: np.ndarray, reach: int = FRAME_GRAPH_REACH) -> np.ndarray:
    """Step 4 of the module doc: (n, 4, 4) cam2world refined on the frame graph of every chunk.

    preds: all chunks (main and loop); g_s (m,), g_R (m, 3, 3): their solved scale and rotation (chunk →
    world); cam2world: the starting poses (step 3), whose mean centre and rotation gauge are kept.
    Edges (a, b): frames at most `reach` apart in a chunk's frame order, weighted by
    `frame_pair_weights` (each frame pair weighs 1 in all, shared among the chunks that see it by their
    anchor distance). Least-squares rotation averaging (not robust: module doc), then the centres and a
    scale factor per chunk (`_solve_centres_and_scales`).
    """
    from ..align.rotation_averaging import average_rotations

    ia, ib, rel, step, wt, cid = [], [], [], [], [], []
    for c, p in enumerate(preds):
        f = np.asarray(p.frames)
        length = len(f)
        ramp = anchor_ramp(length, p.reference)
        r_loc, c_loc = p.cam2world[:, :3, :3], p.cam2world[:, :3, 3]
        for d in range(1, min(reach, length - 1) + 1):
            a, b = np.arange(length - d), np.arange(d, length)
            ia.append(f[a])
            ib.append(f[b])
            rel.append(r_loc[a].transpose(0, 2, 1) @ r_loc[b])
            step.append(g_s[c] * np.einsum("kji,kj->ki", r_loc[a], c_loc[b] - c_loc[a]))   # in frame a's axes
            wt.append(np.minimum(ramp[a], ramp[b]))
            cid.append(np.full(len(a), c))
    ia, ib = np.concatenate(ia), np.concatenate(ib)
    rel_t = torch.from_numpy(np.concatenate(rel))
    w = frame_pair_weights(n, ia, ib, np.concatenate(wt))
    rot = average_rotations(n, np.stack([ia, ib], 1), rel_t, weight=torch.from_numpy(w),
                            init=torch.from_numpy(cam2world[:, :3, :3].copy()), robust=False).numpy()
    d = np.einsum("kij,kj->ki", rot[ia], np.concatenate(step))
    ctr = _solve_centres_and_scales(n, ia, ib, d, np.concatenate(cid), w, len(preds))
    out = np.tile(np.eye(4), (n, 1, 1))
    out[:, :3, :3] = rot
    out[:, :3, 3] = ctr + cam2world[:, :3, 3].mean(0)
    return out


def anchor_ramp(length: int, reference: int | None) -> np.ndarray:
    """(length,) trust in each frame of a chunk, falling linearly with the distance to its anchor frame from
    1 + (the largest distance) at the anchor to 1 at the frame furthest from it. reference None: the
    chunk's middle (then 1 + the distance to the nearer end: the ends of a chunk see the least context)."""
    pos = np.arange(length, dtype=np.float64)
    ref = (length - 1) / 2.0 if reference is None else float(min(max(reference, 0), length - 1))
    dist = np.abs(pos - ref)
    return 1.0 + dist.max() - dist


def frame_pair_weights(n: int, ia: np.ndarray, ib: np.ndarray, trust: np.ndarray) -> np.ndarray:
    """(E,) weights of the frame graph's edges: every frame pair (a, b) weighs 1 in all, shared among
    the chunks that measure it in proportion to `trust` (E,) (the lower of the two frames' anchor ramps).

    Raw trust would make the overlap pairs (near chunk ends) the lightest edges of the graph, and a least-
    squares solve puts a loop's residual on its lightest edges: the seams.
    """
    _, pair = np.unique(ia * n + ib, return_inverse=True)
    return trust / np.bincount(pair, weights=trust)[pair]


def _solve_centres_and_scales(n: int, ia: np.ndarray, ib: np.ndarray, d: np.ndarray, cid: np.ndarray,
                              w: np.ndarray, m: int) -> np.ndarray:
    """Centres (n, 3), mean zero, and a scale factor σ_c per chunk minimising Σ w |c_b − c_a − σ_c d_ab|²
    with mean σ = 1 (the gauge).

    Every chunk's steps come at the scale step 2 solved from the chunk links; a chunk's scale error
    (a network's depth scale drifts along a chain of chunks) is then corrected by rescaling its steps,
    which keeps their directions, instead of by a bias added to every step that bends each step's
    direction. For fixed σ the centres are linear in σ (c = Σ σ_c X_c, X_c solving the centre least
    squares with only chunk c's steps on the right-hand side), so σ comes from an m-variable
    quadratic and the centres follow exactly.
    ia, ib: (E,) frame ids; d: (E, 3) steps in world axes; cid: (E,) chunk of each step; w: (E,) weights.
    """
    from ..align.rotation_averaging import solve_differences

    e = len(ia)
    rhs = np.zeros((e, m, 3))
    rhs[np.arange(e), cid] = d
    x = solve_differences(n, torch.from_numpy(ia), torch.from_numpy(ib), torch.from_numpy(rhs.reshape(e, 3 * m)),
                          torch.from_numpy(w)).numpy().reshape(n, m, 3)
    # Residual of edge k, linear in σ: Σ_c σ_c (X_c[b] − X_c[a]) − σ_{cid} d.
    g = (x[ib] - x[ia]).transpose(0, 2, 1)          # (E, 3, m)
    g[np.arange(e), :, cid] -= d
    a = np.einsum("k,kim,kin->mn", w, g, g)
    # Prior σ_c ≈ 1 in units of the chunk's own step energy: step 2's dense pointmap fit of the chunk's
    # scale is better than what a few overlap steps say, so σ moves only where a loop's closure asks.
    energy = np.bincount(cid, weights=w * (d ** 2).sum(1), minlength=m)
    a[np.arange(m), np.arange(m)] += SCALE_PRIOR * energy
    kkt = np.zeros((m + 1, m + 1))
    kkt[:m, :m] = 2 * a
    kkt[:m, m] = kkt[m, :m] = 1.0
    b = np.zeros(m + 1)
    b[m] = m
    b[:m] = 2 * SCALE_PRIOR * energy
    sigma = np.linalg.lstsq(kkt, b, rcond=None)[0][:m]
    return np.einsum("nmi,m->ni", x, sigma)


def _sample(x: torch.Tensor, target: int) -> torch.Tensor:
    """(F, H, W, C) → (F, P, C) on a regular pixel grid of about `target` pixels in all (float64)."""
    f, h, w = x.shape[:3]
    stride = max(1, int(round((f * h * w / max(target, 1)) ** 0.5)))
    off = stride // 2
    return x[:, off::stride, off::stride].reshape(f, -1, x.shape[-1]).double()
