"""A dataset as a script sees it: a built-in one or your own upload, its shape, classes and sizes; and uploading one.

An upload is streamed from its files (requests-toolbelt's multipart encoder; `requests` alone reads every
file into memory first), so a large archive costs no more memory than a small one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import quote

from requests_toolbelt import MultipartEncoder

from service.client.errors import ApiError
from service.client.session import Session

CHUNK = 1 << 16


class Form:
    """The multipart body of POST /v1/datasets, read from the files as it is sent.

    An iterable with a length, not a file: `requests` sends its Content-Length and urllib3 iterates it anew
    each time the session sends the request, so a request sent again after a 503 starts again from the first
    byte (same boundary, same length) instead of sending an exhausted stream. A dropped connection is not
    retried: a POST without an Idempotency-Key is not repeatable (service/client/session.py).
    """

    def __init__(self, fields: list[tuple[str, str]], paths: Sequence[Path]):
        self.fields, self.paths = fields, list(paths)
        self.boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        with ExitStack() as files:
            self.length = self._encoder(files).len

    def _encoder(self, files: ExitStack) -> MultipartEncoder:
        parts: list = list(self.fields)
        for path in self.paths:
            try:
                handle = files.enter_context(open(path, "rb"))  # noqa: SIM115 -- the stack closes it
            except OSError as exc:
                raise ApiError(f"cannot read {path}: {exc.strerror or exc}") from None
            parts.append(("file", (path.name, handle, "application/octet-stream")))
        return MultipartEncoder(parts, boundary=self.boundary)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        with ExitStack() as files:
            encoder = self._encoder(files)
            while chunk := encoder.read(CHUNK):
                yield chunk


def upload_form(paths: str | Path | Sequence[str | Path], name: str, *, title: str | None = None,
                width: int | None = None, height: int | None = None, depth: int | None = None,
                class_names: Sequence[str] | str | None = None) -> Form:
    """The form for `paths` (one `.zip`/`.npz`, or a list of IDX files sent as repeated `file` fields) and the
    options given; `class_names` a list of names or the JSON array as a string. The service checks each value."""
    files = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if isinstance(class_names, (list, tuple)):
        class_names = json.dumps(list(class_names))
    options = {"name": name, "title": title, "width": width, "height": height, "depth": depth,
               "class_names": class_names}
    return Form([(key, str(value)) for key, value in options.items() if value is not None], files)


class Dataset:
    """A dataset jobs can train on (`client.datasets()`, `client.dataset(name)`, `client.upload_dataset(...)`):
    a built-in one or one of your uploads; `record` holds what was last fetched."""

    collection = "/v1/datasets"

    def __init__(self, session: Session, record: dict):
        self.session = session
        self.record = record

    @property
    def name(self) -> str:
        return self.record["name"]

    @property
    def path(self) -> str:
        return f"{self.collection}/{quote(self.name, safe='')}"

    @property
    def builtin(self) -> bool:
        return bool(self.record.get("builtin"))

    @property
    def owner(self) -> str | None:
        """Who uploaded it (None for a built-in one)."""
        return self.record.get("owner")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(width, height, depth) of its images."""
        return self.record["width"], self.record["height"], self.record["depth"]

    @property
    def class_names(self) -> list[str]:
        return self.record["class_names"]

    @property
    def num_classes(self) -> int:
        return self.record["num_classes"]

    @property
    def train_size(self) -> int:
        return self.record["train_size"]

    @property
    def test_size(self) -> int:
        return self.record["test_size"]

    @property
    def sha256(self) -> str | None:
        """The hash of an upload's stored content (None for a built-in one); a job pins it."""
        return self.record.get("sha256")

    def __repr__(self) -> str:
        width, height, depth = self.shape
        return (f"<Dataset {self.name} {width}x{height}x{depth} {self.num_classes} classes "
                f"{self.train_size}+{self.test_size}{' builtin' if self.builtin else ''}>")

    def refresh(self) -> dict:
        """GET it again; the record is also kept in `record`."""
        self.record = self.session.json("GET", self.path)
        return self.record

    def delete(self) -> None:
        """Delete your upload (ApiError 409 for a built-in one); jobs that trained on it keep their copy."""
        self.session.request("DELETE", self.path)
