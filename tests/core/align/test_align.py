"""Global alignment: accuracy on the fixture cases and on generated scenes, options, special cases."""

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURES, fixture_dir
from helpers_synth import TARGETS, load_npz_case, make_case, passes, score
from pointmap.core import Cancelled, CancelToken
from pointmap.core.align.refine import AlignOptions, global_align
from pointmap.core.pairwise.predictions import PairPredictions

ALIGN_DIR = fixture_dir("POINTMAP_ALIGN_DIR", FIXTURES / "alignment")


def _check(res, truth, label=""):
    s = score(res.cam2world, res.focals, truth)
    assert passes(s), f"{label}: {s} (targets {TARGETS})"
    return s


def _fixture_cases():
    cases = sorted(Path(ALIGN_DIR).glob("*.npz"))
    assert cases, f"no alignment cases in {ALIGN_DIR}"
    return cases


@pytest.mark.parametrize("path", _fixture_cases(), ids=lambda p: p.stem)
def test_fixture_case_accuracy(path):
    pred, truth = load_npz_case(path)
    res = global_align(pred)
    _check(res, truth, path.name)
    assert res.info["iterations"] > 0 and np.isfinite(res.info["loss"])


SYNTH = {
    "orbit6_complete": dict(n_views=6, path="orbit", graph="complete", seed=1),
    "forward8_swin3": dict(n_views=8, path="forward", graph="swin-3", seed=2),
    "orbit10_swin3_heavy": dict(n_views=10, path="orbit", graph="swin-3", noise=0.03, pose_noise_deg=0.5,
                                outliers=0.10, seed=3),
    "orbit7_shared_focal": dict(n_views=7, path="orbit", graph="complete", shared_focal=True, seed=4),
    "forward12_logwin3": dict(n_views=12, path="forward", graph="logwin-3", seed=5),
}


@pytest.mark.parametrize("name", sorted(SYNTH))
def test_synthetic_accuracy(name):
    pred, truth = make_case(size=(48, 64), **SYNTH[name])
    opts = AlignOptions(shared_focal=SYNTH[name].get("shared_focal", False))
    res = global_align(pred, opts)
    _check(res, truth, name)


def test_output_contract_and_consistency():
    pred, truth = make_case(n_views=5, size=(32, 48), seed=7)
    res = global_align(pred)
    n = 5
    assert res.cam2world.shape == (n, 4, 4) and res.cam2world.dtype == np.float64
    assert res.K_net.shape == (n, 3, 3) and res.K_net.dtype == np.float64
    np.testing.assert_allclose(res.cam2world[0], np.eye(4), atol=1e-9)
    for k in range(n):
        r = res.cam2world[k, :3, :3]
        np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-9)
        assert res.depth[k].shape == (32, 48) and res.depth[k].dtype == np.float32
        assert res.points[k].shape == (32, 48, 3) and res.points[k].dtype == np.float32
        assert res.conf[k].shape == (32, 48) and res.conf[k].dtype == np.float32 and (res.conf[k] >= 1).all()
        # points = cam2world · (depth · K⁻¹ [u, v, 1])
        v, u = np.mgrid[0:32, 0:48]
        pix = np.stack([u, v, np.ones_like(u)], -1).astype(np.float64)
        cam = (pix @ np.linalg.inv(res.K_net[k]).T) * res.depth[k][..., None]
        world = cam @ res.cam2world[k, :3, :3].T + res.cam2world[k, :3, 3]
        np.testing.assert_allclose(res.points[k], world, rtol=1e-4, atol=1e-4)
        assert np.median(res.depth[k]) > 0
    for key in ("iterations", "loss", "seconds", "init"):
        assert key in res.info


def test_known_focal_is_kept():
    pred, truth = make_case(n_views=6, size=(48, 64), seed=8)
    f = truth["K"][:, 0, 0].copy()
    f[2] = np.nan                                   # one unknown
    res = global_align(pred, AlignOptions(focals=f))
    np.testing.assert_allclose(res.focals[[0, 1, 3, 4, 5]], f[[0, 1, 3, 4, 5]], rtol=1e-6)
    _check(res, truth, "known focal")


def test_known_intrinsics_off_centre():
    pred, truth = make_case(n_views=6, size=(48, 64), seed=9)
    ks = [truth["K"][k] for k in range(6)]
    res = global_align(pred, AlignOptions(intrinsics=ks))
    np.testing.assert_allclose(res.K_net, truth["K"], rtol=1e-6, atol=1e-9)
    _check(res, truth, "known intrinsics")


def test_known_poses_stay_fixed():
    pred, truth = make_case(n_views=7, size=(48, 64), seed=10)
    gt = truth["cam2world"]
    known = {0: gt[0], 3: gt[3], 5: gt[5]}
    res = global_align(pred, AlignOptions(known_poses=known))
    for k, m in known.items():
        np.testing.assert_allclose(res.cam2world[k], m, atol=1e-9)
    # The others land in the known poses' frame and scale: absolute centre error.
    extent = np.linalg.norm(gt[:, :3, 3] - gt[:, :3, 3].mean(0), axis=1).mean()
    err = np.linalg.norm(res.cam2world[:, :3, 3] - gt[:, :3, 3], axis=1).max()
    assert err < 0.02 * extent, err
    _check(res, truth, "known poses")


def test_shared_focal():
    pred, truth = make_case(n_views=6, size=(48, 64), shared_focal=True, seed=11)
    res = global_align(pred, AlignOptions(shared_focal=True))
    assert np.ptp(res.focals) < 1e-6 * res.focals[0]
    _check(res, truth, "shared focal")


