"""core/images.py: reference parity (DUSt3R 224/512, VGGT 518), net_to_orig, EXIF, colour modes, errors."""

import json
import re

import numpy as np
import pytest
from conftest import FIXTURES, fixture_dir
from PIL import Image
from pointmap.core.errors import Cancelled, CancelToken, InputError
from pointmap.core.io.images import (
    ImageSet,
    dust3r_plan,
    load_images,
    load_images_vggt,
    to_tensor,
    to_tensor_vggt,
)

PREPROC = fixture_dir("POINTMAP_PREPROC_DIR", FIXTURES / "preprocessing")
VGGT_PARITY = fixture_dir("POINTMAP_VGGT_PARITY_DIR", FIXTURES / "vggt" / "parity")

DUST3R_CASES = sorted(p.name for p in PREPROC.glob("*_s*.npz"))


def _source_for(npz_name: str):
    """'land_640x480_s512.npz' → (images/land_640x480.<ext>, 512)."""
    stem, size = re.fullmatch(r"(.+)_s(\d+)\.npz", npz_name).groups()
    (image,) = list((PREPROC / "images").glob(stem + ".*"))
    return image, int(size)


# ---------------------------------------------------------------------------------------------
# parity with the references
# ---------------------------------------------------------------------------------------------

def test_fixture_cases_exist():
    assert DUST3R_CASES, f"no preprocessing cases in {PREPROC}"


@pytest.mark.parametrize("case", DUST3R_CASES)
def test_dust3r_preprocessing_bit_exact(case):
    ref = np.load(PREPROC / case)
    image, size = _source_for(case)
    im = load_images(str(image), size=size)[0]
    np.testing.assert_array_equal(im.rgb, ref["img_uint8"])
    np.testing.assert_array_equal(np.array([im.true_shape], np.int32), ref["true_shape"])
    if "img" in ref:
        t = to_tensor(im).numpy()
        assert t.dtype == np.float32
        np.testing.assert_array_equal(t, ref["img"])
    assert im.pad_mask is None


def test_dust3r_plan_matches_recorded_pil_calls():
    summary = PREPROC / "summary.json"
    if not summary.exists():
        pytest.skip("no summary.json")
    for case in json.loads(summary.read_text())["cases"]:
        ops = {op["op"]: op for op in case["pil_ops"]}
        w0, h0 = ops["resize"]["from_size"]
        (w1, h1), resample, box = dust3r_plan(w0, h0, case["size"])
        assert [w1, h1] == ops["resize"]["to_size"], case["npz"]
        assert resample.name == ops["resize"]["resample"], case["npz"]
        assert list(box) == ops["crop"]["box"], case["npz"]


def test_normalisation_lut():
    lut_file = PREPROC / "normalization_lut_uint8_to_float32.npy"
    if not lut_file.exists():
        pytest.skip("no LUT")
    lut = np.load(lut_file)
    ramp = np.arange(256, dtype=np.uint8)
    im = load_images(np.stack([np.tile(ramp, (16, 1))] * 3, axis=-1), size=256)[0]
    assert im.true_shape == (16, 256)
    t = to_tensor(im).numpy()
    np.testing.assert_array_equal(t[0, 0, 0], lut)
    np.testing.assert_array_equal(to_tensor_vggt(im).numpy()[0, 1, 0], ramp.astype(np.float32) / np.float32(255))


def _vggt_cases():
    path = VGGT_PARITY / "preprocess_518.npz"
    if not path.exists():
        return []
    with np.load(path) as z:
        return sorted(z.files)


@pytest.mark.parametrize("key", _vggt_cases())
def test_vggt_preprocessing_bit_exact(key):
    # key = "<mode>_<letters>_u8": images pp_<letter>_*.png loaded together, in letter order
    mode, letters, _ = key.split("_")
    files = [next((VGGT_PARITY / "images").glob(f"pp_{c}_*.png")) for c in letters]
    ref = np.load(VGGT_PARITY / "preprocess_518.npz")[key]
    images = load_images_vggt([str(f) for f in files], mode=mode)
    t = to_tensor_vggt(images).numpy()
    assert t.shape == ref.shape
    np.testing.assert_array_equal(t, ref.astype(np.float32) / np.float32(255))


