"""The core package imports without Blender and the shared dataclasses round-trip."""

import subprocess
import sys

import numpy as np
from pointmap.core import Cancelled, CancelToken, Reconstruction


def test_core_imports_without_bpy_or_torch():
    code = "import sys, pointmap, pointmap.core; assert 'bpy' not in sys.modules; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cancel_token():
    tok = CancelToken()
    tok.check()
    tok.cancel()
    try:
        tok.check()
    except Cancelled as err:
        assert "Cancelled" in str(err)
    else:
        raise AssertionError("check() did not raise after cancel()")


def _tiny_recon(n=2, h=4, w=6):
    rng = np.random.default_rng(0)
    return Reconstruction(
        names=[f"v{i}" for i in range(n)], paths=[None, "/x/y.png"][:n],
        image_sizes=np.array([[h * 2, w * 2]] * n, np.int32),
        cam2world=np.stack([np.eye(4)] * n), K=np.stack([np.eye(3)] * n), K_net=np.stack([np.eye(3)] * n),
        net_to_orig=np.stack([np.eye(3)] * n),
        depth=[rng.random((h, w), dtype=np.float32) for _ in range(n)],
        points=[rng.random((h, w, 3), dtype=np.float32) for _ in range(n)],
        conf=[rng.random((h, w), dtype=np.float32) for _ in range(n)],
        colors=[rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)],
        family="synthetic", warnings=["w"], meta={"a": 1},
    )


def test_reconstruction_roundtrip(tmp_path):
    rec = _tiny_recon()
    rec.validate()
    rec.save(tmp_path / "r.npz")
    back = Reconstruction.load(tmp_path / "r.npz")
    back.validate()
    assert back.names == rec.names and back.paths == rec.paths and back.meta == {"a": 1}
    for a, b in zip(rec.points, back.points, strict=True):
        np.testing.assert_array_equal(a, b)
    assert back.family == "synthetic" and back.frame_numbers is None and back.fps is None and not back.metric_scale


def test_reconstruction_roundtrip_sequence_fields(tmp_path):
    rec = _tiny_recon()
    rec.frame_numbers = np.array([1001, 1003])
    rec.fps, rec.metric_scale = 23.976, True
    rec.validate()
    rec.save(tmp_path / "r.npz")
    back = Reconstruction.load(tmp_path / "r.npz")
    np.testing.assert_array_equal(back.frame_numbers, [1001, 1003])
    assert back.frame_numbers.dtype == np.int64 and back.fps == 23.976 and back.metric_scale
    rec.frame_numbers = np.array([1, 2, 3])
    try:
        rec.validate()
    except ValueError as e:
        assert "frame_numbers" in str(e)
    else:
        raise AssertionError("a frame_numbers array of the wrong length must be refused")