def test_two_views_use_the_pair_directly():
    pred, truth = make_case(n_views=2, size=(48, 64), seed=12)
    res = global_align(pred)
    assert res.info["iterations"] == 0
    s = score(res.cam2world, res.focals, truth)
    assert s["rot_mean_deg"] < 2.0 and s["tdir_mean_deg"] < 3.0 and s["focal_err_pct"] < 2.0, s


def test_one_view_monocular():
    pred, truth = make_case(n_views=2, size=(48, 64), seed=13, outliers=0.0)
    one = PairPredictions.from_tensors(np.array([[0, 0]]), [pred.image_shapes[0]],
                                       pts_i=[pred.pts_i[0]], pts_j=[pred.pts_i[0]],
                                       conf_i=[pred.conf_i[0]], conf_j=[pred.conf_i[0]])
    res = global_align(one)
    np.testing.assert_allclose(res.cam2world[0], np.eye(4), atol=1e-9)
    assert abs(res.focals[0] / truth["K"][0, 0, 0] - 1) < 0.01
    z = pred.pts_i[0][..., 2].numpy()
    ratio = res.depth[0] / z
    assert np.std(ratio) / np.mean(ratio) < 1e-3


def test_mixed_shapes():
    shapes = [(48, 64), (64, 48), (48, 64), (64, 48), (48, 64), (48, 64)]
    pred, truth = make_case(n_views=6, shapes=shapes, seed=14)
    res = global_align(pred)
    for k, (h, w) in enumerate(shapes):
        assert res.depth[k].shape == (h, w) and res.points[k].shape == (h, w, 3)
        np.testing.assert_allclose(res.K_net[k, :2, 2], [(w - 1) / 2, (h - 1) / 2])
    _check(res, truth, "mixed shapes")


def test_progress_reports():
    pred, _ = make_case(n_views=4, size=(32, 48), seed=15)
    seen = []
    global_align(pred, AlignOptions(iterations=40, tolerance=0), progress=seen.append)
    assert seen and all(p.stage == "align" for p in seen)
    done = [p.done for p in seen]
    assert done == sorted(done) and seen[-1].done == seen[-1].total
    assert any(p.loss is not None and np.isfinite(p.loss) for p in seen)


def test_cancel_before_and_during():
    pred, _ = make_case(n_views=4, size=(32, 48), seed=16)
    tok = CancelToken()
    tok.cancel()
    with pytest.raises(Cancelled):
        global_align(pred, cancel=tok)
    tok2 = CancelToken()

    def cancel_on_first_loss(p):
        if p.loss is not None:
            tok2.cancel()

    with pytest.raises(Cancelled):
        global_align(pred, AlignOptions(iterations=200, tolerance=0), progress=cancel_on_first_loss, cancel=tok2)


def test_float16_inputs():
    pred, truth = make_case(n_views=5, size=(48, 64), seed=17, dtype=torch.float16)
    _check(global_align(pred), truth, "float16")


def test_long_loop_sparse_graph():
    pred, truth = make_case(n_views=40, size=(24, 32), path="loop", graph="logwin-3", seed=19)
    res = global_align(pred)
    assert 0 < res.info["iterations"] <= 200      # no longer grows with N: the averaging init has no drift
    _check(res, truth, "loop40 logwin-3")


def _rot_deg(a, b):
    r = a[:3, :3].T @ b[:3, :3]
    return np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1)))


@pytest.mark.parametrize("name", ["orbit6_complete", "orbit10_swin3_heavy"])
def test_float16_group_storage_matches_float32(name):
    """Predictions packed as the engine stores them (float16, one buffer per shape) align like float32."""
    from pointmap.core.align.init import build_groups

    pred, truth = make_case(size=(48, 64), **SYNTH[name])
    packed = pred.converted(torch.float16)
    assert packed.pts_i[0].dtype == torch.float16
    ref, got = global_align(pred), global_align(packed)
    _check(got, truth, name + " fp16")
    for k in range(len(truth["cam2world"])):
        assert _rot_deg(ref.cam2world[k], got.cam2world[k]) < 0.05   # targets: 0.5 deg
    np.testing.assert_allclose(got.focals, ref.focals, rtol=2e-3)
    centres = ref.cam2world[:, :3, 3]
    extent = np.linalg.norm(centres - centres.mean(0), axis=1).mean()
    assert np.abs(got.cam2world[:, :3, 3] - centres).max() < 2e-3 * extent
    # Grouping engine-layout predictions is a view of the storage, not a second copy.
    groups = build_groups(packed, torch.device("cpu"))
    assert groups[0].pts is packed.storage.buffers[groups[0].shape][0]
    assert packed.pts_i[0].data_ptr() == groups[0].pts.data_ptr()   # per-edge access is a view of a row


def test_mixed_shape_storage_and_smaller_solve_chunks(monkeypatch):
    """Mixed shapes in PairStorage layout, with a depth-solve chunk of a few observations: same result."""
    import pointmap.core.align.refine as align_mod
    from pointmap.core.align.init import build_groups

    shapes = [(48, 64), (64, 48), (48, 64), (64, 48), (48, 64)]
    pred, truth = make_case(n_views=5, shapes=shapes, seed=21)
    packed = pred.converted(torch.float32)
    # Each group is the storage's buffer of its shape, not a copy.
    groups = build_groups(packed, torch.device("cpu"))
    assert len(groups) == 2 and all(g.pts is packed.storage.buffers[g.shape][0] for g in groups)
    ref = global_align(packed)
    monkeypatch.setattr(align_mod, "SOLVE_CHUNK_PIXELS", 3 * 48 * 64)
    got = global_align(packed)
    np.testing.assert_allclose(got.cam2world, ref.cam2world, atol=1e-6)
    for a, b in zip(got.depth, ref.depth, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    _check(got, truth, "mixed storage")
