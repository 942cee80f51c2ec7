"""The background-job machinery and the reconstruct operator, headless in the bpy module.

Timers never fire in the bpy module, so queue draining is exercised by calling `Job.drain()`
directly, exactly as the modal operator's TIMER handler does.
"""

import threading

import pytest
from conftest import tiny_checkpoint
from helpers_bpydata import datablock_names
from pointmap import tasks as jobs
from pointmap.core.errors import Cancelled, InputError
from pointmap.core.progress import Progress


def _collector():
    seen = {"progress": [], "done": [], "error": []}
    kw = dict(on_progress=seen["progress"].append, on_done=seen["done"].append,
              on_error=lambda e, tb: seen["error"].append((e, tb)))
    return seen, kw


def test_inline_job_drains_progress_then_result():
    def work(progress, cancel):
        for i in range(3):
            progress(Progress("pairs", i + 1, 3, f"pair {i + 1}/3"))
        return "result"

    seen, kw = _collector()
    job = jobs.Job(work, **kw)
    job.run_inline()
    assert seen["progress"] == []          # nothing is applied before the main thread drains
    assert job.drain() is True
    assert [p.done for p in seen["progress"]] == [1, 2, 3] and seen["done"] == ["result"]
    assert job.state.stage == "pairs" and job.state.outcome == "done" and job.state.fraction == 1.0
    assert job.drain() is True and seen["done"] == ["result"]   # draining again applies nothing twice


def test_threaded_job_partial_drains_and_eta():
    release = threading.Event()

    def work(progress, cancel):
        progress(Progress("align", 50, 100))
        release.wait(10)
        return 42

    seen, kw = _collector()
    job = jobs.Job(work, **kw)
    job.start()
    for _ in range(200):                   # wait until the first event is queued (no timing asserts)
        if not job.events.empty():
            break
        threading.Event().wait(0.01)
    assert job.drain() is False and job.state.fraction == 0.5 and not job.state.finished
    assert job.state.eta() is not None and job.state.elapsed() >= 0
    release.set()
    job.thread.join(10)
    assert job.drain() is True and seen["done"] == [42]
    assert jobs.format_seconds(75) == "1:15" and jobs.format_seconds(3725) == "1:02:05"


def test_eta_uses_the_whole_run_when_overall_is_reported():
    st = jobs.JobState(stage="pairs", fraction=0.9, overall=0.25, started=100.0, stage_started=190.0)
    # 10 s into the run with a quarter done: 30 s left overall (the stage alone would say ~1 s).
    assert st.eta(now=110.0) == 30.0 and st.bar == 0.25
    st.overall = None
    assert abs(st.eta(now=199.0) - 1.0) < 1e-9 and st.bar == 0.9


def test_warning_events_are_not_stages():
    from pointmap.core.progress import warn

    def work(progress, cancel):
        progress(Progress("pairs", 1, 4))
        warn(progress, "a photo was skipped")
        return None

    seen, kw = _collector()
    job = jobs.Job(work, **kw)
    job.run_inline()
    job.drain()
    assert [p.message for p in seen["progress"]] == ["", "a photo was skipped"]
    assert job.state.stage == "pairs" and job.state.message == ""     # the panel still shows the stage


def test_cancel_from_progress_and_late_result_dropped():
    def work(progress, cancel):
        progress(Progress("encode", 1, 10))
        cancel.cancel()                    # as if the user pressed Cancel mid-run
        progress(Progress("encode", 2, 10))
        return "never used"

    seen, kw = _collector()
    job = jobs.Job(work, **kw)
    job.run_inline()
    job.drain()
    assert seen["done"] == [] and isinstance(seen["error"][0][0], Cancelled)
    assert job.state.outcome == "cancelled"

    # A worker that ignores the token and returns anyway: its result is still dropped.
    seen, kw = _collector()
    job = jobs.Job(lambda p, c: "late", **kw)
    job.cancel()
    job.run_inline()
    job.drain()
    assert seen["done"] == [] and job.state.outcome == "cancelled"


def test_errors_reach_the_main_thread_with_traceback():
    def work(progress, cancel):
        raise InputError("The image 'x.png' is corrupt.", "x.png")

    seen, kw = _collector()
    job = jobs.Job(work, **kw)
    job.start()
    job.thread.join(10)
    job.drain()
    err, tb = seen["error"][0]
    assert isinstance(err, InputError) and "x.png" in str(err) and "InputError" in tb
    assert job.state.outcome == "failed"


