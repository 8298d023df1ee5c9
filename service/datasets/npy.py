"""The header of a `.npy` array, read in pure Python: only uint8 images and integer labels in C order,
their shape checked before the data is touched. Object arrays (pickle) are never read."""

from __future__ import annotations

import ast
import struct
from dataclasses import dataclass

from service.datasets.limits import refuse

MAGIC = b"\x93NUMPY"
# Integer dtypes a label array may have (numpy's descr strings); images must be |u1.
LABEL_TYPES = {"|u1": "B", "|i1": "b", "<u2": "<H", "<i2": "<h", "<u4": "<I", "<i4": "<i", "<u8": "<Q", "<i8": "<q"}
MAX_HEADER = 4096  # numpy writes about 128 bytes; a longer one is not worth parsing


@dataclass(frozen=True)
class Array:
    """A `.npy` array: its dtype, shape and the raw bytes after the header."""

    name: str
    descr: str
    shape: tuple[int, ...]
    data: memoryview

    @property
    def count(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def integers(self) -> list[int]:
        """The values of an integer array, in order."""
        code = LABEL_TYPES[self.descr]
        size = struct.calcsize(code)
        return [v for (v,) in struct.iter_unpack(code, self.data[: self.count * size])]


def header(name: str, head: bytes) -> tuple[str, tuple[int, ...], int]:
    """(descr, shape, offset of the data) from the first bytes of a `.npy` file."""
    if not head.startswith(MAGIC) or len(head) < 10:
        raise refuse(f"{name} is not a .npy array")
    major = head[6]
    if major == 1:
        (length,), start = struct.unpack("<H", head[8:10]), 10
    elif major in (2, 3) and len(head) >= 12:
        (length,), start = struct.unpack("<I", head[8:12]), 12
    else:
        raise refuse(f"{name}: .npy format version {major} is not supported")
    if length > MAX_HEADER or len(head) < start + length:
        raise refuse(f"{name}: the .npy header is damaged or longer than {MAX_HEADER} bytes")
    try:
        # literal_eval builds only literals (dicts, strings, tuples, numbers): no code runs.
        meta = ast.literal_eval(head[start:start + length].decode("latin-1"))
    except (ValueError, TypeError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):  # {[1]: 2}: TypeError
        raise refuse(f"{name}: the .npy header is not readable") from None
    if not isinstance(meta, dict) or set(meta) != {"descr", "fortran_order", "shape"}:
        raise refuse(f"{name}: the .npy header is not readable")
    descr, shape = meta["descr"], meta["shape"]
    if meta["fortran_order"] is not False:
        raise refuse(f"{name} is stored in Fortran order; save it in C order (numpy's default)")
    if not isinstance(descr, str) or descr not in LABEL_TYPES:
        raise refuse(f"{name} has dtype {descr!r}; images must be uint8 and labels an integer type "
                     "(object arrays are never read)")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                               for d in shape):
        raise refuse(f"{name}: the .npy shape is not readable")
    return descr, shape, start + length


def parse(name: str, raw: bytes) -> Array:
    """The array in `raw` (a whole `.npy` file), its length checked against its header."""
    descr, shape, offset = header(name, raw[: MAX_HEADER + 12])
    array = Array(name, descr, shape, memoryview(raw)[offset:])
    expected = array.count * struct.calcsize(LABEL_TYPES[descr])
    if len(array.data) != expected:
        raise refuse(f"{name} has {len(array.data):,} bytes of data, but its shape {list(shape)} needs {expected:,}")
    return array
