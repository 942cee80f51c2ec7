"""training/eval_cameras.py: one held-out scene rendered, reconstructed with a tiny random model, scored."""

from __future__ import annotations

import json

import torch
from pointmap.training.config import DEMO_CONFIG
from pointmap.training.eval_cameras import main, views_for_seed
from pointmap.training.export import export
from pointmap.training.scenes import EVAL_SEED_BASE
from pointmap.training.train import new_model, save_checkpoint

TINY = {"enc_embed_dim": 32, "enc_depth": 1, "enc_num_heads": 2, "dec_embed_dim": 16, "dec_depth": 1,
        "dec_num_heads": 1, "img_size": [32, 32]}


def test_smoke_scores_one_evaluation_scene_and_reuses_its_render(tmp_path):
    torch.manual_seed(0)
    cfg = {**DEMO_CONFIG, **TINY}
    save_checkpoint(new_model("cpu", cfg), 5, {"config": cfg}, tmp_path / "ckpt")
    model = export(tmp_path / "ckpt", tmp_path / "model")
    out = tmp_path / "eval.json"
    args = [str(model), "--smoke", "--scene-dir", str(tmp_path / "scenes"), "--out", str(out)]
    result = main(args)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["training_step"] == 5 and result["complete"]
    (scene,) = result["per_scene"]
    assert scene["seed"] >= EVAL_SEED_BASE and scene["views"] == 2 and scene["render_s"] > 0
    folder = tmp_path / "scenes" / f"scene_{scene['seed']}"
    truth = json.loads((folder / "cameras.json").read_text())["cameras"]
    assert sorted(truth) == ["view_00.png", "view_01.png"] and truth["view_00.png"]["width"] == 64
    agg = result["aggregate"]
    assert agg["scenes"] == 1 and agg["rotation_deg_mean"]["median"] == scene["rotation_deg_mean"]
    assert abs(scene["focal_pct_signed_mean"]) <= scene["focal_pct_mean"] + 1e-9   # |mean| <= mean of |.|
    again = main(args)                  # same seed and settings: the rendered scene is reused, same score
    assert again["per_scene"][0]["render_s"] == 0.0
    assert again["per_scene"][0]["rotation_deg"] == scene["rotation_deg"]
    # other render settings in the folder (here: a stale extra view): the scene is redrawn, the stray view goes
    (folder / "view_00.png").rename(folder / "view_07.png")
    redrawn = main(args)
    assert redrawn["per_scene"][0]["render_s"] > 0 and not (folder / "view_07.png").exists()


def test_views_per_scene_follow_the_seed_and_stay_in_range():
    counts = [views_for_seed(EVAL_SEED_BASE + i, (4, 6)) for i in range(40)]
    assert set(counts) == {4, 5, 6}
    assert counts == [views_for_seed(EVAL_SEED_BASE + i, (4, 6)) for i in range(40)]


def test_scoring_unusable_files_is_a_sentence_naming_the_file(tmp_path):
    """score_cameras on a missing or foreign file: one line naming it, no traceback (issue 14, item 6)."""
    import subprocess
    import sys

    from helpers_synthrecon import make_synthetic_recon

    make_synthetic_recon(n_views=2).save(tmp_path / "r.npz")
    (tmp_path / "not.json").write_text("[1, 2")
    (tmp_path / "other.json").write_text('{"cameras": {"someone_else.png": {}}}')
    (tmp_path / "fake.npz").write_bytes(b"not a zip")
    cases = [(tmp_path / "missing.npz", tmp_path / "not.json", "missing.npz does not exist"),
             (tmp_path / "fake.npz", tmp_path / "not.json", "fake.npz is not a saved pointmap reconstruction"),
             (tmp_path / "r.npz", tmp_path / "none.json", "none.json does not exist"),
             (tmp_path / "r.npz", tmp_path / "not.json", "not.json is not a cameras file"),
             (tmp_path / "r.npz", tmp_path / "other.json", "other.json has no camera for")]
    for recon, cameras, message in cases:
        run = subprocess.run([sys.executable, "-m", "pointmap.training.score_cameras", str(recon), str(cameras)],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 1 and message in run.stderr and "Traceback" not in run.stderr, run.stderr
