"""Loop closures of chunked long shots (VGGT / DA3 path) found by retrieval, on synthetic chunk predictions.

The generator says what a multi-view network would about each chunk of a walk that returns to its start:
ground truth in a random similarity frame per chunk, a slow bend inside each chunk (yaw and scale drifting
with the frame's place in the chunk: what makes real chunk chains drift), per-frame pose noise,
multiplicative depth noise, low-confidence outliers, and per-frame retrieval descriptors (random Fourier
features of the camera's place and view direction plus noise, standing in for pooled network tokens).
"""

import math

import numpy as np
import pytest
import torch
from helpers_shot import _umeyama, rel_dir_errors, rel_rot_errors, seam_pairs, sequence_scores
from helpers_synth import _angle, _raycast, _rot, in_chunk_frame, pixel_rays
from pointmap.core.backends.chunked import ChunkPrediction, find_loop_chunks, plan_chunks, run_chunked

H, W, F = 24, 32, 30.0
CHUNK, OVERLAP = 30, 5


def _loop_poses(n: int, rng) -> np.ndarray:
    """(n, 4, 4) cam2world (OpenCV, z up) of a walk once around an ellipse in the 8 x 6 m room, a little more
    than a full turn (the last frames revisit the first place), looking ahead and somewhat outwards."""
    turn = 2 * np.pi * np.linspace(0.0, 1.04, n)
    centres = np.stack([1.8 * np.cos(turn), 1.2 * np.sin(turn), 1.5 + 0.05 * np.sin(3 * turn)], 1)
    poses = []
    for k in range(n):
        yaw = turn[k] + np.pi / 2 - np.radians(30)
        pitch = np.radians(-5)
        fwd = np.array([math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch), math.sin(pitch)])
        x = np.cross(fwd, [0.0, 0.0, 1.0])
        x /= np.linalg.norm(x)
        m = np.eye(4)
        m[:3, :3] = _rot(rng.normal(size=3), np.radians(0.3) * rng.normal()) @ np.stack([x, np.cross(fwd, x), fwd], 1)
        m[:3, 3] = centres[k]
        poses.append(m)
    return np.stack(poses)


def _descriptors(poses: np.ndarray, rng, dims: int = 64, noise: float = 0.02) -> np.ndarray:
    """(n, dims) unit rows whose cosine similarity falls with the distance between two cameras' places and
    view directions (random Fourier features, ~exp(-|d|^2 / 2) for d = (centre / 0.5 m, direction / 0.3))."""
    x = np.concatenate([poses[:, :3, 3] / 0.5, poses[:, :3, 2] / 0.3], 1)
    proj = rng.normal(size=(x.shape[1], dims))
    phase = rng.uniform(0, 2 * np.pi, dims)
    d = np.cos(x @ proj + phase) + noise * rng.normal(size=(len(x), dims))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _runner(poses, depth, desc, seed, bend_deg=0.5, scale_bend=0.02, pose_noise_deg=0.1, noise=0.01,
            outliers=0.03):
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    rays = pixel_rays(H, W, F)
    calls = []

    def run(frames):
        calls.append(np.asarray(frames))
        s = math.exp(rng.uniform(-0.7, 0.7))
        r = _rot(rng.normal(size=3), rng.uniform(0, math.pi))
        t = rng.normal(0, 2.0, 3)
        beta, gamma = math.radians(bend_deg) * rng.normal(), scale_bend * rng.normal()
        c0 = poses[frames[0], :3, 3]
        cams, pts, confs = [], [], []
        for p, f in enumerate(frames):
            tau = p / max(len(frames) - 1, 1) - 0.5
            bend_r, bend_s = _rot(np.array([0.0, 0.0, 1.0]), beta * tau), math.exp(gamma * tau)
            m = poses[f].copy()
            m[:3, :3] = _rot(rng.normal(size=3), math.radians(pose_noise_deg) * rng.normal()) @ m[:3, :3]
            d = depth[f] * (1 + noise * torch.randn(H, W, generator=gen, dtype=torch.float64))
            world = (d[..., None] * rays) @ torch.tensor(m[:3, :3]).T + torch.tensor(poses[f][:3, 3])
            # The chunk's slow bend about its first camera, then its own similarity frame.
            m[:3, :3] = bend_r @ m[:3, :3]
            m[:3, 3] = c0 + bend_s * bend_r @ (m[:3, 3] - c0)
            world = torch.tensor(c0) + bend_s * (world - torch.tensor(c0)) @ torch.tensor(bend_r).T
            cam, x, c = in_chunk_frame(m, world, s, r, t, outliers, gen)
            cams.append(cam)
            pts.append(x)
            confs.append(c)
        return ChunkPrediction(np.asarray(frames), np.stack(cams), torch.stack(pts), torch.stack(confs),
                               descriptors=desc[np.asarray(frames)].astype(np.float32))

    return run, calls


def _case(n: int, seed: int):
    rng = np.random.default_rng(seed)
    poses = _loop_poses(n, rng)
    sph = torch.tensor([[2.5, 2.0, 1.0, 0.4], [-2.5, -2.0, 1.2, 0.5], [0.0, 0.0, 0.8, 0.5]], dtype=torch.float64)
    depth = torch.stack([_raycast(torch.tensor(p), F, H, W, sph) for p in poses])
    return poses, depth, _descriptors(poses, rng)


