"""The demo network's training code: scene generator, renderer, loss, checkpoints, export (tiny sizes, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pointmap.training.config import DEMO_CONFIG
from pointmap.training.data import make_pairs_batch, render_views
from pointmap.training.export import export
from pointmap.training.loss import conf_regression_loss
from pointmap.training.scenes import EVAL, TRAIN, sample_scene
from pointmap.training.score_cameras import score
from pointmap.training.train import load_checkpoint_parts, main, new_model, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TINY = {"enc_embed_dim": 32, "enc_depth": 1, "enc_num_heads": 2, "dec_embed_dim": 16, "dec_depth": 1,
        "dec_num_heads": 1, "img_size": [32, 32]}


def test_scene_and_render_are_pure_functions_of_the_seed():
    a = make_pairs_batch([3, 4], (32, 40), supersample=1)
    b = make_pairs_batch([3, 4], (32, 40), supersample=1)
    c = make_pairs_batch([5, 4], (32, 40), supersample=1)
    assert torch.equal(a.img1, b.img1) and torch.equal(a.pts2, b.pts2)
    assert not torch.equal(a.pts1[0], c.pts1[0]) and torch.equal(a.pts1[1], c.pts1[1])
    assert a.img1.shape == (2, 3, 32, 40) and a.pts1.shape == (2, 32, 40, 3)
    assert float(a.img1.min()) >= -1 and float(a.img1.max()) <= 1


def test_field_of_view_range_is_honoured_and_the_default_keeps_the_old_draws():
    import math

    from pointmap.training.cameras import sample_views
    from pointmap.training.scenes import sample_scene

    def fovs(rng):
        out = []
        for seed in range(40):
            g = torch.Generator().manual_seed(seed)
            _, K = sample_views(sample_scene(seed), 2, (32, 32), g, fov_deg=rng)
            out.append(math.degrees(2 * math.atan(16 / float(K[0, 0, 0]))))
        return out

    wide = fovs((25.0, 80.0))
    assert 25 <= min(wide) and max(wide) <= 80 and min(wide) < 40     # reaches below the old range
    old = fovs((40.0, 80.0))
    assert 40 <= min(old) and max(old) <= 80
    # same random stream: only the mapping of the draw changes
    assert all(abs((w - 25) / 55 - (o - 40) / 40) < 1e-6 for w, o in zip(wide, old, strict=True))


def test_points_project_onto_their_pixels_and_depth_is_z():
    r, c2w, K = render_views([7], 3, (24, 30), supersample=1)
    for v in range(3):
        T = c2w[0, v]
        cam = (r.points[0, v] - T[:3, 3]) @ T[:3, :3]               # world -> camera v
        np.testing.assert_allclose(cam[..., 2].numpy(), r.depth[0, v].numpy(), rtol=1e-4, atol=1e-5)
        uvw = cam @ K[0, v].T
        uv = (uvw[..., :2] / uvw[..., 2:]).numpy()
        vv, uu = np.mgrid[0:24, 0:30]
        np.testing.assert_allclose(uv[..., 0], uu, atol=2e-3)
        np.testing.assert_allclose(uv[..., 1], vv, atol=2e-3)
        assert bool((r.depth[0, v] > 0).all())


def test_evaluation_style_differs_from_training():
    assert set(EVAL.textures) - set(TRAIN.textures), "evaluation must use a texture training never sees"
    s_train, s_eval = sample_scene(1, TRAIN), sample_scene(1, EVAL)
    assert not torch.equal(s_train.material, s_eval.material)


def test_loss_is_scale_invariant_and_rewards_confidence_on_good_points():
    b = make_pairs_batch([11], (16, 16), supersample=1)
    one = torch.ones(b.pts1.shape[:-1])
    exact, _ = conf_regression_loss(3 * b.pts1, one * 5, 3 * b.pts2, one * 5, b.pts1, b.pts2)
    low_conf, _ = conf_regression_loss(b.pts1, one, b.pts2, one, b.pts1, b.pts2)
    assert float(exact) < float(low_conf) <= 1e-6   # zero error: only the -alpha log c term remains
    noisy, info = conf_regression_loss(b.pts1 + 0.3, one, b.pts2, one, b.pts1, b.pts2)
    assert float(noisy) > 0 and float(info["regr"]) > 0


def test_training_runs_saves_and_resumes(tmp_path):
    run = tmp_path / "run"
    args = ["--rundir", str(run), "--size", "32", "--batch", "2", "--supersample", "1", "--total-steps", "3",
            "--warmup", "1", "--log-every", "1", "--eval-every", "3", "--eval-pairs", "2",
            "--model-config", json.dumps(TINY)]
    main(args)
    sd, step = load_checkpoint_parts(run / "ckpt")
    assert step == 3
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if not r.get("final")] == [1, 2, 3] and "eval_regr" in log[-1]
    main(args[:2] + ["--model-config", json.dumps(TINY), "--resume", str(run / "ckpt"), "--ckptdir", str(tmp_path / "c2"), "--total-steps", "4",
                       "--size", "32", "--batch", "2", "--supersample", "1", "--warmup", "1", "--log-every", "1",
                       "--eval-every", "9", "--eval-pairs", "2"])
    sd2, step2 = load_checkpoint_parts(tmp_path / "c2")
    assert step2 == 4 and set(sd2) == set(sd)
    assert any(not torch.equal(sd[k], sd2[k]) for k in sd)   # the resumed step trained


def test_optimizer_moments_carry_over_to_the_next_stretch_without_re_warm_up(tmp_path):
    """--optim-state: a stretch resumed at the step the moments file holds loads them and skips the re-warm-up."""
    run, moments = tmp_path / "run", tmp_path / "keep" / "adamw.pt"
    common = ["--rundir", str(run), "--size", "32", "--batch", "2", "--supersample", "1", "--warmup", "1",
              "--log-every", "1", "--eval-every", "9", "--eval-pairs", "2", "--rewarm", "50",
              "--optim-state", str(moments), "--model-config", json.dumps(TINY)]
    main(common + ["--total-steps", "2", "--ckptdir", str(tmp_path / "c1")])
    assert torch.load(moments, weights_only=True)["step"] == 2
    main(common + ["--total-steps", "3", "--resume", str(tmp_path / "c1"), "--ckptdir", str(tmp_path / "c2")])
    settings = [json.loads(line) for line in (run / "settings.jsonl").read_text().splitlines()]
    assert [s["optim_state_loaded"] for s in settings] == [False, True] and settings[1]["rewarm"] == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    step3 = next(r for r in log if r.get("step") == 3 and not r.get("final"))
    assert step3["lr"] > 0.1 * 3e-4               # not re-warmed: a 50-step re-warm-up would give lr/50
    # moments of another step are not loaded: that stretch re-warms
    main(common + ["--total-steps", "3", "--resume", str(tmp_path / "c1"), "--ckptdir", str(tmp_path / "c3")])
    last = json.loads((run / "settings.jsonl").read_text().splitlines()[-1])
    assert last["optim_state_loaded"] is False and last["rewarm"] == 50
    # a file cut short (a stretch killed while writing it) is not trusted: the stretch re-warms
    moments.write_bytes(b"PK\x03\x04 cut short")
    main(common + ["--total-steps", "3", "--resume", str(tmp_path / "c1"), "--ckptdir", str(tmp_path / "c4")])
    last = json.loads((run / "settings.jsonl").read_text().splitlines()[-1])
    assert last["optim_state_loaded"] is False and last["rewarm"] == 50
    assert not moments.with_name("adamw.pt.partial").exists()


def test_accumulated_micro_batches_render_what_several_gpus_would(tmp_path, monkeypatch):
    """One GPU with --accumulate 3 renders, per step, the seeds that ranks 0-2 of a 3-GPU run would render."""
    import pointmap.training.train as train_mod

    seen = []
    real = train_mod.make_pairs_batch

    def spy(seeds, frame, *a, **kw):
        if all(s < 1_000_000_000 for s in seeds):       # training batches, not the held-out evaluation
            seen.append(list(seeds))
        return real(seeds, frame, *a, **kw)

    monkeypatch.setattr(train_mod, "make_pairs_batch", spy)
    run = tmp_path / "run"
    main(["--rundir", str(run), "--size", "32", "--batch", "2", "--accumulate", "3", "--supersample", "1",
          "--total-steps", "2", "--warmup", "1", "--log-every", "1", "--eval-every", "9", "--eval-pairs", "2",
          "--seed", "5", "--model-config", json.dumps(TINY)])
    ddp_layout = [[5 * 100_000_000 + (step * 3 + rank) * 2 + i for i in range(2)]
                  for step in range(2) for rank in range(3)]
    assert seen == ddp_layout
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["pairs_seen"] for r in log if not r.get("final")] == [6, 12]


def test_drawing_ahead_in_worker_processes_trains_on_the_same_batches(tmp_path):
    """--draw-workers: scenes and cameras drawn in spawned processes give the same run, weight for weight."""
    common = ["--size", "32", "--batch", "2", "--accumulate", "2", "--supersample", "1", "--total-steps", "3",
              "--warmup", "1", "--log-every", "1", "--eval-every", "9", "--eval-pairs", "2", "--seed", "6",
              "--aspects", "1:1", "4:3", "--model-config", json.dumps(TINY)]
    main(["--rundir", str(tmp_path / "a")] + common)
    main(["--rundir", str(tmp_path / "b"), "--draw-workers", "2"] + common)
    sd_a, _ = load_checkpoint_parts(tmp_path / "a" / "ckpt")
    sd_b, _ = load_checkpoint_parts(tmp_path / "b" / "ckpt")
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    # a batch drawn for other seeds is refused, not rendered under these seeds' names
    from pointmap.training.data import draw_views

    with pytest.raises(ValueError, match="not the batch of seeds 5"):
        make_pairs_batch([5, 6], (16, 16), supersample=1, drawn=draw_views([3, 4], 2, (16, 16)))


def test_a_failing_step_shuts_the_draw_workers_down(tmp_path, monkeypatch):
    """A step that raises (out of memory, a bad batch) ends the run with that error and the worker processes."""
    import pointmap.training.train as train_mod
    from pointmap.training.draw_ahead import DrawAhead

    closed = []
    close = DrawAhead.close
    monkeypatch.setattr(DrawAhead, "close", lambda self: (closed.append(self), close(self)))

    def failing_batch(*_args, **_kwargs):
        raise RuntimeError("a step that fails")

    monkeypatch.setattr(train_mod, "make_pairs_batch", failing_batch)
    with pytest.raises(RuntimeError, match="a step that fails"):
        main(["--rundir", str(tmp_path / "run"), "--size", "32", "--batch", "2", "--supersample", "1",
              "--total-steps", "2", "--draw-workers", "1", "--model-config", json.dumps(TINY)])
    assert len(closed) == 1


def test_culled_ray_casting_finds_the_hits_of_the_dense_one():
    """Intersecting each object only with the rays that meet its bounding sphere changes no hit but the odd
    grazing ray (where rounding decides whether a tangent ray touches a sphere)."""
    from pointmap.training.data import draw_views
    from pointmap.training.render import camera_rays, cast

    for style in (TRAIN, EVAL):
        drawn = draw_views(list(range(40, 46)), 2, (24, 32), style, fov_deg=(25.0, 80.0))
        o, d = camera_rays(drawn.cam2world, drawn.K, (24, 32), 2)
        dense, culled = cast(drawn.scenes, o, d, cull=False), cast(drawn.scenes, o, d, cull=True)
        same = dense.surface == culled.surface
        assert same.float().mean() > 0.999
        assert torch.allclose(dense.t[same], culled.t[same], rtol=1e-4, atol=1e-5)
        assert torch.allclose(dense.normal[same], culled.normal[same], atol=1e-3)
        assert (dense.surface < drawn.scenes.kind.shape[1]).float().mean() > 0.05     # objects are hit
        origin = dense.point - d * 1e-3
        to_light = drawn.scenes.light_pos[:, 0, None, :] - origin
        t_max = torch.ones_like(dense.t)
        blocked = cast(drawn.scenes, origin, to_light, objects_only=True, t_max=t_max, cull=False)
        assert torch.equal(blocked, cast(drawn.scenes, origin, to_light, objects_only=True, t_max=t_max))
        assert blocked.any()


def test_compiled_renderer_gives_the_eager_batches_without_recompiling_for_the_grad_mode(monkeypatch):
    """--compile-render on the CPU (inductor's C++ backend): the batches of the eager renderer, and a batch
    rendered under no_grad (training's evaluation) reuses the kernels compiled with autograd on."""
    import torch._dynamo
    from pointmap.training import render

    for name in ("_object_hit", "_sphere_mask", "albedo"):             # restored after the test
        monkeypatch.setattr(render, name, getattr(render, name))
    seeds, frame = list(range(60, 63)), (16, 24)
    eager = make_pairs_batch(seeds, frame, supersample=1, fov_deg=(25.0, 80.0))
    torch._dynamo.reset()
    render.compile_kernels()
    compiled = make_pairs_batch(seeds, frame, supersample=1, fov_deg=(25.0, 80.0))
    for name in ("img1", "img2", "pts1", "pts2"):
        close = (getattr(compiled, name) - getattr(eager, name)).abs() <= 2e-3
        assert close.float().mean() > 0.999, name
    with torch._dynamo.config.patch(error_on_recompile=True), torch.no_grad():
        again = make_pairs_batch(seeds, frame, supersample=1, fov_deg=(25.0, 80.0))
    assert torch.equal(again.img1, compiled.img1)
    torch._dynamo.reset()


def test_a_short_cpu_run_with_every_speed_option(tmp_path, monkeypatch):
    """The GPU tier's run with every speed option, on the CPU (inductor's C++ backend compiles the renderer)."""
    from helpers_training import run_with_every_speed_option

    assert run_with_every_speed_option(tmp_path, monkeypatch)[-1]["device"] == "cpu"


def test_checkpoint_roundtrip_and_export_loads_through_the_official_path(tmp_path, monkeypatch):
    import pointmap.training.train as train_mod
    from pointmap.core.weights.checkpoint import load_checkpoint

    monkeypatch.setattr(train_mod, "PART_BYTES", 64 * 1024)

    torch.manual_seed(0)
    model = new_model("cpu", {**DEMO_CONFIG, **TINY})
    save_checkpoint(model, 17, {"config": {**DEMO_CONFIG, **TINY}}, tmp_path / "ckpt")
    sd, step = load_checkpoint_parts(tmp_path / "ckpt")
    assert step == 17 and all(torch.equal(v, model.state_dict()[k].float()) for k, v in sd.items())
    assert len(list((tmp_path / "ckpt").glob("part*.safetensors"))) > 1    # split under the size limit
    out = export(tmp_path / "ckpt", tmp_path / "demo")
    sd16, step16 = load_checkpoint_parts(out)          # training can resume from the shipped float16 folder
    assert step16 == 17 and set(sd16) == set(sd) and all(v.dtype == torch.float32 for v in sd16.values())
    loaded, info = load_checkpoint(out)
    assert info.family == "dust3r" and info.input_size == 32
    # square-trained (no input_crop in its settings): config.json stays official constructor arguments only
    assert "pointmap_crop" not in json.loads((out / "config.json").read_text()) and info.input_crop == "square"
    ref = model.state_dict()
    for k, v in loaded.state_dict().items():
        torch.testing.assert_close(v, ref[k].half().float())


def test_camera_score_is_invariant_to_a_similarity_and_sees_errors():
    rng = np.random.default_rng(0)
    n = 6
    T = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        w, x, y, z = q
        T[i, :3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]]
        T[i, :3, 3] = rng.normal(size=3)
    K = np.tile(np.diag([500.0, 500.0, 1.0]), (n, 1, 1))
    S = np.eye(4)
    S[:3, :3] = 2.5 * T[1, :3, :3]
    S[:3, 3] = [1, -2, 3]
    moved = S @ T
    moved[:, :3, :3] /= 2.5
    s = score(moved, K, T, K)
    assert s["rotation_deg_max"] < 1e-4 and s["focal_pct_max"] < 1e-9 and s["centre_err_of_spread_mean"] < 1e-9
    K2 = K.copy()
    K2[:, 0, 0] = K2[:, 1, 1] = 550
    assert score(moved, K2, T, K)["focal_pct_mean"] == pytest.approx(10.0)


def test_sample_cameras_match_the_photos():
    truth = json.loads((ROOT / "samples" / "photos" / "cameras.json").read_text())["cameras"]
    photos = sorted(p.name for p in (ROOT / "samples" / "photos").glob("*.jpg"))
    assert sorted(truth) == photos
    for cam in truth.values():
        R = np.array(cam["cam2world"])[:3, :3]
        np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-6)
        assert cam["width"] == 512 and cam["height"] == 384


