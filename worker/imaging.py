"""Preprocessing for "test an image from your computer": decode safely, fit like MNIST, or read JSON pixels."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
# Magic numbers of formats people upload by mistake, only to name them in the error.
KNOWN = {b"GIF87a": "GIF", b"GIF89a": "GIF", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF",
         b"%PDF": "PDF", b"\x00\x00\x01\x00": "ICO", b"<svg": "SVG", b"<?xml": "XML (SVG?)",
         b"\x1f\x8b": "gzip", b"PK\x03\x04": "ZIP"}
INK_THRESHOLD = 0.2  # of the darkest-to-brightest range: what counts as ink for the bounding box
MIN_CONTRAST = 16  # grey levels: below this the image is all background


def decode(data: bytes, *, max_bytes: int, max_pixels: int) -> Image.Image:
    """A PNG or JPEG, its size checked from the header before any pixel is decoded."""
    if len(data) > max_bytes:
        raise ValueError(f"the image is {len(data)} bytes; at most {max_bytes} are accepted")
    kind = _sniff(data)
    try:
        # open() reads only the header; Pillow's own bomb check (2x MAX_IMAGE_PIXELS) may fire here too.
        picture = Image.open(io.BytesIO(data), formats=[kind])
    except Image.DecompressionBombError as exc:
        raise ValueError(f"the {kind} image has too many pixels (at most {max_pixels}): {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"not a readable {kind} image: {exc}") from exc
    width, height = picture.size
    if width * height > max_pixels:  # the decompression-bomb guard: a tiny file can claim a huge size
        raise ValueError(f"the {kind} image is {width}x{height} = {width * height} pixels; "
                         f"at most {max_pixels} are accepted")
    try:
        picture.load()
        return ImageOps.exif_transpose(picture)  # phone photos store their rotation in EXIF
    except Image.DecompressionBombError as exc:
        raise ValueError(f"the {kind} image has too many pixels (at most {max_pixels}): {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"the {kind} image is damaged or truncated: {exc}") from exc


def _sniff(data: bytes) -> str:
    """'PNG' or 'JPEG' from the magic number; ValueError naming any other type."""
    for magic, kind in ACCEPTED.items():
        if data.startswith(magic):
            return kind
    head = data[:64].lstrip()
    other = next((kind for magic, kind in KNOWN.items() if head.startswith(magic)), None)
    if other is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        other = "WebP"
    if other is None and data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        other = "HEIC/AVIF"
    what = f"a {other} file" if other else ("empty" if not data else "not a recognised image type")
    raise ValueError(f"only PNG and JPEG images are accepted; this is {what}")


def _flatten(picture: Image.Image, mode: str) -> Image.Image:
    """`picture` in `mode` ('L' or 'RGB'), transparent parts on white as a drawing program shows them."""
    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        rgba = picture.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        picture = Image.alpha_composite(background, rgba)
    return picture.convert(mode)


def fit_like_mnist(image: Image.Image, depth: int, size: int = 28) -> np.ndarray:
    """uint8 (depth, size, size): for depth 1 MNIST's procedure (white ink on black, 20x20 box, centre of mass)."""
    if depth == 3:
        rgb = _flatten(image, "RGB").resize((size, size), Image.Resampling.LANCZOS)
        return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1).copy()
    if depth != 1:
        raise ValueError(f"images can be fitted to depth 1 or 3, not {depth}")
    grey = np.asarray(_flatten(image, "L"), dtype=np.float32)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.mean() > 127:  # dark ink on light paper: MNIST digits are white on black
        grey, border = 255.0 - grey, 255.0 - border
    ink = np.clip(grey - np.median(border), 0, None)  # the background level becomes black
    out = np.zeros((1, size, size), np.uint8)
    if ink.max() < MIN_CONTRAST:
        return out  # all background: nothing to centre
    ink *= 255.0 / ink.max()  # MNIST strokes reach full white
    rows = np.flatnonzero((ink > 255 * INK_THRESHOLD).any(1))
    cols = np.flatnonzero((ink > 255 * INK_THRESHOLD).any(0))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    box = max(1, round(size * 20 / 28))
    scale = box / max(crop.shape)
    new_w, new_h = max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))
    fitted = Image.fromarray(crop.astype(np.uint8)).resize((new_w, new_h), Image.Resampling.LANCZOS)
    digit = np.asarray(fitted, dtype=np.float64)
    mass = digit.sum()
    ys, xs = np.indices(digit.shape)
    cy, cx = ((ys * digit).sum() / mass, (xs * digit).sum() / mass) if mass > 0 else (new_h / 2, new_w / 2)
    canvas = Image.new("L", (size, size), 0)
    # Place the centre of mass at the field's centre; paste clips whatever falls outside.
    canvas.paste(fitted, (round(size / 2 - cx - 0.5), round(size / 2 - cy - 0.5)))
    out[0] = np.asarray(canvas, dtype=np.uint8)
    return out


def resize(image: Image.Image, depth: int, width: int, height: int) -> np.ndarray:
    """uint8 (depth, height, width): the picture made grey or RGB and resized, as uploaded datasets were."""
    if depth not in (1, 3):
        raise ValueError(f"images can be fitted to depth 1 or 3, not {depth}")
    picture = _flatten(image, "L" if depth == 1 else "RGB").resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(picture, dtype=np.uint8).reshape(height, width, depth).transpose(2, 0, 1).copy()


def from_pixels(values, depth: int, size: int = 28, height: int | None = None) -> np.ndarray:
    """JSON pixels (flat, [rows][cols], or [rows][cols][3] / [3][rows][cols]) as uint8 (depth, height, size);
    `size` is the width, and the height too unless given."""
    width, height = size, height or size
    expected = _expected(depth, width, height)
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as exc:  # ragged nesting
        raise ValueError(f"pixels must be a regular array: {expected} ({exc})") from exc
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"pixels must be numbers 0..255 (or 0..1 as floats): {expected}")
    n = width * height * depth
    if arr.shape == (n,):
        arr = arr.reshape(height, width, depth)  # ConvNetJS Vol order: rows, then columns, channels interleaved
    elif depth == 1 and arr.shape in ((height, width), (1, height, width), (height, width, 1)):
        arr = arr.reshape(height, width, 1)
    elif depth == 3 and arr.shape == (height, width, 3):
        pass
    elif depth == 3 and arr.shape == (3, height, width):
        arr = arr.transpose(1, 2, 0)
    else:
        raise ValueError(f"pixels have shape {list(arr.shape)}; {expected}")
    floats, arr = arr.dtype.kind == "f", arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("pixels must be finite numbers")
    if arr.min() < 0 or arr.max() > 255:
        raise ValueError(f"pixels must lie in 0..255, got {arr.min():g}..{arr.max():g}")
    if floats and arr.max() <= 1.0:
        arr = arr * 255.0  # floats in 0..1 are intensities, as canvas tools often give them
    return np.rint(arr).astype(np.uint8).transpose(2, 0, 1).copy()


def _expected(depth: int, width: int, height: int) -> str:
    n = width * height * depth
    if depth == 1:
        return f"expected {n} numbers, or {height} rows of {width} numbers"
    return (f"expected {n} numbers (RGB interleaved), or {height} rows of {width} [r, g, b] triples, "
            f"or [3][{height}][{width}]")
