"""Sequence input: movie files (PyAV) and image sequences, frame numbers, stride, undecodable frames."""

import numpy as np
import pytest
from PIL import Image
from pointmap.core import Cancelled, CancelToken
from pointmap.core.errors import InputError
from pointmap.core.io.video import load_sequence, open_sequence

av = pytest.importorskip("av")

H, W, N = 48, 64, 12


def _frame(k: int) -> np.ndarray:
    """Frame k: red level 20k and a green bar 4 + 4k pixels wide (tells frames apart after compression)."""
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = 20 * k
    img[:, : 4 + 4 * k, 1] = 255
    return img


def _bar(rgb: np.ndarray) -> int:
    return int((rgb[rgb.shape[0] // 2, :, 1] > 128).sum())


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    path = tmp_path_factory.mktemp("movie") / "clip.avi"
    with av.open(str(path), "w") as box:
        st = box.add_stream("mjpeg", rate=24)
        st.width, st.height, st.pix_fmt = W, H, "yuvj420p"
        for k in range(N):
            for p in st.encode(av.VideoFrame.from_ndarray(_frame(k), format="rgb24")):
                box.mux(p)
        for p in st.encode():
            box.mux(p)
    return path


def _corrupt_frame(src, dst, k: int) -> None:
    with av.open(str(src)) as box:
        packets = [(p.pos, p.size) for p in box.demux(video=0) if p.size]
    data = bytearray(src.read_bytes())
    pos, size = packets[k]
    data[pos + 20: pos + size - 2] = bytes(size - 22)      # keep the JPEG start marker, wipe the picture
    dst.write_bytes(bytes(data))


def test_movie_frames_in_order_with_plate_numbers(movie):
    src = open_sequence(movie, first_frame=1001)
    assert src.kind == "movie" and src.fps == pytest.approx(24.0)
    assert src.frame_numbers == list(range(1001, 1001 + N))
    got = load_sequence(src, size=64)
    assert got.frame_numbers == list(range(1001, 1001 + N)) and not got.failures
    assert [_bar(im.rgb) for im in got.images] == pytest.approx([4 + 4 * k for k in range(N)], abs=1)
    # Network size only in memory; the original is decoded again on demand and is the full frame.
    im = got.images[3]
    assert im.rgb.shape[1] == 64 and getattr(im, "_memory", None) is None
    orig = im.load_original()
    assert orig.shape == (H, W, 3) and _bar(orig) == pytest.approx(16, abs=1)


def test_movie_stride_and_range(movie):
    got = load_sequence(movie, size=64, start=1003, end=1010, stride=3, first_frame=1001)
    assert got.frame_numbers == [1003, 1006, 1009]
    assert [_bar(im.rgb) for im in got.images] == pytest.approx([12, 24, 36], abs=1)
    with pytest.raises(InputError, match="no frame between"):
        open_sequence(movie, start=2000, first_frame=1001)


def test_undecodable_movie_frame_skipped_or_stops(movie, tmp_path):
    bad = tmp_path / "bad.avi"
    _corrupt_frame(movie, bad, 5)
    got = load_sequence(bad, size=64, first_frame=1001, on_error="skip")
    assert got.frame_numbers == [n for n in range(1001, 1001 + N) if n != 1006]
    assert [n for n, _ in got.failures] == [1006] and "1006" in got.failures[0][1]
    assert any("1006" in msg for _, msg in got.images.failures)
    with pytest.raises(InputError, match="[Ff]rame 1006 of .*bad.avi"):
        load_sequence(bad, size=64, first_frame=1001, on_error="raise")


def test_image_sequence_numbers_from_names_and_a_broken_file(tmp_path):
    for k in range(6):
        Image.fromarray(_frame(k)).save(tmp_path / f"plate.{1001 + k:04d}.png")
    (tmp_path / "plate.1003.png").write_bytes(b"not a png")
    src = open_sequence(tmp_path)
    assert src.kind == "images" and src.frame_numbers == list(range(1001, 1007)) and src.fps is None
    got = load_sequence(tmp_path, size=64)
    assert got.frame_numbers == [1001, 1002, 1004, 1005, 1006]
    assert [n for n, _ in got.failures] == [1003]
    assert [_bar(im.rgb) for im in got.images] == [4, 8, 16, 20, 24]
    assert got.images[0].path.endswith("plate.1001.png")
    with pytest.raises(InputError, match="1003"):
        load_sequence(tmp_path, size=64, on_error="raise")
    assert load_sequence(tmp_path, size=64, stride=2, start=1002).frame_numbers == [1002, 1004, 1006]


def test_bad_sources_are_named(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_sequence(tmp_path / "nothing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        open_sequence(tmp_path / "empty")
    (tmp_path / "junk.mp4").write_bytes(b"\0" * 1000)
    with pytest.raises(InputError, match="junk.mp4"):
        open_sequence(tmp_path / "junk.mp4")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match="neither"):
        open_sequence(tmp_path / "notes.txt")


def test_progress_and_cancel(movie):
    seen = []
    load_sequence(movie, size=64, progress=seen.append)
    assert [p.done for p in seen] == list(range(1, N + 1)) and all(p.stage == "decode" for p in seen)
    tok = CancelToken()

    def stop(p):
        if p.done == 3:
            tok.cancel()

    with pytest.raises(Cancelled):
        load_sequence(movie, size=64, progress=stop, cancel=tok)


def test_vggt_recipe(movie):
    got = load_sequence(movie, recipe="vggt", stride=4)
    assert got.frame_numbers == [1, 5, 9]
    assert got.images[0].rgb.shape[1] == 518 and got.images[0].rgb.shape[0] % 14 == 0
