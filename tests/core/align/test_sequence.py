"""Long shots: averaging initialisation (no drift), graph solvers, and the shot scores of the fixture README."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURES, fixture_dir
from helpers_shot import drift_floor, make_shot_case, sequence_scores, shot_passes, shot_targets
from helpers_synth import load_npz_case
from pointmap.core.align.geometry import axis_angle_to_matrix
from pointmap.core.align.refine import AlignOptions, global_align
from pointmap.core.align.rotation_averaging import average_rotations, matrix_to_axis_angle, solve_differences
from pointmap.core.align.schedule import SHOT_LR, SHOT_TOLERANCE, for_shot

ALIGN_DIR = fixture_dir("POINTMAP_ALIGN_DIR", FIXTURES / "alignment")


def _shot_cases():
    """Every case of the fixture set whose meta says it is a shot (any N, size, window)."""
    out = []
    for path in sorted(Path(ALIGN_DIR).glob("*.npz")):
        with np.load(path, allow_pickle=False) as z:
            if json.loads(str(z["meta"])).get("path") == "shot":
                out.append(path)
    return out


def _check_shot(res, truth, edges, label):
    floor = drift_floor(edges, len(truth["cam2world"]), truth["meta"]["pose_noise_deg"])
    s = sequence_scores(res.cam2world, res.focals, truth)
    assert shot_passes(s, shot_targets(floor)), f"{label}: {s} (floor {floor}, targets {shot_targets(floor)})"
    return s


@pytest.mark.parametrize("path", _shot_cases(), ids=lambda p: p.stem)
def test_fixture_shot_reaches_drift_floor(path):
    pred, truth = load_npz_case(path)
    res = global_align(pred, for_shot(AlignOptions(shared_focal=truth["meta"].get("shared_focal", False))))
    _check_shot(res, truth, pred.edges, path.name)


def test_shot_schedule_stops_when_converged_and_keeps_set_values():
    """The shot schedule ends its stages on the loss test, well inside the step budget, on target."""
    pred, truth = make_shot_case(40, size=(24, 32), window=3, seed=7)
    res = global_align(pred, for_shot(AlignOptions(shared_focal=True)))
    assert 0 < res.info["iterations"] < 200, res.info
    _check_shot(res, truth, pred.edges, "shot40")
    mine = for_shot(AlignOptions(lr=0.01, tolerance=0.0, iterations=50))
    assert (mine.lr, mine.tolerance, mine.iterations) == (0.01, 0.0, 50)
    assert (for_shot(AlignOptions()).lr, for_shot(AlignOptions()).tolerance) == (SHOT_LR, SHOT_TOLERANCE)


def test_drift_floor_of_the_example_matches_the_readme():
    path = Path(ALIGN_DIR) / "example_shot60_swin3.npz"
    if not path.exists():
        pytest.skip("this fixture set has no example_shot60_swin3")
    with np.load(path, allow_pickle=False) as z:
        floor = drift_floor(z["edges"], len(z["gt_cam2world"]), 0.5)
    assert 0.26 < floor["mean_deg"] < 0.32, floor          # README: about 0.29 deg


@pytest.mark.parametrize("n,window,seed", [(120, 4, 3), (90, 3, 4)])
def test_generated_shot_initialisation_has_no_drift(n, window, seed):
    """The averaging initialisation alone (no refinement) meets the shot targets; the tree chain does not."""
    pred, truth = make_shot_case(n, size=(32, 48), window=window, seed=seed)
    res = global_align(pred, AlignOptions(iterations=0, shared_focal=True))
    s = _check_shot(res, truth, pred.edges, f"shot{n}")
    assert s["centre_max_frac"] < 0.01


def test_tree_initialisation_drifts_where_averaging_does_not(monkeypatch):
    import pointmap.core.align.init as init_mod
    import pointmap.core.align.initialise as initialise_mod

    pred, truth = make_shot_case(120, size=(32, 48), window=3, seed=5)
    avg = sequence_scores(global_align(pred, AlignOptions(iterations=0, shared_focal=True)).cam2world,
                          np.ones(120), truth)
    tree = init_mod.initialise_tree
    monkeypatch.setattr(initialise_mod, "initialise", lambda *a, **k: tree(*a))
    chained = sequence_scores(global_align(pred, AlignOptions(iterations=0, shared_focal=True)).cam2world,
                              np.ones(120), truth)
    assert avg["rot_max_deg"] < 0.6 * chained["rot_max_deg"], (avg, chained)


def test_solve_differences_is_least_squares():
    rng = np.random.default_rng(0)
    n = 12
    edges = np.array([(i, i + d) for i in range(n) for d in (1, 2, 5) if i + d < n])
    d = rng.normal(size=(len(edges), 2))
    w = rng.uniform(0.5, 2.0, len(edges))
    got = solve_differences(n, torch.tensor(edges[:, 0]), torch.tensor(edges[:, 1]), torch.tensor(d),
                            torch.tensor(w)).numpy()
    a = np.zeros((len(edges) + 1, n))
    a[np.arange(len(edges)), edges[:, 1]] = np.sqrt(w)
    a[np.arange(len(edges)), edges[:, 0]] = -np.sqrt(w)
    a[-1] = 1.0                                          # gauge: mean zero
    b = np.concatenate([np.sqrt(w)[:, None] * d, np.zeros((1, 2))])
    ref = np.linalg.lstsq(a, b, rcond=None)[0]
    np.testing.assert_allclose(got, ref, atol=1e-9)


def test_rotation_averaging_exact_and_robust():
    g = torch.Generator().manual_seed(0)
    n = 40
    truth = axis_angle_to_matrix(torch.randn(n, 3, generator=g, dtype=torch.float64))
    edges = np.array([(i, j) for i in range(n) for j in range(n) if i != j and abs(i - j) <= 3])
    rel = truth[edges[:, 0]].transpose(1, 2) @ truth[edges[:, 1]]
    got = average_rotations(n, edges, rel)
    # Up to one global rotation.
    align = truth[0] @ got[0].T
    err = matrix_to_axis_angle((align @ got).transpose(1, 2) @ truth).norm(dim=-1)
    assert float(err.max()) < 1e-8
    # Gross outliers on a few edges are ignored.
    bad = rel.clone()
    bad[::37] = bad[::37] @ axis_angle_to_matrix(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    got = average_rotations(n, edges, bad)
    align = truth[0] @ got[0].T
    err = matrix_to_axis_angle((align @ got).transpose(1, 2) @ truth).norm(dim=-1)
    assert float(err.max()) < np.radians(0.05), np.degrees(float(err.max()))


def test_matrix_to_axis_angle_inverts_rodrigues():
    w = torch.tensor([[0.0, 0.0, 0.0], [1e-9, 0, 0], [0.3, -0.2, 0.1], [0, 2.5, 0]], dtype=torch.float64)
    np.testing.assert_allclose(matrix_to_axis_angle(axis_angle_to_matrix(w)).numpy(), w.numpy(), atol=1e-12)


@pytest.mark.parametrize("seed", [31, 32])
def test_known_full_intrinsics_are_honoured(seed):
    """Issue #9 point 3: off-centre principal points and fx != fy, given exactly, come back unchanged and
    the poses are right (a solver that assumed a centred point or square pixels would be degrees off)."""
    from helpers_synth import make_case

    n, (h, w) = 6, (48, 64)
    rng = np.random.default_rng(seed)
    ks = []
    for _ in range(n):
        fx = rng.uniform(0.9, 1.3) * w
        ks.append(np.array([[fx, 0, w / 2 + rng.uniform(8, 14) * rng.choice([-1, 1])],
                            [0, fx * rng.uniform(1.12, 1.25), h / 2 + rng.uniform(6, 10) * rng.choice([-1, 1])],
                            [0, 0, 1]]))
    pred, truth = make_case(n_views=n, size=(h, w), seed=seed, intrinsics=np.stack(ks))
    res = global_align(pred, AlignOptions(intrinsics=ks))
    np.testing.assert_array_equal(res.K_net, np.stack(ks))
    s = sequence_scores(res.cam2world, res.focals, truth)
    assert s["rot_max_deg"] < 0.5, s
    # The same data solved with the principal point assumed centred and square pixels is clearly worse.
    centred = [np.array([[k[0, 0], 0, (w - 1) / 2], [0, k[0, 0], (h - 1) / 2], [0, 0, 1]]) for k in ks]
    wrong = sequence_scores(global_align(pred, AlignOptions(intrinsics=centred)).cam2world, res.focals, truth)
    assert wrong["rot_max_deg"] > 2 * s["rot_max_deg"], (s, wrong)