def test_drain_or_stop_finishes_a_cancelled_job_at_once():
    """The interactive path: Cancel ends the run now, whatever the worker still sends is ignored."""
    release = threading.Event()

    def work(progress, cancel):
        release.wait(10)
        progress(Progress("pairs", 1, 2))
        return "late"

    seen, kw = _collector()
    job = jobs.Job(work, **kw)
    job.start()
    assert job.drain_or_stop() is False and not job.state.finished
    job.cancel()
    assert job.drain_or_stop() is True and job.state.outcome == "cancelled"
    assert len(seen["error"]) == 1 and isinstance(seen["error"][0][0], Cancelled)
    release.set()
    job.thread.join(10)
    assert job.drain_or_stop() is True
    assert len(seen["error"]) == 1 and seen["done"] == [] and seen["progress"] == []


def test_error_outcome_shows_the_sentence_not_the_traceback(capsys):
    err = InputError("The image 'x.png' is corrupt.", "x.png")
    assert jobs.error_outcome(err, "Traceback (most recent call last): ...", "Reconstruction", "-") == (
        "failed", {"ERROR"}, "The image 'x.png' is corrupt.")
    assert capsys.readouterr().out == ""
    assert jobs.error_outcome(Cancelled(), "", "Download", "Download cancelled.") == (
        "cancelled", {"WARNING"}, "Download cancelled.")
    status, level, message = jobs.error_outcome(ZeroDivisionError("boom"), "TB-TEXT", "Download", "-")
    assert (status, level) == ("failed", {"ERROR"})
    assert message.startswith("Download failed (ZeroDivisionError: boom)") and "TB-TEXT" not in message
    assert "TB-TEXT" in capsys.readouterr().out     # the details go to the console


def test_busy_and_shutdown():
    release = threading.Event()
    job = jobs.Job(lambda p, c: release.wait(10))
    jobs.set_current(job)
    job.start()
    assert jobs.busy()
    release.set()
    jobs.shutdown()
    assert jobs.current() is None and not jobs.busy() and job.cancelled


bpy = pytest.importorskip("bpy")


def test_missing_checkpoint_is_a_clear_report(registered, tmp_path):
    from PIL import Image

    for i in range(2):
        Image.new("RGB", (64, 48), (40 * i, 90, 160)).save(tmp_path / f"img{i}.png")
    before = datablock_names()
    with pytest.raises(RuntimeError, match=r"checkpoint '.*missing\.pth' does not exist"):
        bpy.ops.pointmap.reconstruct(directory=str(tmp_path), checkpoint=str(tmp_path / "missing.pth"))
    assert datablock_names() == before


# -- end to end through core.reconstruct and scene.build_scene, tiny random-weight DUSt3R --



RUN = dict(image_size=64, iterations=10, device="CPU")


def test_reconstruct_builds_cameras_and_points(registered, photos):
    before = datablock_names()
    res = bpy.ops.pointmap.reconstruct(directory=str(photos), checkpoint=tiny_checkpoint(), name="tiny", **RUN)
    assert res == {"FINISHED"}
    coll = bpy.data.collections["tiny"]
    objs = list(coll.all_objects)
    assert sum(o.type == "CAMERA" for o in objs) == 3
    meshes = [o for o in objs if o.type == "MESH"]
    assert meshes and max(len(o.data.vertices) for o in meshes) > 0
    assert datablock_names() != before
    # The run's reconstruction is saved beside the .blend ("//pointmap_runs/"), or, while the file is unsaved
    # (an earlier test in the same process may have saved one), in the per-user folder (tests point it at a
    # temporary folder); never in the extension's own folder.
    import os

    saved = coll["pointmap_reconstruction"]
    if bpy.data.filepath:
        path = bpy.path.abspath(saved)
        assert saved.startswith("//pointmap_runs/") and os.path.isfile(path)
        assert os.path.dirname(path) == os.path.join(os.path.dirname(bpy.data.filepath), "pointmap_runs")
    else:
        assert os.path.isfile(saved) and saved.startswith(os.environ["BLENDER_USER_DATAFILES"])
        assert os.path.basename(os.path.dirname(saved)) == "runs"


