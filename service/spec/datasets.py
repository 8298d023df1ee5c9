"""Registry of the datasets convtrain can train on (metadata only, torch-free)."""

from __future__ import annotations

import os
import pathlib
import re
from dataclasses import dataclass

from service.errors import ConvtrainError

# The API process imports this module, so it must stay pure Python: no torch, no numpy.


class DatasetError(ConvtrainError):
    """Base class for dataset problems the API and the worker both report."""

    status, title = 422, "Invalid dataset"


class DatasetUnavailable(DatasetError):
    """The dataset's files are absent from the data folder and could not be downloaded."""

    status, title = 503, "Dataset Unavailable"

    def __init__(self, message: str, *, folder: str | None = None, files: tuple[str, ...] = ()):
        super().__init__(message)
        self.folder = folder
        self.files = tuple(files)


class DatasetCorrupt(DatasetError):
    """A dataset file exists but its contents are not what the format requires."""


@dataclass(frozen=True)
class DatasetInfo:
    """What the service and the worker need to know about one dataset."""

    name: str
    title: str
    width: int
    height: int
    depth: int
    num_classes: int
    class_names: tuple[str, ...]
    train_size: int
    test_size: int
    files: tuple[str, ...]
    torchvision: str
    # Picks the worker's loader; a new dataset in an existing format is one registry entry.
    format: str = "idx"


_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="mnist",
            title="MNIST handwritten digits",
            width=28, height=28, depth=1, num_classes=10,
            class_names=tuple(str(d) for d in range(10)),
            train_size=60000, test_size=10000,
            files=_IDX_FILES, torchvision="MNIST", format="idx",
        ),
        DatasetInfo(
            name="fashion-mnist",
            title="Fashion-MNIST clothing images",
            width=28, height=28, depth=1, num_classes=10,
            class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
            train_size=60000, test_size=10000,
            files=_IDX_FILES, torchvision="FashionMNIST", format="idx",
        ),
        DatasetInfo(
            name="cifar10",
            title="CIFAR-10 tiny colour images",
            width=32, height=32, depth=3, num_classes=10,
            class_names=("airplane", "automobile", "bird", "cat", "deer",
                         "dog", "frog", "horse", "ship", "truck"),
            train_size=50000, test_size=10000,
            files=("cifar-10-batches-py",), torchvision="CIFAR10", format="cifar-pickle",
        ),
    )
}


# An uploaded dataset's name: short, lower case, safe in a URL and a form field.
UPLOAD_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
UPLOAD_FORMAT = "upload"  # the worker reads an upload from the artifact store by its content hash


def uploaded(record: dict) -> DatasetInfo:
    """The registry-style entry of an uploaded dataset's record (service/store/datasets.py)."""
    return DatasetInfo(
        name=record["name"], title=record.get("title") or record["name"],
        width=record["width"], height=record["height"], depth=record["depth"],
        num_classes=len(record["class_names"]), class_names=tuple(record["class_names"]),
        train_size=record["train_size"], test_size=record["test_size"],
        files=(), torchvision="", format=UPLOAD_FORMAT,
    )


def get(name: str) -> DatasetInfo:
    """Return the registry entry for `name`; KeyError if there is none."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}") from None


def default_data_dir() -> pathlib.Path:
    """$CONVTRAIN_DATA_DIR, else <$CONVTRAIN_HOME or .convtrain>/data."""
    explicit = os.environ.get("CONVTRAIN_DATA_DIR")
    if explicit:
        return pathlib.Path(explicit)
    return pathlib.Path(os.environ.get("CONVTRAIN_HOME") or ".convtrain") / "data"


def dataset_dir(data_dir: str | os.PathLike | None, name: str) -> pathlib.Path:
    """The folder <data_dir>/<name> that holds the dataset's files."""
    # The path component comes from the registry entry, never from the caller's text.
    info = get(name)
    base = default_data_dir() if data_dir is None else pathlib.Path(data_dir)
    return base / info.name


def file_path(folder: pathlib.Path, filename: str) -> pathlib.Path | None:
    """The existing plain or gzip version of `filename` in `folder`, plain first; None if neither."""
    for candidate in (folder / filename, folder / (filename + ".gz")):
        if candidate.exists():
            return candidate
    return None


def present(data_dir: str | os.PathLike | None, name: str) -> bool:
    """Whether every file of the dataset exists in its folder (plain or .gz)."""
    folder = dataset_dir(data_dir, name)
    return all(file_path(folder, f) is not None for f in get(name).files)


def unavailable(data_dir: str | os.PathLike | None, name: str, reason: str = "") -> DatasetUnavailable:
    """The DatasetUnavailable error naming the folder and the files it should hold."""
    folder = dataset_dir(data_dir, name)
    info = get(name)
    files = info.files
    forms = " (plain or .gz)" if info.format == "idx" else ""
    message = f"dataset {name!r} is not available: expected {', '.join(files)}{forms} in {folder}"
    return DatasetUnavailable(message + (f"; {reason}" if reason else ""),
                              folder=str(folder), files=files)


def describe(data_dir: str | os.PathLike | None) -> list[dict]:
    """The registry as JSON-ready dicts for GET /v1/datasets."""
    return [
        {
            "name": info.name,
            "title": info.title,
            "width": info.width,
            "height": info.height,
            "depth": info.depth,
            "num_classes": info.num_classes,
            "class_names": list(info.class_names),
            "train_size": info.train_size,
            "test_size": info.test_size,
            "present": present(data_dir, info.name),
        }
        for info in DATASETS.values()
    ]
