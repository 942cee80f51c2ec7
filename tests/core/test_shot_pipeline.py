"""A shot through `reconstruct()`: a movie file or an image-sequence folder in, one Reconstruction with the
clip's frame numbers out, on tiny random-weight models (the plumbing, not the geometry: random weights
predict nothing meaningful).

Each run is kept to a handful of solved frames so the file stays within seconds per test on 2 cores.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_checkpoint
from helpers_movie import write_movie, write_sequence
from pointmap.core import Cancelled, CancelToken, InputError, UnsupportedOption, reconstruct
from pointmap.core.options import AlignOptions, DA3Options, PairwiseOptions, ReconstructOptions, SequenceOptions

av = pytest.importorskip("av")

N = 12


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    path = tmp_path_factory.mktemp("shot") / "clip.mp4"
    write_movie(path)
    return path


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    """frame.1001.png ... frame.1008.png."""
    folder = tmp_path_factory.mktemp("plate")
    write_sequence(folder, 8)
    return folder


@pytest.fixture(scope="module")
def tiny_dust3r():
    from pointmap.core.weights.checkpoint import load_checkpoint

    return load_checkpoint(tiny_checkpoint())[0]


def _opts(**seq) -> ReconstructOptions:
    return ReconstructOptions(device="cpu", image_size=64, align=AlignOptions(iterations=5),
                              sequence=SequenceOptions(**seq))


def _monotonic(events) -> list[float]:
    overall = [e.overall for e in events if e.overall is not None]
    assert overall and all(b >= a for a, b in zip(overall, overall[1:], strict=False)), overall
    return overall


def test_movie_with_plate_numbers_start_and_stride(movie, tiny_dust3r):
    events = []
    rec = reconstruct(str(movie), tiny_dust3r, _opts(first_frame=1001, start=1003, end=1010, stride=3, window=2),
                      progress=events.append)
    rec.validate()
    assert rec.frame_numbers.tolist() == [1003, 1006, 1009]
    assert rec.fps == pytest.approx(25.0) and rec.names == ["clip.1003", "clip.1006", "clip.1009"]
    assert rec.paths == [None] * 3                      # a movie frame is no image file
    assert rec.meta["graph"] == "seq-2"
    assert rec.meta["shot"] == {"source": str(movie.resolve()), "kind": "movie", "first_frame": 1001,
                                "start": 1003, "end": 1010, "stride": 3, "skipped_frames": []}
    # One shared focal for the shot by default.
    assert np.ptp(rec.K[:, 0, 0]) <= 1e-9 * rec.K[0, 0, 0]
    # Progress: over the whole shot, never backwards, frames named while decoding, an ETA on the way.
    assert _monotonic(events)[-1] == pytest.approx(1.0)
    decode = [e for e in events if e.stage == "decode"]
    assert [e.done for e in decode] == [1, 2, 3] and "frame 1009" in decode[-1].message
    assert all("shot " in e.message for e in events if e.overall is not None)
    assert any("ETA" in e.message for e in events)


def test_per_frame_focal_and_explicit_graph(movie, tiny_dust3r):
    rec = reconstruct(str(movie), tiny_dust3r,
                      ReconstructOptions(device="cpu", image_size=64, align=AlignOptions(iterations=3),
                                         pairwise=PairwiseOptions(graph="swin-1-noncyclic"),
                                         sequence=SequenceOptions(end=3, shared_focal=False)))
    assert rec.frame_numbers.tolist() == [1, 2, 3] and rec.meta["graph"] == "swin-1-noncyclic"
    assert np.ptp(rec.K[:, 0, 0]) > 0          # a focal per frame (random weights: they differ)


def test_image_sequence_folder_with_broken_frame(sequence, tiny_dust3r, tmp_path):
    import shutil

    folder = tmp_path / "plate"
    shutil.copytree(sequence, folder)
    (folder / "frame.1004.png").write_bytes(b"not a png")
    rec = reconstruct(str(folder), tiny_dust3r, _opts(is_shot=True, stride=1, start=1002, end=1006, window=2))
    assert rec.frame_numbers.tolist() == [1002, 1003, 1005, 1006]
    assert rec.paths[0] == str(folder / "frame.1002.png") and rec.fps is None
    assert rec.meta["shot"]["skipped_frames"] == [1004] and rec.meta["shot"]["kind"] == "images"
    assert any(w.startswith("Frame 1004 skipped") and "frame.1004.png" in w for w in rec.warnings)
    with pytest.raises(InputError, match=r"[Ff]rame 1004 of .*plate"):
        reconstruct(str(folder), tiny_dust3r, _opts(is_shot=True, start=1002, end=1006, on_bad_frame="raise"))


def test_cancel_between_frames_and_batches(movie, tiny_dust3r):
    token = CancelToken()

    def stop_in_pairs(p):
        if p.stage == "pairs" and p.done >= 1:
            token.cancel()

    with pytest.raises(Cancelled):
        reconstruct(str(movie), tiny_dust3r, _opts(end=4), progress=stop_in_pairs, cancel=token)
    token2 = CancelToken()

    def stop_while_decoding(p):
        if p.stage == "decode" and p.done == 2:
            token2.cancel()

    with pytest.raises(Cancelled):
        reconstruct(str(movie), tiny_dust3r, _opts(), progress=stop_while_decoding, cancel=token2)


def test_shot_options_are_checked(movie, tiny_dust3r, photos):
    with pytest.raises(UnsupportedOption, match="sequence.stride"):
        reconstruct(str(photos), tiny_dust3r, _opts(stride=2))
    with pytest.raises(InputError, match="is_shot"):
        reconstruct([str(p) for p in sorted(photos.iterdir())], tiny_dust3r, _opts(is_shot=True))
    with pytest.raises(UnsupportedOption, match="chunk"):
        reconstruct(str(movie), tiny_dust3r, _opts(chunk=8))
    with pytest.raises(InputError, match="no frame between"):
        reconstruct(str(movie), tiny_dust3r, _opts(start=500, end=600))
    # A photo folder without is_shot stays a photo set (no frame numbers).
    rec = reconstruct(str(photos), tiny_dust3r, _opts())
    assert rec.frame_numbers is None and "shot" not in rec.meta


def test_vggt_shot_in_chunks_with_progress_and_cancel(movie):
    from helpers_vggt import tiny_model
    from pointmap.core.backends.vggt_chunked import chunk_for_device

    assert chunk_for_device("cpu", 10**6) == 32          # the CPU's default chunk length

    model = tiny_model("pt")
    events = []
    opts = ReconstructOptions(device="cpu", image_size=56, sequence=SequenceOptions(first_frame=1001, chunk=8))
    rec = reconstruct(str(movie), model, opts, progress=events.append)
    rec.validate()
    assert rec.family == "vggt" and rec.frame_numbers.tolist() == list(range(1001, 1001 + N))
    assert rec.meta["chunked"]["chunks"] == [list(range(0, 8)), list(range(4, 12))]
    assert np.isfinite(rec.cam2world).all() and all(np.isfinite(p).all() for p in rec.points)
    assert _monotonic(events)[-1] == pytest.approx(1.0)
    chunks = [e for e in events if e.stage == "chunks"]
    assert chunks[-1].done == N and "chunk 2 of 2" in chunks[-1].message
    token = CancelToken()

    def stop_after_first_chunk(p):
        if p.stage == "chunks" and p.done >= 8:
            token.cancel()

    with pytest.raises(Cancelled):
        reconstruct(str(movie), model, opts, progress=stop_after_first_chunk, cancel=token)


def test_da3_shot_in_chunks(movie):
    from helpers_da3 import tiny_model

    model = tiny_model()[0]
    rec = reconstruct(str(movie), model, ReconstructOptions(device="cpu", image_size=56,
                                                            sequence=SequenceOptions(start=2, stride=1, chunk=8)))
    rec.validate()
    assert rec.family == "da3" and rec.frame_numbers.tolist() == list(range(2, 13))
    assert len(rec.meta["chunked"]["chunks"]) == 2 and np.isfinite(rec.cam2world).all()
    # Per-image known cameras number photos, not frames: refused before any frame is decoded.
    known = ReconstructOptions(device="cpu", image_size=56, da3=DA3Options(intrinsics=np.tile(np.eye(3), (11, 1, 1))))
    with pytest.raises(UnsupportedOption, match="per-image known cameras"):
        reconstruct(str(movie), model, known, progress=lambda p: pytest.fail(f"work started: {p}"))
