"""Uploads made in the tests: zips of class folders, .npz files, IDX archives, and hostile variants of each."""

from __future__ import annotations

import gzip
import io
import stat
import struct
import zipfile

import numpy as np
from PIL import Image


def png(pixels: np.ndarray) -> bytes:
    """A PNG of uint8 (H, W) grey or (H, W, 3) colour pixels."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def zipped(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def folders(images: np.ndarray, labels, classes: list[str], test: tuple[np.ndarray, list] | None = None) -> bytes:
    """A zip of train/<class>/<i>.png (and test/<class>/<i>.png) from uint8 images."""
    members = {}
    for split, part in (("train", (images, labels)), ("test", test)):
        for i, (x, y) in enumerate(zip(*part) if part else ()):
            members[f"{split}/{classes[int(y)]}/{i}.png"] = png(x)
    return zipped(members)


def npz(**arrays: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.savez_compressed(out, **arrays)
    return out.getvalue()


def idx(array: np.ndarray) -> bytes:
    return bytes((0, 0, 8, array.ndim)) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def idx_zip(x_train, y_train, x_test=None, y_test=None, gz: bool = True) -> bytes:
    wrap = gzip.compress if gz else (lambda b: b)
    ext = ".gz" if gz else ""
    members = {f"train-images-idx3-ubyte{ext}": wrap(idx(x_train)), f"train-labels-idx1-ubyte{ext}": wrap(idx(y_train))}
    if x_test is not None:
        members[f"t10k-images-idx3-ubyte{ext}"] = wrap(idx(x_test))
        members[f"t10k-labels-idx1-ubyte{ext}"] = wrap(idx(y_test))
    return zipped(members)


def with_symlink(name: str, target: str, others: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for member, data in others.items():
            z.writestr(member, data)
        link = zipfile.ZipInfo(name)
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(link, target)
    return out.getvalue()


def bomb(name: str = "train/a/0.png", size: int = 20 << 20) -> bytes:
    """A zip whose one member unpacks to `size` zero bytes from a few hundred kB."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z, \
            z.open(name, "w", force_zip64=True) as f:
        chunk = bytes(1 << 20)
        for _ in range(size >> 20):
            f.write(chunk)
    return out.getvalue()


def pixel_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A small PNG whose header claims width x height pixels (the IDAT is a short valid stream)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
