"""IDX files (MNIST's format): unsigned-byte arrays with a big-endian header, read and written in pure Python.

The canonical stored form of an uploaded dataset is IDX too: images as (N, height, width, depth) and labels
as (N,), one byte each, so the worker reads uploads with the same reader as MNIST.
"""

from __future__ import annotations

import struct

from service.datasets.limits import refuse

UBYTE = 0x08


MAX_HEADER = 4 + 4 * 4  # the magic number and at most four dimensions


def header(name: str, data: bytes, max_dims: int = 4) -> tuple[tuple[int, ...], int]:
    """The shape in the header at the start of `data` and the offset of the values (the rest is not looked at)."""
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != UBYTE or not 1 <= data[3] <= max_dims:
        raise refuse(f"{name} is not an unsigned-byte IDX file")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise refuse(f"{name}: the IDX header is truncated")
    return struct.unpack(f">{ndim}I", data[4:offset]), offset


def values(dims: tuple[int, ...]) -> int:
    """How many values an array of shape `dims` holds."""
    n = 1
    for d in dims:
        n *= d
    return n


def shape(name: str, data: bytes, max_dims: int = 4) -> tuple[tuple[int, ...], int]:
    """The shape of the unsigned-byte IDX array in `data` and the offset of its values, its length checked."""
    dims, offset = header(name, data, max_dims)
    n = values(dims)
    if len(data) != offset + n:
        raise refuse(f"{name} has {len(data) - offset:,} bytes of values, but its shape {list(dims)} needs {n:,}")
    return dims, offset


def encode(dims: tuple[int, ...], values: bytes) -> bytes:
    """An unsigned-byte IDX file of `values` with shape `dims`."""
    return bytes((0, 0, UBYTE, len(dims))) + struct.pack(f">{len(dims)}I", *dims) + values
