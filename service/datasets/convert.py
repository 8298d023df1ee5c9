"""An upload to the canonical form: train and test images (N, height, width, depth) and labels, as bytes.

Three kinds of upload, told apart by the zip's members:
- class folders of PNG or JPEG images, ``train/<class>/<image>`` and optionally ``test/<class>/<image>``
  (torchvision's ImageFolder layout; one enclosing folder is allowed);
- an `.npz` (a zip of `.npy` arrays): ``x_train, y_train`` and optionally ``x_test, y_test``, images uint8
  (N, H, W) or (N, H, W, C) with C 1 or 3;
- MNIST's IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, optionally ``t10k-`` or
  ``test-`` ones), plain or gzip, in a zip.
Without test images, every 10th training image (of each class, for folders) is held out as the test set.
"""

from __future__ import annotations

import functools
import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from service.datasets import archive, idx, images, npy
from service.datasets.limits import UploadLimits, refuse

HOLD_OUT = 10  # without a test set, every 10th image is one
_CLASS_NAME = re.compile(r"[^\x00-\x1f\x7f/\\]{1,100}")
_NPZ = ("x_train", "y_train", "x_test", "y_test")
_IDX = re.compile(r"(?:.*/)?(train|t10k|test)-(images|labels)[-.]idx[134]-ubyte(\.gz)?")


@dataclass
class Part:
    """Train or test: images (height x width x depth bytes each, concatenated) and one label byte each."""

    images: bytearray = field(default_factory=bytearray)
    labels: bytearray = field(default_factory=bytearray)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Converted:
    """A dataset in the canonical form, whatever it was uploaded as."""

    source: str
    width: int
    height: int
    depth: int
    class_names: list[str]
    train: Part
    test: Part

    def files(self) -> dict[str, bytes]:
        """The stored files: four IDX arrays and meta.json (what the worker needs besides the arrays)."""
        shape = (self.height, self.width, self.depth)
        meta = {"width": self.width, "height": self.height, "depth": self.depth, "class_names": self.class_names,
                "train_size": len(self.train), "test_size": len(self.test), "layout": "N,height,width,depth"}
        return {
            "train-images": idx.encode((len(self.train), *shape), bytes(self.train.images)),
            "train-labels": idx.encode((len(self.train),), bytes(self.train.labels)),
            "test-images": idx.encode((len(self.test), *shape), bytes(self.test.images)),
            "test-labels": idx.encode((len(self.test),), bytes(self.test.labels)),
            "meta.json": json.dumps(meta, sort_keys=True).encode(),
        }



@dataclass(frozen=True)
class Options:
    """What the uploader may state: the size and depth to convert images to, and the classes' names."""

    width: int | None = None
    height: int | None = None
    depth: int | None = None
    class_names: list[str] | None = None


def convert(data: bytes, options: Options, limits: UploadLimits) -> Converted:
    """The upload in the canonical form; UploadRefused (422) naming the first problem found."""
    if len(data) > limits.upload_bytes:
        raise refuse(f"the upload is {len(data):,} bytes; at most {limits.upload_bytes:,} are accepted")
    if not data.startswith(b"PK"):
        raise refuse("upload a zip of class folders, an .npz, or a zip of IDX files")
    zf, members = archive.open_checked(data, limits)
    if not members:
        raise refuse("the archive holds no files")
    names = [m.filename for m in members]
    if any(n.endswith(".npy") for n in names):
        out = _from_npz(zf, members, options, limits)
    elif any(_IDX.fullmatch(n) for n in names):
        out = _from_idx([(m.filename, functools.partial(archive.read, zf, m)) for m in members], options, limits)
    else:
        out = _from_folders(zf, members, options, limits)
    return _nonempty(out)


def convert_idx_files(files: list[tuple[str, bytes]], options: Options, limits: UploadLimits) -> Converted:
    """IDX files sent one by one, as MNIST ships them (each plain or gzip), in the canonical form."""
    total = sum(len(data) for _, data in files)
    if total > limits.upload_bytes:
        raise refuse(f"the files are {total:,} bytes; at most {limits.upload_bytes:,} are accepted")
    return _nonempty(_from_idx([(name, functools.partial(bytes, data)) for name, data in files], options, limits))


def _nonempty(out: Converted) -> Converted:
    """`out`, unless it has nothing to train on."""
    if not len(out.train):
        raise refuse("the dataset has no training images")
    return out


