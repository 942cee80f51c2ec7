"""Shots as input: a movie file or an image sequence, frames in order, decoded lazily.

`open_sequence(source, ...)` returns a `FrameSource`: the selected frames (start / end / stride, in clip
frame numbers) and a generator that decodes them one at a time. `load_sequence(...)` turns each decoded
frame at once into the network-size `LoadedImage` of the chosen preprocessing recipe and drops the
full-resolution pixels, so memory holds network-size frames only; a frame's original is decoded
again from the source when something (a camera background) asks for it.

Frame numbers: an image sequence takes them from the trailing digits of the file names
(`plate.1001.png` → 1001; files without digits count 1, 2, ... in natural order); a movie numbers its
frames from `first_frame` (default 1; VFX plates often start at 1001). They travel with the result
(`Reconstruction.frame_numbers`), so a camera maps onto its clip frame exactly.

A frame that cannot be decoded is reported with its frame number: with on_error="skip" it is left out
(no camera; `SequenceFrames.failures` says which and why), with "raise" the run stops with an
`InputError` naming the file and the frame.

Movies are decoded with PyAV (FFmpeg's libraries, wheels on PyPI for every platform with the codecs
included; it decodes frame by frame and reports a broken packet as an error we can tie to a frame,
where a pipe to an ffmpeg process cannot). Imported only when a movie is opened.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CancelToken, InputError, check_cancel
from ..progress import ProgressFn, eta_text, report
from .images import (
    IMAGE_EXTENSIONS,
    ImageSet,
    LoadedImage,
    _open_file,
    _to_rgb,
    list_image_files,
    load_images,
    load_images_vggt,
)

MOVIE_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mxf", ".mpg", ".mpeg", ".gif"})
_TRAILING_DIGITS = re.compile(r"(\d+)$")


@dataclass
class FrameSource:
    """The selected frames of one shot.

    path:          the movie file or the image-sequence folder
    frame_numbers: clip frame number of every selected frame, increasing
    fps:           frames per second of the movie (None for an image sequence)
    kind:          "movie" or "images"
    files:         per selected frame its file (image sequences only)
    """

    path: str
    frame_numbers: list[int]
    fps: float | None
    kind: str
    files: list[str] = field(default_factory=list)
    _first_frame: int = 1

    def __len__(self) -> int:
        return len(self.frame_numbers)

    def frames(self) -> Iterator[tuple[int, np.ndarray | None, str]]:
        """Decode the selected frames in order: (frame number, (H0, W0, 3) uint8 RGB or None, error text)."""
        if self.kind == "images":
            for number, path in zip(self.frame_numbers, self.files, strict=True):
                # The photo loaders' reader: EXIF orientation, 16-bit and alpha handled as for photos.
                try:
                    rgb = np.asarray(_to_rgb(_open_file(path), "drop", path))
                except InputError as err:
                    yield number, None, str(err)
                else:
                    yield number, rgb, ""
            return
        yield from _movie_frames(self.path, self.frame_numbers, self._first_frame, self.fps)

    def read(self, number: int) -> np.ndarray:
        """One frame's full-resolution RGB (decodes the source again; used for backgrounds)."""
        for got, rgb, err in (self._subset([number]).frames()):
            if got == number and rgb is not None:
                return rgb
            raise InputError(f"cannot decode frame {number} of {self.path}: {err or 'no such frame'}", self.path)
        raise InputError(f"{self.path} has no frame {number}.", self.path)

    def _subset(self, numbers: list[int]) -> FrameSource:
        keep = [k for k, f in enumerate(self.frame_numbers) if f in set(numbers)]
        return FrameSource(self.path, [self.frame_numbers[k] for k in keep], self.fps, self.kind,
                           [self.files[k] for k in keep] if self.files else [], self._first_frame)


