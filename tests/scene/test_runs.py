"""scene/runs.py without Blender: reserved run files (never overwriting), stored paths, the worker part of a run."""

import os

import numpy as np
import pytest
from helpers_synthrecon import make_synthetic_recon
from pointmap.core.errors import Cancelled, CancelToken, PointmapError
from pointmap.core.meshing import MeshOptions
from pointmap.core.reconstruction import Reconstruction
from pointmap.scene.runs import RunFile, absolute_path, run_work, safe_stem, stored_path


def test_reserved_names_never_reuse_an_existing_file(tmp_path):
    folder = tmp_path / "runs"
    (tmp_path / "keep").mkdir()
    mine = tmp_path / "keep" / "x.npz"
    mine.write_bytes(b"user data")
    first = RunFile.reserve(str(folder), "photos (dust3r)")
    assert first.made_dir == str(folder) and os.path.basename(first.path) == "photos_dust3r.npz"
    second = RunFile.reserve(str(folder), "photos (dust3r)")
    assert os.path.basename(second.path) == "photos_dust3r-2.npz" and second.made_dir is None
    (folder / "photos_dust3r-3.npz").write_bytes(b"someone else's")
    third = RunFile.reserve(str(folder), "photos (dust3r)")
    assert os.path.basename(third.path) == "photos_dust3r-4.npz"
    assert (folder / "photos_dust3r-3.npz").read_bytes() == b"someone else's"
    second.keep()
    for r in (first, second, third):
        r.discard()
    assert sorted(os.listdir(folder)) == ["photos_dust3r-2.npz", "photos_dust3r-3.npz"]
    assert mine.read_bytes() == b"user data" and safe_stem("../..") == "run"


def test_discard_removes_the_folder_it_made_only_when_empty(tmp_path):
    folder = tmp_path / "new" / "runs"
    run = RunFile.reserve(str(folder), "a")
    run.discard()
    assert not folder.exists()
    run = RunFile.reserve(str(folder), "a")
    (folder / "other.txt").write_text("not ours")
    run.discard()
    assert sorted(os.listdir(folder)) == ["other.txt"]


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(PointmapError, match=r"cannot be saved in .*file"):
        RunFile.reserve(str(blocker / "runs"), "a")


def test_stored_path_is_relative_beside_the_blend(tmp_path):
    blend = str(tmp_path / "proj" / "scene.blend")
    inside = str(tmp_path / "proj" / "pointmap_runs" / "a.npz")
    outside = str(tmp_path / "elsewhere" / "a.npz")
    assert stored_path(inside, blend) == "//pointmap_runs/a.npz"
    assert stored_path(outside, blend) == outside and stored_path(inside, "") == inside
    assert absolute_path("//pointmap_runs/a.npz", blend) == inside
    moved = str(tmp_path / "moved" / "scene.blend")      # the project folder moved as a whole
    assert absolute_path("//pointmap_runs/a.npz", moved) == str(tmp_path / "moved" / "pointmap_runs" / "a.npz")


def test_run_work_fuses_and_saves_into_the_reserved_file(tmp_path):
    rec = make_synthetic_recon()
    run = RunFile.reserve(str(tmp_path), "synthetic")
    stages = []
    result = run_work(lambda p, c: rec, MeshOptions(device="cpu", min_confidence=0.5, voxel_size=0.3), run,
                      progress=lambda p: stages.append(p.stage))
    assert result.saved == run.path and result.fused_mesh is not None and result.fused_mesh.n_faces > 0
    assert not result.warnings and {"mesh", "save"} <= set(stages)
    back = Reconstruction.load(run.path)
    assert back.n_views == rec.n_views and np.array_equal(back.cam2world, rec.cam2world)


def test_a_mesh_that_cannot_be_built_is_a_warning_not_a_failure(tmp_path):
    rec = make_synthetic_recon()
    run = RunFile.reserve(str(tmp_path), "synthetic")
    result = run_work(lambda p, c: rec, MeshOptions(device="cpu", min_confidence=1e9), run)
    assert result.fused_mesh is None and result.saved == run.path
    assert len(result.warnings) == 1 and result.warnings[0].startswith("No fused mesh:")
    assert "Re-mesh" in result.warnings[0]


def test_cancel_during_save_leaves_no_file(tmp_path):
    rec = make_synthetic_recon()
    run = RunFile.reserve(str(tmp_path), "synthetic")
    token = CancelToken()

    class CancelOnSave:
        """The recon saved while the user presses Cancel."""

        def __getattr__(self, name):
            return getattr(rec, name)

        def save(self, f):
            rec.save(f)
            token.cancel()

    with pytest.raises(Cancelled):
        run_work(lambda p, c: CancelOnSave(), None, run, cancel=token)
    assert not os.path.exists(run.path)


def test_a_saved_reconstruction_is_referred_to_not_copied(tmp_path):
    rec = make_synthetic_recon()
    path = str(tmp_path / "given.npz")
    rec.save(path)
    result = run_work(lambda p, c: Reconstruction.load(path), None, None, existing=path)
    assert result.saved == path and os.listdir(tmp_path) == ["given.npz"]
