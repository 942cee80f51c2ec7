"""Headless matchmove from footage: `pointmap SHOT.mp4 -o shot.blend --animated-camera ...` (and an image-sequence
folder with --shot) runs the tiny random-weight DUSt3R on the shot and writes a .blend whose animated camera
has the movie as its plate, numbered from --first-frame, at the movie's frame rate."""

import json

import numpy as np
import pytest
from conftest import tiny_checkpoint
from PIL import Image

bpy = pytest.importorskip("bpy")
av = pytest.importorskip("av")

from helpers_movie import write_movie, write_sequence  # noqa: E402

TINY = ["--checkpoint", tiny_checkpoint(), "--image-size", "64", "--iterations", "5", "--device", "cpu",
        "--min-conf", "0", "--no-background-images"]


@pytest.fixture(autouse=True)
def fresh_blender():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield


def _animated_camera():
    return next(o for o in bpy.data.objects if o.type == "CAMERA" and o.get("pointmap_animated"))


def test_cli_movie_to_animated_camera_on_its_plate(tmp_path):
    from pointmap import cli

    movie = tmp_path / "clip.mp4"
    write_movie(movie, fps=24)
    out = tmp_path / "out"
    out.mkdir()
    code = cli.main([str(movie), "-o", str(out / "shot.blend"), *TINY, "--animated-camera", "--first-frame", "1001",
                     "--frames", "1003:1009", "--stride", "3", "--export-chan", str(out / "shot.chan"),
                     "--export-transforms", str(out / "transforms.json"),
                     "--save-reconstruction", str(out / "shot.npz")])
    assert code == cli.EXIT_OK and (out / "shot.blend").is_file()
    cam = _animated_camera()
    assert list(cam["pointmap_solved_frames"]) == [1003, 1006, 1009]
    assert list(cam["pointmap_interpolated_frames"]) == [1004, 1005, 1007, 1008]
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1003, 1009)
    assert scene.render.fps == 24 and scene.render.fps_base == pytest.approx(1.0)
    bg = cam.data.background_images[0]
    assert bg.source == "MOVIE_CLIP" and bg.clip.filepath.endswith("clip.mp4")
    assert bg.clip.frame_start == 1001          # scene frame f shows movie frame f - 1000
    chan = np.loadtxt(out / "shot.chan")
    assert chan[:, 0].tolist() == list(range(1003, 1010))
    # transforms.json needs a file per frame: a movie's solved frames are decoded beside it, at full size.
    frames = json.loads((out / "transforms.json").read_text())["frames"]
    assert [(f["frame_number"], f["file_path"]) for f in frames] == \
        [(n, f"images/clip.{n}.png") for n in (1003, 1006, 1009)]
    assert Image.open(out / "images" / "clip.1006.png").size == (64, 48)

    # The saved shot rebuilds without any network and finds its plate again.
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert cli.main(["--from-reconstruction", str(out / "shot.npz"), "-o", str(out / "again.blend"),
                     "--animated-camera"]) == cli.EXIT_OK
    assert _animated_camera().data.background_images[0].clip.frame_start == 1001


def test_cli_image_sequence_folder_as_a_shot(tmp_path, capsys):
    from pointmap import cli

    plate = tmp_path / "plate"
    plate.mkdir()
    write_sequence(plate, 6)
    (plate / "frame.1007.png").write_bytes(b"broken")
    out = tmp_path / "shot.blend"
    args = [str(plate), "-o", str(out), *TINY, "--shot", "--animated-camera", "--stride", "2"]
    assert cli.main(args + ["--on-bad-image", "stop"]) == cli.EXIT_FAILED
    assert "Frame 1007 of" in capsys.readouterr().out and not out.exists()
    assert cli.main(args) == cli.EXIT_OK
    assert "warning: Frame 1007 skipped (it gets no camera)" in capsys.readouterr().out
    cam = _animated_camera()
    assert list(cam["pointmap_solved_frames"]) == [1001, 1003, 1005]
    bg = cam.data.background_images[0]
    bpy.context.scene.frame_set(1004)
    assert bg.image.filepath_from_user(image_user=bg.image_user).endswith("frame.1004.png")


def test_cli_shot_flags_are_checked_before_any_work(tmp_path, photos):
    from pointmap import cli

    movie = tmp_path / "clip.mp4"
    write_movie(movie, n=4)
    out = str(tmp_path / "x.blend")
    assert cli.main([str(photos), "-o", out, "--first-frame", "1001"]) == cli.EXIT_USAGE
    assert cli.main([str(photos), "-o", out, "--chunk", "16"]) == cli.EXIT_USAGE
    assert cli.main([str(movie), "-o", out, "--per-frame-focal", "--shared-focal"]) == cli.EXIT_USAGE
    assert cli.main([str(movie), "-o", out, "--frames", "9:3"]) == cli.EXIT_USAGE
    assert cli.main([str(photos / "view0.png"), "-o", out, "--shot"]) == cli.EXIT_USAGE
    assert not (tmp_path / "x.blend").exists()
