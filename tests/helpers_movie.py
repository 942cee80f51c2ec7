"""Tiny footage for shot tests: a camera panning over one random texture, as frames, a movie (PyAV) or a
numbered image sequence."""

from __future__ import annotations

import numpy as np

H, W = 48, 64


def pan_frames(n: int) -> list[np.ndarray]:
    """n (H, W, 3) uint8 frames; frame k is the window starting 2k pixels to the right of frame 0's."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (H, W + 2 * n, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[:, 2 * k:2 * k + W]) for k in range(n)]


def write_movie(path, n: int = 12, fps: int = 25) -> None:
    """An MPEG-4 movie of `pan_frames(n)` (every FFmpeg build, PyAV's wheels included, has this encoder)."""
    import av

    with av.open(str(path), "w") as box:
        st = box.add_stream("mpeg4", rate=fps)
        st.width, st.height, st.pix_fmt = W, H, "yuv420p"
        for rgb in pan_frames(n):
            for p in st.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                box.mux(p)
        for p in st.encode():
            box.mux(p)


def write_sequence(folder, n: int, first: int = 1001, name: str = "frame") -> None:
    """`pan_frames(n)` as folder/name.<first>.png, name.<first + 1>.png, ..."""
    from PIL import Image

    for k, rgb in enumerate(pan_frames(n)):
        Image.fromarray(rgb).save(folder / f"{name}.{first + k}.png")
