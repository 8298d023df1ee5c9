"""Uploads to the canonical form, and every hostile upload refused with a sentence naming the problem."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile

import numpy as np
import pytest

from service.config import Config
from service.datasets import idx, npy, stored
from service.datasets.convert import Options, convert
from service.datasets.limits import UploadLimits
from service.errors import UploadRefused
from tests.service.datasets import uploads

LIMITS = UploadLimits.from_config(Config())
rng = np.random.default_rng(0)
GREY = rng.integers(0, 256, (20, 6, 5), dtype=np.uint8)
COLOUR = rng.integers(0, 256, (20, 6, 5, 3), dtype=np.uint8)
LABELS = np.arange(20) % 3


def test_class_folders_become_height_width_depth_arrays_with_a_held_out_test_set():
    out = convert(uploads.folders(COLOUR, LABELS, ["cat", "dog", "emu"]), Options(), LIMITS)
    assert (out.source, out.width, out.height, out.depth, out.class_names) == ("images", 5, 6, 3, ["cat", "dog", "emu"])
    # every 10th image of each class is held out: 7 cats, 7 dogs, 6 emus -> none reach 10
    assert len(out.train) == 20 and len(out.test) == 0
    first_cat = COLOUR[0]
    assert bytes(out.train.images[:90]) == first_cat.tobytes() and out.train.labels[0] == 0
    files = out.files()
    dims, _ = idx.shape("train-images", files["train-images"])
    assert dims == (20, 6, 5, 3) and json.loads(files["meta.json"])["class_names"] == ["cat", "dog", "emu"]


def test_without_test_folders_every_tenth_image_of_a_class_is_held_out():
    labels = np.zeros(25, dtype=int)
    out = convert(uploads.folders(np.zeros((25, 4, 4), np.uint8), labels, ["only"]), Options(), LIMITS)
    assert (len(out.train), len(out.test), out.depth) == (23, 2, 1)


def test_test_folders_are_the_test_set_and_a_stated_size_resizes_every_image():
    data = uploads.folders(GREY, LABELS, ["a", "b", "c"], test=(GREY[:4], LABELS[:4]))
    out = convert(data, Options(width=3, height=2, depth=3), LIMITS)
    assert (len(out.train), len(out.test), out.width, out.height, out.depth) == (20, 4, 3, 2, 3)
    assert len(out.train.images) == 20 * 2 * 3 * 3


def test_one_enclosing_folder_is_allowed():
    members = {f"digits/train/{c}/{i}.png": uploads.png(GREY[i]) for i, c in enumerate("ab")}
    assert convert(uploads.zipped(members), Options(), LIMITS).class_names == ["a", "b"]


def test_npz_and_idx_give_the_same_canonical_files():
    x_test, y_test = GREY[:5], LABELS[:5]
    a = convert(uploads.npz(x_train=GREY, y_train=LABELS, x_test=x_test, y_test=y_test), Options(), LIMITS)
    b = convert(uploads.idx_zip(GREY, LABELS, x_test, y_test), Options(), LIMITS)
    assert (a.source, b.source) == ("npz", "idx")
    assert a.files() == b.files() and stored.content_hash(a.files()) == stored.content_hash(b.files())
    assert a.class_names == ["0", "1", "2"] and len(a.test) == 5


def test_npz_colour_with_class_names_and_int64_labels():
    out = convert(uploads.npz(x_train=COLOUR, y_train=LABELS.astype(np.int64)),
                  Options(class_names=["x", "y", "z", "w"]), LIMITS)
    assert (out.depth, out.class_names, len(out.train), len(out.test)) == (3, ["x", "y", "z", "w"], 18, 2)
    assert bytes(out.train.images[:90]) == COLOUR[0].tobytes()


def _limits(**changes) -> UploadLimits:
    return dataclasses.replace(LIMITS, **changes)


def _object_npz() -> bytes:
    out = io.BytesIO()
    np.savez(out, x_train=np.array([{"a": 1}] * 2, dtype=object), y_train=np.zeros(2, np.int64))
    return out.getvalue()


def _fortran_npz() -> bytes:
    out = io.BytesIO()
    np.savez(out, x_train=np.asfortranarray(GREY), y_train=LABELS)
    return out.getvalue()


HOSTILE = [  # (case, upload bytes, options, limits, words the message must contain)
    ("not a zip", b"hello", Options(), LIMITS, "zip"),
    ("damaged zip", b"PK\x03\x04garbage", Options(), LIMITS, "not a readable zip"),
    ("absolute path", uploads.zipped({"/etc/passwd": b"x"}), Options(), LIMITS, "unsafe"),
    ("dot-dot path", uploads.zipped({"train/../../x.png": b"x"}), Options(), LIMITS, "unsafe"),
    ("backslash path", uploads.zipped({"train\\a\\..\\x.png": b"x"}), Options(), LIMITS, "unsafe"),
    ("drive letter", uploads.zipped({"C:/x.png": b"x"}), Options(), LIMITS, "unsafe"),
    ("symlink", uploads.with_symlink("train/a/link.png", "/etc/passwd", {"train/a/0.png": uploads.png(GREY[0])}),
     Options(), LIMITS, "symbolic link"),
    ("zip bomb", uploads.bomb(), Options(), LIMITS, "zip bomb"),
    ("unpacked too big", uploads.bomb(size=3 << 20), Options(), _limits(unpacked_bytes=2 << 20, ratio=10**6),
     "unpacked"),
    ("too many members", uploads.folders(GREY, LABELS, ["a", "b", "c"]), Options(), _limits(files=5), "members"),
    ("too many images", uploads.folders(GREY, LABELS, ["a", "b", "c"]), Options(), _limits(images=5), "images"),
    ("pixel bomb", uploads.zipped({"train/a/0.png": uploads.pixel_bomb()}), Options(), LIMITS, "pixels"),
    ("too many pixels in all", uploads.folders(GREY, LABELS, ["a", "b", "c"]), Options(), _limits(total_pixels=100),
     "values"),
    ("large images resized small", uploads.folders(GREY, LABELS, ["a", "b", "c"]), Options(width=1, height=1),
     _limits(total_pixels=100), "to decode"),
    ("non-image file", uploads.zipped({"train/a/0.png": uploads.png(GREY[0]), "train/a/notes.txt": b"hi"}),
     Options(), LIMITS, "not a PNG or JPEG"),
    ("text named png", uploads.zipped({"train/a/0.png": b"not an image"}), Options(), LIMITS, "not a PNG or JPEG"),
    ("truncated png", uploads.zipped({"train/a/0.png": uploads.png(GREY[0])[:45]}), Options(), LIMITS, "damaged"),
    ("image outside a class", uploads.zipped({"train/0.png": uploads.png(GREY[0])}), Options(), LIMITS,
     "train/<class>/"),
    ("mismatched image sizes", uploads.zipped({"train/a/0.png": uploads.png(GREY[0]),
                                               "train/a/1.png": uploads.png(GREY[0][:3])}), Options(), LIMITS,
     "give width and height"),
    ("test class not in train", uploads.zipped({"train/a/0.png": uploads.png(GREY[0]),
                                                "test/b/0.png": uploads.png(GREY[1])}), Options(), LIMITS, "lacks"),
    ("empty archive", uploads.zipped({}), Options(), LIMITS, "no files"),
    ("npz without labels", uploads.npz(x_train=GREY), Options(), LIMITS, "no y_train"),
    ("npz float images", uploads.npz(x_train=GREY.astype(np.float32), y_train=LABELS), Options(), LIMITS, "dtype"),
    ("npz object array (pickle)", _object_npz(), Options(), LIMITS, "object arrays are never read"),
    ("npz fortran order", _fortran_npz(), Options(), LIMITS, "Fortran"),
    ("npz count mismatch", uploads.npz(x_train=GREY, y_train=LABELS[:7]), Options(), LIMITS, "one label per image"),
    ("npz test shape mismatch", uploads.npz(x_train=GREY, y_train=LABELS, x_test=COLOUR, y_test=LABELS), Options(),
     LIMITS, "does not match"),
    ("npz negative label", uploads.npz(x_train=GREY, y_train=LABELS - 1), Options(), LIMITS, "out of range"),
    ("npz label past the class names", uploads.npz(x_train=GREY, y_train=LABELS), Options(class_names=["a", "b"]),
     LIMITS, "out of range"),
    ("npz stray member", uploads.zipped({"x_train.npy": b"", "evil.pkl": b""}), Options(), LIMITS, "evil.pkl"),
    ("npz stated size differs", uploads.npz(x_train=GREY, y_train=LABELS), Options(width=9, height=9), LIMITS,
     "width"),
    ("idx labels short", uploads.idx_zip(GREY, LABELS[:5]), Options(), LIMITS, "labels"),
    ("idx truncated", uploads.zipped({"train-images-idx3-ubyte": uploads.idx(GREY)[:-3],
                                      "train-labels-idx1-ubyte": uploads.idx(LABELS)}), Options(), LIMITS, "needs"),
    ("idx gzip bomb", uploads.zipped({"train-images-idx3-ubyte.gz": __import__("gzip").compress(bytes(3 << 20)),
                                      "train-labels-idx1-ubyte": uploads.idx(LABELS)}), Options(),
     _limits(total_pixels=1 << 20), "not an unsigned-byte IDX file"),
    ("idx gzip header claims too much", uploads.zipped({  # refused from its header, before it is unpacked
        "train-images-idx3-ubyte.gz": __import__("gzip").compress(uploads.idx(np.zeros((3 << 20, 1, 1), np.uint8))),
        "train-labels-idx1-ubyte": uploads.idx(LABELS)}), Options(), _limits(total_pixels=1 << 20),
     "values; at most"),
    ("idx grey test images of colour train images", uploads.idx_zip(COLOUR, LABELS, GREY, LABELS), Options(),
     LIMITS, "the test images are"),
    ("too many classes", uploads.npz(x_train=GREY, y_train=LABELS), Options(), _limits(classes=2), "classes"),
]


@pytest.mark.parametrize("case, data, options, limits, words", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_uploads_are_refused_naming_the_problem(case, data, options, limits, words):
    with pytest.raises(UploadRefused) as caught:
        convert(data, options, limits)
    assert words in caught.value.detail, caught.value.detail
    assert caught.value.status == 422 and caught.value.field_errors()[0]["path"] in ("file", "width", "class_names")


def test_an_upload_over_the_byte_limit_is_refused_before_it_is_opened():
    with pytest.raises(UploadRefused, match="at most 10 are accepted"):
        convert(b"PK" + bytes(20), Options(), _limits(upload_bytes=10))


def test_the_npy_header_reader_reads_numpy_headers_and_nothing_else():
    out = io.BytesIO()
    np.save(out, np.zeros((3, 4), np.uint8))
    descr, shape, offset = npy.header("a.npy", out.getvalue())
    assert (descr, shape) == ("|u1", (3, 4)) and len(out.getvalue()) - offset == 12
    evil = b"\x93NUMPY\x01\x00" + b"\x20\x00" + b"__import__('os').system('x')    "
    with pytest.raises(UploadRefused, match="not readable"):
        npy.header("evil.npy", evil)
    unhashable = b"\x93NUMPY\x01\x00" + b"\x10\x00" + b"{[1]: 2}        "  # literal_eval: TypeError
    with pytest.raises(UploadRefused, match="not readable"):
        npy.header("unhashable.npy", unhashable)


def test_zip_members_are_read_at_most_to_their_declared_size():
    good = uploads.zipped({"train/a/0.png": uploads.png(GREY[0])}, zipfile.ZIP_STORED)
    # Declare a smaller size in the central directory than the data holds: the CRC no longer matches.
    data = bytearray(good)
    cd = data.rfind(b"PK\x01\x02")
    size = int.from_bytes(data[cd + 24:cd + 28], "little")
    data[cd + 24:cd + 28] = (size - 10).to_bytes(4, "little")
    with pytest.raises(UploadRefused):
        convert(bytes(data), Options(), LIMITS)