def _end_drift(est: np.ndarray, gt: np.ndarray, first: int) -> tuple[float, float]:
    """End-point drift: the estimate fitted to the truth on the first `first` frames only (similarity of
    the centres, mean rotation), then the last frame's rotation error (deg) and centre error (fraction of
    the path)."""
    s, r, t = _umeyama(est[:first, :3, 3], gt[:first, :3, 3])
    path = np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum()
    fit_c = s * est[-1, :3, 3] @ r.T + t
    rots = [gt[k, :3, :3] @ (r @ est[k, :3, :3]).T for k in range(first)]
    u, _, vt = np.linalg.svd(np.sum(rots, 0))
    g = u @ vt
    rot = _angle(g @ r @ est[-1, :3, :3] @ gt[-1, :3, :3].T)
    return float(rot), float(np.linalg.norm(fit_c - gt[-1, :3, 3]) / path)


def test_retrieval_finds_the_revisit_and_nothing_else():
    n = 160
    rng = np.random.default_rng(3)
    poses = _loop_poses(n, rng)
    desc = _descriptors(poses, rng)
    chunks = plan_chunks(n, CHUNK, OVERLAP)
    loops = find_loop_chunks(desc, chunks)
    assert len(loops) >= 1
    for fr in loops:
        early, late = fr[fr < n // 2], fr[fr >= n // 2]
        assert len(early) >= 4 and len(late) >= 4, fr        # frames from both places
        assert early.max() < 20 and late.min() > n - 25, fr   # the start and the end of the walk
    # A walk that never comes back (first half of the loop) has no revisit.
    assert find_loop_chunks(desc[: n // 2], plan_chunks(n // 2, CHUNK, OVERLAP)) == []


def test_loop_edge_removes_end_point_drift_and_keeps_the_targets():
    n = 200
    poses, depth, desc = _case(n, 5)
    truth = {"cam2world": poses, "K": np.tile(np.diag([F, F, 1.0]), (n, 1, 1))}
    run_open, _ = _runner(poses, depth, desc, seed=6)
    open_res = run_chunked(n, run_open, chunk=CHUNK, overlap=OVERLAP, find_loops=False)
    run_loop, calls = _runner(poses, depth, desc, seed=6)
    loop_res = run_chunked(n, run_loop, chunk=CHUNK, overlap=OVERLAP, find_loops=True)
    n_main = len(plan_chunks(n, CHUNK, OVERLAP))
    assert loop_res.info["loop_chunks"] and len(calls) == n_main + len(loop_res.info["loop_chunks"])
    assert any(max(a, b) >= n_main for a, b in loop_res.info["links"])     # the loop edge is in the solve
    rot_open, c_open = _end_drift(open_res.cam2world, poses, CHUNK)
    rot_loop, c_loop = _end_drift(loop_res.cam2world, poses, CHUNK)
    s_loop = sequence_scores(loop_res.cam2world, np.full(n, F), truth)
    # Without the loop edge the walk ends more than 1 % of its path away from where it should (measured:
    # 1.40 %, 0.47°); with it, a twentieth of that (0.07 %, 0.15°).
    assert c_open > 0.01 and c_loop <= 0.25 * c_open and rot_loop <= rot_open, (rot_open, c_open, rot_loop, c_loop)
    assert s_loop["rot_mean_deg"] <= 0.3 and s_loop["rot_max_deg"] <= 1.0, s_loop
    assert s_loop["centre_max_frac"] <= 0.01 and s_loop["jitter"] <= 0.1, s_loop
    # Seams (consecutive frames across a hand-over between main chunks) look like anywhere else.
    rel = rel_rot_errors(loop_res.cam2world, poses)
    seam = sorted(seam_pairs(loop_res.chunks[:n_main]))
    rest = [k for k in range(n - 1) if k not in set(seam)]
    assert rel[seam].mean() <= 1.5 * rel[rest].mean() + 0.02, (rel[seam].mean(), rel[rest].mean())
    # So does the direction of each step (camera k's axes): the loop's translation correction goes into the
    # chunks' scales, not into bent steps at the seams (measured: 0.237° at seams vs 0.273° elsewhere; it
    # was 0.67° vs 0.37° when the lightly weighted overlap steps took the correction, 0.300° vs 0.279° while
    # both chunks weighed alike in an overlap instead of by the distance from their anchor frames).
    tdir = rel_dir_errors(loop_res.cam2world, poses)
    assert tdir[seam].mean() <= 1.25 * tdir[rest].mean(), (tdir[seam].mean(), tdir[rest].mean())
    assert tdir[rest].mean() <= 0.35, tdir[rest].mean()


@pytest.mark.parametrize("seed", [1, 4, 6, 7, 8])
def test_seams_look_like_elsewhere_on_other_walks(seed):
    """Seams stay invisible on other walks, with and without the loop chunk: for rotation and for step
    direction, the mean error of the consecutive pairs at seams (each overlap and the pairs on either side
    of it: 42 of 199 pairs) is at most 1.25x the mean over the other pairs. 1.25x leaves room for the
    spread of a mean over seven seams (measured over seeds 1-8: at most 1.11x rotation, 1.09x direction);
    the old join failed it on four of these five walks (direction 1.38x on seed 4, 1.49x on 7 with the loop;
    rotation 1.35x on 6 with the loop, where a robust kernel left the loop's residual on one seam pair)."""
    n = 200
    poses, depth, desc = _case(n, seed)
    n_main = len(plan_chunks(n, CHUNK, OVERLAP))
    for loops in (False, True):
        run, _ = _runner(poses, depth, desc, seed=seed + 1)
        res = run_chunked(n, run, chunk=CHUNK, overlap=OVERLAP, find_loops=loops, background=False)
        assert len(res.info["loop_chunks"]) == int(loops)
        seam = sorted(seam_pairs(res.chunks[:n_main]))
        rest = [k for k in range(n - 1) if k not in set(seam)]
        for errors in (rel_rot_errors(res.cam2world, poses), rel_dir_errors(res.cam2world, poses)):
            assert errors[seam].mean() <= 1.25 * errors[rest].mean(), (loops, errors[seam].mean(), errors[rest].mean())
