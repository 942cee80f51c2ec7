"""GPU tier, the demo network's training: the renderer on CUDA (culled, compiled) gives the CPU's batches,
and a short run with every speed option of train.py works end to end."""

import dataclasses
import json

import torch
from pointmap.training import render
from pointmap.training.data import draw_views, make_pairs_batch, render_drawn
from pointmap.training.scenes import scenes_to
from pointmap.training.train import load_checkpoint_parts, main

SEEDS = list(range(310_000_000, 310_000_012))
FRAME = (112, 160)
TINY = {"enc_embed_dim": 32, "enc_depth": 1, "enc_num_heads": 2, "dec_embed_dim": 16, "dec_depth": 1,
        "dec_num_heads": 1, "img_size": [32, 32]}


def _mostly_equal(a: torch.Tensor, b: torch.Tensor, tol: float, share: float = 0.999) -> bool:
    """Within tol at all but (1 - share) of the entries: a ray grazing an edge may flip to another surface."""
    return float(((a.cpu() - b.cpu()).abs() <= tol).float().mean()) >= share


def test_cuda_render_matches_the_cpu_render():
    """Geometry and shading agree with the CPU's; the sensor noise comes from the device's own generator, so the
    images are compared without it."""
    drawn = draw_views(SEEDS, 2, FRAME, fov_deg=(25.0, 80.0))
    cpu, gpu = (render.render(scenes_to(drawn.scenes, dev), drawn.cam2world.to(dev), drawn.K.to(dev), FRAME,
                              supersample=1, photometric=False) for dev in ("cpu", "cuda"))
    assert _mostly_equal(gpu.depth, cpu.depth, 1e-4)
    assert _mostly_equal(gpu.points, cpu.points, 1e-4)
    assert _mostly_equal(gpu.image, cpu.image, 2e-3)


def test_a_cuda_batch_is_a_function_of_its_seeds():
    """The sensor noise is seeded by the batch, not drawn from the global CUDA stream."""
    drawn = draw_views(SEEDS, 2, FRAME, fov_deg=(25.0, 80.0))
    first, _, _ = render_drawn(drawn, FRAME, "cuda", supersample=1)
    torch.randn(1000, device="cuda")                                     # moves the global stream on
    second, _, _ = render_drawn(drawn, FRAME, "cuda", supersample=1)
    assert torch.equal(first.image, second.image)
    other, _, _ = render_drawn(dataclasses.replace(drawn, jitter_seed=drawn.jitter_seed + 1), FRAME, "cuda",
                               supersample=1)
    assert not torch.equal(first.image, other.image)


def test_compiled_renderer_gives_the_eager_batches(monkeypatch):
    for name in ("_object_hit", "_sphere_mask", "albedo"):             # restored after the test
        monkeypatch.setattr(render, name, getattr(render, name))
    eager = make_pairs_batch(SEEDS, FRAME, device="cuda", supersample=1, fov_deg=(25.0, 80.0))
    render.compile_kernels()
    compiled = make_pairs_batch(SEEDS, FRAME, device="cuda", supersample=1, fov_deg=(25.0, 80.0))
    for name in ("img1", "img2", "pts1", "pts2"):
        assert _mostly_equal(getattr(compiled, name), getattr(eager, name), 2e-3), name


def test_a_short_cuda_run_with_every_speed_option(tmp_path, monkeypatch):
    """--draw-workers, --compile-render, --accumulate and --optim-state together, then a resumed stretch."""
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
    assert settings[-1]["optim_state_loaded"] and settings[-1]["device"] != "cpu"
