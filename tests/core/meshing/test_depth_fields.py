"""core.meshing.depth_fields: per-view smooth depth errors recovered from multi-view agreement."""

import numpy as np
from helpers_meshgen import make_case
from pointmap.core.meshing.depth_fields import correct_depth_fields, fit_depth_fields
from pointmap.core.meshing.views import check_views


def _views(case, depth):
    return check_views(list(depth), list(case["conf"]), case["K"], case["cam2world"], list(case["images"]), 0.0)


def _warped_case(seed=3, views=10, amplitude=0.015):
    """A clean object case whose depth maps are multiplied by known smooth fields (a scale + a tilt + one
    low-frequency wave per view), like a network's per-view depth warp."""
    case = make_case(seed=seed, views=views, W=96, H=72, noise=0.0, outliers=0.0, edge_mix=0.0,
                     pose_noise_deg=0.0, scale_noise=0.0, gt_factor=0)
    rng = np.random.default_rng(seed)
    h, w = case["depth"].shape[1:]
    gy, gx = np.mgrid[0:h, 0:w] / max(h, w)
    fields = np.stack([amplitude * (rng.normal() + rng.normal() * (gx - 0.5) + rng.normal() * np.sin(
        2 * np.pi * rng.uniform(0.3, 1.0) * gy + rng.uniform(0, 6))) / 2 for _ in range(views)])
    return case, fields


def test_smooth_per_view_warps_are_divided_out():
    case, fields = _warped_case()
    true = case["depth"].astype(np.float64)
    views = _views(case, true * (1 + fields))
    before = [np.abs(views.depth[i][views.valid(i)] / true[i][views.valid(i)] - 1).mean() for i in range(len(true))]
    worst = correct_depth_fields(views)
    after = [np.abs(views.depth[i][views.valid(i)] / true[i][views.valid(i)] - 1).mean() for i in range(len(true))]
    assert 0 < worst < 0.1
    # A common scale of all views is only weakly observable (centres are fixed, so it is not a similarity):
    # judge the shape of each view's error, and the mean error against the warp's.
    assert np.mean(after) < 0.35 * np.mean(before), (before, after)


def test_unwarped_views_stay_put_and_a_lone_view_is_untouched():
    case, _ = _warped_case(seed=5, views=6)
    true = case["depth"].astype(np.float64)
    views = _views(case, true)
    correct_depth_fields(views)
    err = max(np.abs(views.depth[i][views.valid(i)] / true[i][views.valid(i)] - 1).max() for i in range(6))
    assert err < 2e-3, err
    lone = _views({k: (v[:1] if k in ("conf", "images", "K", "cam2world") else v) for k, v in case.items()},
                  true[:1])
    assert not fit_depth_fields(lone).any()
    assert correct_depth_fields(lone) == 0.0


def _angle_deg(Ra, Rb):
    return np.degrees(np.arccos(np.clip((np.trace(Ra.T @ Rb) - 1) / 2, -1, 1)))


def test_small_camera_rotation_errors_are_taken_out():
    """Cameras turned by ~0.3 deg about their centres (an imperfect alignment) are turned back, and the
    caller's cameras are not touched."""
    import torch
    from pointmap.core.align.geometry import axis_angle_to_matrix

    case, _ = _warped_case(seed=7, views=10)
    true_c2w = case["cam2world"].copy()
    rng = np.random.default_rng(1)
    given = true_c2w.copy()
    for k in range(len(given)):
        axis = rng.normal(size=3)
        turn = torch.as_tensor(np.radians(0.3) * axis / np.linalg.norm(axis))
        given[k, :3, :3] = axis_angle_to_matrix(turn).numpy() @ given[k, :3, :3]
    sent = given.copy()
    views = check_views(list(case["depth"]), list(case["conf"]), case["K"], given, list(case["images"]), 0.0)
    before = [_angle_deg(true_c2w[k, :3, :3], given[k, :3, :3]) for k in range(len(given))]
    correct_depth_fields(views)
    # A common turn of all cameras about their own centres is barely observable; compare relative rotations.
    rel = [_angle_deg(true_c2w[0, :3, :3].T @ true_c2w[k, :3, :3], views.cam2world[0, :3, :3].T @ views.cam2world[k, :3, :3])
           for k in range(1, len(given))]
    rel_before = [_angle_deg(true_c2w[0, :3, :3].T @ true_c2w[k, :3, :3], given[0, :3, :3].T @ given[k, :3, :3])
                  for k in range(1, len(given))]
    assert np.mean(rel) < 0.4 * np.mean(rel_before), (rel_before, rel, before)
    np.testing.assert_array_equal(given, sent)


def test_views_of_different_sizes_and_empty_views():
    """Views of other sizes (one cropped) and a view without depth go through the batched fit."""
    case, fields = _warped_case(seed=9, views=6)
    true = case["depth"].astype(np.float64)
    depth = [d for d in true * (1 + fields)]
    depth[2] = depth[2][4:-6, 8:]                              # cropped: another size, K shifted to match
    K = case["K"].astype(np.float64).copy()
    K[2, 0, 2] -= 8
    K[2, 1, 2] -= 4
    depth[4] = np.zeros_like(depth[4])
    images = [im[:d.shape[0], :d.shape[1]] for im, d in zip(case["images"], depth, strict=True)]
    conf = [np.ones_like(d) * 5 for d in depth]
    views = check_views(depth, conf, K, case["cam2world"], images, 0.0)
    worst = correct_depth_fields(views)
    assert 0 < worst < 0.1 and not views.depth[4].any()
    err = np.abs(views.depth[2][views.valid(2)] / true[2][4:-6, 8:][views.valid(2)] - 1).mean()
    assert err < np.abs(fields[2][4:-6, 8:]).mean()
