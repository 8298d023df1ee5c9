"""Uploaded-image preprocessing: safe decoding, MNIST-style fitting checked by a trained net1, JSON pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from service.config import Config
from service.spec.schemas import load_job_request
from tests.conftest import data_dir, example
from worker import data, imaging, snapshots
from worker.trainer import Hooks, Training

LIMITS = {"max_bytes": 5_000_000, "max_pixels": 4_000_000}


def encode(picture: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buf = io.BytesIO()
    picture.save(buf, fmt, **options)
    return buf.getvalue()


def paper(digit: np.ndarray, size=(200, 150)) -> Image.Image:
    """An MNIST digit as a person would draw it: black ink on white paper, upscaled to `size` (w, h)."""
    return Image.fromarray(255 - digit).resize(size, Image.Resampling.BICUBIC)


@pytest.fixture(scope="module")
def trained() -> Training:
    request, network = load_job_request(example("net1-default.json", budget={"examples": 1500}, seed=3), Config())
    run = Training(request, network, data_dir=data_dir(), device="cpu")
    run.run(Hooks())
    return run


def test_paper_digits_are_fitted_back_to_what_net1_recognises(trained):
    test = trained.dataset.test
    fitted = [imaging.fit_like_mnist(imaging.decode(encode(paper(test.images[i, 0].numpy())), **LIMITS), 1)
              for i in range(20)]
    split = data.Split(torch.from_numpy(np.stack(fitted)), test.labels[:20])
    preds = snapshots.predictions(trained.model, split, trained.input_size, 20, device="cpu")
    right = sum(p["top"][0]["class"] == p["label"] for p in preds)
    originals = snapshots.predictions(trained.model, test, trained.input_size, 20, device="cpu")
    baseline = sum(p["top"][0]["class"] == p["label"] for p in originals)
    assert right >= 15 and right >= baseline - 3, (right, baseline)


def test_fitted_digit_has_mnist_layout():
    ys, xs = np.mgrid[0:300, 0:120]
    ink = (np.abs(xs - 60) < 12) & (ys > 30) & (ys < 270)  # a tall bar ("1") drawn in black on grey paper
    picture = Image.fromarray(np.where(ink, 20, 230).astype(np.uint8))
    out = imaging.fit_like_mnist(picture, 1)
    assert out.shape == (1, 28, 28) and out.dtype == np.uint8
    a = out[0].astype(float)
    assert a.max() >= 250 and a[0].max() == 0 and a[:, 0].max() == 0  # white on black, border empty
    rows, cols = np.flatnonzero(a.max(1) > 50), np.flatnonzero(a.max(0) > 50)
    assert 19 <= rows[-1] - rows[0] + 1 <= 21  # the long side fills the 20 px box
    assert cols[-1] - cols[0] + 1 <= 6  # aspect kept
    cy, cx = (np.indices(a.shape) * a).reshape(2, -1).sum(1) / a.sum()
    assert abs(cy - 13.5) <= 0.75 and abs(cx - 13.5) <= 0.75  # centre of mass at the centre


def test_dark_background_is_not_inverted_and_blank_stays_black():
    digit = np.zeros((60, 60), np.uint8)
    digit[10:50, 25:35] = 255
    light = imaging.fit_like_mnist(Image.fromarray(255 - digit), 1)
    dark = imaging.fit_like_mnist(Image.fromarray(digit), 1)
    assert np.array_equal(light, dark) and light.max() == 255
    for blank in (Image.new("L", (50, 40), 255), Image.new("RGB", (30, 30), (0, 0, 0)),
                  Image.new("L", (30, 30), 200)):
        assert not imaging.fit_like_mnist(blank, 1).any()


def test_transparent_drawing_counts_as_on_white():
    rgba = np.zeros((80, 80, 4), np.uint8)
    rgba[15:65, 35:45] = (0, 0, 0, 255)  # black strokes, everything else transparent black
    on_white = np.full((80, 80), 255, np.uint8)
    on_white[15:65, 35:45] = 0
    got = imaging.fit_like_mnist(imaging.decode(encode(Image.fromarray(rgba, "RGBA")), **LIMITS), 1)
    assert np.array_equal(got, imaging.fit_like_mnist(Image.fromarray(on_white), 1)) and got.max() == 255


def test_colour_fit_resizes_rgb():
    picture = Image.new("RGB", (64, 40), (255, 0, 0))
    out = imaging.fit_like_mnist(imaging.decode(encode(picture, "JPEG", quality=95), **LIMITS), 3, size=32)
    assert out.shape == (3, 32, 32) and out.dtype == np.uint8
    assert out[0].min() > 240 and out[1].max() < 15 and out[2].max() < 15
    grey = imaging.fit_like_mnist(Image.new("L", (10, 10), 77), 3)
    assert grey.shape == (3, 28, 28) and (grey == 77).all()
    with pytest.raises(ValueError, match="depth"):
        imaging.fit_like_mnist(picture, 2)


def test_decode_png_and_jpeg():
    picture = Image.fromarray(np.arange(48 * 32, dtype=np.uint32).reshape(32, 48).astype(np.uint8))
    png = imaging.decode(encode(picture), **LIMITS)
    assert png.size == (48, 32) and np.array_equal(np.asarray(png), np.asarray(picture))
    jpeg = imaging.decode(encode(picture.convert("RGB"), "JPEG"), **LIMITS)
    assert jpeg.size == (48, 32) and jpeg.mode == "RGB"


def test_decompression_bomb_is_rejected_before_decoding(monkeypatch):
    bomb = encode(Image.new("1", (20000, 20000)))  # 400 million pixels in a few tens of kB
    assert len(bomb) < 100_000

    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(ValueError, match="pixels"):
        imaging.decode(bomb, **LIMITS)
    # Beyond Pillow's own limit the header check fires inside Image.open: still a ValueError.
    with pytest.raises(ValueError, match="pixels"):
        imaging.decode(bomb, max_bytes=10**6, max_pixels=10**9)
    # Under Pillow's limit only our max_pixels stops it.
    medium = encode(Image.new("1", (3000, 3000)))
    with pytest.raises(ValueError, match="9000000 pixels"):
        imaging.decode(medium, max_bytes=10**6, max_pixels=1_000_000)


@pytest.mark.parametrize("blob, named", [
    (b"hello, this is not an image", "not a recognised image type"),
    (b"", "empty"),
    (encode(Image.new("L", (4, 4)), "GIF"), "GIF"),
    (encode(Image.new("RGB", (4, 4)), "BMP"), "BMP"),
    (encode(Image.new("RGB", (4, 4)), "WEBP"), "WebP"),
    (encode(Image.new("RGB", (4, 4)), "TIFF"), "TIFF"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "SVG"),
])
def test_other_bytes_are_rejected_with_their_type(blob, named):
    with pytest.raises(ValueError, match="only PNG and JPEG") as err:
        imaging.decode(blob, **LIMITS)
    assert named in str(err.value)


def test_too_many_bytes_and_damaged_files():
    png = encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)))
    with pytest.raises(ValueError, match="bytes"):
        imaging.decode(png, max_bytes=len(png) - 1, max_pixels=10**6)
    with pytest.raises(ValueError, match="PNG"):
        imaging.decode(png[: len(png) // 2], **LIMITS)
    with pytest.raises(ValueError, match="PNG"):
        imaging.decode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, **LIMITS)
    with pytest.raises(ValueError, match="JPEG"):
        imaging.decode(b"\xff\xd8\xff\xe0" + b"\x00" * 40, **LIMITS)


def test_from_pixels_shapes():
    flat = list(range(200)) + [255] * 584
    a = imaging.from_pixels(flat, 1)
    assert a.shape == (1, 28, 28) and a.dtype == np.uint8
    assert a[0, 0, 5] == 5 and a[0, 7, 3] == 199 and a[0, 7, 4] == 255  # row-major
    rows = a[0].tolist()
    assert np.array_equal(imaging.from_pixels(rows, 1), a)
    assert np.array_equal(imaging.from_pixels([rows], 1), a)
    halves = imaging.from_pixels([[0.5] * 28] * 28, 1)
    assert (halves == 128).all()  # floats in 0..1 are scaled by 255
    assert (imaging.from_pixels([[1] * 28] * 28, 1) == 1).all()  # ints are already 0..255
    assert (imaging.from_pixels([[200.4] * 28] * 28, 1) == 200).all()
    rgb = np.random.default_rng(1).integers(0, 256, (28, 28, 3))
    hwc = imaging.from_pixels(rgb.tolist(), 3)
    assert hwc.shape == (3, 28, 28) and np.array_equal(hwc, rgb.transpose(2, 0, 1))
    assert np.array_equal(imaging.from_pixels(rgb.transpose(2, 0, 1).tolist(), 3), hwc)
    assert np.array_equal(imaging.from_pixels(rgb.reshape(-1).tolist(), 3), hwc)  # interleaved like Vol.w
    assert imaging.from_pixels([0] * 64, 1, size=8).shape == (1, 8, 8)


@pytest.mark.parametrize("values, depth, message", [
    ([0] * 100, 1, "784 numbers"),
    ([[0] * 27] * 28, 1, "28 rows of 28"),
    ([[0] * 28] * 27 + [[0] * 27], 1, "regular array"),
    ([[0] * 28] * 28, 3, "2352 numbers"),
    (["1"] * 784, 1, "numbers 0..255"),
    ([None] * 784, 1, "numbers 0..255"),
    ([True] * 784, 1, "numbers 0..255"),
    ({"a": 1}, 1, "784"),
    (7, 1, "784"),
    ([256] * 784, 1, "0..255"),
    ([-1] * 784, 1, "0..255"),
    ([float("nan")] * 784, 1, "finite"),
])
def test_from_pixels_errors_name_the_expected_shape(values, depth, message):
    with pytest.raises(ValueError, match=message):
        imaging.from_pixels(values, depth)
