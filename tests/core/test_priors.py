"""Known cameras from the user (issue #10, point 4): one lens or one K per image, and known poses by file name,
image name, index or clip frame number, on every backend (tiny random-weight models: the plumbing, not the
geometry, except where the result is fixed by the priors themselves)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import FIXTURES
from pointmap.core import InputError, reconstruct
from pointmap.core.align.anchor import anchor_to_known_poses, anchor_warnings
from pointmap.core.options import AlignOptions, ReconstructOptions, SequenceOptions, VGGTOptions
from pointmap.core.priors import resolve_priors

PARITY = FIXTURES / "parity"
IMAGES = [str(PARITY / "images" / n) for n in ("view_a_150x100.png", "view_b_150x100.png",
                                               "view_c_portrait_100x150.png")]
K_LENS = np.array([[120.0, 0, 70.0], [0, 126.0, 45.0], [0, 0, 1]])   # off-centre, fx != fy


def _rot(axis, deg):
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.radians(deg)
    X = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * X + (1 - np.cos(t)) * X @ X


def _pose(axis, deg, centre):
    T = np.eye(4)
    T[:3, :3] = _rot(axis, deg)
    T[:3, 3] = centre
    return T


class _Im:
    def __init__(self, name, path=None):
        self.name, self.path = name, path


def test_resolve_matches_names_indices_and_frames():
    ims = [_Im("a", "/x/a.jpg"), _Im("b", "/x/b.png"), _Im("c", None)]
    T = _pose([0, 1, 0], 10, [1, 2, 3])
    p = resolve_priors(K_LENS, {"a.jpg": T, "b": T, 2: T}, ims)
    assert p.intrinsics.shape == (3, 3, 3) and np.array_equal(p.intrinsics[2], K_LENS)
    assert sorted(p.known_poses) == [0, 1, 2]
    shot = resolve_priors(None, {1003: T, "1001": T}, ims, frame_numbers=[1001, 1002, 1003])
    assert sorted(shot.known_poses) == [0, 2]
    for known, match in (({"nope.jpg": T}, "no image has that file name"), ({5: T}, "there are 3 images"),
                         ({"a": T, "a.jpg": T}, "same view"), ({"a": np.eye(3)}, "4x4")):
        with pytest.raises(InputError, match=match):
            resolve_priors(None, known, ims)
    with pytest.raises(InputError, match="no such frame"):
        resolve_priors(None, {999: T}, ims, frame_numbers=[1001, 1002, 1003])
    with pytest.raises(InputError, match="2 intrinsics were given for 3 images"):
        resolve_priors(np.stack([K_LENS] * 2), None, ims)
    with pytest.raises(InputError, match="skipped"):
        resolve_priors(np.stack([K_LENS] * 3), None, ims, skipped=1)
    with pytest.raises(InputError, match="name the photos"):
        resolve_priors(None, {0: T}, ims, skipped=1)
    with pytest.raises(InputError, match="one 3x3 K for the whole shot"):
        resolve_priors(np.stack([K_LENS] * 3), None, ims, frame_numbers=[1, 2, 3])


def test_options_refuse_bad_priors():
    for bad, match in ((ReconstructOptions(intrinsics=np.eye(4)), "3x3"),
                       (ReconstructOptions(intrinsics=-K_LENS), "positive"),
                       (ReconstructOptions(intrinsics=K_LENS, known_focal_mm=35.0), "not both"),
                       (ReconstructOptions(known_poses={"a": np.diag([1, 1, -1, 1.0])}), "not a rotation"),
                       (ReconstructOptions(known_poses=[np.eye(4)]), "must be a dict")):
        with pytest.raises(ValueError, match=match):
            bad.check()


def test_anchor_recovers_the_known_world():
    """A solve that is the truth seen through an unknown similarity comes back exactly in the known world."""
    rng = np.random.default_rng(0)
    truth = np.stack([_pose(rng.normal(size=3), rng.uniform(5, 40), rng.normal(size=3) * 2) for _ in range(6)])
    S = _pose([1, 2, 3], 33, [4, -1, 2])
    s = 0.37
    pred = np.linalg.inv(S) @ truth
    pred[:, :3, 3] /= s
    pts_true = [rng.normal(size=(4, 5, 3)) for _ in range(6)]
    pts_pred = [((p - S[:3, 3]) @ S[:3, :3]) / s for p in pts_true]
    depth = [np.ones((4, 5), np.float32) for _ in range(6)]
    known = {1: truth[1], 4: truth[4]}
    c2w, pts, dep, info = anchor_to_known_poses(pred, pts_pred, depth, known)
    np.testing.assert_allclose(c2w, truth, atol=1e-9)
    np.testing.assert_allclose(np.stack(pts), np.stack(pts_true), atol=1e-5)
    np.testing.assert_allclose(dep[0], s, rtol=1e-6)
    assert info["scale_fixed"] and max(r["rotation_deg"] for r in info["residual"].values()) < 1e-4
    assert anchor_warnings(info, [f"v{i}" for i in range(6)], known) == []
    # One known camera: placed and turned, the scale stays the solve's, and the report says so.
    c2w1, _, dep1, info1 = anchor_to_known_poses(pred, pts_pred, depth, {2: truth[2]})
    np.testing.assert_allclose(c2w1[2], truth[2], atol=1e-12)
    assert not info1["scale_fixed"] and dep1[0][0, 0] == 1.0
    assert "not its scale" in anchor_warnings(info1, [f"v{i}" for i in range(6)], {2: truth[2]})[0]
    # A known pose the solve contradicts is set anyway, and named.
    wrong = {1: truth[1], 4: truth[4] @ _pose([0, 0, 1], 30, [0, 0, 0])}
    c2w2, _, _, info2 = anchor_to_known_poses(pred, pts_pred, depth, wrong)
    np.testing.assert_allclose(c2w2[4], wrong[4], atol=1e-12)
    assert "disagrees with" in anchor_warnings(info2, [f"v{i}" for i in range(6)], wrong)[0]


@pytest.fixture(scope="module")
def tiny_dust3r():
    from pointmap.core.weights.checkpoint import load_checkpoint

    return load_checkpoint(PARITY / "dust3r_tiny_linear" / "model.pth")[0]


def test_pairwise_keeps_known_intrinsics_and_poses(tiny_dust3r):
    T0, T2 = _pose([0, 1, 0], 5, [0.2, 0, 0]), _pose([0, 1, 0], -20, [1.5, 0.1, -0.3])
    opts = ReconstructOptions(image_size=64, align=AlignOptions(iterations=5), intrinsics=K_LENS,
                              known_poses={"view_a_150x100.png": T0, "view_c_portrait_100x150": T2})
    rec = reconstruct(IMAGES, tiny_dust3r, opts)
    np.testing.assert_allclose(rec.K, np.stack([K_LENS] * 3), atol=1e-9)
    np.testing.assert_allclose(rec.cam2world[0], T0, atol=1e-6)
    np.testing.assert_allclose(rec.cam2world[2], T2, atol=1e-6)


def _reprojects(rec, atol=1e-3):
    for i in range(rec.n_views):
        w2c = np.linalg.inv(rec.cam2world[i])
        cam = rec.points[i].reshape(-1, 3).astype(np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
        uv = cam @ rec.K_net[i].T
        h, w = rec.depth[i].shape
        grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).reshape(-1, 2)
        np.testing.assert_allclose(uv[:, :2] / uv[:, 2:], grid, atol=atol)
        np.testing.assert_allclose(cam[:, 2], rec.depth[i].reshape(-1), rtol=1e-4, atol=1e-6)


def test_vggt_uses_known_intrinsics_and_lands_on_known_poses():
    from helpers_vggt import tiny_inputs, tiny_model
    from PIL import Image

    frames = [str(p) for p in tiny_inputs()[:3]]
    w0, h0 = Image.open(frames[0]).size
    K = np.array([[0.9 * w0, 0, 0.45 * w0], [0, 0.95 * w0, 0.55 * h0], [0, 0, 1]])
    names = [p.rsplit("/", 1)[-1] for p in frames]
    known = {names[0]: _pose([1, 0, 0], 10, [0, 0, 1]), names[2]: _pose([0, 1, 1], 25, [2, 0.5, 1])}
    model = tiny_model("pt")
    rec = reconstruct(frames, model, ReconstructOptions(image_size=56, intrinsics=K, known_poses=known))
    np.testing.assert_allclose(rec.K, np.stack([K] * 3), atol=1e-9)
    np.testing.assert_allclose(rec.cam2world[0], known[names[0]], atol=1e-9)
    np.testing.assert_allclose(rec.cam2world[2], known[names[2]], atol=1e-9)
    assert rec.meta["known_poses"]["scale_fixed"]
    _reprojects(rec)
    # A known focal length (mm) on VGGT: the lens is kept, with the principal point VGGT assumes.
    mm = reconstruct(frames, model, ReconstructOptions(image_size=56, known_focal_mm=50.0))
    np.testing.assert_allclose(mm.K[:, 0, 0], 50 / 36 * max(w0, h0), rtol=1e-9)
    _reprojects(mm)


def test_vggt_shot_keeps_the_lens(tmp_path):
    pytest.importorskip("av")
    from helpers_movie import write_movie
    from helpers_vggt import tiny_model

    movie = tmp_path / "clip.mp4"
    write_movie(movie)
    opts = ReconstructOptions(device="cpu", image_size=56, intrinsics=K_LENS,
                              known_poses={1003: _pose([0, 1, 0], 3, [0, 0, 0]), 1009: _pose([0, 1, 0], 9, [1, 0, 0])},
                              sequence=SequenceOptions(first_frame=1001, chunk=8))
    rec = reconstruct(str(movie), tiny_model("pt"), opts)
    np.testing.assert_allclose(rec.K, np.broadcast_to(K_LENS, rec.K.shape), atol=1e-9)
    k = {int(f): i for i, f in enumerate(rec.frame_numbers)}
    np.testing.assert_allclose(rec.cam2world[k[1009]], opts.known_poses[1009], atol=1e-9)


def test_da3_known_intrinsics_all_poses_conditioned_some_poses_anchored():
    from helpers_da3 import DA3_PARITY_DIR, manifest, tiny_model

    spec = next(c for c in manifest()["cases"].values() if len(c["source_images"]) > 1
                and not c.get("camera_conditioned"))
    paths = [str(DA3_PARITY_DIR / "images" / n) for n in spec["source_images"]]
    model = tiny_model()[0]
    from PIL import Image

    w0, h0 = Image.open(paths[0]).size
    K = np.array([[0.8 * w0, 0, w0 / 2 - 3], [0, 0.8 * w0, h0 / 2 + 2], [0, 0, 1]])
    poses = {k: _pose([0, 1, 0], 8 * k, [0.5 * k, 0, 0]) for k in range(len(paths))}
    full = reconstruct(paths, model, ReconstructOptions(intrinsics=K, known_poses=poses))
    assert full.meta["known_poses"] is True     # every camera known: the camera-conditioned mode took them
    np.testing.assert_allclose(full.cam2world, np.stack([poses[k] for k in range(len(paths))]), atol=1e-9)
    np.testing.assert_allclose(full.K, np.stack([K] * len(paths)), atol=1e-9)
    some = reconstruct(paths, model, ReconstructOptions(intrinsics=K, known_poses={1: poses[1]}))
    np.testing.assert_allclose(some.cam2world[1], poses[1], atol=1e-9)
    assert any("not its scale" in w for w in some.warnings)


def test_vggt_point_head_refuses_known_lens():
    from helpers_vggt import tiny_inputs, tiny_model
    from pointmap.core import UnsupportedOption

    frames = [str(p) for p in tiny_inputs()[:2]]
    with pytest.raises(UnsupportedOption, match="point head"):
        reconstruct(frames, tiny_model("pt"), ReconstructOptions(image_size=56, intrinsics=K_LENS,
                                                                 vggt=VGGTOptions(points="head")))


def test_pairwise_shot_holds_known_frames(tiny_dust3r, tmp_path):
    pytest.importorskip("av")
    from helpers_movie import write_movie

    movie = tmp_path / "clip.mp4"
    write_movie(movie)
    known = {1002: _pose([0, 1, 0], 2, [0, 0, 0]), 1008: _pose([0, 1, 0], 12, [0.8, 0, 0.1])}
    opts = ReconstructOptions(device="cpu", image_size=64, align=AlignOptions(iterations=5), intrinsics=K_LENS,
                              known_poses=known, sequence=SequenceOptions(first_frame=1001))
    rec = reconstruct(str(movie), tiny_dust3r, opts)
    k = {int(f): i for i, f in enumerate(rec.frame_numbers)}
    for f, T in known.items():
        np.testing.assert_allclose(rec.cam2world[k[f]], T, atol=1e-6)
    np.testing.assert_allclose(rec.K, np.broadcast_to(K_LENS, rec.K.shape), atol=1e-9)


def test_shot_known_frame_outside_the_selection_is_refused_before_decoding(tiny_dust3r, tmp_path):
    pytest.importorskip("av")
    from helpers_movie import write_movie

    movie = tmp_path / "clip.mp4"
    write_movie(movie)
    opts = ReconstructOptions(device="cpu", image_size=64, known_poses={1500: np.eye(4)},
                              sequence=SequenceOptions(first_frame=1001))
    with pytest.raises(InputError, match="frame 1500.*1001 to"):
        reconstruct(str(movie), tiny_dust3r, opts, progress=lambda p: pytest.fail(f"work started: {p}"))
