"""Loading photos for the networks: files/folders/PIL/numpy → network-size RGB + the map back.

Two preprocessing recipes are implemented, each reproducing its reference bit for bit:

* `load_images` — DUSt3R / MASt3R (`dust3r.utils.image.load_images`): size 224 (short side to 224, centre
  square crop) or any other size (long side to `size`, centre crop to multiples of `patch_size`, a square
  result becomes 4:3 unless `square_ok`). `whole_frame` (not in the reference) applies the second rule at
  224 too and keeps squares square: for networks trained on whole frames of several aspects at 224 (the
  demo model's config.json says so with `"pointmap_crop": "whole"`).
* `load_images_vggt` — VGGT (`vggt.utils.load_fn.load_and_preprocess_images`): width 518 ("crop") or
  long side 518 padded with white to a square ("pad"), sides multiples of 14.

Both apply the EXIF orientation first (VGGT's reference does not; we do, so that "original pixels" mean
the same thing for every backend) and return an `ImageSet` of `LoadedImage`s. Each `LoadedImage` carries
`net_to_orig`, the 3x3 affine from network pixels to original pixels in the pixel-centre-at-integer
convention of `core/reconstruction.py`: for a resize (W0, H0) → (W1, H1) followed by a crop whose
top-left corner is (l, t) in resized pixels (negative for padding),

    x0 = (u + l + 0.5) · W0 / W1 − 0.5,      y0 = (v + t + 0.5) · H0 / H1 − 0.5.

Pillow's resamplers map output pixel centres exactly this way, so the formula is exact, not approximate.

This module imports neither torch nor bpy at import time; `to_tensor*` import torch when called.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import CancelToken, InputError, check_cancel
from ..progress import ProgressFn, report

if TYPE_CHECKING:  # torch is imported only when tensors are asked for
    import torch

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm", ".tga",
})
VGGT_PATCH = 14

_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


# ----------------------------------------------------------------------------------------------
# data types
# ----------------------------------------------------------------------------------------------

@dataclass
class LoadedImage:
    """One view as the network sees it.

    name:          display name (file stem, or given / "image_003" for in-memory images)
    path:          absolute source file path, None for in-memory images
    original_size: (H0, W0) of the source after EXIF orientation
    rgb:           (H, W, 3) uint8 sRGB at network resolution (padding, if any, is white)
    net_to_orig:   (3, 3) float64; [x0, y0, 1] = net_to_orig @ [u, v, 1] (pixel centres at integers)
    pad_mask:      (H, W) bool, True on padding pixels (not from the photo); None when nothing was padded
    """

    name: str
    path: str | None
    original_size: tuple[int, int]
    rgb: np.ndarray
    net_to_orig: np.ndarray
    pad_mask: np.ndarray | None = None
    # The converted (H0, W0, 3) original, kept only for in-memory sources (files are re-read on demand).
    _memory: np.ndarray | None = field(default=None, repr=False, compare=False)
    # How alpha is turned into RGB for this image: "drop" (DUSt3R) or "white" (VGGT).
    _alpha: str = field(default="drop", repr=False, compare=False)

    @property
    def true_shape(self) -> tuple[int, int]:
        """(H, W) at network resolution."""
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])

    @property
    def valid_mask(self) -> np.ndarray:
        """(H, W) bool, True on pixels that come from the photo."""
        if self.pad_mask is None:
            return np.ones(self.true_shape, dtype=bool)
        return ~self.pad_mask

    def load_original(self) -> np.ndarray:
        """(H0, W0, 3) uint8: the full-resolution image after EXIF orientation and colour conversion."""
        if self._memory is not None:
            return self._memory
        if self.path is None:
            raise InputError(f"{self.name}: the original image is not available (no file, not kept in memory).")
        img = _to_rgb(_open_file(self.path), self._alpha, self.path)
        if (img.height, img.width) != tuple(self.original_size):
            raise InputError(
                f"cannot read {self.path}: the file changed since it was loaded "
                f"(now {img.width}x{img.height}, was {self.original_size[1]}x{self.original_size[0]})", self.path)
        return np.asarray(img)


@dataclass
class ImageSet:
    """What the loaders return, in both error modes.

    images:   the loaded views, in source order (folders in natural name order)
    failures: (path or name, message) for every source that was skipped; always empty with on_error="raise"
    Iterating / indexing / len() act on `images`.
    """

    images: list[LoadedImage]
    failures: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[LoadedImage]:
        return iter(self.images)

    def __getitem__(self, i: int) -> LoadedImage:
        return self.images[i]

    @property
    def names(self) -> list[str]:
        return [im.name for im in self.images]

    def duplicate_warnings(self) -> list[str]:
        """One sentence per view whose network-size pixels equal an earlier view's (the same photo twice:
        the pair between them holds no parallax, so their cameras coincide). Names the files (or names)."""
        first: dict[tuple, str] = {}
        out = []
        for im in self.images:
            key = (im.rgb.shape, hashlib.sha256(np.ascontiguousarray(im.rgb).tobytes()).hexdigest())
            label = im.path or im.name
            if key in first:
                out.append(f"{label} is the same picture as {first[key]}: the two views give one camera position "
                           "and no depth between them; remove one of them unless that is intended.")
            else:
                first[key] = label
        return out


# ----------------------------------------------------------------------------------------------
# public loaders
# ----------------------------------------------------------------------------------------------

def load_images(sources, size: int = 512, square_ok: bool = False, patch_size: int = 16,
                on_error: str = "raise", names: Sequence[str] | None = None,
                progress: ProgressFn | None = None, cancel: CancelToken | None = None,
                whole_frame: bool = False) -> ImageSet:
    """Load images for DUSt3R / MASt3R exactly as `dust3r.utils.image.load_images` does.

    sources: a file path, a folder path (its images in natural name order), a PIL image, a numpy array
             ((H, W), (H, W, 1|3|4); uint8, uint16, bool or float in [0, 1]) or a list of these.
    size:    224 → short side 224 then a centre 224x224 crop; otherwise the long side becomes `size` and
             the centre is cropped to multiples of `patch_size` (square → 4:3 unless `square_ok`).
    on_error: "raise" → the first bad source raises InputError; "skip" → bad sources are listed in
             `ImageSet.failures` (InputError only if nothing at all could be loaded).
    names:   optional display names, one per expanded source.
    whole_frame: the whole photo at every size, 224 included (long side to `size`, centre crop to multiples
             of `patch_size`), and a square stays square; for networks trained on whole frames (not the
             reference's rule: its size 224 crops the central square).
    Alpha is dropped (like the reference's convert('RGB')).
    """
    if size < 1 or patch_size < 1:
        raise ValueError(f"size ({size}) and patch_size ({patch_size}) must be positive")

    def prepare(img: Image.Image, label: str) -> tuple[Image.Image, np.ndarray, None]:
        w0, h0 = img.size
        (w1, h1), resample, (l, t, r, b) = dust3r_plan(w0, h0, size, square_ok or whole_frame, patch_size,
                                                       whole_frame)
        if r <= l or b <= t:
            raise InputError(f"cannot use {label}: a {w0}x{h0} image is too elongated for size {size} "
                             f"(nothing is left after cropping to multiples of {patch_size} pixels)")
        # Pillow returns an unmodified copy when the size does not change, as the reference relies on.
        out = img.resize((w1, h1), resample).crop((l, t, r, b))
        return out, net_to_orig_matrix((w0, h0), (w1, h1), (l, t)), None

    return _load_all(sources, prepare, "drop", on_error, names, progress, cancel)


def load_images_vggt(sources, mode: str = "crop", target: int = 518, on_error: str = "raise",
                     names: Sequence[str] | None = None, progress: ProgressFn | None = None,
                     cancel: CancelToken | None = None) -> ImageSet:
    """Load images for VGGT exactly as `vggt.utils.load_fn.load_and_preprocess_images` does.

    mode "crop": width becomes `target`, height the proportional multiple of 14 (half-to-even); taller
    results keep their centre `target` rows. mode "pad": the long side becomes `target` (a square counts as
    landscape), the image is centred on a white `target` x `target` square. If the batch then has several
    shapes, every view is padded with white, centred, to the largest H and W. BICUBIC resampling.
    Alpha (any mode with transparency) is composited over white. Sources/on_error/names as `load_images`.
    """
    if mode not in ("crop", "pad"):
        raise ValueError(f"VGGT preprocessing mode must be 'crop' or 'pad', not {mode!r}")
    if target < VGGT_PATCH:
        raise ValueError(f"target ({target}) must be at least {VGGT_PATCH}")

    def prepare(img: Image.Image, label: str) -> tuple[Image.Image, np.ndarray, np.ndarray | None]:
        w0, h0 = img.size
        (w1, h1), (l, t), (w, h) = vggt_plan(w0, h0, mode, target)
        if w1 < 1 or h1 < 1:
            raise InputError(f"cannot use {label}: a {w0}x{h0} image is too elongated for VGGT "
                             f"(a side would be under {VGGT_PATCH} pixels)")
        resized = img.resize((w1, h1), Image.Resampling.BICUBIC)
        canvas = Image.new("RGB", (w, h), (255, 255, 255))
        canvas.paste(resized, (-l, -t))  # a negative offset crops, a positive one pads
        pad = _pad_mask((h, w), (w1, h1), (l, t))
        return canvas, net_to_orig_matrix((w0, h0), (w1, h1), (l, t)), pad if pad.any() else None

    result = _load_all(sources, prepare, "white", on_error, names, progress, cancel)
    _pad_batch_to_common_shape(result.images)
    return result


def to_tensor(images) -> torch.Tensor:
    """(N, 3, H, W) float32 in [-1, 1]: exactly (float32(u8) / 255 − 0.5) / 0.5, as DUSt3R's transform.

    `images`: a LoadedImage, a list of them or an ImageSet; all must share one (H, W).
    """
    lut = (np.arange(256, dtype=np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
    return _stack_through_lut(images, lut)


def to_tensor_vggt(images) -> torch.Tensor:
    """(N, 3, H, W) float32 in [0, 1]: exactly float32(u8) / 255 (VGGT normalises inside the model)."""
    lut = np.arange(256, dtype=np.float32) / np.float32(255)
    return _stack_through_lut(images, lut)


# ----------------------------------------------------------------------------------------------
# geometry: the reference resize/crop rules as pure functions
# ----------------------------------------------------------------------------------------------

def dust3r_plan(w0: int, h0: int, size: int, square_ok: bool = False, patch_size: int = 16,
                whole_frame: bool = False):
    """DUSt3R's resize and crop for a (w0, h0) image.

    Returns ((W1, H1) resize target, PIL resample filter, (left, top, right, bottom) integer crop box in
    resized pixels). Python's round() is half-to-even, as in the reference. `whole_frame`: size 224 follows
    the rule of the other sizes (long side to 224, sides cropped to multiples of `patch_size`) instead of
    the central square.
    """
    square224 = size == 224 and not whole_frame
    if square224:
        long_target = round(size * max(w0 / h0, h0 / w0))
    else:
        long_target = size
    long_side = max(w0, h0)
    # The reference picks LANCZOS when shrinking and BICUBIC when growing or keeping the size.
    resample = Image.Resampling.LANCZOS if long_side > long_target else Image.Resampling.BICUBIC
    w1, h1 = (int(round(x * long_target / long_side)) for x in (w0, h0))
    cx, cy = w1 // 2, h1 // 2
    if square224:
        half = min(cx, cy)
        box = (cx - half, cy - half, cx + half, cy + half)
    else:
        # 2*c is even and truncated to a multiple of patch_size, so these halves are whole numbers
        # whenever patch_size is even (Pillow rounds a fractional box half-to-even, as done here).
        half_w = ((2 * cx) // patch_size) * patch_size / 2
        half_h = ((2 * cy) // patch_size) * patch_size / 2
        if not square_ok and w1 == h1:
            half_h = 3 * half_w / 4
        box = tuple(int(round(c)) for c in (cx - half_w, cy - half_h, cx + half_w, cy + half_h))
    return (w1, h1), resample, box


def vggt_plan(w0: int, h0: int, mode: str, target: int = 518):
    """VGGT's resize and crop/pad for a (w0, h0) image.

    Returns ((W1, H1) resize target, (l, t) top-left of the output in resized pixels (negative = padding),
    (W, H) output size before any batch padding).
    """
    if mode == "pad" and h0 > w0:
        h1 = target
        w1 = round(w0 * (h1 / h0) / VGGT_PATCH) * VGGT_PATCH
    else:
        w1 = target
        h1 = round(h0 * (w1 / w0) / VGGT_PATCH) * VGGT_PATCH
    if mode == "crop":
        t = (h1 - target) // 2 if h1 > target else 0
        return (w1, h1), (0, t), (w1, min(h1, target))
    pad_w, pad_h = target - w1, target - h1
    return (w1, h1), (-(pad_w // 2), -(pad_h // 2)), (target, target)


def net_to_orig_matrix(orig_wh: tuple[int, int], resized_wh: tuple[int, int],
                       offset_lt: tuple[int, int]) -> np.ndarray:
    """(3, 3) float64 affine: network pixel (u, v) → original pixel, pixel centres at integers.

    orig_wh (W0, H0), resized_wh (W1, H1), offset_lt (l, t): the network image's top-left in resized pixels.
    """
    (w0, h0), (w1, h1), (l, t) = orig_wh, resized_wh, offset_lt
    sx, sy = w0 / w1, h0 / h1
    return np.array([[sx, 0.0, (l + 0.5) * sx - 0.5],
                     [0.0, sy, (t + 0.5) * sy - 0.5],
                     [0.0, 0.0, 1.0]], dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# sources: expansion, opening, colour conversion
# ----------------------------------------------------------------------------------------------

def natural_key(name: str) -> tuple:
    """Sort key putting "img2" before "img10" (digits compare as numbers)."""
    parts = re.split(r"(\d+)", name.lower())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), name


def list_image_files(folder: str | os.PathLike) -> list[str]:
    """Image files directly inside `folder`, natural order; hidden files (e.g. macOS "._x.jpg") skipped."""
    entries = [e for e in os.scandir(folder)
               if e.is_file() and not e.name.startswith(".")
               and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS]
    return [os.path.abspath(e.path) for e in sorted(entries, key=lambda e: natural_key(e.name))]


def _expand_sources(sources, on_error: str, failures: list) -> list[tuple[object, str | None]]:
    """Flatten sources into (item, path-or-None) with folders replaced by their image files."""
    if isinstance(sources, (str, os.PathLike, Image.Image, np.ndarray)):
        sources = [sources]
    items: list[tuple[object, str | None]] = []
    for src in sources:
        if isinstance(src, (str, os.PathLike)):
            path = os.path.abspath(os.fspath(src))
            if os.path.isdir(path):
                files = list_image_files(path)
                if not files:
                    _fail(InputError(f"no images in folder {path} (looked for "
                                     f"{', '.join(sorted(IMAGE_EXTENSIONS))})", path), on_error, failures)
                items.extend((f, f) for f in files)
            else:
                items.append((path, path))
        elif isinstance(src, (Image.Image, np.ndarray)):
            items.append((src, None))
        else:
            raise TypeError(f"cannot load an image from a {type(src).__name__}; give a path, a folder, "
                            "a PIL image or a numpy array")
    return items


def _open_file(path: str) -> Image.Image:
    """Open, fully decode and EXIF-orient an image file; InputError naming the file on any failure."""
    try:
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise InputError(f"cannot read {path}: the file is empty", path)
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im)
    except InputError:
        raise
    except FileNotFoundError:
        problem = "no such file or folder"
    except IsADirectoryError:
        problem = "it is a folder"
    except PermissionError:
        problem = "permission denied"
    except UnidentifiedImageError:
        problem = "not an image file (cannot identify image file)"
    except Image.DecompressionBombError as err:
        problem = f"the image is too large to load safely ({err})"
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        problem = f"the file is damaged or truncated ({err})"
    except Exception as err:  # a decoder or EXIF parser failing in an unforeseen way is still a bad file
        problem = f"it could not be decoded ({type(err).__name__}: {err})"
    raise InputError(f"cannot read {path}: {problem}", path)


def _to_rgb(img: Image.Image, alpha: str, label: str) -> Image.Image:
    """Any Pillow mode → 8-bit "RGB". alpha "drop" discards transparency, "white" composites over white."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return Image.fromarray(_array_to_u8(np.asarray(img), label)).convert("RGB")
    has_alpha = mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info)
    try:
        if alpha == "white" and has_alpha:
            rgba = img.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        if mode == "La":  # Pillow has no La → RGB path; un-premultiply through RGBA
            img = img.convert("RGBA")
        return img if img.mode == "RGB" else img.convert("RGB")
    except (ValueError, OSError) as err:
        raise InputError(f"cannot use {label}: unsupported colour mode {mode} ({err})") from err


def _array_to_u8(a: np.ndarray, label: str) -> np.ndarray:
    """Scale a numeric array to uint8 keeping its shape.

    uint8 as is; bool → 0/255; 16-bit integers (and wider ints above 255) → round(v · 255 / 65535);
    other integers within 0..255 as is; floats: [0, 1] → × 255 if their maximum is ≤ 1, else taken as
    0..255; NaN → 0; values are clipped to the range.
    """
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.integer):
        wide = a.astype(np.int64)
        if a.dtype.itemsize == 2 or wide.max(initial=0) > 255:
            if wide.min(initial=0) < 0 or wide.max(initial=0) > 65535:
                raise InputError(f"cannot use {label}: integer pixel values outside 0..65535")
            return ((np.clip(wide, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8)
        return np.clip(wide, 0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        f = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if f.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(np.rint(f * scale), 0, 255).astype(np.uint8)
    raise InputError(f"cannot use {label}: unsupported pixel type {a.dtype}")


def _array_to_image(a: np.ndarray, label: str) -> Image.Image:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array → 8-bit PIL image ("L", "RGB" or "RGBA")."""
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))) or min(a.shape[:2]) < 1:
        raise InputError(f"cannot use {label}: expected an (H, W), (H, W, 3) or (H, W, 4) array, "
                         f"got shape {a.shape}")
    return Image.fromarray(np.ascontiguousarray(_array_to_u8(a, label)))


# ----------------------------------------------------------------------------------------------
# the shared loop
# ----------------------------------------------------------------------------------------------

Prepare = Callable[[Image.Image, str], tuple[Image.Image, np.ndarray, "np.ndarray | None"]]


def _load_all(sources, prepare: Prepare, alpha: str, on_error: str, names, progress, cancel) -> ImageSet:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    failures: list[tuple[str, str]] = []
    items = _expand_sources(sources, on_error, failures)
    if names is not None and len(names) != len(items):
        raise ValueError(f"{len(names)} names given for {len(items)} images")
    images: list[LoadedImage] = []
    for k, (item, path) in enumerate(items):
        check_cancel(cancel)
        name = names[k] if names is not None else _default_name(item, path, k)
        label = path or f"image {name!r}"
        try:
            images.append(_load_one(item, path, name, label, prepare, alpha))
        except InputError as err:
            err.path = err.path or path
            _fail(err, on_error, failures, fallback=name)
        report(progress, "load", k + 1, max(len(items), 1), name)
    if not images:
        detail = "; ".join(msg for _, msg in failures) if failures else "no sources were given"
        raise InputError(f"No usable images: {detail}.")
    _make_names_unique(images)
    return ImageSet(images, failures)


def _load_one(item, path: str | None, name: str, label: str, prepare: Prepare, alpha: str) -> LoadedImage:
    memory = None
    if path is not None:
        img = _to_rgb(_open_file(path), alpha, path)
    elif isinstance(item, np.ndarray):
        img = _to_rgb(_array_to_image(item, label), alpha, label)
        memory = np.asarray(img)
    else:
        try:  # a PIL image opened lazily by the caller is decoded only now
            img = ImageOps.exif_transpose(item)
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise InputError(f"cannot use {label}: it could not be decoded ({err})") from err
        img = _to_rgb(img, alpha, label)
        memory = np.asarray(img)
    out, n2o, pad = prepare(img, label)
    return LoadedImage(name=name, path=path, original_size=(img.height, img.width), rgb=np.asarray(out).copy(),
                       net_to_orig=n2o, pad_mask=pad, _memory=memory, _alpha=alpha)


def _fail(err: InputError, on_error: str, failures: list, fallback: str = "") -> None:
    """Raise (on_error "raise") or record (path, or `fallback` for in-memory images; message)."""
    if on_error == "raise":
        raise err
    failures.append((err.path or fallback, str(err)))


def _default_name(item, path: str | None, k: int) -> str:
    if path is not None:
        return Path(path).stem
    filename = getattr(item, "filename", "")  # PIL images opened from a file remember it
    return Path(filename).stem if filename else f"image_{k:03d}"


def _make_names_unique(images: list[LoadedImage]) -> None:
    """Blender objects need distinct names: a repeated name gets "_2", "_3", ..."""
    seen: dict[str, int] = {}
    taken = {im.name for im in images}
    for im in images:
        count = seen.get(im.name, 0) + 1
        seen[im.name] = count
        if count > 1:
            candidate, k = f"{im.name}_{count}", count
            while candidate in taken:
                k += 1
                candidate = f"{im.name}_{k}"
            taken.add(candidate)
            im.name = candidate


def _pad_mask(out_hw: tuple[int, int], resized_wh: tuple[int, int], offset_lt: tuple[int, int]) -> np.ndarray:
    """(H, W) bool, True where the output lies outside the resized photo placed at -offset."""
    h, w = out_hw
    (w1, h1), (l, t) = resized_wh, offset_lt
    rows = np.arange(h) + t
    cols = np.arange(w) + l
    inside = ((rows >= 0) & (rows < h1))[:, None] & ((cols >= 0) & (cols < w1))[None, :]
    return ~inside


def _pad_batch_to_common_shape(images: list[LoadedImage]) -> None:
    """VGGT's batch rule: if shapes differ, pad every view with white, centred, to the largest H and W."""
    shapes = {im.true_shape for im in images}
    if len(shapes) <= 1:
        return
    big_h = max(h for h, _ in shapes)
    big_w = max(w for _, w in shapes)
    for im in images:
        h, w = im.true_shape
        top, left = (big_h - h) // 2, (big_w - w) // 2
        if (h, w) == (big_h, big_w):
            continue
        rgb = np.full((big_h, big_w, 3), 255, dtype=np.uint8)
        rgb[top:top + h, left:left + w] = im.rgb
        pad = np.ones((big_h, big_w), dtype=bool)
        pad[top:top + h, left:left + w] = im.pad_mask if im.pad_mask is not None else False
        # Shifting the network image by (left, top) is a translation by -left/-top in network pixels.
        shift = np.array([[1.0, 0.0, -left], [0.0, 1.0, -top], [0.0, 0.0, 1.0]])
        im.rgb, im.pad_mask, im.net_to_orig = rgb, pad, im.net_to_orig @ shift


def _stack_through_lut(images, lut: np.ndarray):
    import torch

    if isinstance(images, LoadedImage):
        images = [images]
    images = list(images)
    if not images:
        raise ValueError("no images to convert")
    shapes = {im.true_shape for im in images}
    if len(shapes) > 1:
        raise ValueError(f"images have different network shapes {sorted(shapes)}; convert them one at a time")
    stacked = np.stack([im.rgb for im in images])            # (N, H, W, 3) uint8
    return torch.from_numpy(np.ascontiguousarray(lut[stacked].transpose(0, 3, 1, 2)))
