"""GPU tier, the demo network's training: the renderer on CUDA (culled, compiled) gives the CPU's batches,
and a short run with every speed option of train.py works end to end."""

import dataclasses

import torch
from helpers_training import run_with_every_speed_option
from pointmap.training import render
from pointmap.training.data import draw_views, make_pairs_batch, render_drawn
from pointmap.training.scenes import scenes_to

SEEDS = list(range(310_000_000, 310_000_012))
FRAME = (112, 160)


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
    settings = run_with_every_speed_option(tmp_path, monkeypatch)
    assert settings[-1]["device"] != "cpu"