def test_vggt_pad_mask_and_white_padding():
    src = np.random.default_rng(5).integers(0, 255, (120, 160, 3), dtype=np.uint8)  # → 518x392 centred on 518x518
    im = load_images_vggt([src], mode="pad")[0]
    assert im.true_shape == (518, 518)
    rows = np.flatnonzero(~im.pad_mask.all(axis=1))
    assert (rows[0], rows[-1]) == (63, 454) and not im.pad_mask[63:455].any()
    assert (im.rgb[im.pad_mask] == 255).all()
    # centre of the first photo row maps back to the top of the original
    x0, y0, _ = im.net_to_orig @ [0.0, 63.0, 1.0]
    assert y0 == pytest.approx((0.5) * 120 / 392 - 0.5)


def test_vggt_mixed_batch_is_padded_and_maps_shift():
    land = np.zeros((120, 160, 3), np.uint8)
    port = np.zeros((160, 120, 3), np.uint8)
    alone = load_images_vggt(land, mode="crop")[0]
    a, b = load_images_vggt([land, port], mode="crop")
    assert a.true_shape == b.true_shape == (518, 518)
    assert alone.true_shape == (392, 518) and alone.pad_mask is None
    # landscape view moved down by 63 rows: same original point, 63 rows further in the network image
    np.testing.assert_allclose(a.net_to_orig @ [10.0, 73.0, 1.0], alone.net_to_orig @ [10.0, 10.0, 1.0])
    assert a.pad_mask[:63].all() and not a.pad_mask[63:455].any() and b.pad_mask is None


# ---------------------------------------------------------------------------------------------
# net_to_orig against a resampled gradient
# ---------------------------------------------------------------------------------------------