def test_headless_operator_prints_progress_while_it_runs(registered, photos, capsys, monkeypatch):
    """Under `blender -b` (and in the bpy module) the operator runs its job inline: its progress lines must be on
    the console by the time the work returns, not printed from the queue after the run, and not twice."""
    import pointmap.scene.runs as runs

    assert bpy.app.background
    real, seen_by_return = runs.run_work, []

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        seen_by_return.append(capsys.readouterr().out)     # the console when the work returns
        return result

    monkeypatch.setattr(runs, "run_work", spy)
    res = bpy.ops.pointmap.reconstruct(directory=str(photos), checkpoint=tiny_checkpoint(), name="live", **RUN)
    assert res == {"FINISHED"} and len(seen_by_return) == 1
    stages = {line.split()[1] for line in seen_by_return[0].splitlines() if line.startswith("pointmap: ")}
    assert {"pairs", "align"} <= stages, seen_by_return[0]
    later = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith(("pointmap: pairs", "pointmap: align"))]
    assert later == [], later


def test_cli_writes_blend_and_exports(registered, photos, tmp_path):
    from pointmap import cli
    from pointmap.core import Reconstruction

    out = tmp_path / "out"
    out.mkdir()   # the CLI checks output folders before any work instead of creating them
    code = cli.main([str(photos), "-o", str(out / "scene.blend"), "--checkpoint", tiny_checkpoint(),
                     "--image-size", "64", "--iterations", "10", "--device", "cpu", "--min-conf", "0",
                     "--export-colmap", str(out / "sparse"), "--export-ply", str(out / "cloud.ply"),
                     "--save-reconstruction", str(out / "rec.npz")])
    assert code == cli.EXIT_OK
    assert (out / "scene.blend").stat().st_size > 0
    rec = Reconstruction.load(out / "rec.npz")
    assert rec.n_views == 3
    images = [s for s in (out / "sparse" / "images.txt").read_text().splitlines() if s.startswith(("1 ", "2 ", "3 "))]
    assert [s.split()[-1] for s in images] == ["view0.png", "view1.png", "view2.png"]
    header = (out / "cloud.ply").read_bytes().split(b"end_header")[0]
    assert b"element vertex %d" % sum(d.size for d in rec.depth) in header


def test_corrupt_image_skip_and_stop(registered, photos):
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    before = datablock_names()
    with pytest.raises(RuntimeError, match="broken.jpg"):
        bpy.ops.pointmap.reconstruct(directory=str(photos), checkpoint=tiny_checkpoint(), on_bad_image="STOP",
                                     name="stopped", **RUN)
    assert datablock_names() == before and "stopped" not in bpy.data.collections
    res = bpy.ops.pointmap.reconstruct(directory=str(photos), checkpoint=tiny_checkpoint(), on_bad_image="SKIP",
                                       name="skipped", **RUN)
    assert res == {"FINISHED"}
    cams = [o for o in bpy.data.collections["skipped"].all_objects if o.type == "CAMERA"]
    assert len(cams) == 3


def test_failed_scene_build_leaves_blender_unchanged(registered, photos, tmp_path_factory):
    """The reconstruction succeeds, then building fails late (after points and cameras were made):
    the operator reports the SceneError's sentence and every datablock it made is gone."""
    import os

    not_a_folder = tmp_path_factory.mktemp("tex") / "blocked"
    not_a_folder.write_text("a file where the texture folder should go")
    before = datablock_names()
    root = os.environ["BLENDER_USER_DATAFILES"]
    files_before = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
    with pytest.raises(RuntimeError, match="Could not create the texture folder") as info:
        bpy.ops.pointmap.reconstruct(directory=str(photos), checkpoint=tiny_checkpoint(), name="failed",
                                     depth_textures="EXR", texture_dir=str(not_a_folder), **RUN)
    assert "Traceback" not in str(info.value)
    assert datablock_names() == before
    # ... and the run's saved reconstruction is gone again.
    assert sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs) == files_before


@pytest.mark.parametrize("when", ["before", "during"])
def test_cancel_leaves_scene_untouched(registered, photos, when):
    from pointmap.core.options import AlignOptions, ReconstructOptions
    from pointmap.core.pipeline import reconstruct
    from pointmap.scene import SceneOptions, build_scene

    seen = {"done": [], "error": [], "stages": set()}

    def work(progress, cancel):
        def relay(p):
            seen["stages"].add(p.stage)
            progress(p)
            if p.stage == "pairs":
                cancel.cancel()          # the user presses Cancel while pairs are decoded
        options = ReconstructOptions(image_size=64, device="cpu", align=AlignOptions(iterations=10))
        return reconstruct(str(photos), tiny_checkpoint(), options, progress=relay, cancel=cancel)

    job = jobs.Job(work, on_done=lambda r: seen["done"].append(build_scene(r, options=SceneOptions(name="x"))),
                   on_error=lambda e, tb: seen["error"].append(e))
    if when == "before":
        job.cancel()
    before = datablock_names()
    job.run_inline()
    job.drain()
    assert seen["done"] == [] and isinstance(seen["error"][0], Cancelled)
    assert ("pairs" in seen["stages"]) == (when == "during")
    assert datablock_names() == before


