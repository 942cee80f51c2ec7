"""Orientation maths of the scene tools (pure numpy)."""

import numpy as np
import pytest
from pointmap.scene.orient import (
    OrientError,
    axis_transform,
    decompose_similarity,
    fit_plane,
    flip_transform,
    floor_transform,
    origin_transform,
    rotation_between,
    scale_transform,
    travel_scale_transform,
    wall_transform,
)


def _apply(S, P):
    return P @ S[:3, :3].T + S[:3, 3]


def _tilted_plane(n=400, noise=0.0, outliers=0, seed=0):
    rng = np.random.default_rng(seed)
    P = np.column_stack([rng.uniform(-3, 3, n), rng.uniform(-2, 2, n), noise * rng.normal(size=n)])
    R = rotation_between([0, 0, 1], [0.4, -0.3, 1.0])
    P = P @ R.T + [0.5, 1.0, -2.0]
    if outliers:
        P[:outliers] += rng.normal(scale=1.0, size=(outliers, 3)) + [0, 0, 2]
    return P, R @ np.array([0, 0, 1.0])


def test_three_points_give_their_plane_exactly():
    P, n = _tilted_plane(3)
    normal, _, inl = fit_plane(P)
    assert abs(abs(normal @ n) - 1) < 1e-12 and inl.all()


def test_robust_fit_ignores_outliers():
    P, n = _tilted_plane(400, noise=0.002, outliers=120)
    normal, _, inl = fit_plane(P)
    assert abs(abs(normal @ n) - 1) < 1e-4
    assert not inl[:120].any() or inl[:120].mean() < 0.1


def test_floor_puts_plane_at_zero_with_up_hint():
    P, n = _tilted_plane(100)
    above = P.mean(0) - 3 * n           # a "camera" on the −n side
    S = floor_transform(P, up_hint=above)
    assert np.abs(_apply(S, P)[:, 2]).max() < 1e-9
    assert _apply(S, above[None])[0, 2] > 0
    s, R, _ = decompose_similarity(S)
    assert s == pytest.approx(1.0) and np.allclose(R @ R.T, np.eye(3))


def test_wall_axis_origin_scale_flip():
    P, _ = _tilted_plane(50)
    S = wall_transform(P, "X", toward=P.mean(0) + [0, -5, 0])
    _, R, _ = decompose_similarity(S)
    assert np.allclose(R[2], [0, 0, 1])                 # a turn about Z only
    Q = _apply(S, P)
    normal, _, _ = fit_plane(Q)
    assert abs(normal[0]) < 1e-9                          # the wall's normal is along Y now
    assert np.allclose(_apply(origin_transform([1, 2, 3]), np.array([[1.0, 2, 3]])), 0)
    S = axis_transform([1, 1, 0], [1, 3, 5], "X")
    assert np.allclose(_apply(S, np.array([[0.0, 2, 7]]))[0], [2, 0, 7])
    S = scale_transform([0, 0, 0], [0, 3, 4], 10.0)
    assert decompose_similarity(S)[0] == pytest.approx(2.0)
    S = travel_scale_transform(np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0.0]]), 1.0)
    assert decompose_similarity(S)[0] == pytest.approx(0.5)
    assert np.allclose(_apply(flip_transform(), np.array([[1.0, 2, 3]])), [[1, -2, -3]])


def test_degenerate_selections_are_refused():
    with pytest.raises(OrientError, match="at least 3"):
        fit_plane(np.zeros((2, 3)))
    with pytest.raises(OrientError, match="one line"):
        fit_plane(np.outer(np.arange(5.0), [1, 2, 3]))
    with pytest.raises(OrientError, match="coincide"):
        scale_transform([1, 1, 1], [1, 1, 1], 2.0)
    with pytest.raises(OrientError, match="vertically aligned"):
        axis_transform([0, 0, 0], [0, 0, 1], "X")
