"""Images: per-view depth/confidence float maps and the photo of each view.

Blender stores image rows bottom to top, so every array is flipped before `pixels.foreach_set`.
Float maps are 'Non-Color' (no view transform applied to data) with the value in R, G and B and
alpha 1; they are packed into the .blend ("pack") or written as OpenEXR files ("exr").
"""

from __future__ import annotations

import os

import numpy as np

from .convention import flip_rows
from .options import SceneError


def _blender_pixels(rgb: np.ndarray) -> np.ndarray:
    """(h, w, 3) colours, or (h, w, 1) values repeated in R, G, B → flat float32 RGBA (alpha 1) in
    Blender's bottom-to-top row order, as `Image.pixels.foreach_set` takes them."""
    h, w = rgb.shape[:2]
    rgba = np.ones((h, w, 4), np.float32)
    rgba[..., :3] = rgb
    return flip_rows(rgba).reshape(-1)


def float_map_image(name: str, values: np.ndarray, mode: str, directory: str | None, created):
    """A (h, w) float32 map as a Non-Color float image, packed or saved as a new file in `directory`
    (`name.exr`, or `name_2.exr`, ... when that name is taken: an existing file is never overwritten)."""
    import bpy

    h, w = values.shape
    img = created.add(bpy.data.images.new(name, w, h, alpha=False, float_buffer=True))
    # Colour space first: changing it afterwards reloads the (generated) buffer and loses the pixels.
    img.colorspace_settings.name = "Non-Color"
    img.pixels.foreach_set(_blender_pixels(np.asarray(values, np.float32)[..., None]))
    if mode == "pack":
        img.pack()
    elif mode == "exr":
        path = _claim_new_file(directory, _file_name(img.name), ".exr")
        created.add_file(path)          # ours from here on: claimed empty, so undo may delete it
        img.filepath_raw = path
        img.file_format = "OPEN_EXR"
        try:
            img.save()
        except RuntimeError as err:
            raise SceneError(f"Could not write the texture {path}: {err}") from err
    return img


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _claim_new_file(directory: str, stem: str, suffix: str) -> str:
    """Create an empty file `directory/stem[_N]suffix` that did not exist (O_EXCL: no race, no overwrite,
    also on case-insensitive file systems) and return its path."""
    for k in range(1, 10_000):
        path = os.path.join(directory, f"{stem}{'' if k == 1 else f'_{k}'}{suffix}")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return path
        except FileExistsError:
            continue
        except OSError as err:
            raise SceneError(f"Could not create the texture {path}: {err}") from err
    raise SceneError(f"Could not find a free file name for {stem}{suffix} in {directory}.")


def run_texture_dir(parent: str, run_name: str, created) -> str:
    """Create this run's own texture folder `parent/<run_name>` (`<run_name>_2`, ... when taken: another
    run's or another .blend's folder is never reused) and record it in the ledger; returns its path."""
    missing, folder = [], os.path.abspath(parent)
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        missing.append(folder)
        folder = os.path.dirname(folder)
    for folder in reversed(missing):     # outermost first, so undo removes them innermost first
        try:
            os.mkdir(folder)
        except OSError as err:
            raise SceneError(f"Could not create the texture folder {parent}: {err}") from err
        created.add_dir(folder)
    stem = _file_name(run_name) or "pointmap"
    for k in range(1, 10_000):
        path = os.path.join(parent, stem if k == 1 else f"{stem}_{k}")
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        except OSError as err:
            raise SceneError(f"Could not create the texture folder {path}: {err}") from err
        created.add_dir(path)
        return path
    raise SceneError(f"Could not find a free folder name for {stem} in {parent}.")


