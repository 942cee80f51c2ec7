"""Scene orientation maths for the tools (floor, origin, axis, scale, flip). Pure numpy, no bpy.

Every function returns one 4x4 similarity S (uniform scale · rotation | translation) in Blender
world coordinates (Z up); `scene.tools` applies it to a whole run's collection. Composition with
what is already there is S · current, so the tools can be used in any order and repeated, as
Blender's own tracker tools (Floor, Wall, Set Origin, Set Scale) are.
"""

from __future__ import annotations

import numpy as np

from .convention import rotation_between


class OrientError(ValueError):
    """The selection cannot define what the tool needs (too few or degenerate points)."""


def _unit(v: np.ndarray, what: str) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n < 1e-12:
        raise OrientError(f"{what} is degenerate (zero length)")
    return v / n


def fit_plane(points: np.ndarray, inlier_tol: float | None = None, iterations: int = 300,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust plane through (P, 3) points: (unit normal (3,), centroid of inliers (3,), inlier mask (P,)).

    Three points give their plane exactly. More points: least median of squares over random triples
    (robust up to half the points being outliers; the median is taken on at most 5,000 points),
    inliers within `inlier_tol` (default 3 robust standard deviations, 1.4826 × the best median
    distance), then a least-squares refit (SVD) on the inliers. The normal's sign is arbitrary here.
    """
    P = np.asarray(points, np.float64).reshape(-1, 3)
    P = P[np.isfinite(P).all(axis=1)]
    if len(P) < 3:
        raise OrientError(f"a plane needs at least 3 points, got {len(P)}")
    c = P.mean(axis=0)
    _, s, vt = np.linalg.svd(P - c, full_matrices=False)
    spread = float(s[0]) / np.sqrt(len(P))
    if s[1] / np.sqrt(len(P)) < 1e-9 * max(spread, 1e-300):
        raise OrientError("the points are (nearly) on one line; they do not define a plane")
    if len(P) == 3:
        return vt[2], c, np.ones(3, bool)
    rng = np.random.default_rng(seed)
    sample = P if len(P) <= 5_000 else P[rng.choice(len(P), 5_000, replace=False)]
    tri = rng.integers(0, len(sample), (iterations, 3))
    a, b, d = sample[tri[:, 0]], sample[tri[:, 1]], sample[tri[:, 2]]
    n = np.cross(b - a, d - a)
    norm = np.linalg.norm(n, axis=1)
    ok = norm > 1e-12 * spread * spread
    normal, origin = vt[2], c
    if ok.any():
        n = n[ok] / norm[ok, None]
        off = np.einsum("ij,ij->i", n, a[ok])
        med = np.array([np.median(np.abs(sample @ n[j] - off[j])) for j in range(len(n))])
        j = int(np.argmin(med))
        normal, origin = n[j], a[ok][j]
        if inlier_tol is None:
            inlier_tol = 3.0 * 1.4826 * float(med[j])
    if inlier_tol is None:
        inlier_tol = 3.0 * 1.4826 * float(np.median(np.abs((P - c) @ vt[2])))
    inlier_tol = max(inlier_tol, 1e-9 * spread)
    best = np.ones(len(P), bool)
    for _ in range(2):      # refit on the inliers, then once more with the refined plane
        inl = np.abs((P - origin) @ normal) <= inlier_tol
        if inl.sum() < 3:
            break
        best = inl
        origin = P[best].mean(axis=0)
        _, _, vt = np.linalg.svd(P[best] - origin, full_matrices=False)
        normal = vt[2]
    return normal, origin, best


def _similarity(R: np.ndarray | None = None, t=None, s: float = 1.0) -> np.ndarray:
    S = np.eye(4)
    if R is not None:
        S[:3, :3] = s * np.asarray(R, np.float64)
    else:
        S[:3, :3] *= s
    if t is not None:
        S[:3, 3] = t
    return S


def floor_transform(points: np.ndarray, up_hint: np.ndarray | None = None) -> np.ndarray:
    """S putting the robust plane through `points` at z = 0 with its normal along +Z.

    The smallest rotation is used (headings are kept as far as possible), about the inliers'
    centroid, and the plane is then moved vertically onto z = 0 (horizontal position unchanged; use
    `origin_transform` to move the origin). up_hint (3,): a point that must end above the floor (the
    mean camera centre, say); default keeps the normal's side closest to the current +Z.
    """
    n, c, _ = fit_plane(points)
    if up_hint is not None:
        if float(n @ (np.asarray(up_hint, np.float64) - c)) < 0:
            n = -n
    elif n[2] < 0:
        n = -n
    R = rotation_between(n, np.array([0.0, 0.0, 1.0]))
    # x' = R (x − c) + c, then lower by (R c + ...)_z so the plane (through c) lands on z = 0.
    t = c - R @ c
    t[2] -= (R @ c + t)[2]
    return _similarity(R, t)


def wall_transform(points: np.ndarray, axis: str = "X", toward: np.ndarray | None = None) -> np.ndarray:
    """S making the robust plane through `points` a vertical wall facing −Y (axis="X": the wall's
    horizontal direction becomes X) by a rotation about Z only; the floor stays where it is.

    toward (3,): a point the wall faces (the cameras); default: the normal's side facing −Y.
    """
    n, c, _ = fit_plane(points)
    h = np.array([n[0], n[1], 0.0])
    h = _unit(h, "the wall's horizontal normal (the points lie on a horizontal plane)")
    if toward is not None:
        if float(n @ (np.asarray(toward, np.float64) - c)) < 0:
            h = -h
    elif h[1] > 0:
        h = -h
    target = np.array([0.0, -1.0, 0.0]) if axis.upper() == "X" else np.array([1.0, 0.0, 0.0])
    return _rotation_about_z(h, target)


def _rotation_about_z(d: np.ndarray, target: np.ndarray) -> np.ndarray:
    a = np.arctan2(target[1], target[0]) - np.arctan2(d[1], d[0])
    R = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    return _similarity(R)


def origin_transform(point: np.ndarray) -> np.ndarray:
    """S moving `point` (3,) to the world origin (a translation)."""
    p = np.asarray(point, np.float64).reshape(3)
    if not np.isfinite(p).all():
        raise OrientError("the origin point is not finite")
    return _similarity(t=-p)


def axis_transform(p0: np.ndarray, p1: np.ndarray, axis: str = "X") -> np.ndarray:
    """S rotating about Z (through the origin) so the horizontal direction p0 → p1 becomes +X or +Y.

    Only the heading changes, so a floor already set stays the floor (Blender's Set X/Y Axis).
    """
    d = np.asarray(p1, np.float64) - np.asarray(p0, np.float64)
    d = _unit(np.array([d[0], d[1], 0.0]), "the axis direction's horizontal part (the two points are "
              "vertically aligned)")
    target = {"X": np.array([1.0, 0.0, 0.0]), "Y": np.array([0.0, 1.0, 0.0])}.get(axis.upper())
    if target is None:
        raise OrientError(f"unknown axis {axis!r}; use 'X' or 'Y'")
    return _rotation_about_z(d, target)


def scale_transform(p0: np.ndarray, p1: np.ndarray, distance: float) -> np.ndarray:
    """S scaling uniformly about the origin so that |p1 − p0| becomes `distance`."""
    if not (distance > 0 and np.isfinite(distance)):
        raise OrientError(f"the distance must be positive, not {distance}")
    d = float(np.linalg.norm(np.asarray(p1, np.float64) - np.asarray(p0, np.float64)))
    if d < 1e-12:
        raise OrientError("the two points coincide; they cannot set a scale")
    return _similarity(s=distance / d)


def travel_scale_transform(centres: np.ndarray, distance: float) -> np.ndarray:
    """S scaling about the origin so the camera's travel (first to last centre, (N, 3)) is `distance`."""
    c = np.asarray(centres, np.float64).reshape(-1, 3)
    if len(c) < 2:
        raise OrientError("the camera's travel needs at least two camera positions")
    return scale_transform(c[0], c[-1], distance)


def flip_transform() -> np.ndarray:
    """S turning the scene upside down about the X axis (for a floor set from below)."""
    return _similarity(np.diag([1.0, -1.0, -1.0]))


def decompose_similarity(S: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(scale, rotation (3,3), translation (3,)) of a 4x4 similarity."""
    S = np.asarray(S, np.float64)
    s = float(np.cbrt(np.linalg.det(S[:3, :3])))
    return s, S[:3, :3] / s, S[:3, 3].copy()
