"""PNG and JPEG members of an upload: the type from the magic number and the size from the header, both
checked before a pixel is decoded; then one size and depth for all, as (height, width, depth) bytes."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from service.datasets.limits import refuse

FORMATS = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
EXTENSIONS = (".png", ".jpg", ".jpeg")
MODES = {1: "L", 3: "RGB"}


def open_header(name: str, data: bytes, max_pixels: int) -> Image.Image:
    """The image with only its header read, its width x height within `max_pixels`."""
    kind = next((k for magic, k in FORMATS.items() if data.startswith(magic)), None)
    if kind is None:
        raise refuse(f"{name} is not a PNG or JPEG image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data), formats=[kind])  # reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise refuse(f"{name} claims more than {max_pixels:,} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise refuse(f"{name} is not a readable {kind} image (its header is damaged)") from None
    width, height = picture.size
    if width * height > max_pixels:
        raise refuse(f"{name} is {width}x{height} = {width * height:,} pixels; at most {max_pixels:,} per image "
                     "are accepted")
    return picture


def depth_of(picture: Image.Image) -> int:
    """1 for grey pictures, 3 for anything with colour."""
    return 1 if picture.mode in ("1", "L", "LA", "I", "I;16", "F") else 3


def pixels(name: str, picture: Image.Image, size: tuple[int, int] | None, depth: int) -> bytes:
    """The picture decoded, converted to `depth` and resized to `size` (width, height) when given, as
    height x width x depth bytes; the caller has checked the header's size."""
    try:
        picture.load()
        if picture.mode in ("RGBA", "LA", "PA", "P") or "transparency" in picture.info:
            rgba = picture.convert("RGBA")  # transparent parts on white, as a drawing program shows them
            picture = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        picture = picture.convert(MODES[depth])
        if size is not None and picture.size != size:
            picture = picture.resize(size, Image.Resampling.LANCZOS)
        return picture.tobytes()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise refuse(f"{name} is damaged or truncated: {exc}") from None