# --- class folders ------------------------------------------------------------------------------------

def _from_folders(zf, members, options: Options, limits: UploadLimits) -> Converted:
    top = {m.filename.split("/", 1)[0] for m in members}
    strip = 1 if len(top) == 1 and top.pop() not in ("train", "test") else 0  # one enclosing folder
    placed: list[tuple[str, str, object]] = []
    for info in members:
        parts = info.filename.split("/")[strip:]
        if len(parts) != 3 or parts[0] not in ("train", "test") or not parts[2]:
            raise refuse(f"{info.filename!r} is not in train/<class>/ or test/<class>/; lay the images out as "
                         "train/<class>/<image>.png (optionally test/<class>/...)")
        if not parts[2].lower().endswith(images.EXTENSIONS):
            raise refuse(f"{info.filename!r} is not a PNG or JPEG image (.png, .jpg, .jpeg)")
        if not _CLASS_NAME.fullmatch(parts[1]):
            raise refuse(f"the class folder name {parts[1]!r} is not usable (1 to 100 printable characters)")
        placed.append((parts[0], parts[1], info))
    if len(placed) > limits.images:
        raise refuse(f"the archive has {len(placed):,} images; at most {limits.images:,} are accepted")
    classes = sorted({c for split, c, _ in placed if split == "train"})
    if not classes:
        raise refuse("the archive has no train/<class>/ folders")
    if len(classes) > limits.classes:
        raise refuse(f"the archive has {len(classes)} classes; at most {limits.classes} are accepted")
    unknown = sorted({c for split, c, _ in placed if split == "test"} - set(classes))
    if unknown:
        raise refuse(f"test/ has classes that train/ lacks: {', '.join(unknown[:5])}")
    if options.class_names is not None:
        raise refuse("class names come from the folder names; leave out class_names", "class_names")
    index = {c: i for i, c in enumerate(classes)}
    placed.sort(key=lambda p: (p[0], index[p[1]], p[2].filename))

    size = (options.width, options.height) if options.width and options.height else None
    depth = options.depth
    parts = {"train": Part(), "test": Part()}
    per_class: dict[tuple[str, str], int] = {}
    pixels_done = decoded = 0  # values kept, and values decoded (an image resized down is decoded whole first)
    hold_out = not any(split == "test" for split, _, _ in placed)
    for split, cls, info in placed:
        raw = archive.read(zf, info)
        picture = images.open_header(info.filename, raw, limits.image_pixels)
        if size is None:
            size = picture.size  # the first image's size, which every other must have
        elif not (options.width and options.height) and picture.size != size:
            raise refuse(f"{info.filename!r} is {picture.size[0]}x{picture.size[1]}, the first image "
                         f"{size[0]}x{size[1]}; give width and height to resize every image to one size")
        if depth is None:
            depth = images.depth_of(picture)
        pixels_done += size[0] * size[1] * depth
        decoded += picture.size[0] * picture.size[1] * len(picture.getbands())
        if pixels_done > limits.total_pixels:
            raise refuse(f"the converted images would have more than {limits.total_pixels:,} values")
        if decoded > limits.total_pixels:
            raise refuse(f"the images hold more than {limits.total_pixels:,} pixel values to decode")
        values = images.pixels(info.filename, picture, size, depth)
        target = split
        if hold_out:
            seen = per_class.get((split, cls), 0)
            per_class[(split, cls)] = seen + 1
            if seen % HOLD_OUT == HOLD_OUT - 1:
                target = "test"
        parts[target].images += values
        parts[target].labels.append(index[cls])
    return Converted("images", size[0], size[1], depth, classes, parts["train"], parts["test"])


# --- .npz -----------------------------------------------------------------------------------------------

