"""Artifacts (checkpoints, trained weights) under an fsspec URL: a local folder by default."""

from __future__ import annotations

import hashlib
import re
import secrets

import fsspec

_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


class Artifacts:
    """Bytes stored under `<url>/<job id>/<name>`; names are ours, never a user's."""

    def __init__(self, url: str):
        self.fs, self.root = fsspec.core.url_to_fs(str(url))
        self.url = str(url)
        self.fs.makedirs(self.root, exist_ok=True)

    def path(self, job_id: str, name: str) -> str:
        for part in (job_id, *name.split("/")):
            if not _SAFE.fullmatch(part) or part in (".", ".."):
                raise ValueError(f"unsafe artifact name {part!r}")
        return f"{self.root.rstrip('/')}/{job_id}/{name}"

    def put(self, job_id: str, name: str, data: bytes) -> str:
        """Write atomically where the filesystem allows (write then move); return the path."""
        path = self.path(job_id, name)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{path}.{secrets.token_hex(6)}.part"  # one writer's own: two writers of one name never interleave
        with self.fs.open(tmp, "wb") as f:
            f.write(data)
        self.fs.mv(tmp, path)
        return path

    def get(self, job_id: str, name: str) -> bytes:
        with self.fs.open(self.path(job_id, name), "rb") as f:
            return f.read()

    def delete_job(self, job_id: str) -> None:
        folder = self.path(job_id, "x").rsplit("/", 1)[0]
        if self.fs.exists(folder):
            self.fs.rm(folder, recursive=True)

    def names(self, job_id: str) -> list[str]:
        """The names of the job's artifacts, files and folders at the top of its folder (`attempts/<token>`
        counted as one name each)."""
        folder = self.path(job_id, "x").rsplit("/", 1)[0]
        if not self.fs.exists(folder):
            return []
        out = []
        for entry in self.fs.ls(folder, detail=False):
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if name == "attempts":
                out += [f"attempts/{sub.rstrip('/').rsplit('/', 1)[-1]}" for sub in self.fs.ls(entry, detail=False)]
            else:
                out.append(name)
        return out

    def remove(self, job_id: str, name: str) -> None:
        """Remove a file or a folder of the job's artifacts, if it is there."""
        path = self.path(job_id, name)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
