"""Image loading for Depth Anything 3, bit-exact with the reference `InputProcessor`.

Rules (tests/fixtures/da3/README.md §2): RGB conversion drops alpha (no compositing); a boundary resize
(`upper_bound_*`: long side -> process_res; `lower_bound_*`: short side -> process_res; sizes by Python's
half-to-even round of the float64 product), then each side to a multiple of 14 by a second resize to the
nearest multiple (`*_resize`, ties up) or a floor-and-centre crop (`*_crop`); then, for batches of mixed
sizes, a centre crop of every view to the smallest H and W. Resampling is OpenCV's uint8 `cv2.resize`
(INTER_CUBIC when enlarging, INTER_AREA otherwise): the reference uses it and no other resampler
reproduces its fixed-point rounding, hence the opencv-python-headless dependency (imported lazily).

`net_to_orig` maps network pixels to original pixels with pixel centres at integers, as for the other
families; known intrinsics are carried to network pixels with its inverse.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..errors import CancelToken, InputError
from ..progress import ProgressFn
from .images import ImageSet, LoadedImage, _load_all, net_to_orig_matrix

DA3_PATCH = 14
METHODS = ("upper_bound_resize", "upper_bound_crop", "lower_bound_resize", "lower_bound_crop")


def da3_plan(w0: int, h0: int, process_res: int = 504, method: str = "upper_bound_resize"):
    """The reference's resize steps for a (w0, h0) image.

    Returns (stage1, stage2, crop): stage1 = (W1, H1, "cubic"|"area") or None (no resize), stage2 likewise
    (only for *_resize), crop = (left, top, W, H) in stage-1 pixels (only for *_crop, else None).
    """
    if method not in METHODS:
        raise ValueError(f"unknown DA3 preprocessing method {method!r}; one of {', '.join(METHODS)}")
    side = max(w0, h0) if method.startswith("upper") else min(w0, h0)
    stage1 = None
    w1, h1 = w0, h0
    if side != process_res:
        scale = process_res / side
        w1, h1 = max(1, int(round(w0 * scale))), max(1, int(round(h0 * scale)))
        stage1 = (w1, h1, "cubic" if scale > 1 else "area")
    if method.endswith("_crop"):
        w2, h2 = max(DA3_PATCH, w1 // DA3_PATCH * DA3_PATCH), max(DA3_PATCH, h1 // DA3_PATCH * DA3_PATCH)
        crop = ((w1 - w2) // 2, (h1 - h2) // 2, w2, h2) if (w2, h2) != (w1, h1) else None
        return stage1, None, crop

    def nearest(n: int) -> int:
        return max(DA3_PATCH, (n + DA3_PATCH // 2) // DA3_PATCH * DA3_PATCH)  # 14k+7 rounds up

    w2, h2 = nearest(w1), nearest(h1)
    stage2 = None
    if (w2, h2) != (w1, h1):
        stage2 = (w2, h2, "cubic" if (w2 > w1 or h2 > h1) else "area")
    return stage1, stage2, None


def _resize(a: np.ndarray, w: int, h: int, how: str) -> np.ndarray:
    import cv2

    return cv2.resize(a, (w, h), interpolation=cv2.INTER_CUBIC if how == "cubic" else cv2.INTER_AREA)


def prepare_da3(rgb: np.ndarray, process_res: int = 504, method: str = "upper_bound_resize"):
    """(H0, W0, 3) uint8 -> ((H, W, 3) uint8 network image, net_to_orig (3, 3) float64)."""
    h0, w0 = rgb.shape[:2]
    stage1, stage2, crop = da3_plan(w0, h0, process_res, method)
    out = rgb
    w1, h1 = w0, h0
    if stage1 is not None:
        w1, h1 = stage1[:2]
        out = _resize(np.ascontiguousarray(out), *stage1)
    left = top = 0
    size = (w1, h1)
    if stage2 is not None:
        out = _resize(out, *stage2)
        size = stage2[:2]
    if crop is not None:
        left, top, w2, h2 = crop
        out = out[top:top + h2, left:left + w2]
        size = (w1, h1)
    return np.ascontiguousarray(out), net_to_orig_matrix((w0, h0), size, (left, top))


def crop_batch_to_common_shape(images: list[LoadedImage]) -> None:
    """The reference's batch rule: if shapes differ, centre-crop every view to the smallest H and W."""
    shapes = {im.true_shape for im in images}
    if len(shapes) <= 1:
        return
    min_h = min(h for h, _ in shapes)
    min_w = min(w for _, w in shapes)
    for im in images:
        h, w = im.true_shape
        top, left = (h - min_h) // 2, (w - min_w) // 2
        im.rgb = np.ascontiguousarray(im.rgb[top:top + min_h, left:left + min_w])
        # Network pixel (u, v) of the crop is (u + left, v + top) of the uncropped network image.
        shift = np.array([[1.0, 0.0, left], [0.0, 1.0, top], [0.0, 0.0, 1.0]])
        im.net_to_orig = im.net_to_orig @ shift


def load_images_da3(sources, process_res: int = 504, method: str = "upper_bound_resize",
                    on_error: str = "raise", names: Sequence[str] | None = None,
                    progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> ImageSet:
    """Load images for DA3 as the reference API does (module docstring). Sources/on_error/names as
    `core.io.images.load_images`. All views end at one size (multiples of 14)."""
    if process_res < DA3_PATCH:
        raise ValueError(f"process_res ({process_res}) must be at least {DA3_PATCH}")
    da3_plan(1, 1, process_res, method)  # validates `method` before any file is read

    def prepare(img: Image.Image, label: str):
        if min(img.size) < 1:
            raise InputError(f"cannot use {label}: the image is empty")
        out, n2o = prepare_da3(np.asarray(img), process_res, method)
        return Image.fromarray(out), n2o, None

    result = _load_all(sources, prepare, "drop", on_error, names, progress, cancel)
    crop_batch_to_common_shape(result.images)
    return result


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_tensor_da3(images):
    """(N, 3, H, W) float32: (u8/255 - mean)/std in float32, bit-exact with torchvision's ToTensor+Normalize."""
    import torch

    if isinstance(images, LoadedImage):
        images = [images]
    images = list(images)
    if len({im.true_shape for im in images}) > 1:
        raise InputError("DA3 needs all images at one size after preprocessing.")
    u8 = np.stack([im.rgb for im in images]).transpose(0, 3, 1, 2)
    return normalize_u8(torch.from_numpy(np.ascontiguousarray(u8)))


def normalize_u8(u8):
    """uint8 tensor (..., 3, H, W) -> float32 (u8/255 - mean)/std, each step in float32 as torchvision."""
    import torch

    x = u8.to(torch.float32) / 255
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
    return (x - mean) / std
