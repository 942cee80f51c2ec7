"""Issue #9.8 at the core level: bad inputs tried as a user would, each a clear PointmapError naming the file
and the reason (no traceback, no result), or a run that succeeds and says what it noticed."""

from __future__ import annotations

import shutil

import pytest
from conftest import FIXTURES
from pointmap.core import CheckpointError, InputError, reconstruct
from pointmap.core.options import AlignOptions, ReconstructOptions

PARITY = FIXTURES / "parity"
IMAGE_A = PARITY / "images" / "view_a_150x100.png"
IMAGE_B = PARITY / "images" / "view_b_150x100.png"
CKPT = PARITY / "dust3r_tiny_linear" / "model.pth"
OPTS = ReconstructOptions(image_size=64, align=AlignOptions(iterations=5))


@pytest.fixture(scope="module")
def tiny():
    from pointmap.core.weights.checkpoint import load_checkpoint

    return load_checkpoint(CKPT)[0]


def test_folder_without_images_names_the_folder(tiny, tmp_path):
    (tmp_path / "notes.txt").write_text("no photos here")
    with pytest.raises(InputError, match=f"no images in folder {tmp_path}"):
        reconstruct(str(tmp_path), tiny, OPTS)


def test_one_image_gives_one_camera(tiny, tmp_path):
    shutil.copy(IMAGE_A, tmp_path / "only.png")
    rec = reconstruct(str(tmp_path), tiny, OPTS)
    assert rec.n_views == 1 and rec.names == ["only"]


def test_two_identical_images_are_reported(tiny, tmp_path):
    shutil.copy(IMAGE_A, tmp_path / "a.png")
    shutil.copy(IMAGE_A, tmp_path / "b.png")
    rec = reconstruct(str(tmp_path), tiny, OPTS)
    note = [w for w in rec.warnings if "same picture" in w]
    assert rec.n_views == 2 and len(note) == 1
    assert str(tmp_path / "b.png") in note[0] and str(tmp_path / "a.png") in note[0]


def test_skip_message_names_the_file_once(tiny, tmp_path):
    shutil.copy(IMAGE_A, tmp_path / "a.png")
    shutil.copy(IMAGE_B, tmp_path / "b.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    rec = reconstruct(str(tmp_path), tiny, OPTS)
    (note,) = [w for w in rec.warnings if "broken.jpg" in w]
    assert note.startswith("Skipped") and note.count(str(tmp_path / "broken.jpg")) == 1


@pytest.mark.parametrize("kind", ["text file", "directory", "truncated copy"])
def test_bad_checkpoint_paths(tmp_path, kind):
    shutil.copy(IMAGE_A, tmp_path / "a.png")
    shutil.copy(IMAGE_B, tmp_path / "b.png")
    if kind == "text file":
        bad = tmp_path / "weights.pth"
        bad.write_text("this is not a checkpoint\n")
        words = "not a checkpoint"
    elif kind == "directory":
        bad = tmp_path / "weights"
        bad.mkdir()
        words = "holds no usable checkpoint"
    else:
        bad = tmp_path / "weights.pth"
        bad.write_bytes(CKPT.read_bytes()[: CKPT.stat().st_size // 2])
        words = "truncated or corrupt"
    with pytest.raises(CheckpointError) as err:
        reconstruct(str(tmp_path), str(bad), OPTS)
    assert str(bad) in str(err.value) and words in str(err.value)


def test_names_differing_only_in_case_stay_distinct(tiny, tmp_path):
    shutil.copy(IMAGE_A, tmp_path / "View.png")
    try:
        shutil.copy(IMAGE_B, tmp_path / "view.png")
    except OSError:
        pytest.skip("case-insensitive file system")
    if len(list(tmp_path.iterdir())) < 2:
        pytest.skip("case-insensitive file system")
    rec = reconstruct(str(tmp_path), tiny, OPTS)
    assert sorted(rec.names) == ["View", "view"] and len(set(rec.paths)) == 2
