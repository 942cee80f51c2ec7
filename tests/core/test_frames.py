"""Frame range / stride selection on a saved shot (no Blender)."""

import numpy as np
import pytest
from helpers_synthshot import make_synthetic_shot
from pointmap.core import Reconstruction
from pointmap.core.errors import InputError
from pointmap.core.frames import parse_frame_range, select_frames


def test_parse_frame_range():
    assert parse_frame_range("1001:1100") == (1001, 1100)
    assert parse_frame_range("1010:") == (1010, None)
    for bad in ("1001", "a:b", "5:1"):
        with pytest.raises(InputError):
            parse_frame_range(bad)


def test_select_frames_range_and_stride(tmp_path):
    rec = make_synthetic_shot(20, start=1001)
    rec.save(tmp_path / "shot.npz")
    rec = Reconstruction.load(tmp_path / "shot.npz")
    assert rec.frame_numbers.tolist() == list(range(1001, 1021))
    sub = select_frames(rec, 1005, 1014, stride=3)
    assert sub.frame_numbers.tolist() == [1005, 1008, 1011, 1014]
    sub.validate()
    assert np.array_equal(sub.cam2world[1], rec.cam2world[7])
    with pytest.raises(InputError, match="No solved frame"):
        select_frames(rec, 2000, 2100)
    with pytest.raises(InputError, match="stride"):
        select_frames(rec, stride=0)