def test_demo_name_and_offline_default_resolve_to_the_bundled_model(tmp_path):
    from pointmap.core.errors import CheckpointError
    from pointmap.core.weights.bundled import demo_path, is_demo
    from pointmap.core.weights.registry import DEFAULT
    from pointmap.core.weights.resolve import resolve_checkpoint

    assert is_demo(resolve_checkpoint("demo")) and is_demo(resolve_checkpoint("DEMO"))
    # nothing chosen and the default official weights not downloaded: the offline default
    assert is_demo(resolve_checkpoint("", DEFAULT, str(tmp_path)))
    # an official checkpoint asked for by name is never silently replaced
    with pytest.raises(CheckpointError, match="not downloaded"):
        resolve_checkpoint(DEFAULT, "", str(tmp_path))
    assert (demo_path() / "MODEL_CARD.md").is_file()


def test_demo_model_reconstructs_the_sample_photos_end_to_end(tmp_path):
    """images -> demo network -> alignment -> Blender cameras, scored against the renders' true cameras.

    The bounds are what version 6 of the demo model reaches (model card: 4.46 deg mean rotation error, 4.2 %
    focal error) plus a margin for CPU arithmetic; they guard against regressions until a better version
    replaces it. Both are inside the project's minimum (5 deg, 10 %); the aim (2 deg, 5 %) is met on focal only.
    The scene is built in Blender and rendered from above; with POINTMAP_WRITE_DOCS=1 the picture goes to
    docs/demo_result.png (the README's picture of the demo result)."""
    import os

    bpy = pytest.importorskip("bpy")
    from PIL import Image
    from pointmap.core import reconstruct
    from pointmap.core.options import ReconstructOptions
    from pointmap.core.weights.bundled import DEMO_LABEL
    from pointmap.scene import SceneOptions, build_scene
    from pointmap.scene.overview import render_overview
    from pointmap.training.score_cameras import score_files

    rec = reconstruct(ROOT / "samples" / "photos", "demo", ReconstructOptions(device="cpu"))
    assert rec.warnings[0] == DEMO_LABEL and rec.model == "demo" and rec.n_views == 7
    # the frames the shipped version was trained on: version 2 declares nothing (DUSt3R's central 224 square);
    # a version trained with --aspects declares whole frames (a 512x384 photo -> 224x160)
    from pointmap.core.weights.bundled import demo_path
    from pointmap.core.weights.checkpoint import read_checkpoint

    crop = read_checkpoint(demo_path()).input_crop
    assert rec.meta["input_crop"] == crop
    assert rec.depth[0].shape == {"square": (224, 224), "whole": (160, 224)}[crop]
    rec.save(tmp_path / "r.npz")
    s = score_files(tmp_path / "r.npz", ROOT / "samples" / "photos" / "cameras.json")
    assert s["rotation_deg_mean"] <= 4.8 and s["focal_pct_mean"] <= 5.5, s

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    coll = build_scene(rec, scene, SceneOptions(depth_textures=None, background_images=False, mesh_points=True))
    docs = os.environ.get("POINTMAP_WRITE_DOCS") == "1"
    picture = render_overview(coll, scene, ROOT / "docs" / "demo_result.png" if docs else tmp_path / "demo.png",
                              size=(640, 400), point_scale=2.0)
    img = np.asarray(Image.open(picture).convert("RGB")).astype(int)
    lit = np.abs(img - np.array([30, 32, 38])).sum(-1) > 30
    assert 0.3 < lit.mean() < 0.97                 # the still life and its cameras fill most of the frame


def test_training_throughput_bench_runs_and_records(tmp_path):
    """bench/bench_train.py --smoke: every CPU variant trains, and the result is stamped."""
    import subprocess
    import sys

    out = tmp_path / "train.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "bench_train.py"), "--smoke", "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    report = json.loads(out.read_text())
    assert set(report["variants"]) == {"dense", "cull", "cull+draw"} and report["record"]["command"]
    assert report["complete"]
    assert all(v["pairs_per_s"] > 0 for v in report["variants"].values())
    assert set(report["split_of_a_step_s"]) == {"draw_s", "render_s", "model_s"}