def _gradient(w, h):
    """R = column, G = row, B = 128: every original pixel centre (x, y) has value (x, y)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x, y, np.full_like(x, 128)], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("loader, kwargs, wh", [
    (load_images, {"size": 512}, (250, 180)),             # upscale (BICUBIC), crop to multiples of 16
    (load_images, {"size": 224}, (250, 180)),             # short side 224, centre square crop
    (load_images, {"size": 224, "whole_frame": True}, (250, 180)),    # long side 224, rows cropped to 16s
    (load_images, {"size": 224, "whole_frame": True}, (180, 250)),    # the same, portrait
    (load_images, {"size": 160}, (250, 200)),             # downscale (LANCZOS)
    (load_images, {"size": 512}, (200, 200)),             # square → 4:3 crop
    (load_images_vggt, {"mode": "crop"}, (200, 250)),     # portrait: rows cropped
    (load_images_vggt, {"mode": "pad"}, (200, 250)),      # portrait: columns padded
])
def test_net_to_orig_follows_resampled_pixels(loader, kwargs, wh):
    w0, h0 = wh
    im = loader(_gradient(w0, h0), **kwargs)[0]
    assert im.original_size == (h0, w0)
    h, w = im.true_shape
    v, u = np.mgrid[0:h, 0:w]
    x0, y0, one = np.einsum("ij,jhw->ihw", im.net_to_orig, np.stack([u, v, np.ones_like(u)]).astype(float))
    np.testing.assert_array_equal(one, 1.0)
    # away from the borders (filter support) the resampled linear ramp equals the mapped coordinate
    inside = (x0 > 4) & (x0 < w0 - 5) & (y0 > 4) & (y0 < h0 - 5) & im.valid_mask
    assert inside.sum() > 0.5 * h * w
    assert np.abs(im.rgb[..., 0][inside] - x0[inside]).max() <= 0.75
    assert np.abs(im.rgb[..., 1][inside] - y0[inside]).max() <= 0.75


def test_net_to_orig_without_crop_maps_corners_to_corners():
    im = load_images(np.zeros((300, 400, 3), np.uint8), size=512)[0]      # 400x300 → 512x384, no crop
    np.testing.assert_allclose(im.net_to_orig @ [-0.5, -0.5, 1], [-0.5, -0.5, 1])
    np.testing.assert_allclose(im.net_to_orig @ [511.5, 383.5, 1], [399.5, 299.5, 1])


# ---------------------------------------------------------------------------------------------
# EXIF orientation and colour modes
# ---------------------------------------------------------------------------------------------

def _expected_orientation(a, k):
    """What a viewer shows for stored pixels `a` with EXIF orientation k."""
    return {
        1: a, 2: a[:, ::-1], 3: a[::-1, ::-1], 4: a[::-1],
        5: a.transpose(1, 0, 2), 6: np.rot90(a, -1), 7: a[::-1, ::-1].transpose(1, 0, 2), 8: np.rot90(a, 1),
    }[k]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(tmp_path, orientation):
    stored = np.random.default_rng(orientation).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(stored).save(path, exif=exif)
    im = load_images(str(path), size=64)[0]
    expected = _expected_orientation(stored, orientation)
    assert im.original_size == expected.shape[:2]
    np.testing.assert_array_equal(im.load_original(), expected)
    assert (im.true_shape[0] > im.true_shape[1]) == (expected.shape[0] > expected.shape[1])
    assert im.name == f"o{orientation}" and im.path == str(path)


def _palette(mode):
    img = Image.new(mode, (2, 1))
    img.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    return img


def _mode_cases():
    """(id, make PIL image, expected RGB with alpha dropped, expected RGB over white)."""
    grey = np.array([[0, 100, 255]], np.uint8)
    cases = [
        ("L", lambda: Image.fromarray(grey, "L"), np.repeat(grey[..., None], 3, -1), None),
        ("1", lambda: Image.fromarray(np.array([[False, True]])), np.array([[[0] * 3, [255] * 3]]), None),
        ("I;16", lambda: Image.fromarray(np.array([[0, 25700, 65535]], np.uint16)),
         np.repeat(grey[..., None], 3, -1), None),
        ("I;16B", lambda: Image.frombytes("I;16B", (3, 1), np.array([0, 25700, 65535], ">u2").tobytes()),
         np.repeat(grey[..., None], 3, -1), None),
        ("I", lambda: Image.fromarray(np.array([[0, 25700, 65535]], np.int32)), np.repeat(grey[..., None], 3, -1), None),
        ("F", lambda: Image.fromarray(np.array([[0.0, 100 / 255, 1.0]], np.float32)),
         np.repeat(grey[..., None], 3, -1), None),
        ("CMYK", lambda: Image.frombytes("CMYK", (2, 1), bytes([255, 0, 0, 0, 0, 0, 0, 0])),
         np.array([[[0, 255, 255], [255, 255, 255]]]), None),
        ("RGBA", lambda: Image.fromarray(np.array([[[10, 20, 30, 0], [40, 50, 60, 255]]], np.uint8), "RGBA"),
         np.array([[[10, 20, 30], [40, 50, 60]]]), np.array([[[255, 255, 255], [40, 50, 60]]])),
        ("LA", lambda: Image.fromarray(np.array([[[10, 0], [40, 255]]], np.uint8), "LA"),
         np.array([[[10] * 3, [40] * 3]]), np.array([[[255] * 3, [40] * 3]])),
    ]

    def p():
        img = _palette("P")
        img.putpixel((1, 0), 1)
        return img

    def p_trns():
        img = p()
        img.info["transparency"] = 0
        return img

    def pa():
        img = _palette("PA")
        img.putpixel((0, 0), (0, 0))
        img.putpixel((1, 0), (1, 255))
        return img

    pal = np.array([[[10, 20, 30], [200, 100, 50]]])
    over_white = np.array([[[255, 255, 255], [200, 100, 50]]])
    cases += [("P", p, pal, None), ("P-transparency", p_trns, pal, over_white), ("PA", pa, pal, over_white)]
    return cases


@pytest.mark.parametrize("case", _mode_cases(), ids=lambda c: c[0])
def test_colour_modes_in_memory(case):
    _, make, dropped, over_white = case
    img = make()
    im = load_images(img, size=224)[0]
    np.testing.assert_array_equal(im.load_original(), dropped)
    assert im.rgb.dtype == np.uint8 and im.rgb.shape[2] == 3
    v = load_images_vggt(make())[0]
    np.testing.assert_array_equal(v.load_original(), dropped if over_white is None else over_white)


@pytest.mark.parametrize("mode, ext", [("L", "png"), ("LA", "png"), ("1", "png"), ("P-transparency", "png"),
                                       ("I;16", "png"), ("I", "tif"), ("F", "tif"), ("CMYK", "tif"),
                                       ("RGBA", "png")])
def test_colour_modes_from_files(tmp_path, mode, ext):
    _, make, dropped, over_white = next(c for c in _mode_cases() if c[0] == mode)
    img = make()
    path = tmp_path / f"m.{ext}"
    img.save(path, **({"transparency": img.info["transparency"]} if "transparency" in img.info else {}))
    im = load_images(str(path), size=224)[0]
    np.testing.assert_array_equal(im.load_original(), dropped)
    v = load_images_vggt(str(path))[0]
    np.testing.assert_array_equal(v.load_original(), dropped if over_white is None else over_white)


def test_numpy_sources():
    ramp16 = np.array([[0, 25700, 65535]], np.uint16)
    expect = np.repeat(np.array([[0, 100, 255]], np.uint8)[..., None], 3, -1)
    np.testing.assert_array_equal(load_images(ramp16, size=224)[0].load_original(), expect)
    np.testing.assert_array_equal(load_images(ramp16[..., None], size=224)[0].load_original(), expect)
    f = np.array([[0.0, 100 / 255, 1.0]])
    np.testing.assert_array_equal(load_images(f, size=224)[0].load_original(), expect)
    np.testing.assert_array_equal(load_images(f * 255, size=224)[0].load_original(), expect)
    b = np.array([[False, True]])
    assert load_images(b, size=224)[0].load_original()[0, 1].tolist() == [255, 255, 255]
    rgba = np.zeros((2, 3, 4), np.uint8)
    assert load_images_vggt(rgba)[0].load_original().min() == 255       # fully transparent → white
    assert load_images(rgba, size=224)[0].load_original().max() == 0       # alpha dropped
    with pytest.raises(InputError, match="shape"):
        load_images(np.zeros((3, 4, 5)), size=224)


# ---------------------------------------------------------------------------------------------
# sources, names, errors
# ---------------------------------------------------------------------------------------------

def _write(path, w=40, h=30, value=0):
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)
    return str(path)


def test_folder_natural_order_skips_non_images(tmp_path):
    for n in ["img10.png", "img2.png", "img1.JPG", "._img3.png"]:
        _write(tmp_path / n)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    images = load_images(str(tmp_path), size=32)
    assert isinstance(images, ImageSet) and images.failures == []
    assert images.names == ["img1", "img2", "img10"]
    assert [im.path for im in images] == [str(tmp_path / n) for n in ["img1.JPG", "img2.png", "img10.png"]]


def test_names_given_and_made_unique(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    paths = [_write(tmp_path / "a" / "x.png"), _write(tmp_path / "b" / "x.png"), _write(tmp_path / "x_2.png")]
    assert load_images(paths, size=32).names == ["x", "x_3", "x_2"]
    assert load_images(paths, size=32, names=["p", "q", "r"]).names == ["p", "q", "r"]
    with pytest.raises(ValueError, match="names"):
        load_images(paths, size=32, names=["p"])
    arrays = [np.zeros((8, 8, 3), np.uint8)] * 2
    assert load_images(arrays, size=32).names == ["image_000", "image_001"]


def test_load_original_rereads_file(tmp_path):
    path = _write(tmp_path / "a.png", 60, 40, value=77)
    im = load_images(path, size=32)[0]
    assert im.original_size == (40, 60)
    orig = im.load_original()
    assert orig.shape == (40, 60, 3) and (orig == 77).all()
    _write(tmp_path / "a.png", 30, 30)
    with pytest.raises(InputError, match="changed"):
        im.load_original()


def _bad_files(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("hello, not a picture")
    good = _write(tmp_path / "good.png", 64, 64)
    truncated = tmp_path / "truncated.png"
    noisy = tmp_path / "noisy.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(noisy)
    data = noisy.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    noisy.unlink()
    return {"empty": str(empty), "text": str(text), "truncated": str(truncated),
            "missing": str(tmp_path / "missing.png"), "good": good}


@pytest.mark.parametrize("kind, words", [("empty", "empty"), ("text", "not an image file"),
                                         ("truncated", "damaged or truncated"), ("missing", "no such file")])
def test_bad_file_raises_input_error_naming_it(tmp_path, kind, words):
    path = _bad_files(tmp_path)[kind]
    with pytest.raises(InputError) as err:
        load_images(path, size=32)
    assert path in str(err.value) and words in str(err.value) and err.value.path == path
    with pytest.raises(InputError, match=re.escape(path)):
        load_images_vggt(path)


def test_skip_mode_reports_failures(tmp_path):
    files = _bad_files(tmp_path)
    order = ["empty", "good", "text", "truncated", "missing"]
    result = load_images([files[k] for k in order], size=32, on_error="skip")
    assert result.names == ["good"]
    assert [p for p, _ in result.failures] == [files[k] for k in order if k != "good"]
    assert all(p in msg for p, msg in result.failures)
    mixed = load_images([np.zeros((2, 900, 3), np.uint8), files["good"], np.zeros((8, 8, 2))], size=32,
                        on_error="skip", names=["thin", "ok", "bad"])
    assert mixed.names == ["ok"] and [p for p, _ in mixed.failures] == ["thin", "bad"]
    with pytest.raises(InputError, match="No usable images"):
        load_images([files["empty"], files["text"]], size=32, on_error="skip")
    with pytest.raises(ValueError, match="on_error"):
        load_images(files["good"], on_error="ignore")


def test_empty_folder_and_elongated_image(tmp_path):
    (tmp_path / "readme.txt").write_text("no pictures here")
    with pytest.raises(InputError, match="no images in folder"):
        load_images(str(tmp_path), size=32)
    with pytest.raises(InputError, match="elongated"):
        load_images(np.zeros((10, 1000, 3), np.uint8), size=512)
    with pytest.raises(InputError, match="elongated"):
        load_images_vggt(np.zeros((3, 1000, 3), np.uint8))


def test_progress_and_cancel():
    seen = []
    arrays = [np.zeros((8, 8, 3), np.uint8)] * 3
    load_images(arrays, size=32, progress=seen.append)
    assert [(p.stage, p.done, p.total) for p in seen] == [("load", k, 3) for k in (1, 2, 3)]
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        load_images(arrays, size=32, cancel=token)


def test_to_tensor_rejects_mixed_shapes():
    images = load_images([np.zeros((30, 40, 3), np.uint8), np.zeros((40, 30, 3), np.uint8)], size=32)
    with pytest.raises(ValueError, match="different network shapes"):
        to_tensor(images)
    t = to_tensor(images[0])
    assert t.shape == (1, 3, 16, 32) and float(t.min()) == -1.0


def test_lazily_opened_broken_pil_image(tmp_path):
    path = _bad_files(tmp_path)["truncated"]
    with Image.open(path) as lazy, pytest.raises(InputError, match="could not be decoded"):
        load_images(lazy, size=32)
