"""Chunked multi-view runs (VGGT / DA3 on long shots): chunk plan, joining, seams, loop chunks."""

import math

import numpy as np
import pytest
import torch
from helpers_shot import rel_rot_errors, seam_pairs, sequence_scores, shot_poses
from helpers_synth import _raycast, _rot, in_chunk_frame, pixel_rays
from pointmap.core import Cancelled, CancelToken
from pointmap.core.backends.chunked import ChunkPrediction, chunk_length_for_memory, plan_chunks, run_chunked
from pointmap.core.errors import PointmapError

H, W, F = 24, 32, 30.0


def _shot(n: int, seed: int):
    rng = np.random.default_rng(seed)
    poses = shot_poses(rng, n)
    sph = torch.tensor([[2.5, 2.0, 1.0, 0.4], [-2.5, -2.0, 1.2, 0.5]], dtype=torch.float64)
    depth = torch.stack([_raycast(torch.tensor(p), F, H, W, sph) for p in poses])
    return poses, depth


def _chunk_runner(poses, depth, seed, pose_noise_deg=0.15, centre_noise=0.002, noise=0.01, outliers=0.03):
    """What a multi-view network would say about a chunk: ground truth in a random similarity frame of
    its own (scale, rotation, offset), per-frame pose noise, multiplicative depth noise, outliers with
    low confidence."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    rays = pixel_rays(H, W, F)
    calls = []

    def run(frames):
        calls.append(frames)
        s = math.exp(rng.uniform(-0.7, 0.7))
        r = _rot(rng.normal(size=3), rng.uniform(0, math.pi))
        t = rng.normal(0, 2.0, 3)
        cams, pts, confs = [], [], []
        for f in frames:
            m = poses[f].copy()
            m[:3, :3] = _rot(rng.normal(size=3), math.radians(pose_noise_deg) * rng.normal()) @ m[:3, :3]
            m[:3, 3] += rng.normal(0, centre_noise, 3)
            d = depth[f] * (1 + noise * torch.randn(H, W, generator=gen, dtype=torch.float64))
            world = (d[..., None] * rays) @ torch.tensor(poses[f][:3, :3]).T + torch.tensor(poses[f][:3, 3])
            cam, x, c = in_chunk_frame(m, world, s, r, t, outliers, gen)
            cams.append(cam)
            pts.append(x)
            confs.append(c)
        return ChunkPrediction(np.asarray(frames), np.stack(cams), torch.stack(pts), torch.stack(confs))

    return run, calls


def test_plan_overlaps_at_least_ten_percent_and_four_frames():
    chunks = plan_chunks(1000, 100)
    assert chunks[0][0] == 0 and chunks[-1][-1] == 999
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert len(set(a) & set(b)) >= 10
    small = plan_chunks(50, 20, overlap=1)
    assert all(len(set(a) & set(b)) >= 4 for a, b in zip(small, small[1:], strict=False))
    assert [len(c) for c in plan_chunks(15, 40)] == [15]
    with pytest.raises(PointmapError):
        plan_chunks(100, 4)
    assert chunk_length_for_memory(10 * 2**30, 2**28, most=1000) == 40
    with pytest.raises(PointmapError, match="Not enough memory"):
        chunk_length_for_memory(2**30, 2**30)


def test_chunks_join_without_drift_or_visible_seams():
    n = 200
    poses, depth = _shot(n, 7)
    run, _ = _chunk_runner(poses, depth, seed=8)
    res = run_chunked(n, run, chunk=40, overlap=6)
    truth = {"cam2world": poses, "K": np.tile(np.diag([F, F, 1.0]), (n, 1, 1))}
    s = sequence_scores(res.cam2world, np.full(n, F), truth)
    assert s["rot_mean_deg"] <= 0.3 and s["rot_max_deg"] <= 1.0, s
    assert s["centre_max_frac"] <= 0.01 and s["jitter"] <= 0.1, s
    # Seams: relative pose error between consecutive frames there is like anywhere else.
    rel = rel_rot_errors(res.cam2world, poses)
    seam = sorted(seam_pairs(res.chunks))
    rest = [k for k in range(n - 1) if k not in set(seam)]
    assert rel[seam].mean() <= 1.5 * rel[rest].mean() + 0.02, (rel[seam].mean(), rel[rest].mean())
    # Points land in the world of the cameras (scale and offset of the joined frame).
    assert res.points.shape == (n, H, W, 3) and torch.isfinite(res.points).all()


def test_loop_chunk_is_used_and_cancel_between_chunks():
    n = 120
    poses, depth = _shot(n, 9)
    run, calls = _chunk_runner(poses, depth, seed=10)
    loop = np.concatenate([np.arange(0, 6), np.arange(n - 6, n)])
    res = run_chunked(n, run, chunk=30, overlap=4, extra_chunks=[loop])
    assert any(np.array_equal(c, loop) for c in calls)
    assert any(a == len(res.chunks) - 1 or b == len(res.chunks) - 1 for a, b in res.info["links"])
    tok = CancelToken()
    seen = []

    def progress(p):
        seen.append(p.done)
        if len(seen) == 2:
            tok.cancel()

    run2, calls2 = _chunk_runner(poses, depth, seed=11)
    with pytest.raises(Cancelled):
        run_chunked(n, run2, chunk=30, overlap=4, progress=progress, cancel=tok)
    assert len(calls2) == 2 and seen == sorted(seen)


def test_vggt_chunked_with_the_tiny_model():
    from helpers_vggt import tiny_inputs, tiny_model
    from pointmap.core.backends.vggt import run_vggt
    from pointmap.core.backends.vggt_chunked import run_vggt_chunked
    from pointmap.core.io.images import load_images_vggt

    tiny = tiny_inputs()
    frames = [str(tiny[i % len(tiny)]) for i in range(11)]
    images = load_images_vggt(frames, mode="crop", target=70)
    model = tiny_model("pt")
    rec = run_vggt_chunked(model, images, chunk=6, overlap=4, device="cpu")
    rec.validate()
    assert rec.n_views == 11 and rec.family == "vggt"
    chunks = rec.meta["chunked"]["chunks"]
    assert chunks[0][0] == 0 and chunks[-1][-1] == 10 and len(chunks) >= 2
    assert all(np.isfinite(p).all() for p in rec.points) and np.isfinite(rec.cam2world).all()
    # The CPU side on the worker thread changes nothing.
    serial = run_vggt_chunked(model, images, chunk=6, overlap=4, device="cpu", background=False)
    np.testing.assert_array_equal(serial.cam2world, rec.cam2world)
    for a, b in zip(serial.points, rec.points, strict=True):
        np.testing.assert_array_equal(a, b)
    # One chunk holding every frame is exactly the plain run.
    whole = run_vggt_chunked(model, images[:5], chunk=8, device="cpu")
    plain = run_vggt(model, images[:5], device="cpu")
    np.testing.assert_allclose(whole.cam2world, plain.cam2world, atol=1e-6)
    np.testing.assert_allclose(whole.points[3], plain.points[3], atol=1e-5)
    # Retrieval descriptors for loop closures: one unit row per frame, and they change nothing else.
    with_desc = run_vggt(model, images[:5], device="cpu", descriptors=True)
    desc = with_desc.meta["frame_descriptors"]
    assert desc.shape[0] == 5 and np.allclose(np.linalg.norm(desc, axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(with_desc.cam2world, plain.cam2world)


def test_eta_text():
    from pointmap.core.progress import eta_text

    assert eta_text(0.0, 0, 10, now=5.0) == ""
    assert eta_text(0.0, 2, 10, now=5.0) == "ETA 20 s"
    assert eta_text(0.0, 1, 30, now=5.0) == "ETA 2 min 25 s"
    assert eta_text(0.0, 10, 10, now=5.0) == ""


def test_background_joining_gives_the_serial_result():
    """Chunks finished (callable runner outputs) and linked on the worker thread while the next chunk
    runs: the joined shot is bit-identical to doing it all in order in one thread."""
    import threading

    n = 90
    poses, depth = _shot(n, 12)
    loop = np.concatenate([np.arange(0, 5), np.arange(n - 5, n)])
    serial_run, _ = _chunk_runner(poses, depth, seed=13)
    serial = run_chunked(n, serial_run, chunk=24, overlap=5, extra_chunks=[loop], background=False)
    eager_run, _ = _chunk_runner(poses, depth, seed=13)
    finished_on = []

    def deferred(frames):
        pred = eager_run(frames)            # the "GPU" part, in the caller's thread (same random stream)

        def finish():
            finished_on.append(threading.current_thread().name)
            return pred
        return finish

    both = run_chunked(n, deferred, chunk=24, overlap=5, extra_chunks=[loop], background=True)
    assert finished_on and all(name.startswith("chunk-join") for name in finished_on)
    assert both.info["links"] == serial.info["links"]
    np.testing.assert_array_equal(both.cam2world, serial.cam2world)
    assert torch.equal(both.points, serial.points) and torch.equal(both.conf, serial.conf)


def test_background_worker_errors_reach_the_caller():
    poses, depth = _shot(40, 14)
    run, _ = _chunk_runner(poses, depth, seed=15)

    def wrong(frames):
        pred = run(frames)
        return lambda: ChunkPrediction(pred.frames[:-1], pred.cam2world[:-1], pred.points[:-1], pred.conf[:-1])

    with pytest.raises(PointmapError, match="other than the ones asked for"):
        run_chunked(40, wrong, chunk=16, overlap=4)


def test_joined_points_move_rigidly_with_their_joined_camera():
    """A frame's points keep their shape in its own camera: in the joined camera they are the chunk's
    camera-frame points times that chunk's scale (the similarity into the world, then the frame's rigid
    correction). Checked against every chunk that holds the frame: one of them must match to float32."""
    n = 40
    poses, depth = _shot(n, 3)
    run, _ = _chunk_runner(poses, depth, seed=4)
    kept = {}

    def keep(frames):
        pred = run(frames)
        kept[tuple(frames.tolist())] = pred
        return pred

    res = run_chunked(n, keep, chunk=16, overlap=5)
    preds = [kept[tuple(c.tolist())] for c in res.chunks]
    for f in range(n):
        joined_cam = (res.points[f].double().numpy() - res.cam2world[f, :3, 3]) @ res.cam2world[f, :3, :3]
        errs = []
        for c, p in enumerate(preds):
            where = np.nonzero(np.asarray(p.frames) == f)[0]
            if not len(where):
                continue
            local = p.cam2world[where[0]]
            local_cam = (p.points[where[0]].double().numpy() - local[:3, 3]) @ local[:3, :3]
            scale = res.chunk_sim[c][0]
            errs.append(np.abs(joined_cam - scale * local_cam).max() / np.abs(joined_cam).max())
        assert min(errs) < 1e-5, (f, errs)