def _from_npz(zf, members, options: Options, limits: UploadLimits) -> Converted:
    by_name = {}
    for info in members:
        stem = info.filename.removesuffix(".npy")
        if stem not in _NPZ:
            raise refuse(f"{info.filename!r} is not one of the arrays an .npz dataset holds: "
                         f"{', '.join(n + '.npy' for n in _NPZ)}")
        by_name[stem] = info
    for required in ("x_train", "y_train"):
        if required not in by_name:
            raise refuse(f"the .npz has no {required} array")
    if ("x_test" in by_name) != ("y_test" in by_name):
        raise refuse("give both x_test and y_test, or neither")
    shapes = {name: _npy_header(zf, info) for name, info in by_name.items()}  # headers first, data later
    x_shape = shapes["x_train"][1]
    if shapes["x_train"][0] != "|u1" or shapes.get("x_test", ("|u1",))[0] != "|u1":
        raise refuse("x_train and x_test must be uint8 (pixels 0..255)")
    if len(x_shape) == 3:
        x_shape = (*x_shape, 1)
    if len(x_shape) != 4 or x_shape[3] not in (1, 3):
        raise refuse(f"x_train has shape {list(shapes['x_train'][1])}; expected (N, height, width) or "
                     "(N, height, width, channels) with 1 or 3 channels")
    _, height, width, depth = x_shape
    for split in ("train", "test"):
        if f"x_{split}" not in shapes:
            continue
        xs, ys = shapes[f"x_{split}"][1], shapes[f"y_{split}"][1]
        if not (tuple(xs[1:]) == (height, width, depth) or (depth == 1 and tuple(xs[1:]) == (height, width))):
            raise refuse(f"x_{split} has shape {list(xs)}, which does not match x_train's images {[height, width, depth]}")
        if ys not in ((xs[0],), (xs[0], 1)):
            raise refuse(f"y_{split} has shape {list(ys)}; expected ({xs[0]},), one label per image of x_{split}")
    _check_sizes(options, width, height, depth, sum(shapes[f"x_{s}"][1][0] for s in ("train", "test")
                                                   if f"x_{s}" in shapes), limits)
    arrays = {name: npy.parse(f"{name}.npy", archive.read(zf, info)) for name, info in by_name.items()}
    labels = {s: arrays[f"y_{s}"].integers() for s in ("train", "test") if f"y_{s}" in arrays}
    classes = _class_names(labels, options, limits)
    stride = height * width * depth
    if "x_test" in arrays:
        train = Part(bytearray(arrays["x_train"].data), bytearray(labels["train"]))
        test = Part(bytearray(arrays["x_test"].data), bytearray(labels["test"]))
    else:
        train, test = _hold_out(arrays["x_train"].data, labels["train"], stride)
    return Converted("npz", width, height, depth, classes, train, test)


def _npy_header(zf, info) -> tuple[str, tuple[int, ...]]:
    """dtype and shape of a member, from its first bytes only."""
    descr, shape, _ = npy.header(info.filename, archive.head(zf, info, npy.MAX_HEADER + 12))
    return descr, shape


# --- IDX ------------------------------------------------------------------------------------------------

def _from_idx(named: list[tuple[str, Callable[[], bytes]]], options: Options, limits: UploadLimits) -> Converted:
    """IDX files, each a name and how to read it (a zip member or a file of the form)."""
    found: dict[tuple[str, str], tuple[str, Callable[[], bytes]]] = {}
    for name, read in named:
        match = _IDX.fullmatch(name)
        if match is None:
            raise refuse(f"{name!r} is not an IDX file of a dataset (train-images-idx3-ubyte, "
                         "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, or .gz)")
        split = "train" if match.group(1) == "train" else "test"
        if (split, match.group(2)) in found:
            raise refuse(f"there are two {split} {match.group(2)} files")
        found[(split, match.group(2))] = (name, read)
    for kind in ("images", "labels"):
        if ("train", kind) not in found:
            raise refuse(f"there is no train-{kind} IDX file")
    if (("test", "images") in found) != (("test", "labels") in found):
        raise refuse("give both test images and test labels, or neither")
    arrays = {}
    for key, (name, read) in found.items():  # labels: one value an image; images: every pixel value
        arrays[key] = _read_idx(name, read(), limits.images if key[1] == "labels" else limits.total_pixels)
    x_dims = arrays[("train", "images")][0]
    if len(x_dims) == 3:
        x_dims = (*x_dims, 1)
    if len(x_dims) != 4 or x_dims[3] not in (1, 3):
        raise refuse("train images must be an IDX array (N, height, width) or (N, height, width, channels)")
    _, height, width, depth = x_dims
    labels = {}
    for split in ("train", "test"):
        if (split, "images") not in arrays:
            continue
        dims, y = arrays[(split, "images")][0], arrays[(split, "labels")]
        if tuple(dims[1:]) not in ((height, width, depth),) + (((height, width),) if depth == 1 else ()):
            raise refuse(f"the {split} images are {list(dims[1:])}, the train images {[height, width, depth]}")
        if y[0] != (dims[0],):
            raise refuse(f"the {split} labels have shape {list(y[0])}; expected ({dims[0]},)")
        labels[split] = list(y[1])
    _check_sizes(options, width, height, depth, sum(arrays[(s, "images")][0][0] for s in labels), limits)
    classes = _class_names(labels, options, limits)
    if "test" in labels:
        train = Part(bytearray(arrays[("train", "images")][1]), bytearray(labels["train"]))
        test = Part(bytearray(arrays[("test", "images")][1]), bytearray(labels["test"]))
    else:
        train, test = _hold_out(arrays[("train", "images")][1], labels["train"], height * width * depth)
    return Converted("idx", width, height, depth, classes, train, test)