def open_sequence(source: str | os.PathLike, start: int | None = None, end: int | None = None, stride: int = 1,
                  first_frame: int = 1) -> FrameSource:
    """Select frames [start, end] (clip frame numbers, inclusive; None: the first / last) every `stride`.

    source: a movie file, or a folder of images (one frame per file). first_frame: number of a movie's
    first frame. Raises InputError naming the source for a missing path, an unreadable movie, no
    frames, or a selection that keeps none.
    """
    if stride < 1:
        raise InputError(f"frame stride must be at least 1, not {stride}.", str(source))
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path} does not exist.", str(path))
    if path.is_dir():
        files = [f for f in list_image_files(path) if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
        if not files:
            raise InputError(f"{path} holds no images, so it is no image sequence.", str(path))
        numbers = _sequence_numbers(files)
        order = np.argsort(numbers, kind="stable")
        files, numbers = [files[k] for k in order], [numbers[k] for k in order]
        if len(set(numbers)) != len(numbers):
            dup = sorted({n for n in numbers if numbers.count(n) > 1})[:5]
            raise InputError(f"{path}: several images carry the same frame number ({dup}); "
                             "keep one image sequence per folder.", str(path))
        keep = _select(numbers, start, end, stride, path)
        return FrameSource(str(path), [numbers[k] for k in keep], None, "images", [files[k] for k in keep])
    if path.suffix.lower() not in MOVIE_EXTENSIONS:
        raise InputError(f"{path} is neither a folder of images nor a movie file "
                         f"({', '.join(sorted(MOVIE_EXTENSIONS))}).", str(path))
    count, fps = _movie_info(path)
    numbers = list(range(first_frame, first_frame + count))
    keep = _select(numbers, start, end, stride, path)
    return FrameSource(str(path), [numbers[k] for k in keep], fps, "movie", [], first_frame)


@dataclass
class SequenceFrames:
    """What `load_sequence` returns: the loaded frames with their clip numbers and what was skipped.

    images:        ImageSet of the decoded frames (network size), in order
    frame_numbers: clip frame number of every loaded frame
    fps:           the movie's frame rate (None for image sequences)
    failures:      (frame number, message) of every frame left out
    """

    images: ImageSet
    frame_numbers: list[int]
    fps: float | None
    failures: list[tuple[int, str]]


class _SequenceFrame(LoadedImage):
    """A loaded frame whose original is decoded again from its source on demand (never kept)."""

    source: FrameSource | None = None
    number: int = 0

    def load_original(self) -> np.ndarray:
        if self.source is None or self.source.kind == "images":
            return super().load_original()
        return self.source.read(self.number)


RECIPE_SIZES = {"dust3r": 512, "vggt": 518, "da3": 504}   # each loader's own default network size


def shot_path(inputs, is_shot: bool = False) -> str | None:
    """The shot `reconstruct()` inputs denote, or None for photos.

    A movie file is a shot; a folder is one when `is_shot` is set (an image sequence). ".gif" is both a
    photo and a movie format: a lone GIF counts as a shot only with `is_shot`. A one-element list holding
    such a path counts like the path.
    """
    if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
        inputs = inputs[0]
    if not isinstance(inputs, (str, os.PathLike)):
        return None
    path = Path(inputs)
    suffix = path.suffix.lower()
    if path.is_dir():
        return str(path.resolve()) if is_shot else None
    if suffix in MOVIE_EXTENSIONS and (is_shot or suffix not in IMAGE_EXTENSIONS):
        return str(path.resolve())
    return None


def load_sequence(source: str | os.PathLike | FrameSource, recipe: str = "dust3r", size: int | None = None,
                  vggt_mode: str = "crop", da3_method: str = "upper_bound_resize", on_error: str = "skip",
                  progress: ProgressFn | None = None, cancel: CancelToken | None = None,
                  whole_frame: bool = False, **select) -> SequenceFrames:
    """Decode a shot frame by frame into network-size images (module doc).

    recipe: "dust3r" (`images.load_images`), "vggt" (`images.load_images_vggt`, `vggt_mode`) or "da3"
    (`da3_images.load_images_da3`, `da3_method`); size: the network size (None: `RECIPE_SIZES[recipe]`).
    on_error: "skip" (an undecodable frame gets no camera; listed in `failures`) or "raise".
    whole_frame: recipe "dust3r" only: `images.load_images`'s whole-frame rule (networks trained on whole frames).
    select: start / end / stride / first_frame of `open_sequence` when `source` is a path.
    Progress: stage "decode", frames done of the selection, with an ETA. Cancel is checked between frames.
    """
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', not {on_error!r}")
    if recipe not in RECIPE_SIZES:
        raise ValueError(f"unknown preprocessing recipe {recipe!r}; expected one of {', '.join(RECIPE_SIZES)}")
    size = size or RECIPE_SIZES[recipe]
    src = source if isinstance(source, FrameSource) else open_sequence(source, **select)
    import time

    started = time.perf_counter()
    images, numbers, failures = [], [], []
    stem = Path(src.path).stem
    for k, (number, rgb, err) in enumerate(src.frames()):
        check_cancel(cancel)
        if rgb is None:
            msg = f"frame {number} of {src.path} could not be decoded ({err})"
            if on_error == "raise":
                raise InputError(msg[0].upper() + msg[1:] + ".", src.path)
            failures.append((number, msg))
        else:
            name = f"{stem}.{number:04d}" if src.kind == "movie" else Path(src.files[k]).stem
            try:
                one = _prepare(rgb, recipe, size, vggt_mode, da3_method, name, whole_frame)
            except InputError as bad:    # e.g. a frame too elongated for the network
                raise InputError(f"Frame {number} of {src.path}: {bad}", src.path) from bad
            frame = _SequenceFrame(name=one.name, path=src.files[k] if src.kind == "images" else None,
                                   original_size=one.original_size, rgb=one.rgb, net_to_orig=one.net_to_orig,
                                   pad_mask=one.pad_mask, _alpha=one._alpha)
            frame.source, frame.number = src, number
            images.append(frame)
            numbers.append(number)
        del rgb
        report(progress, "decode", k + 1, len(src), f"frame {number} ({k + 1}/{len(src)}) "
               f"{eta_text(started, k + 1, len(src))}".strip())
    order = np.argsort(numbers, kind="stable")       # a movie yields frames it could not decode last
    images, numbers = [images[k] for k in order], [numbers[k] for k in order]
    failures.sort()
    if not images:
        detail = "; ".join(m for _, m in failures[:3])
        raise InputError(f"No frame of {src.path} could be decoded: {detail}.", src.path)
    if recipe == "vggt":
        from .images import _pad_batch_to_common_shape

        _pad_batch_to_common_shape(images)
    elif recipe == "da3":
        from .da3_images import crop_batch_to_common_shape

        crop_batch_to_common_shape(images)
    return SequenceFrames(ImageSet(images, [(f"{src.path} frame {n}", m) for n, m in failures]), numbers,
                          src.fps, failures)


def _prepare(rgb: np.ndarray, recipe: str, size: int, vggt_mode: str, da3_method: str, name: str,
             whole_frame: bool = False) -> LoadedImage:
    """One decoded frame → its network-size LoadedImage (the in-memory original is dropped by the caller)."""
    if recipe == "dust3r":
        return load_images([rgb], size=size, names=[name], whole_frame=whole_frame)[0]
    if recipe == "vggt":
        return load_images_vggt([rgb], mode=vggt_mode, target=size, names=[name])[0]
    from .da3_images import load_images_da3

    return load_images_da3([rgb], process_res=size, method=da3_method, names=[name])[0]


# ----------------------------------------------------------------------------------------------

def _sequence_numbers(files: list[str]) -> list[int]:
    """Trailing digits of each file stem, or 1, 2, ... when any file has none."""
    found = [_TRAILING_DIGITS.search(Path(f).stem) for f in files]
    if all(found):
        return [int(m.group(1)) for m in found]
    return list(range(1, len(files) + 1))


def _select(numbers: list[int], start, end, stride: int, path) -> list[int]:
    lo = numbers[0] if start is None else start
    hi = numbers[-1] if end is None else end
    keep = [k for k, n in enumerate(numbers) if lo <= n <= hi]
    keep = keep[::stride]
    if not keep:
        raise InputError(f"{path}: no frame between {lo} and {hi} (the clip has frames {numbers[0]} to "
                         f"{numbers[-1]}).", str(path))
    return keep


def _av():
    try:
        import av
    except ImportError as err:   # the dependency installer adds it; say what is missing
        from ..errors import DependencyError

        raise DependencyError("Reading movie files needs the 'av' package (PyAV); install it or give an "
                              "image sequence instead.") from err
    return av


def _movie_info(path: Path) -> tuple[int, float | None]:
    """(number of frames, fps) of a movie's first video stream; counts by demuxing when the header does not say."""
    av = _av()
    try:
        with av.open(str(path)) as box:
            if not box.streams.video:
                raise InputError(f"{path} has no video stream.", str(path))
            stream = box.streams.video[0]
            fps = float(stream.average_rate) if stream.average_rate else None
            count = int(stream.frames or 0)
            if count <= 0:
                count = sum(1 for p in box.demux(stream) if p.size > 0)
    except InputError:
        raise
    except (av.error.FFmpegError, OSError) as err:
        raise InputError(f"cannot read the movie {path}: {err}", str(path)) from err
    if count <= 0:
        raise InputError(f"{path} holds no video frames.", str(path))
    return count, fps


def _movie_frames(path: str, numbers: list[int], first_frame: int, fps: float | None = None):
    """Decode the movie in order; yield the wanted frames (number, rgb or None, error).

    A frame's number comes from its presentation time (so codecs that reorder frames number them
    right); a wanted frame that never comes out of the decoder is yielded last with the error of the
    packet that failed (or "missing from the stream").
    """
    av = _av()
    wanted = set(numbers)
    done, errors = set(), []
    counter = 0
    with av.open(path) as box:
        stream = box.streams.video[0]
        rate = fps or (float(stream.average_rate) if stream.average_rate else None)
        base = stream.time_base
        start = stream.start_time if stream.start_time is not None else 0

        def number_of(frame) -> int:
            nonlocal counter
            counter += 1
            if frame.pts is None or rate is None or base is None:
                return first_frame + counter - 1
            return first_frame + int(round(float((frame.pts - start) * base) * rate))

        for packet in box.demux(stream):
            try:
                frames = packet.decode()
            except (av.error.FFmpegError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            for frame in frames:
                number = number_of(frame)
                if number in wanted and number not in done:
                    done.add(number)
                    yield number, frame.to_ndarray(format="rgb24"), ""
            if packet.size and done >= wanted:
                break
    why = errors[0] if errors else "missing from the stream"
    for number in sorted(wanted - done):
        yield number, None, why


def write_frames(source: str | os.PathLike, numbers: list[int], folder: str | os.PathLike, first_frame: int = 1,
                 stem: str | None = None) -> list[str]:
    """Decode frames `numbers` of a movie one at a time and write each as folder/<stem>.<number>.png (stem:
    the movie's; existing files of those names are replaced). Returns the paths in the order of `numbers`.
    For exports that need an image file per frame (transforms.json). InputError naming an undecodable frame."""
    from PIL import Image

    src = open_sequence(source, first_frame=first_frame)
    missing = sorted(set(numbers) - set(src.frame_numbers))
    if missing:
        raise InputError(f"{source} has no frame {missing[0]} (its frames are {src.frame_numbers[0]} to "
                         f"{src.frame_numbers[-1]}).", str(source))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = stem or Path(source).stem
    paths = {n: str(folder / f"{stem}.{n:04d}.png") for n in numbers}
    for number, rgb, err in src._subset(list(numbers)).frames():
        if rgb is None:
            raise InputError(f"Frame {number} of {source} could not be decoded ({err}).", str(source))
        Image.fromarray(rgb).save(paths[number])
    return [paths[n] for n in numbers]
