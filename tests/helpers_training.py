"""A short training run with every speed option of train.py, shared by the CPU suite and the GPU tier."""

from __future__ import annotations

import json
from pathlib import Path

TINY = {"enc_embed_dim": 32, "enc_depth": 1, "enc_num_heads": 2, "dec_embed_dim": 16, "dec_depth": 1,
        "dec_num_heads": 1, "img_size": [32, 32]}


def run_with_every_speed_option(tmp_path: Path, monkeypatch) -> list[dict]:
    """--draw-workers, --compile-render, --accumulate and --optim-state together for 4 steps, then a resumed
    stretch to step 6; checks the checkpoint and the log, returns the runs' settings records. The renderer's
    compiled kernels are restored after the test through monkeypatch."""
    from pointmap.training import render
    from pointmap.training.train import load_checkpoint_parts, main

    for name in ("_object_hit", "_sphere_mask", "albedo"):
        monkeypatch.setattr(render, name, getattr(render, name))
    run, moments = tmp_path / "run", tmp_path / "adamw.pt"
    common = ["--rundir", str(run), "--size", "32", "--batch", "4", "--accumulate", "2",
              "--supersample", "1", "--warmup", "1", "--log-every", "2", "--eval-every", "100", "--eval-pairs", "4",
              "--draw-workers", "2", "--compile-render", "--optim-state", str(moments),
              "--aspects", "1:1", "4:3", "--model-config", json.dumps(TINY)]
    main(common + ["--total-steps", "4", "--ckptdir", str(tmp_path / "c1")])
    main(common + ["--total-steps", "6", "--resume", str(tmp_path / "c1"), "--ckptdir", str(tmp_path / "c2")])
    _, step = load_checkpoint_parts(tmp_path / "c2")
    assert step == 6
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    rates = [r["pairs_per_s"] for r in records if "pairs_per_s" in r]
    assert len(rates) == 3 and all(r > 0 for r in rates)
    settings = [json.loads(line) for line in (run / "settings.jsonl").read_text().splitlines()]
    assert settings[-1]["optim_state_loaded"] and settings[-1]["compile_render"]
    return settings