def texture_parent(texture_dir: str | None) -> str | None:
    """Where a run's OpenEXR folder goes: `texture_dir` if given, else beside the saved .blend; None when
    the .blend is unsaved (then the textures are packed) or when the folder is Blender's session temp folder,
    which Blender deletes on quit (the .blend would point at files that no longer exist)."""
    import bpy

    if texture_dir is None:
        if not bpy.data.filepath:
            return None
        texture_dir = os.path.dirname(bpy.path.abspath(bpy.data.filepath))
    tmp = bpy.app.tempdir
    if tmp and os.path.commonpath([os.path.abspath(texture_dir), os.path.abspath(tmp)]) == os.path.abspath(tmp):
        return None
    return texture_dir


def network_photo_array(colors: np.ndarray, net_to_orig: np.ndarray, orig_hw: tuple[int, int]) -> np.ndarray:
    """The network-resolution colours laid out at the original image's aspect, (h, w, 3) uint8.

    Output pixels sample the nearest network pixel through the inverse of `net_to_orig`, at the
    network's scale (one output pixel ≈ one network pixel), black where the network saw nothing
    (cropped borders). So UVs and camera frames computed for the original image fit it exactly.
    """
    A = np.asarray(net_to_orig, np.float64)
    H0, W0 = int(orig_hw[0]), int(orig_hw[1])
    scale = max(np.sqrt(abs(np.linalg.det(A[:2, :2]))), 1e-9)    # original px per network px
    w = max(1, int(round(W0 / scale)))
    h = max(1, int(round(H0 / scale)))
    # Output pixel centre → original coordinates → network pixel (nearest).
    xs = (np.arange(w) + 0.5) * (W0 / w) - 0.5
    ys = (np.arange(h) + 0.5) * (H0 / h) - 0.5
    X, Y = np.meshgrid(xs, ys)
    inv = np.linalg.inv(A)
    u = np.rint(inv[0, 0] * X + inv[0, 1] * Y + inv[0, 2]).astype(np.int64)
    v = np.rint(inv[1, 0] * X + inv[1, 1] * Y + inv[1, 2]).astype(np.int64)
    hn, wn = colors.shape[:2]
    inside = (u >= 0) & (u < wn) & (v >= 0) & (v < hn)
    out = np.zeros((h, w, 3), np.uint8)
    out[inside] = colors[v[inside], u[inside]]
    return out


EXIF_SOURCE = "pointmap_exif_source"   # on an oriented photo copy: the file it was made from


def _exif_upright(path: str) -> np.ndarray | None:
    """(H, W, 3) uint8 pixels of `path` turned upright by its EXIF orientation, or None when the file has
    no orientation other than 1 (or Pillow cannot read it: Blender then loads the file itself)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.getexif().get(0x0112, 1) in (0, 1):
                return None
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def photo_image(recon, i: int, name: str, created, warnings: list[str]):
    """The photo of view i, upright: its original file when readable (a packed upright copy when the file
    carries an EXIF orientation, which Blender would ignore), else one made from the network colours."""
    import bpy

    path = recon.paths[i]
    if path and os.path.isfile(path):
        upright = _exif_upright(path)
        if upright is not None:
            # Blender ignores EXIF orientation: show the photo as the reconstruction saw it (upright),
            # packed so the .blend carries it and the original file is never touched.
            h, w = upright.shape[:2]
            img = created.add(bpy.data.images.new(name, w, h, alpha=False))
            img.pixels.foreach_set(_blender_pixels(upright / np.float32(255.0)))
            img.pack()
            img[EXIF_SOURCE] = path
            return img
        before = {im.as_pointer() for im in bpy.data.images}
        try:
            img = bpy.data.images.load(path, check_existing=True)
        except RuntimeError as err:
            warnings.append(f"Could not load the photo {path} ({err}); using the network-resolution colours.")
        else:
            if img.as_pointer() not in before:
                created.add(img)
            return img
    arr = network_photo_array(np.asarray(recon.colors[i]), recon.net_to_orig[i], tuple(recon.image_sizes[i]))
    h, w = arr.shape[:2]
    img = created.add(bpy.data.images.new(name, w, h, alpha=False))
    img.pixels.foreach_set(_blender_pixels(arr / np.float32(255.0)))   # byte images take sRGB values as is
    img.pack()    # generated pixels would be lost on save otherwise
    return img
