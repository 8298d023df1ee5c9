"""A zip archive checked from its central directory alone: names, kinds, counts and sizes, before any
member is decompressed (path traversal, symlinks, encrypted members and zip bombs are refused)."""

from __future__ import annotations

import io
import stat
import zipfile
import zlib

from service.datasets.limits import UploadLimits, refuse

# Folders and files that archivers add on their own (macOS's Finder): skipped, not refused.
_ARCHIVER_NOISE = ("__MACOSX/",)
_NOISE_NAMES = (".DS_Store", "Thumbs.db")


def open_checked(data: bytes, limits: UploadLimits) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """The archive and its file members (folders and archiver noise left out), every member checked."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise refuse(f"not a readable zip archive: {exc}") from None
    entries = archive.infolist()  # the central directory: nothing has been decompressed yet
    if len(entries) > limits.files:
        raise refuse(f"the archive has {len(entries):,} members; at most {limits.files:,} are accepted")
    members, unpacked = [], 0
    for info in entries:
        name = info.filename
        _check_name(name)
        kind = stat.S_IFMT(info.external_attr >> 16)
        if kind == stat.S_IFLNK:
            raise refuse(f"{name!r} is a symbolic link; the archive may hold only plain files and folders")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise refuse(f"{name!r} is not a plain file")
        if info.flag_bits & 0x1:
            raise refuse(f"{name!r} is encrypted")
        if info.is_dir() or name.startswith(_ARCHIVER_NOISE) or name.rsplit("/", 1)[-1] in _NOISE_NAMES:
            continue
        if info.file_size > limits.ratio * max(info.compress_size, 1) and info.file_size > 1 << 20:
            raise refuse(f"{name!r} expands {info.file_size:,} bytes from {info.compress_size:,}: more than "
                         f"{limits.ratio} times, which only a zip bomb does")
        unpacked += info.file_size
        if unpacked > limits.unpacked_bytes:
            raise refuse(f"the archive's members add up to more than {limits.unpacked_bytes:,} bytes unpacked")
        members.append(info)
    return archive, members


def _check_name(name: str) -> None:
    """Refuse a member name that could point outside the archive's own folder."""
    parts = name.split("/")
    if (not name or name.startswith("/") or "\\" in name or "\x00" in name
            or (len(parts[0]) >= 2 and parts[0][1] == ":") or ".." in parts):
        raise refuse(f"the member name {name!r} is unsafe (absolute, a drive letter, a backslash or '..'); "
                     "use relative names such as train/cat/1.png")


# What zipfile raises for damaged, truncated or unsupported member data.
_UNPACK_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError, ValueError,
                  zlib.error)


def head(archive: zipfile.ZipFile, info: zipfile.ZipInfo, size: int) -> bytes:
    """The first `size` bytes of a member, decompressing no more than that (a header, before the data)."""
    try:
        with archive.open(info) as f:
            return f.read(size)
    except _UNPACK_ERRORS as exc:
        raise refuse(f"{info.filename!r} cannot be unpacked: {exc}") from None


def read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """One member's bytes: at most its declared size, with its CRC checked by zipfile."""
    try:
        with archive.open(info) as f:
            data = f.read(info.file_size + 1)
    except _UNPACK_ERRORS as exc:
        raise refuse(f"{info.filename!r} cannot be unpacked: {exc}") from None
    if len(data) != info.file_size:
        raise refuse(f"{info.filename!r} holds {len(data):,} bytes but its directory entry says {info.file_size:,}")
    return data
