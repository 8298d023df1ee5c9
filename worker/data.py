"""Dataset loading into device-resident uint8 tensors, and vectorised batch augmentation."""

from __future__ import annotations

import gzip
import json
import os
import pathlib
import pickle
import shutil
import struct
import tempfile
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from service.datasets import stored
from service.spec.datasets import (
    DatasetCorrupt,
    DatasetInfo,
    DatasetUnavailable,
    dataset_dir,
    file_path,
    get,
    present,
    unavailable,
    uploaded,
)
from service.storage import Artifacts

__all__ = [
    "Split", "Dataset", "load", "clear_cache", "LOADERS", "validation_mask",
    "to_input", "window", "crop_at", "random_offsets", "random_crop", "center_crop", "random_flip", "random_shift",
    "BatchStream",
    "DatasetUnavailable", "DatasetCorrupt",
]


@dataclass
class Split:
    """One part of a dataset: uint8 images (N, depth, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device) -> "Split":
        """This split with both tensors on `device`."""
        return Split(self.images.to(device), self.labels.to(device))


@dataclass
class Dataset:
    """A loaded dataset: its registry entry and its train, validation and test splits."""

    info: DatasetInfo
    train: Split
    val: Split
    test: Split


# --- file formats -----------------------------------------------------------

def _read(path: pathlib.Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip (sniffed, not guessed from the name)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetCorrupt(f"{path}: bad gzip data ({exc})") from exc
    return data


def _parse_idx(path: pathlib.Path, ndim: int) -> np.ndarray:
    """An unsigned-byte IDX file as an array, with its magic number and size checked."""
    return _idx_array(_read(path), ndim, path)


def _idx_array(data: bytes, ndim: int, where) -> np.ndarray:
    """IDX bytes as an array of `ndim` dimensions; `where` names the file in errors."""
    header = 4 + 4 * ndim
    # Magic: two zero bytes, type 0x08 (unsigned byte), then the number of dimensions.
    if len(data) < header or data[:4] != bytes((0, 0, 0x08, ndim)):
        raise DatasetCorrupt(f"{where}: not an unsigned-byte IDX file with {ndim} dimension(s)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise DatasetCorrupt(f"{where}: {len(data)} bytes, expected {expected} for shape {dims}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _idx_pair(info: DatasetInfo, folder: pathlib.Path, images: str, labels: str) -> Split:
    """One split from an images file and a labels file."""
    x = _parse_idx(file_path(folder, images), 3)
    y = _parse_idx(file_path(folder, labels), 1)
    if x.shape[1:] != (info.height, info.width):
        raise DatasetCorrupt(f"{folder / images}: images are {x.shape[1:]}, expected "
                             f"{(info.height, info.width)}")
    if x.shape[0] != y.shape[0]:
        raise DatasetCorrupt(f"{folder}: {x.shape[0]} images in {images} but {y.shape[0]} labels in {labels}")
    # copy(): frombuffer arrays are read-only, which torch.from_numpy warns about.
    return Split(torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64)))


def _load_idx(info: DatasetInfo, folder: pathlib.Path) -> tuple[Split, Split]:
    """MNIST-style IDX files: (train, test)."""
    tr_x, tr_y, te_x, te_y = info.files
    return _idx_pair(info, folder, tr_x, tr_y), _idx_pair(info, folder, te_x, te_y)


def _cifar_batches(info: DatasetInfo, folder: pathlib.Path, names: list[str]) -> Split:
    """Concatenated CIFAR python-pickle batches as a CHW uint8 split."""
    xs, ys = [], []
    for name in names:
        path = folder / name
        try:
            with open(path, "rb") as f:
                # The torchvision/Toronto format is a pickle; only local files we downloaded are read.
                batch = pickle.load(f, encoding="bytes")
            x = np.asarray(batch[b"data"], dtype=np.uint8)
            y = np.asarray(batch[b"labels"], dtype=np.int64)
            x = x.reshape(len(x), info.depth, info.height, info.width)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise DatasetCorrupt(f"{path}: not a CIFAR python batch ({exc})") from exc
        if len(x) != len(y):
            raise DatasetCorrupt(f"{path}: {len(x)} images but {len(y)} labels")
        xs.append(x)
        ys.append(y)
    return Split(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)))


def _load_cifar(info: DatasetInfo, folder: pathlib.Path) -> tuple[Split, Split]:
    """CIFAR-10 python pickle batches: (train, test)."""
    root = folder / info.files[0]
    train = _cifar_batches(info, root, [f"data_batch_{i}" for i in range(1, 6)])
    return train, _cifar_batches(info, root, ["test_batch"])


def _load_upload(artifacts: Artifacts, sha256: str) -> tuple[DatasetInfo, Split, Split]:
    """An uploaded dataset by its content hash (service/datasets/stored.py): IDX images stored as
    (N, height, width, depth), returned as (N, depth, height, width) like every split."""
    try:
        meta = json.loads(stored.read(artifacts, sha256, "meta.json"))
        arrays = {file: stored.read(artifacts, sha256, file) for file in stored.FILES if file != "meta.json"}
    except FileNotFoundError as exc:
        raise DatasetUnavailable(f"the uploaded dataset {sha256[:12]} is missing from the artifact store") from exc
    info = uploaded({**meta, "name": sha256[:12]})
    splits = []
    for split in ("train", "test"):
        x = _idx_array(arrays[f"{split}-images"], 4, f"upload {sha256[:12]} {split}-images")
        y = _idx_array(arrays[f"{split}-labels"], 1, f"upload {sha256[:12]} {split}-labels")
        if x.shape[1:] != (info.height, info.width, info.depth) or len(x) != len(y):
            raise DatasetCorrupt(f"upload {sha256[:12]}: {split} arrays {x.shape} and {y.shape} do not match its meta")
        images = torch.from_numpy(x.copy()).permute(0, 3, 1, 2).contiguous()
        splits.append(Split(images, torch.from_numpy(y.astype(np.int64))))
    return info, splits[0], splits[1]


def info_of(options: dict, artifacts: Artifacts) -> DatasetInfo:
    """The dataset a job's data options name: the registry entry, or an upload's by its pinned hash."""
    if "upload" not in options:
        return get(options["dataset"])
    sha256 = options["upload"]["sha256"]
    return uploaded({**json.loads(stored.read(artifacts, sha256, "meta.json")), "name": options["dataset"]})


# One loader per file format; a new dataset in a known format needs only a registry entry.
LOADERS: dict[str, Callable[[DatasetInfo, pathlib.Path], tuple[Split, Split]]] = {
    "idx": _load_idx,
    "cifar-pickle": _load_cifar,
}


def _download(info: DatasetInfo, folder: pathlib.Path) -> None:
    """Fetch the dataset through torchvision and move its files into `folder`."""
    import torchvision  # Lazy: only a worker that actually downloads pays for the import.

    folder.mkdir(parents=True, exist_ok=True)
    # A private staging folder so concurrent workers never see half-written files.
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".download-", dir=folder))
    try:
        getattr(torchvision.datasets, info.torchvision)(root=str(staging), train=True, download=True)
        for name in info.files:
            if file_path(folder, name) is not None:
                continue
            found = next(staging.rglob(name), None) or next(staging.rglob(name + ".gz"), None)
            if found is None:
                raise FileNotFoundError(f"torchvision's download has no {name}")
            try:
                os.replace(found, folder / found.name)
            except OSError:
                if not (folder / found.name).exists():  # else another worker won the race
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- loading ----------------------------------------------------------------

def validation_mask(n: int, validation_fraction: float) -> torch.Tensor:
    """Bool mask holding out every k-th image, k = round(1/f): indices k-1, 2k-1, ...; none for f=0."""
    # f=0.1 holds out images 9, 19, 29, ... (every 10th), as ConvNetJS's MNIST demo does.
    if not 0.0 <= validation_fraction <= 0.5:
        raise ValueError(f"validation_fraction must be in [0, 0.5], got {validation_fraction}")
    if validation_fraction == 0:
        return torch.zeros(n, dtype=torch.bool)
    k = round(1.0 / validation_fraction)
    return torch.arange(n) % k == k - 1


_CACHE: "OrderedDict[tuple, Dataset]" = OrderedDict()
_CACHE_SIZE = 4
_LOCK = threading.Lock()  # Serialises loads so two threads never download the same files at once.


def clear_cache() -> None:
    """Forget every cached dataset (tests, or to free device memory)."""
    with _LOCK:
        _CACHE.clear()


def load(name: str, data_dir: str | os.PathLike | None, *, device="cpu",
         validation_fraction: float = 0.1, download: bool | None = None,
         upload: dict | None = None, artifacts: Artifacts | None = None) -> Dataset:
    """Load dataset `name` from <data_dir>/<name> onto `device`, cached per process; or, with `upload`
    (a job's pinned data.upload), the uploaded dataset of that content hash from `artifacts`."""
    # Missing files: download=False raises DatasetUnavailable at once; True or None (the default)
    # try torchvision, and any failure (offline, read-only folder) becomes DatasetUnavailable.
    # The cached tensors are shared between callers, so they must be treated as read-only.
    device = torch.device(device)
    if upload is not None:
        info, folder = None, None
        key = ("upload", upload["sha256"], str(device), float(validation_fraction))
    else:
        info = get(name)
        folder = dataset_dir(data_dir, name).resolve()
        key = (info.name, str(folder), str(device), float(validation_fraction))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        if upload is not None:
            info, train, test = _load_upload(artifacts, upload["sha256"])
        else:
            train, test = _load_files(info, folder, download)
        for split in (train, test):
            if len(split) and not 0 <= int(split.labels.min()) <= int(split.labels.max()) < info.num_classes:
                raise DatasetCorrupt(f"{folder or info.name}: labels outside 0..{info.num_classes - 1}")
        mask = validation_mask(len(train), validation_fraction)
        dataset = Dataset(
            info=info,
            train=Split(train.images[~mask], train.labels[~mask]).to(device),
            val=Split(train.images[mask], train.labels[mask]).to(device),
            test=test.to(device),
        )
        _CACHE[key] = dataset
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return dataset


def _load_files(info: DatasetInfo, folder: pathlib.Path, download: bool | None) -> tuple[Split, Split]:
    """A built-in dataset's (train, test) from its folder, downloaded first where it is missing."""
    if not present(folder.parent, info.name):
        if download is not None and not download:
            raise unavailable(folder.parent, info.name, "downloading is disabled")
        try:
            _download(info, folder)
        except Exception as exc:  # offline, unwritable folder, bad mirror: all mean "unavailable"
            raise unavailable(folder.parent, info.name, f"download failed: {exc}") from exc
    return LOADERS[info.format](info, folder)


# --- batch augmentation -----------------------------------------------------

def to_input(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 pixels to p/255 - 0.5 (the ConvNetJS demo's scaling) as `dtype`."""
    return images.to(dtype).div_(255.0).sub_(0.5)


def _randint(high: int, n: int, generator: torch.Generator | None, device) -> torch.Tensor:
    """n ints in [0, high) drawn from `generator` on its own device, then moved to `device`."""
    gen_device = generator.device if generator is not None else device
    return torch.randint(0, high, (n,), generator=generator, device=gen_device).to(device)


def window(shape: tuple[int, ...], size_y: int, size_x: int, device) -> torch.Tensor:
    """Offsets in a flat (N, C, H, W) tensor of the pixels of a (C, size_y, size_x) window at (0, 0) of example 0."""
    _, c, h, w = shape
    return ((torch.arange(c, device=device) * (h * w)).view(c, 1, 1)
            + (torch.arange(size_y, device=device) * w).view(1, size_y, 1)
            + torch.arange(size_x, device=device))


def crop_at(images: torch.Tensor, offset_y: torch.Tensor, offset_x: torch.Tensor, size_y: int, size_x: int,
            examples: torch.Tensor | None = None, pattern: torch.Tensor | None = None) -> torch.Tensor:
    """Crop example i of (N, C, H, W), or example examples[i], at (offset_y[i], offset_x[i]) to (n, C, size_y, size_x).

    `pattern` is window(images.shape, size_y, size_x, images.device), for callers that crop often.
    """
    _, c, h, w = images.shape
    dev = images.device
    n = offset_y.shape[0]
    first = torch.arange(n, device=dev) if examples is None else examples.to(dev)
    if pattern is None:
        pattern = window(images.shape, size_y, size_x, dev)
    # One flat gather: each window is its top-left pixel plus a fixed pattern of offsets. Faster than
    # advanced indexing with four broadcast index tensors, and it reads only the pixels it keeps.
    start = first * (c * h * w) + offset_y.to(dev) * w + offset_x.to(dev)
    return images.reshape(-1).take(start.view(n, 1, 1, 1) + pattern)


def _check_crop(images: torch.Tensor, size_y: int, size_x: int) -> tuple[int, int]:
    h, w = images.shape[-2:]
    if not (0 < size_y <= h and 0 < size_x <= w):
        raise ValueError(f"crop {size_y}x{size_x} does not fit images of {h}x{w}")
    return h, w


def random_offsets(images: torch.Tensor, n: int, size_y: int, size_x: int,
                   generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """n random crop offsets (y, x), uniform in 0..H-size_y and 0..W-size_x inclusive."""
    h, w = _check_crop(images, size_y, size_x)
    offset_y = _randint(h - size_y + 1, n, generator, images.device)  # y drawn before x: part of the
    offset_x = _randint(w - size_x + 1, n, generator, images.device)  # reproducibility contract
    return offset_y, offset_x


def random_crop(images: torch.Tensor, size_y: int, size_x: int,
                generator: torch.Generator | None) -> torch.Tensor:
    """Per-example random crop; offsets uniform in 0..H-size_y and 0..W-size_x inclusive."""
    offset_y, offset_x = random_offsets(images, images.shape[0], size_y, size_x, generator)
    return crop_at(images, offset_y, offset_x, size_y, size_x)


def center_crop(images: torch.Tensor, size_y: int, size_x: int) -> torch.Tensor:
    """Crop every example at the centre (offsets (H-size_y)//2, (W-size_x)//2)."""
    h, w = _check_crop(images, size_y, size_x)
    oy, ox = (h - size_y) // 2, (w - size_x) // 2
    return images[..., oy:oy + size_y, ox:ox + size_x]


def random_flip(images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Flip each example left-right with probability 0.5."""
    n = images.shape[0]
    flip = _randint(2, n, generator, images.device).bool().view(n, *([1] * (images.dim() - 1)))
    return torch.where(flip, images.flip(-1), images)


def random_shift(inputs: torch.Tensor, shift: int, generator: torch.Generator | None) -> torch.Tensor:
    """Move each example by -shift..shift pixels in y and x, filling with 0 (the ConvNetJS CIFAR-10 demo's
    `convnetjs.augment(x, 32, dx, dy)`: a window of the image's size at a random offset, zeros outside)."""
    h, w = inputs.shape[-2:]
    padded = torch.nn.functional.pad(inputs, (shift, shift, shift, shift))
    offset_y, offset_x = random_offsets(padded, inputs.shape[0], h, w, generator)
    return crop_at(padded, offset_y, offset_x, h, w)


class BatchStream:
    """Endless training batches, reshuffled every epoch from `generator`; resumable exactly."""

    # A batch that runs past the end of an epoch continues into the next epoch's permutation,
    # so every example is seen exactly once per epoch and batches always have the asked size.
    # The generator should belong to this stream alone: load_state_dict() rewinds it.

    def __init__(self, split: Split, batch_size: int, *, crop: tuple[int, int] | None = None,
                 flip: bool = False, shift: int = 0, generator: torch.Generator, device=None,
                 dtype: torch.dtype = torch.float32):
        if len(split) == 0:
            raise ValueError("cannot stream batches from an empty split")
        self.split = split
        self.batch_size = int(batch_size)
        self.crop = tuple(crop) if crop is not None else None
        self.flip = flip
        self.shift = int(shift)
        self.generator = generator
        self.device = torch.device(device) if device is not None else split.images.device
        self.dtype = dtype
        self._window = None if crop is None else window(split.images.shape, *crop, split.images.device)
        self.epoch = 0  # index of the epoch the permutation below belongs to
        self.position = 0  # examples of that permutation already yielded
        self.permutation = self._shuffle()

    def _shuffle(self) -> torch.Tensor:
        return torch.randperm(len(self.split), generator=self.generator, device=self.generator.device)

    @property
    def epochs_done(self) -> float:
        """Epochs consumed so far, fractional."""
        return self.epoch + self.position / len(self.split)

    def next(self, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The next (float inputs, int64 labels) batch on the stream's device."""
        need = int(batch_size if batch_size is not None else self.batch_size)
        if need <= 0:
            raise ValueError(f"batch size must be positive, got {need}")
        n = len(self.split)
        parts = []
        while need:
            if self.position == n:  # reshuffle lazily so a saved state at an epoch end resumes exactly
                self.permutation = self._shuffle()
                self.epoch += 1
                self.position = 0
            take = min(need, n - self.position)
            parts.append(self.permutation[self.position:self.position + take])
            self.position += take
            need -= take
        index = (parts[0] if len(parts) == 1 else torch.cat(parts)).to(self.split.images.device)
        if self.crop is None:
            images = self.split.images[index]
        else:  # cropped straight out of the split: one gather of only the kept pixels
            offset_y, offset_x = random_offsets(self.split.images, len(index), *self.crop, self.generator)
            images = crop_at(self.split.images, offset_y, offset_x, *self.crop, index, self._window)
        images = images.to(self.device, non_blocking=True)
        labels = self.split.labels[index].to(self.device, non_blocking=True)
        if self.flip:
            images = random_flip(images, self.generator)
        inputs = to_input(images, self.dtype)
        if self.shift:
            inputs = random_shift(inputs, self.shift, self.generator)
        return inputs, labels

    __next__ = next

    def __iter__(self):
        return self

    def state_dict(self) -> dict:
        """Epoch, position, the current permutation and the generator's state."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "permutation": self.permutation.cpu().clone(),
            "generator": self.generator.get_state(),
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly where the stream that produced `state` stopped."""
        permutation = torch.as_tensor(state["permutation"], dtype=torch.int64)
        if permutation.shape != (len(self.split),):
            raise ValueError(f"state is for a split of {permutation.shape[0]} examples, "
                             f"this one has {len(self.split)}")
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.permutation = permutation.to(self.generator.device)
        self.generator.set_state(state["generator"])
        self.batch_size = int(state.get("batch_size", self.batch_size))
