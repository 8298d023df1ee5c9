"""Converted datasets in the artifact store, at ``datasets/<sha256>/<file>``: written once per content, never
changed, so a job that pinned a hash reads the same images whatever happens to the name later."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from service.datasets.convert import Converted
from service.storage import Artifacts

FOLDER = "datasets"  # beside the jobs' folders; job ids are hex, so none is named this
FILES = ("train-images", "train-labels", "test-images", "test-labels", "meta.json")
SHA256 = re.compile(r"[0-9a-f]{64}")


def name(sha256: str, file: str) -> str:
    """The artifact name of one file of the dataset with this hash."""
    if not SHA256.fullmatch(sha256) or file not in FILES:
        raise ValueError(f"no dataset file {sha256!r}/{file!r}")
    return f"{sha256}/{file}"


def content_hash(files: dict[str, bytes]) -> str:
    """The hash of a dataset's stored files: the same dataset uploaded twice is stored once."""
    digest = hashlib.sha256()
    for file, data in sorted(files.items()):
        digest.update(f"{file}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def store(artifacts: Artifacts, converted: Converted,
          check: Callable[[str, int], object] | None = None) -> tuple[str, int]:
    """Write the dataset's files (unless that content is stored already); return its hash and size in bytes.
    `check(sha, size)` runs before anything is written (the owner's quota): what it raises, nothing is stored."""
    files = converted.files()  # once: at the limits they are hundreds of MB
    sha = content_hash(files)
    if check is not None:
        check(sha, sum(len(data) for data in files.values()))
    if not _exists(artifacts, sha, "meta.json"):
        for file in FILES:  # meta.json last: its presence says the others are complete
            try:
                artifacts.put(FOLDER, name(sha, file), files[file])
            except OSError:  # the same content uploaded at the same moment: the other upload moved it in first
                if not _exists(artifacts, sha, file):
                    raise
    return sha, sum(len(data) for data in files.values())


def _exists(artifacts: Artifacts, sha256: str, file: str) -> bool:
    return artifacts.fs.exists(artifacts.path(FOLDER, name(sha256, file)))


def read(artifacts: Artifacts, sha256: str, file: str) -> bytes:
    """One file of a stored dataset."""
    return artifacts.get(FOLDER, name(sha256, file))
