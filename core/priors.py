"""What the user already knows about the cameras, matched to the loaded views (issue #10, point 4).

`ReconstructOptions.intrinsics` and `.known_poses` name views the way the user sees them: one lens for every
image or frame, or one K per input; poses by photo file name / image name, or by a shot's clip frame number.
`resolve_priors` turns them into per-view arrays for the loaded views, before any network runs, and refuses
what cannot be matched (a name no view has, a per-image K list after an image was skipped). The backends
then use them: the pairwise aligner holds the intrinsics and the known poses fixed; VGGT and Depth Anything 3
use the intrinsics when turning depth into points, and are moved onto the known poses afterwards
(`core.align.anchor.anchor_to_known_poses`).

Conventions: K in original-image pixels with pixel centres at integers (as `Reconstruction.K`); poses are
4x4 camera-to-world matrices with OpenCV camera axes (x right, y down, z forward), in the user's world.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError


@dataclass
class Priors:
    """Known cameras matched to the loaded views.

    intrinsics: (N, 3, 3) float64 known K per view in original pixels, or None (predicted).
    known_poses: view index -> (4, 4) float64 cam2world (OpenCV), or None.
    """

    intrinsics: np.ndarray | None = None
    known_poses: dict[int, np.ndarray] | None = None


def check_intrinsics(K) -> np.ndarray:
    """(3, 3) or (N, 3, 3) -> float64 array; ValueError naming the problem (shape, non-finite, focal <= 0)."""
    a = np.asarray(K, dtype=np.float64)
    if a.ndim not in (2, 3) or a.shape[-2:] != (3, 3):
        raise ValueError(f"intrinsics must be one 3x3 matrix or one per image (N, 3, 3), not shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("intrinsics hold NaN or infinite values")
    m = a.reshape(-1, 3, 3)
    if (m[:, 0, 0] <= 0).any() or (m[:, 1, 1] <= 0).any():
        raise ValueError("intrinsics need positive focal lengths (K[0, 0] and K[1, 1], in pixels)")
    if not np.allclose(m[:, 2], [0.0, 0.0, 1.0]) or not np.allclose(m[:, 1, 0], 0.0):
        raise ValueError("intrinsics must be upper-triangular pinhole matrices with last row (0, 0, 1)")
    return a


def check_pose(T, label: str) -> np.ndarray:
    """A 4x4 cam2world -> float64; ValueError when it is not a rigid transform."""
    a = np.asarray(T, dtype=np.float64)
    if a.shape != (4, 4) or not np.isfinite(a).all():
        raise ValueError(f"known pose {label}: expected a finite 4x4 camera-to-world matrix, got shape {a.shape}")
    R = a[:3, :3]
    if not np.allclose(a[3], [0, 0, 0, 1], atol=1e-9) or not np.allclose(R.T @ R, np.eye(3), atol=1e-4) \
            or np.linalg.det(R) < 0:
        raise ValueError(f"known pose {label}: the upper-left 3x3 is not a rotation (or the last row is not "
                         f"0 0 0 1); give a rigid camera-to-world matrix, OpenCV axes")
    return a


def resolve_priors(intrinsics, known_poses, images, frame_numbers=None, skipped: int = 0) -> Priors:
    """Match the options' known cameras to the loaded views.

    intrinsics:    None, (3, 3) for every view, or (N, 3, 3) one per input image (photos only; N = the number
                   of loaded views, and nothing may have been skipped).
    known_poses:   None or {key: 4x4 cam2world}; keys are clip frame numbers (int) for a shot, photo file names
                   ("IMG_0001.jpg"), image names or view indices (int) for photos.
    images:        the loaded views (`LoadedImage`s, in order).
    frame_numbers: the shot's clip frame number per view, None for photos.
    skipped:       how many inputs were skipped as unreadable (per-image lists would be misaligned).
    Raises InputError naming the key or count that does not match.
    """
    images = list(images)
    n = len(images)
    out = Priors()
    if intrinsics is not None:
        K = check_intrinsics(intrinsics)
        if K.ndim == 2:
            out.intrinsics = np.repeat(K[None], n, axis=0)
        elif frame_numbers is not None:
            raise InputError(f"{len(K)} intrinsics were given for a shot: give one 3x3 K for the whole shot "
                             f"(per-frame intrinsics are not supported).")
        elif skipped:
            raise InputError(f"{len(K)} intrinsics were given, one per image, but {skipped} image(s) could not be "
                             f"read and were skipped, so they no longer line up; fix or remove those files.")
        elif len(K) != n:
            raise InputError(f"{len(K)} intrinsics were given for {n} images.")
        else:
            out.intrinsics = K.copy()
    if known_poses:
        out.known_poses = _match_poses(known_poses, images, frame_numbers, skipped)
    return out


def _match_poses(known: dict, images, frame_numbers, skipped: int) -> dict[int, np.ndarray]:
    if frame_numbers is not None:
        index = {int(f): k for k, f in enumerate(frame_numbers)}
        kind = "frame"
    else:
        index = {}
        for k, im in enumerate(images):
            index.setdefault(im.name, k)
            if im.path:
                index.setdefault(Path(im.path).name, k)
        kind = "image"
    out: dict[int, np.ndarray] = {}
    for key, T in known.items():
        label = f"{kind} {key!r}"
        if frame_numbers is not None:
            try:
                k = index[int(key)]
            except (KeyError, ValueError, TypeError):
                raise InputError(f"Known pose for frame {key!r}: the solved frames are "
                                 f"{_span(frame_numbers)}; no such frame.") from None
        elif isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if skipped:
                raise InputError(f"Known pose for image {key}: images are counted from 0 among those read, but "
                                 f"{skipped} could not be read; name the photos (file names) instead.")
            if not 0 <= int(key) < len(images):
                raise InputError(f"Known pose for image {key}: there are {len(images)} images (0 to "
                                 f"{len(images) - 1}).")
            k = int(key)
        elif str(key) in index:
            k = index[str(key)]
        else:
            names = ", ".join(sorted({im.name for im in images})[:5])
            raise InputError(f"Known pose for {key!r}: no image has that file name or name (images: {names}"
                             f"{', ...' if len(images) > 5 else ''}).")
        if k in out:
            raise InputError(f"Two known poses were given for the same view ({label}).")
        try:
            out[k] = check_pose(T, label)
        except ValueError as err:
            raise InputError(str(err)) from None
    return out


def _span(frame_numbers) -> str:
    f = list(frame_numbers)
    return f"{f[0]} to {f[-1]}" if f else "none"


def focal_mm_to_net_px(focal_mm: float, sensor_width_mm: float, image) -> float:
    """Focal length in network pixels of `image` (a LoadedImage) from a lens in mm.

    The sensor width is taken along the image's long side (how camera sensors are specified), so the
    focal in original pixels is focal_mm / sensor_mm · max(W0, H0); network pixels divide by the resize scale.
    """
    if focal_mm <= 0 or sensor_width_mm <= 0:
        raise ValueError("focal length and sensor width must be positive (mm)")
    h0, w0 = image.original_size
    f_orig = focal_mm / sensor_width_mm * max(w0, h0)
    return float(f_orig / image.net_to_orig[0, 0])


def intrinsics_from_focal_mm(images, focal_mm: float, sensor_width_mm: float) -> np.ndarray:
    """(N, 3, 3) K in original pixels for a known lens: focal `focal_mm` / `sensor_width_mm` of the long side,
    the principal point at the network image's centre (W/2, H/2 in network pixels, the single-pass models'
    convention) carried to original pixels."""
    ks = []
    for im in images:
        f = focal_mm_to_net_px(focal_mm, sensor_width_mm, im)
        h, w = im.true_shape
        ks.append(np.asarray(im.net_to_orig, np.float64) @ np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]]))
    return np.stack(ks)


def intrinsics_in_network_pixels(images, K_orig: np.ndarray) -> np.ndarray:
    """(N, 3, 3) original-pixel K -> network-pixel K of each loaded view (inverse of its resize/crop)."""
    n2o = np.stack([np.asarray(im.net_to_orig, np.float64) for im in images])
    return np.linalg.inv(n2o) @ np.asarray(K_orig, np.float64)