def test_look_through_camera_uses_its_photo_size(registered):
    from helpers_synthrecon import make_synthetic_recon
    from pointmap.scene import SceneOptions, build_scene

    rec = make_synthetic_recon()          # views of different sizes and pixel aspects
    coll = build_scene(rec, options=SceneOptions(depth_textures=None, point_cloud=False))
    cams = sorted((o for o in coll.objects if o.type == "CAMERA"), key=lambda o: o["pointmap_view"])
    scene = bpy.context.scene
    for i in (1, 3):                      # a portrait view and the fx != fy view
        assert bpy.ops.pointmap.use_camera(camera=cams[i].name) == {"FINISHED"}
        H0, W0 = (int(v) for v in rec.image_sizes[i])
        assert (scene.render.resolution_x, scene.render.resolution_y) == (W0, H0)
        assert (scene.render.pixel_aspect_x, scene.render.pixel_aspect_y) == pytest.approx(
            tuple(cams[i]["pointmap_pixel_aspect"]), rel=1e-6)
        assert scene.camera == cams[i]
    empty = bpy.data.objects.new("not_a_camera", None)
    scene.collection.objects.link(empty)
    with pytest.raises(RuntimeError, match="not a camera made by pointmap"):
        bpy.ops.pointmap.use_camera(camera=empty.name)


def test_cli_builds_a_shot_from_a_saved_reconstruction(registered, tmp_path):
    """`--from-reconstruction` runs no network: the saved shot becomes one animated camera + exports."""
    import json

    from helpers_synthshot import make_synthetic_shot
    from pointmap import cli

    rec = make_synthetic_shot(n_frames=12, start=1001, plate_dir=str(tmp_path / "plate"))
    rec.save(tmp_path / "shot.npz")
    cameras_before = {o.name for o in bpy.data.objects if o.type == "CAMERA"}
    out = tmp_path / "out"
    (out / "nerf").mkdir(parents=True)
    code = cli.main(["--from-reconstruction", str(tmp_path / "shot.npz"), "-o", str(out / "shot.blend"),
                     "--animated-camera", "--stride", "2", "--export-chan", str(out / "shot.chan"),
                     "--export-transforms", str(out / "nerf" / "transforms.json")])
    assert code == cli.EXIT_OK
    chan = [line.split() for line in (out / "shot.chan").read_text().splitlines() if line.strip()]
    assert [int(float(r[0])) for r in chan] == list(range(1001, 1012))   # stride 2: 1011 is the last solved frame
    frames = json.loads((out / "nerf" / "transforms.json").read_text())["frames"]
    assert len(frames) == 12 and (out / "nerf" / "points.ply").is_file()
    cams = [o for o in bpy.data.objects if o.type == "CAMERA" and o.name not in cameras_before]
    assert len(cams) == 1 and cams[0].animation_data is not None    # no static cameras unless asked for
    assert bpy.context.scene.frame_start == 1001 and bpy.context.scene.frame_end == 1011
    # usage errors are reported before any work
    assert cli.main(["--from-reconstruction", str(tmp_path / "missing.npz"), "-o", str(out / "x.blend")]) \
        == cli.EXIT_USAGE
    assert cli.main(["-o", str(out / "x.blend")]) == cli.EXIT_USAGE


