"""Training frames of several aspects (portrait too) and the loader rule for networks trained on them.

Training: renders at (H, W) keep exact ground truth; the per-step frame is a pure function of (seed, step);
a run with aspects exports `"pointmap_crop": "whole"`. Inference: a folder declaring it gets whole photos
at 224 (a 512x384 photo -> 224x160), intrinsics in original pixels exact; folders without it (the shipped
v2 weights, every official checkpoint) keep DUSt3R's central square; `input_crop` forces either.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from pointmap.core.io.images import dust3r_plan, load_images
from pointmap.training.cameras import aspect_shape, draw_shape, parse_aspect, sample_views
from pointmap.training.config import DEMO_CONFIG
from pointmap.training.data import make_pairs_batch, render_views
from pointmap.training.scenes import sample_scene

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = sorted((ROOT / "samples" / "photos").glob("*.jpg"))
# A tiny network at the demo's input size, so the 224 loader rules apply to it.
TINY224 = {"enc_embed_dim": 32, "enc_depth": 1, "enc_num_heads": 2, "dec_embed_dim": 16, "dec_depth": 1,
           "dec_num_heads": 1, "img_size": [224, 224]}


def _check_reprojection(size: tuple[int, int]) -> None:
    h, w = size
    r, c2w, K = render_views([7], 2, size, supersample=1)
    assert r.image.shape == (1, 2, h, w, 3) and r.points.shape == (1, 2, h, w, 3)
    vv, uu = np.mgrid[0:h, 0:w]
    for v in range(2):
        T = c2w[0, v]
        cam = (r.points[0, v] - T[:3, 3]) @ T[:3, :3]               # world -> camera v
        np.testing.assert_allclose(cam[..., 2].numpy(), r.depth[0, v].numpy(), rtol=1e-4, atol=1e-5)
        uvw = cam @ K[0, v].T
        uv = (uvw[..., :2] / uvw[..., 2:]).numpy()
        np.testing.assert_allclose(uv[..., 0], uu, atol=2e-3)
        np.testing.assert_allclose(uv[..., 1], vv, atol=2e-3)
        # principal point near the centre of THIS frame, not of a square
        assert abs(float(K[0, v, 0, 2]) - (w - 1) / 2) <= 0.02 * w + 1e-6
        assert abs(float(K[0, v, 1, 2]) - (h - 1) / 2) <= 0.02 * h + 1e-6


@pytest.mark.parametrize("size", [(16, 32), (32, 16)], ids=["landscape", "portrait"])
def test_world_points_reproject_through_K_into_their_pixels(size):
    _check_reprojection(size)


def test_field_of_view_is_the_long_sides_and_squares_keep_their_draws():
    for seed in range(6):
        scene = sample_scene(seed)
        _, K_sq = sample_views(scene, 2, (32, 32), torch.Generator().manual_seed(seed))
        _, K_land = sample_views(scene, 2, (24, 32), torch.Generator().manual_seed(seed))
        _, K_port = sample_views(scene, 2, (32, 24), torch.Generator().manual_seed(seed))
        # one draw, one long side: the same lens in all three frames
        assert float(K_sq[0, 0, 0]) == float(K_land[0, 0, 0]) == float(K_port[0, 0, 0])
        fov = math.degrees(2 * math.atan(16 / float(K_port[0, 0, 0])))     # vertical = the portrait's long side
        assert 40 <= fov <= 80


def test_pair_batch_of_a_portrait_frame_has_the_right_shapes():
    b = make_pairs_batch([3, 4], (32, 16), supersample=1)
    assert b.img1.shape == b.img2.shape == (2, 3, 32, 16)
    assert b.pts1.shape == b.pts2.shape == (2, 32, 16, 3)
    assert b.cam2world.shape == (2, 2, 4, 4) and b.K.shape == (2, 2, 3, 3)
    # view 1's points are in view 1's frame: they reproject into view 1's pixels
    uvw = b.pts1[0] @ b.K[0, 0].T
    vv, uu = np.mgrid[0:32, 0:16]
    np.testing.assert_allclose((uvw[..., 0] / uvw[..., 2]).numpy(), uu, atol=2e-3)
    np.testing.assert_allclose((uvw[..., 1] / uvw[..., 2]).numpy(), vv, atol=2e-3)


def test_training_frames_are_the_loaders_frames():
    assert aspect_shape((4, 3), 224) == (160, 224) and aspect_shape((3, 4), 224) == (224, 160)
    assert aspect_shape((16, 9), 224) == (112, 224) and aspect_shape((1, 1), 224) == (224, 224)
    for w0, h0 in ((512, 384), (384, 512), (1920, 1080), (640, 640)):
        img = np.zeros((h0, w0, 3), np.uint8)
        loaded = load_images(img, size=224, whole_frame=True)[0]
        assert loaded.true_shape == aspect_shape((w0, h0), 224)
    assert parse_aspect("9:16=0.5") == ((9, 16), 0.5)
    for bad in ("4x3", "4:0", "4:3=-1", "a:b"):
        with pytest.raises(ValueError, match="aspect"):
            parse_aspect(bad)


def test_frame_per_step_is_a_function_of_seed_and_step():
    from pointmap.training.train import training_frames

    shapes, weights = training_frames(["1:1", "4:3=2", "3:4", "1:1"], 224)
    assert shapes == [(224, 224), (160, 224), (224, 160)] and weights == [2.0, 2.0, 1.0]
    a = [draw_shape(shapes, weights, 3, s) for s in range(300)]
    assert a == [draw_shape(shapes, weights, 3, s) for s in range(300)]          # every rank alike
    assert a != [draw_shape(shapes, weights, 4, s) for s in range(300)]
    counts = {s: a.count(s) for s in shapes}
    assert counts[(224, 160)] < counts[(160, 224)] and min(counts.values()) > 30
    assert draw_shape([(224, 224)], [1.0], 3, 5) == (224, 224)


def test_training_with_aspects_logs_frames_and_exports_a_whole_frame_model(tmp_path):
    from pointmap.core.weights.checkpoint import CROP_KEY, load_checkpoint
    from pointmap.training.export import export
    from pointmap.training.train import main

    tiny = {k: v for k, v in TINY224.items() if k != "img_size"} | {"img_size": [32, 32]}
    common = ["--size", "32", "--batch", "2", "--supersample", "1", "--warmup", "1", "--log-every", "1",
              "--eval-pairs", "1", "--model-config", json.dumps(tiny)]
    run = tmp_path / "run"
    main(["--rundir", str(run), "--total-steps", "1", "--eval-every", "9", "--aspects", "1:1", "4:3", "3:4",
          "--eval-aspects", "4:3", *common])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all(set(r["frames"]) <= {"32x32", "32x16", "16x32"} for r in log if not r.get("final"))
    assert "eval_regr" in log[-1] and "eval_regr_32x16" in log[-1]
    settings = json.loads((run / "settings.jsonl").read_text().splitlines()[-1])
    assert settings["input_crop"] == "whole" and settings["frames_hw"] == [[32, 32], [16, 32], [32, 16]]
    out = export(run / "ckpt", tmp_path / "whole")
    assert json.loads((out / "config.json").read_text())[CROP_KEY] == "whole"
    assert load_checkpoint(out)[1].input_crop == "whole"
    # (a square-only run's export: test_training.py's export test)
    with pytest.raises(SystemExit):
        main(["--rundir", str(tmp_path / "bad"), "--aspects", "4x3", *common])
    from pointmap.training.export import main as export_main

    with pytest.raises(SystemExit):                                   # argparse's one-line error, no traceback
        export_main([str(tmp_path / "no-such-checkpoint"), str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------
# inference: the loader rule a model declares
# ------------------------------------------------------------------------------------------------

def test_whole_frame_plan_at_224():
    assert dust3r_plan(512, 384, 224)[2] == (37, 0, 261, 224)                         # the official square
    (w1, h1), _, box = dust3r_plan(512, 384, 224, whole_frame=True)
    assert (w1, h1) == (224, 168) and box == (0, 4, 224, 164)                         # 224x160
    assert dust3r_plan(384, 512, 224, whole_frame=True)[2] == (4, 0, 164, 224)       # portrait 160x224
    assert dust3r_plan(300, 300, 224, square_ok=True, whole_frame=True)[2] == (0, 0, 224, 224)
    assert dust3r_plan(512, 384, 512, whole_frame=True) == dust3r_plan(512, 384, 512)    # other sizes as before


def test_shipped_weights_declare_whole_frames():
    """The shipped version (4, like 3) was trained on whole frames of several aspects: its config.json says
    so, and the key is ours (read by the loader, never passed to the official constructor)."""
    from pointmap.core.weights.bundled import demo_path
    from pointmap.core.weights.checkpoint import read_checkpoint

    raw = read_checkpoint(demo_path())          # memory-mapped: no network is built
    assert raw.input_crop == "whole" and "pointmap_crop" not in raw.kwargs


def test_a_bad_crop_value_names_the_config(tmp_path):
    from pointmap.core.errors import CheckpointError
    from pointmap.core.weights.checkpoint import read_checkpoint

    folder = _tiny_folder(tmp_path, "whole")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "pointmap_crop": "circle"}))
    with pytest.raises(CheckpointError, match="config.json: pointmap_crop must be one of"):
        read_checkpoint(folder)


def _tiny_folder(tmp_path: Path, crop: str) -> Path:
    """A tiny random DUSt3R at 224 exported through training/export.py with `crop`."""
    from pointmap.training.export import export
    from pointmap.training.train import new_model, save_checkpoint

    torch.manual_seed(0)
    config = {**DEMO_CONFIG, **TINY224}
    save_checkpoint(new_model("cpu", config), 5, {"config": config}, tmp_path / f"ckpt_{crop}")
    return export(tmp_path / f"ckpt_{crop}", tmp_path / f"model_{crop}", crop)


def _net_to_orig(w0, h0, w1, h1, left, top):
    sx, sy = w0 / w1, h0 / h1
    return np.array([[sx, 0, (left + 0.5) * sx - 0.5], [0, sy, (top + 0.5) * sy - 0.5], [0, 0, 1]])


def test_reconstruct_uses_the_declared_frames_and_the_override(tmp_path):
    from pointmap.core import reconstruct
    from pointmap.core.options import AlignOptions, ReconstructOptions

    photos = [str(p) for p in PHOTOS[:2]]
    whole = str(_tiny_folder(tmp_path, "whole"))

    def run(model, crop="auto"):
        return reconstruct(photos, model, ReconstructOptions(device="cpu", input_crop=crop,
                                                             align=AlignOptions(iterations=5)))

    rec = run(whole)
    assert rec.depth[0].shape == (160, 224) and rec.meta["input_crop"] == "whole"
    assert tuple(rec.image_sizes[0]) == (384, 512)
    np.testing.assert_allclose(rec.net_to_orig[0], _net_to_orig(512, 384, 224, 168, 0, 4), rtol=1e-12)
    np.testing.assert_allclose(rec.K, rec.net_to_orig @ rec.K_net, rtol=1e-12)      # K in original pixels
    # the principal point stays the photo's centre: the crop is central
    np.testing.assert_allclose(rec.net_to_orig[0] @ [111.5, 79.5, 1], [255.5, 191.5, 1], atol=1e-9)

    forced = run(whole, "square")
    assert forced.depth[0].shape == (224, 224) and forced.meta["input_crop"] == "square"
    np.testing.assert_allclose(forced.net_to_orig[0], _net_to_orig(512, 384, 299, 224, 37, 0), rtol=1e-12)
    # (the shipped folder through reconstruct, square: test_training.py's end-to-end demo test)


def test_the_option_overrides_what_the_model_declares():
    from pointmap.core.options import ReconstructOptions
    from pointmap.core.pipeline import whole_frame_input

    declared, undeclared, old = torch.nn.Module(), torch.nn.Module(), torch.nn.Module()
    declared.input_crop, undeclared.input_crop = "whole", "square"     # `old`: a model built by hand
    assert [whole_frame_input(ReconstructOptions(), m) for m in (declared, undeclared, old)] == [True, False, False]
    assert not whole_frame_input(ReconstructOptions(input_crop="square"), declared)
    assert whole_frame_input(ReconstructOptions(input_crop="whole"), old)
    with pytest.raises(ValueError, match="input_crop"):
        ReconstructOptions(input_crop="circle").check()


def test_a_shot_uses_the_whole_frame_rule_too(tmp_path):
    from PIL import Image
    from pointmap.core.io.video import load_sequence

    for n in (1001, 1002):
        Image.fromarray(np.full((384, 512, 3), n % 250, np.uint8)).save(tmp_path / f"plate.{n}.png")
    whole = load_sequence(tmp_path, "dust3r", 224, whole_frame=True)
    assert [im.true_shape for im in whole.images.images] == [(160, 224)] * 2
    assert load_sequence(tmp_path, "dust3r", 224).images[0].true_shape == (224, 224)