def _read_idx(name: str, raw: bytes, cap: int) -> tuple[tuple[int, ...], memoryview]:
    """An IDX file's shape and values; a gzipped one is unpacked only as far as its header says, and a header
    that says more than `cap` values is refused before anything else is unpacked."""
    gz = raw[:2] == b"\x1f\x8b"
    dims, offset = idx.header(name, _gunzip(name, raw, idx.MAX_HEADER, prefix=True) if gz else raw)
    if idx.values(dims) > cap:
        raise refuse(f"{name}: its shape {list(dims)} holds {idx.values(dims):,} values; at most {cap:,} are "
                     "accepted")
    if gz:
        raw = _gunzip(name, raw, offset + idx.values(dims))
    dims, offset = idx.shape(name, raw)
    return dims, memoryview(raw)[offset:]


def _gunzip(name: str, raw: bytes, budget: int, prefix: bool = False) -> bytes:
    """A gzip member unpacked, refused once it unpacks to more than `budget` bytes."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(raw, budget + 1)
    except zlib.error as exc:
        raise refuse(f"{name!r} is not readable gzip data: {exc}") from None
    if prefix:
        return out[:budget]
    if len(out) > budget or inflater.unconsumed_tail:
        raise refuse(f"{name!r} unpacks to more than {budget:,} bytes")
    return out


# --- shared checks --------------------------------------------------------------------------------------

def _check_sizes(options: Options, width: int, height: int, depth: int, count: int, limits: UploadLimits) -> None:
    """Arrays are not resized: a stated size must be theirs. Every bound checked before the data is read."""
    for name, stated, actual in (("width", options.width, width), ("height", options.height, height),
                                 ("depth", options.depth, depth)):
        if stated is not None and stated != actual:
            raise refuse(f"the arrays' images have {name} {actual}, not the {stated} given", name)
    if width * height > limits.image_pixels or not width or not height:
        raise refuse(f"images of {width}x{height} pixels; at most {limits.image_pixels:,} per image are accepted")
    if count > limits.images:
        raise refuse(f"the dataset has {count:,} images; at most {limits.images:,} are accepted")
    if count * width * height * depth > limits.total_pixels:
        raise refuse(f"the dataset has {count * width * height * depth:,} pixel values; at most "
                     f"{limits.total_pixels:,} are accepted")


def _class_names(labels: dict[str, list[int]], options: Options, limits: UploadLimits) -> list[str]:
    """The classes' names (given, or "0".."K-1"), every label checked to be one of them."""
    low = min((min(v) for v in labels.values() if v), default=0)
    high = max((max(v) for v in labels.values() if v), default=0)
    count = len(options.class_names) if options.class_names is not None else high + 1
    if count > limits.classes:
        raise refuse(f"{count} classes; at most {limits.classes} are accepted")
    if low < 0 or high >= count:
        bad = low if low < 0 else high
        raise refuse(f"label {bad} is out of range: labels must be 0..{count - 1}"
                     + (" (one per class name given)" if options.class_names is not None else ""))
    return list(options.class_names) if options.class_names is not None else [str(i) for i in range(count)]


def _hold_out(pixels: memoryview, labels: list[int], stride: int) -> tuple[Part, Part]:
    """Every HOLD_OUT-th image as the test set, the others for training."""
    train, test = Part(), Part()
    for i, label in enumerate(labels):
        part = test if i % HOLD_OUT == HOLD_OUT - 1 else train
        part.images += pixels[i * stride:(i + 1) * stride]
        part.labels.append(label)
    return train, test
