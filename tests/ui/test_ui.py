"""Registration, settings, preferences helpers, dependency helpers and CLI wiring in real bpy."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")


def test_classes_and_settings_registered(registered):
    for name in ("POINTMAP_PT_main", "POINTMAP_PT_input", "POINTMAP_PT_model", "POINTMAP_PT_alignment",
                 "POINTMAP_PT_outputs", "POINTMAP_PT_fused_mesh", "POINTMAP_OT_reconstruct", "POINTMAP_OT_remesh",
                 "POINTMAP_OT_cancel"):
        assert hasattr(bpy.types, name), name
    assert bpy.types.POINTMAP_PT_main.bl_category == "Pointmap"
    assert bpy.types.POINTMAP_PT_input.bl_parent_id == "POINTMAP_PT_main"
    s = bpy.context.scene.pointmap
    assert (s.input_kind, s.source, s.graph, s.on_bad_image, s.sensor_mm) == ("PHOTOS", "FOLDER", "COMPLETE", "SKIP",
                                                                              36.0)
    assert (s.shot_source, s.stride, s.use_frame_range, s.per_frame_focal) == ("CLIP", 1, False, False)
    assert (s.animated_camera, s.plate_background, s.static_cameras) == (True, True, False)
    assert (s.fused_mesh, s.mesh_voxel_size, s.mesh_face_budget, s.mesh_texture_size) == (False, 0.0, 0, 0)
    assert s.mesh_refine_views


def test_operator_exposes_every_panel_option(registered):
    from pointmap.ui.properties import option_names

    op_props = set(bpy.ops.pointmap.reconstruct.get_rna_type().properties.keys())
    scene_props = set(bpy.context.scene.pointmap.bl_rna.properties.keys())
    for name in option_names():
        assert name in op_props and name in scene_props, name
    for required in ("directory", "files", "checkpoint", "graph", "iterations", "shared_focal", "focal_mm",
                     "sensor_mm", "on_bad_image", "point_cloud", "cameras", "background_images",
                     "depth_textures", "per_view_meshes", "input_kind", "shot_source", "clip_name", "shot_path",
                     "first_frame", "use_frame_range", "frame_start", "frame_end", "stride", "per_frame_focal",
                     "shot_window", "animated_camera", "plate_background", "static_cameras", "fused_mesh",
                     "mesh_voxel_size", "mesh_min_conf", "mesh_face_budget", "mesh_texture_size",
                     "mesh_refine_views", "from_reconstruction"):
        assert required in op_props, required


def test_settings_are_saved_with_the_blend(registered, tmp_path):
    s = bpy.context.scene.pointmap
    s.directory, s.graph, s.graph_k, s.focal_mm = "/photos", "SWIN", 3, 35.0
    s.files.add().name = "a.jpg"
    path = str(tmp_path / "settings.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.context.scene.pointmap.graph == "COMPLETE"
    bpy.ops.wm.open_mainfile(filepath=path)
    s = bpy.context.scene.pointmap
    assert (s.directory, s.graph, s.graph_k, s.focal_mm) == ("/photos", "SWIN", 3, 35.0)
    assert [f.name for f in s.files] == ["a.jpg"]
    bpy.ops.wm.read_factory_settings(use_empty=True)


def test_scene_settings_fill_the_operator(registered, tmp_path):
    bpy.context.scene.pointmap.directory = str(tmp_path / "from_scene")
    with pytest.raises(RuntimeError, match="from_scene.*does not exist"):
        bpy.ops.pointmap.reconstruct(use_scene_settings=True)
    # An explicit option wins over the scene's.
    with pytest.raises(RuntimeError, match="explicit.*does not exist"):
        bpy.ops.pointmap.reconstruct(use_scene_settings=True, directory=str(tmp_path / "explicit"))


def test_file_list_and_missing_file(registered, tmp_path):
    with pytest.raises(RuntimeError, match="No image files"):
        bpy.ops.pointmap.reconstruct(source="FILES", directory=str(tmp_path), files=[])
    with pytest.raises(RuntimeError, match="nope.png"):
        bpy.ops.pointmap.reconstruct(source="FILES", directory=str(tmp_path), files=[{"name": "nope.png"}])


def test_clip_input_without_clip(registered):
    with pytest.raises(RuntimeError, match="no active movie clip"):
        bpy.ops.pointmap.reconstruct(input_kind="SHOT", shot_source="CLIP")


def test_remesh_shares_the_panel_mesh_settings(registered):
    from pointmap.ui.properties import FusedMeshSettings

    remesh = set(bpy.ops.pointmap.remesh.get_rna_type().properties.keys())
    scene_props = set(bpy.context.scene.pointmap.bl_rna.properties.keys())
    for name in FusedMeshSettings.__annotations__:
        assert name in remesh and name in scene_props, name


def test_core_options_mapping(registered):
    from pointmap.operators.reconstruct import core_options, graph_string
    from pointmap.ui.preferences import Settings

    assert graph_string("COMPLETE", 5) == "complete" and graph_string("SWIN", 3) == "swin-3"
    s = bpy.context.scene.pointmap
    s.graph, s.graph_k, s.focal_mm, s.iterations, s.on_bad_image = "LOGWIN", 2, 0.0, 0, "STOP"
    opt = core_options(s, Settings(device="cpu", precision="fp32"))
    assert opt.pairwise.graph == "logwin-2" and opt.known_focal_mm is None and opt.align.iterations is None
    assert opt.on_bad_image == "raise" and opt.device == "cpu" and opt.precision == "fp32"


def test_cli_options_go_straight_to_core(registered, tmp_path):
    from pointmap import cli

    def opts(*extra):
        return cli.core_options(cli.build_parser().parse_args([str(tmp_path), "-o", "x.blend", *extra]))

    assert opts().pairwise.graph == "complete"
    assert opts("--graph", "swin-4-noncyclic").pairwise.graph == "swin-4-noncyclic"   # all the core knows
    o = opts("--align-conf", "2.5", "--min-conf", "7", "--iterations", "9")
    assert o.align.conf_threshold == 2.5 and o.align.iterations == 9   # --min-conf is display only
    o = opts("--precision", "fp32", "--memory-budget", "1.5", "--offload", "yes", "--vggt-points", "head",
             "--vggt-mode", "pad", "--vggt-fused")
    assert o.precision == "fp32" and o.pairwise.memory_budget == int(1.5 * 2**30) and o.pairwise.offload is True
    assert (o.vggt.points, o.vggt.mode, o.vggt.fused) == ("head", "pad", True)
    for bad in ("ring-3", "logwin-x"):   # nothing silently dropped or guessed
        with pytest.raises(cli.UsageError, match="unknown scene graph"):
            opts("--graph", bad)


def _read_only_folder() -> Path | None:
    """A folder even root cannot write into: one on a read-only mount (root ignores a folder's mode bits)."""
    candidates = [Path("/proc/sys")]
    with open("/proc/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 3 and "ro" in fields[3].split(","):
                candidates.append(Path(fields[1]))
    for folder in candidates:
        if folder.is_dir() and not os.access(folder, os.W_OK):
            return folder
    return None


def test_cli_checks_every_output_path_first(registered, tmp_path, capsys):
    from pointmap import cli

    photos = tmp_path / "photos"
    photos.mkdir()
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        cases = [(tmp_path, [], "is a folder"), (tmp_path / "nope" / "x.blend", [], "does not exist"),
                 (tmp_path / "x.blend", ["--export-colmap", str(tmp_path / "nope" / "sparse" / "0")], "does not exist")]
        unwritable = locked if os.geteuid() != 0 else _read_only_folder()
        if unwritable is not None:
            cases += [(unwritable / "x.blend", [], "not writable"),
                      (tmp_path / "x.blend", ["--export-ply", str(unwritable / "c.ply")], "not writable")]
        for out, extra, says in cases:
            code = cli.main([str(photos), "-o", str(out), "--checkpoint", str(tmp_path / "no.pth"), *extra])
            assert code == cli.EXIT_USAGE, (out, extra)
            assert capsys.readouterr().out.count(says) == 1
    finally:
        locked.chmod(0o700)
    assert not list(tmp_path.rglob("*.blend"))


def test_cli_device_cuda_without_gpu_is_a_usage_error(registered, tmp_path, capsys):
    import torch
    from pointmap import cli

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    code = cli.main([str(tmp_path), "-o", str(tmp_path / "x.blend"), "--device", "cuda"])
    assert code == cli.EXIT_USAGE
    out = capsys.readouterr().out
    assert out.count("no usable CUDA GPU") == 1 and not (tmp_path / "x.blend").exists()


def test_checkpoint_choices_are_the_registry_the_demo_and_a_local_file(registered):
    from pointmap.core.weights import registry
    from pointmap.core.weights.bundled import DEMO_NAME, is_demo
    from pointmap.core.weights.resolve import resolve_checkpoint
    from pointmap.ui.preferences import LOCAL, _checkpoint_items

    items = _checkpoint_items(None, None)
    assert [item[0] for item in items] == [*registry.names(), DEMO_NAME, LOCAL]
    assert is_demo(resolve_checkpoint("", DEMO_NAME))          # chosen in the preferences: no download, no cache
    assert items[0][0] == registry.DEFAULT and "commercial use OK" in items[0][1]   # the initial choice
    assert all(item[2] for item in items)                    # every choice has a tooltip
    assert _checkpoint_items(None, None) == items            # asking again adds nothing


def test_panel_says_when_the_demo_model_runs_instead(registered, tmp_path):
    """Nothing chosen in the panel and the preferred official checkpoint not downloaded: the Model section says
    the demo model runs (resolve_checkpoint's offline default), not only the preferred name."""
    from pointmap.core.weights import registry
    from pointmap.core.weights.download import cached_checkpoint
    from pointmap.ui.preferences import Settings, preferred_checkpoint_label

    empty = str(tmp_path / "weights")
    assert preferred_checkpoint_label(Settings(checkpoint=registry.DEFAULT, cache_dir=empty)) == \
        f"Preferences: {registry.DEFAULT} (not downloaded: the demo model runs)"
    assert preferred_checkpoint_label(Settings(checkpoint="demo", cache_dir=empty)) == "Preferences: demo"
    # downloaded (the files the registry names, present in the cache): no note
    spec = registry.get(registry.DEFAULT)
    folder = tmp_path / "weights" / spec.name
    folder.mkdir(parents=True)
    for f in spec.files():
        (folder / f.filename).write_bytes(b"")
    assert cached_checkpoint(registry.DEFAULT, empty) is not None
    assert preferred_checkpoint_label(Settings(checkpoint=registry.DEFAULT, cache_dir=empty)) == \
        f"Preferences: {registry.DEFAULT}"


def test_offline_refusals(registered):
    assert not bpy.app.online_access
    with pytest.raises(RuntimeError, match="offline"):
        bpy.ops.pointmap.download_weights(name="VGGT-1B")
    with pytest.raises(RuntimeError, match="offline"):
        bpy.ops.pointmap.install_dependencies()


def test_cancel_has_nothing_to_cancel(registered):
    assert not bpy.ops.pointmap.cancel.poll()


def test_dependency_helpers(tmp_path):
    from pointmap import deps

    st = deps.check()
    assert set(st.versions) == {"torch", "torchvision", "timm", "safetensors", "cv2", "mcubes"}
    cpu = deps.pip_install_command(str(tmp_path), "CPU")
    assert cpu[1:4] == ["-m", "pip", "install"] and cpu[cpu.index("--target") + 1] == str(tmp_path)
    assert deps.CPU_INDEX_URL in cpu and {"torch", "torchvision", "timm", "safetensors",
                                          "opencv-python-headless", "PyMCubes"} <= set(cpu)
    assert deps.CPU_INDEX_URL not in deps.pip_install_command(str(tmp_path), "CUDA")
    with pytest.raises(ValueError):
        deps.pip_install_command(str(tmp_path), "ROCM")
    # The subprocess runner collects output lines and the exit code.
    job = deps.PipJob([sys.executable, "-c", "print('one'); print('two'); raise SystemExit(3)"], keep=2)
    job.start()
    assert job.wait(30) == 3
    lines, log = job.snapshot()
    assert log[:2] == ["one", "two"] and lines[-1].endswith("exit code 3")
    site = str(tmp_path / "site")
    assert deps.add_site_dir(site) and site in sys.path
    deps.remove_site_dir(site)
    assert site not in sys.path


def test_cli_help_and_missing_checkpoint(registered, tmp_path):
    from pointmap import cli

    assert cli.main(["--help"]) == 0
    code = cli.main([str(tmp_path), "-o", str(tmp_path / "x.blend"), "--checkpoint", str(tmp_path / "no.pth")])
    assert code == cli.EXIT_NO_WEIGHTS
    assert not (tmp_path / "x.blend").exists()


def test_demo_without_weights_exits_3(tmp_path):
    """An official checkpoint named explicitly but not downloaded: exit 3 and how to get it (never a silent
    substitute). With nothing named, the bundled demo model is used and labelled."""
    from pointmap.core.weights.registry import DEFAULT

    def run_demo(*extra):
        code = ("import os, sys; os.environ.pop('POINTMAP_CHECKPOINT', None); from pointmap.demo import main; "
                f"sys.exit(main([{str(tmp_path)!r}, {str(tmp_path / 'demo.blend')!r}, "
                f"'--weights-dir', {str(tmp_path / 'weights')!r}, *{list(extra)!r}]))")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              env={"BLENDER_USER_RESOURCES": str(tmp_path / "user"), "PATH": "/usr/bin:/bin",
                                   "POINTMAP_OFFLINE": "1"})

    res = run_demo("--checkpoint", DEFAULT)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "POINTMAP_OFFLINE is set" in res.stdout and "--download to fetch" not in res.stdout
    assert "--checkpoint" in res.stdout
    assert "Download Weights" in res.stdout and "https://" in res.stdout
    assert not (tmp_path / "demo.blend").exists()
    res = run_demo()   # the folder holds no photos: the run fails after choosing the demo model
    assert "pointmap demo model — trained on synthetic scenes" in res.stdout, res.stdout + res.stderr
    assert res.returncode == 1 and "No usable images" in res.stdout


def test_alignment_options_greyed_out_for_single_pass_backends(registered):
    """The panel disables what VGGT and DA3 cannot honour (the core refuses those options; see test_pipeline):
    both have no scene graph, iterations or shared focal; both take a known focal, VGGT only with points from
    depth."""
    from pointmap.core.weights import registry
    from pointmap.ui.panel import greyed_alignment_options, single_pass_family

    s = bpy.context.scene.pointmap
    pairs_only = {"graph", "graph_k", "iterations", "shared_focal", "shot_window"}
    s.backend = "VGGT"
    assert single_pass_family(s) == "vggt" and greyed_alignment_options(s) == pairs_only
    s.vggt_points = "HEAD"
    assert greyed_alignment_options(s) == pairs_only | {"focal_mm"}
    s.vggt_points = "DEPTH"
    s.backend = "DA3"
    assert single_pass_family(s) == "da3" and greyed_alignment_options(s) == pairs_only
    s.backend = "PAIRS"
    assert single_pass_family(s) is None and not greyed_alignment_options(s)
    s.backend = "AUTO"
    for family, greyed in (("vggt", pairs_only), ("da3", pairs_only)):
        s.checkpoint = next(n for n in registry.names() if registry.get(n).family == family)
        assert greyed_alignment_options(s) == greyed, family
    s.checkpoint = "DUSt3R_ViTLarge_BaseDecoder_512_dpt"
    assert not greyed_alignment_options(s)
    s.checkpoint = ""
