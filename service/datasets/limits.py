"""The bounds of one dataset upload, and the error that names the bound or the problem."""

from __future__ import annotations

from dataclasses import dataclass

from service.errors import FieldError, UploadRefused


@dataclass(frozen=True)
class UploadLimits:
    """Every size an upload can choose, each bounded before the work it would cost is done."""

    upload_bytes: int
    unpacked_bytes: int
    files: int
    images: int
    image_pixels: int
    total_pixels: int
    classes: int
    ratio: int

    @classmethod
    def from_config(cls, config) -> UploadLimits:
        return cls(**{name: int(getattr(config, f"dataset_max_{name}")) for name in cls.__dataclass_fields__})


def refuse(message: str, field: str = "file") -> UploadRefused:
    """The 422 for an upload, naming the form field at fault (`file` unless another)."""
    return UploadRefused(message, errors=[FieldError(field, message)])