def test_cancel_mid_pairs_stops_at_the_pair_in_flight(registered, tmp_path):
    """Cancel pressed on the main thread while the worker decodes pairs on the CPU: the worker stops after at
    most the pair in flight, within 1 s beyond that pair's duration, and nothing of the run reaches Blender."""
    import time

    import numpy as np
    from PIL import Image
    from pointmap.core.options import AlignOptions, ReconstructOptions
    from pointmap.core.pipeline import reconstruct
    from pointmap.scene import SceneOptions, build_scene

    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, (96, 160, 3), dtype=np.uint8)
    for i in range(6):                              # 6 views: 30 ordered pairs, plenty left after the cancel
        Image.fromarray(np.ascontiguousarray(base[:, 8 * i:8 * i + 112])).save(tmp_path / f"v{i}.png")
    pair_events: list[tuple[float, int, int]] = []   # (time, pairs done, pairs total), worker thread
    ended: list[float] = []

    def work(progress, cancel):
        def relay(p):
            if p.stage == "pairs":
                pair_events.append((time.monotonic(), p.done, p.total))
            progress(p)
        options = ReconstructOptions(image_size=112, device="cpu", align=AlignOptions(iterations=10))
        try:
            return reconstruct(str(tmp_path), tiny_checkpoint(), options, progress=relay, cancel=cancel)
        finally:
            ended.append(time.monotonic())

    seen = {"done": [], "error": []}
    job = jobs.Job(work, on_done=lambda r: seen["done"].append(build_scene(r, options=SceneOptions(name="late"))),
                   on_error=lambda e, tb: seen["error"].append(e))
    before = datablock_names()
    job.start()
    t_cancel = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and t_cancel is None and job.alive:
        job.drain()
        if job.state.stage == "pairs" and len(pair_events) >= 3:
            t_cancel = time.monotonic()
            job.cancel()                            # the user presses Cancel mid-stage
        time.sleep(0.001)
    assert t_cancel is not None, "the run never reached the pairs stage"
    job.thread.join(30)
    while not job.drain():
        time.sleep(0.001)

    total = pair_events[0][2]
    after = [e for e in pair_events if e[0] > t_cancel]
    durations = np.diff([e[0] for e in pair_events])
    slowest_pair = float(durations.max()) if len(durations) else 0.0
    stop = ended[0] - t_cancel
    print(f"cancel → worker stopped in {stop * 1000:.1f} ms; slowest pair {slowest_pair * 1000:.1f} ms; "
          f"{pair_events[-1][1]}/{total} pairs decoded")
    assert len(after) <= 1, "pairs were still decoded after the one in flight"
    assert pair_events[-1][1] < total
    assert stop <= slowest_pair + 1.0
    assert job.state.outcome == "cancelled" and isinstance(seen["error"][0], Cancelled)
    assert seen["done"] == [] and datablock_names() == before


def test_one_undo_removes_a_whole_run(registered, photos):
    """Called as from the UI (EXEC_DEFAULT with undo): the run is one undo step; one Ctrl+Z takes back every
    datablock it made (collection, cameras, points, materials, node groups, images), redo brings it back.
    The panel's modal run cannot be driven here (no window, no timer events in the bpy module): Blender
    pushes the same step when the modal operator returns FINISHED."""
    bpy.ops.ed.undo_push(message="before the run")
    before = datablock_names()
    assert bpy.ops.pointmap.reconstruct("EXEC_DEFAULT", True, directory=str(photos), checkpoint=tiny_checkpoint(),
                                        name="undone", **RUN) == {"FINISHED"}
    made = datablock_names()
    assert "undone" in made["collections"]
    added = {k: sorted(set(made[k]) - set(before[k])) for k in made if set(made[k]) - set(before[k])}
    assert {"collections", "objects", "cameras"} <= set(added), added
    bpy.ops.ed.undo()
    assert datablock_names() == before
    bpy.ops.ed.redo()
    assert datablock_names() == made


def test_known_poses_file_from_the_panel(registered, photos, tmp_path_factory):
    """The panel's Known Poses file: its poses are kept; a broken file is a clear report and builds nothing."""
    import json

    import numpy as np
    from pointmap.core.reconstruction import Reconstruction

    folder = tmp_path_factory.mktemp("poses")
    T = np.eye(4)
    T[:3, 3] = [0.5, 0, 0]
    good = folder / "poses.json"
    good.write_text(json.dumps({"cameras": {"view1.png": T.tolist()}}))
    res = bpy.ops.pointmap.reconstruct(directory=str(photos), checkpoint=tiny_checkpoint(), name="posed",
                                       known_poses_file=str(good), **RUN)
    assert res == {"FINISHED"}
    saved = bpy.data.collections["posed"]["pointmap_reconstruction"]
    rec = Reconstruction.load(bpy.path.abspath(saved))
    np.testing.assert_allclose(rec.cam2world[rec.names.index("view1")], T, atol=1e-6)
    bad = folder / "bad.json"
    bad.write_text("[1, 2")
    before = datablock_names()
    with pytest.raises(RuntimeError, match=r"Known poses: cannot read .*bad\.json"):
        bpy.ops.pointmap.reconstruct(directory=str(photos), checkpoint=tiny_checkpoint(), known_poses_file=str(bad),
                                     **RUN)
    assert datablock_names() == before
