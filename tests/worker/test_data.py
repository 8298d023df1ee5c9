"""Tests for dataset loading and batch augmentation."""

import gzip
import io
import os
import pathlib
import pickle
import struct

import numpy as np
import pytest
import torch

from service.spec.datasets import DatasetCorrupt, DatasetUnavailable, get
from worker import data
from worker.data import BatchStream, Split

REPO = pathlib.Path(__file__).resolve().parents[2]
DATA_DIR = pathlib.Path(os.environ.get("CONVTRAIN_DATA_DIR") or REPO.parent / "shared" / "data")
needs_mnist = pytest.mark.skipif(not (DATA_DIR / "mnist").is_dir(), reason=f"no MNIST in {DATA_DIR}")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
MNIST_FILES = get("mnist").files


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file holding `array`."""
    header = bytes((0, 0, 0x08, array.ndim)) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(root: pathlib.Path, n_train=30, n_test=7, gz=(False, True, False, True), seed=0):
    """Synthetic MNIST-format files under root/mnist; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, (n_train, 28, 28)), rng.integers(0, 10, n_train),
              rng.integers(0, 256, (n_test, 28, 28)), rng.integers(0, 10, n_test)]
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for name, array, compress in zip(MNIST_FILES, arrays, gz):
        raw = idx_bytes(array)
        if compress:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


@pytest.fixture(autouse=True)
def fresh_cache():
    data.clear_cache()
    yield
    data.clear_cache()


# --- loading ------------------------------------------------------------------

@needs_mnist
def test_real_mnist_sizes_and_types():
    ds = data.load("mnist", DATA_DIR, download=False)
    assert ds.info is get("mnist")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (54000, 6000, 10000)
    for split in (ds.train, ds.val, ds.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (1, 28, 28)
        assert split.labels.dtype == torch.int64
        assert int(split.labels.min()) == 0 and int(split.labels.max()) == 9
    # Known facts of the standard files: first training label 5, first test label 7.
    assert int(ds.train.labels[0]) == 5 and int(ds.test.labels[0]) == 7


@needs_mnist
def test_real_mnist_validation_is_every_tenth_and_cached():
    ds = data.load("mnist", DATA_DIR, download=False)
    full = data.load("mnist", DATA_DIR, download=False, validation_fraction=0.0)
    assert len(full.train) == 60000 and len(full.val) == 0
    assert full.val.images.shape == (0, 1, 28, 28)
    assert torch.equal(ds.val.images, full.train.images[9::10])
    assert torch.equal(ds.val.labels, full.train.labels[9::10])
    keep = torch.arange(60000) % 10 != 9
    assert torch.equal(ds.train.labels, full.train.labels[keep])
    again = data.load("mnist", str(DATA_DIR), download=False)
    assert again is ds  # the cached object itself: nothing was read again


def test_validation_mask():
    assert data.validation_mask(20, 0.1).nonzero().flatten().tolist() == [9, 19]
    assert data.validation_mask(6, 0.5).nonzero().flatten().tolist() == [1, 3, 5]
    assert not data.validation_mask(5, 0).any()
    for bad in (-0.1, 0.6, 1.0):
        with pytest.raises(ValueError):
            data.validation_mask(5, bad)


@pytest.mark.parametrize("gz", [(False,) * 4, (True,) * 4, (False, True, True, False)])
def test_gzip_and_plain_idx_load(tmp_path, gz):
    tr_x, tr_y, te_x, te_y = write_mnist(tmp_path, gz=gz)
    ds = data.load("mnist", tmp_path, download=False, validation_fraction=0.1)
    keep = np.arange(30) % 10 != 9
    assert torch.equal(ds.train.images[:, 0], torch.from_numpy(tr_x[keep].astype(np.uint8)))
    assert torch.equal(ds.train.labels, torch.from_numpy(tr_y[keep]))
    assert torch.equal(ds.val.labels, torch.from_numpy(tr_y[9::10]))
    assert torch.equal(ds.test.images[:, 0], torch.from_numpy(te_x.astype(np.uint8)))
    assert torch.equal(ds.test.labels, torch.from_numpy(te_y))


@pytest.mark.parametrize("damage", ["magic", "truncated", "bad-gzip", "shape", "count", "label"])
def test_corrupt_idx_is_clear_error(tmp_path, damage):
    write_mnist(tmp_path, gz=(False,) * 4)
    folder = tmp_path / "mnist"
    images, labels = folder / MNIST_FILES[0], folder / MNIST_FILES[1]
    if damage == "magic":
        images.write_bytes(b"\x00\x00\x0d\x03" + images.read_bytes()[4:])
    elif damage == "truncated":
        images.write_bytes(images.read_bytes()[:-5])
    elif damage == "bad-gzip":
        images.unlink()
        (folder / (MNIST_FILES[0] + ".gz")).write_bytes(gzip.compress(b"0" * 5000)[:40])
    elif damage == "shape":
        images.write_bytes(idx_bytes(np.zeros((30, 24, 24))))
    elif damage == "count":
        labels.write_bytes(idx_bytes(np.zeros(29)))
    else:
        labels.write_bytes(idx_bytes(np.full(30, 10)))
    with pytest.raises(DatasetCorrupt) as info:
        data.load("mnist", tmp_path, download=False)
    assert "mnist" in str(info.value)


def test_missing_folder_is_unavailable(tmp_path):
    with pytest.raises(DatasetUnavailable) as info:
        data.load("mnist", tmp_path / "nowhere", download=False)
    message = str(info.value)
    assert str((tmp_path / "nowhere" / "mnist").resolve()) in message
    assert all(name in message for name in MNIST_FILES)


def test_failed_download_is_unavailable(tmp_path, monkeypatch):
    def offline(info, folder):
        raise OSError("Name or service not known")
    monkeypatch.setattr(data, "_download", offline)
    with pytest.raises(DatasetUnavailable, match="Name or service not known") as info:
        data.load("fashion-mnist", tmp_path)
    assert str((tmp_path / "fashion-mnist").resolve()) in str(info.value)


def test_download_arranges_files(tmp_path, monkeypatch):
    # Stand in for torchvision: its MNIST class leaves files under <root>/MNIST/raw.
    import torchvision

    class FakeMNIST:
        def __init__(self, root, train, download):
            raw = pathlib.Path(root) / "FakeMNIST" / "raw"
            write_mnist(raw, gz=(True,) * 4)
            for f in (raw / "mnist").iterdir():
                f.rename(raw / f.name)

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    ds = data.load("mnist", tmp_path, download=True)
    assert len(ds.train) == 27
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(f + ".gz" for f in MNIST_FILES)


def test_cifar_pickle_loader(tmp_path):
    root = tmp_path / "cifar10" / "cifar-10-batches-py"
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = (rng.integers(0, 256, (4, 3072), dtype=np.uint8), rng.integers(0, 10, 4).tolist())
        with open(root / name, "wb") as f:
            pickle.dump({b"data": batches[name][0], b"labels": batches[name][1]}, f)
    ds = data.load("cifar10", tmp_path, download=False, validation_fraction=0.0)
    assert ds.train.images.shape == (20, 3, 32, 32) and ds.test.images.shape == (4, 3, 32, 32)
    first = batches["data_batch_1"][0][1]
    # CHW: the first 1024 values are the red plane, row-major.
    assert torch.equal(ds.train.images[1, 0], torch.from_numpy(first[:1024].reshape(32, 32)))
    assert torch.equal(ds.train.images[1, 2], torch.from_numpy(first[2048:].reshape(32, 32)))
    assert ds.test.labels.tolist() == batches["test_batch"][1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_load_onto_cuda(tmp_path):
    write_mnist(tmp_path)
    ds = data.load("mnist", tmp_path, device="cuda", download=False)
    assert ds.train.images.is_cuda and ds.val.labels.is_cuda and ds.test.images.is_cuda


# --- augmentation -------------------------------------------------------------

def test_to_input_scaling():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8)
    y = data.to_input(x)
    assert y.dtype == torch.float32
    assert torch.allclose(y, torch.tensor([-0.5, 51 / 255 - 0.5, 0.5]))
    assert data.to_input(x, torch.float64).tolist() == [-0.5, 51 / 255 - 0.5, 0.5]  # exactly, in float64


def find_offset(full: torch.Tensor, crop: torch.Tensor) -> list[tuple[int, int]]:
    """Every (oy, ox) at which `crop` equals a window of `full` (C, H, W)."""
    sy, sx = crop.shape[-2:]
    h, w = full.shape[-2:]
    return [(oy, ox) for oy in range(h - sy + 1) for ox in range(w - sx + 1)
            if torch.equal(full[:, oy:oy + sy, ox:ox + sx], crop)]


CROP_CASES = [  # (N, C, H, W, size_y, size_x)
    (64, 1, 28, 28, 24, 24),
    (64, 3, 32, 32, 28, 28),
    (32, 2, 9, 13, 5, 11),
    (16, 1, 6, 6, 6, 6),
    (32, 1, 7, 5, 1, 5),
    (32, 3, 4, 8, 4, 1),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n,c,h,w,sy,sx", CROP_CASES)
def test_random_crop_matches_slicing(device, n, c, h, w, sy, sx):
    # Distinct values everywhere so every window is identifiable.
    images = torch.randperm(n * c * h * w).view(n, c, h, w).to(device)
    out = data.random_crop(images, sy, sx, torch.Generator().manual_seed(3))
    assert out.shape == (n, c, sy, sx) and out.device == images.device
    offsets = [find_offset(images[i].cpu(), out[i].cpu()) for i in range(n)]
    assert all(len(o) == 1 for o in offsets)
    oy = torch.tensor([o[0][0] for o in offsets])
    ox = torch.tensor([o[0][1] for o in offsets])
    assert torch.equal(data.crop_at(images, oy, ox, sy, sx), out)


def test_crop_at_picks_examples_by_index():
    images = torch.randperm(6 * 2 * 7 * 9).view(6, 2, 7, 9)
    examples, oy, ox = torch.tensor([4, 0, 4]), torch.tensor([0, 2, 1]), torch.tensor([3, 0, 4])
    out = data.crop_at(images, oy, ox, 5, 5, examples, data.window(images.shape, 5, 5, "cpu"))
    for i, (e, y, x) in enumerate(zip(examples.tolist(), oy.tolist(), ox.tolist())):
        assert torch.equal(out[i], images[e, :, y:y + 5, x:x + 5])


def test_random_crop_covers_inclusive_range_and_uint8():
    images = torch.arange(10, dtype=torch.uint8).view(1, 1, 1, 10).expand(2000, 1, 3, 10).contiguous()
    out = data.random_crop(images, 2, 7, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8
    assert set(out[:, 0, 0, 0].tolist()) == {0, 1, 2, 3}  # x offsets 0..W-sx inclusive
    assert torch.equal(out[:, 0, 0], out[:, 0, 0, :1] + torch.arange(7, dtype=torch.uint8))


@pytest.mark.parametrize("device", DEVICES)
def test_random_crop_reproducible(device):
    images = torch.randint(0, 256, (50, 1, 28, 28), dtype=torch.uint8).to(device)
    a = data.random_crop(images, 24, 24, torch.Generator().manual_seed(7))
    b = data.random_crop(images, 24, 24, torch.Generator().manual_seed(7))
    c = data.random_crop(images, 24, 24, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_crop_too_big():
    with pytest.raises(ValueError):
        data.random_crop(torch.zeros(2, 1, 5, 5), 6, 5, torch.Generator())
    with pytest.raises(ValueError):
        data.center_crop(torch.zeros(2, 1, 5, 5), 5, 0)


def test_center_crop():
    images = torch.randint(0, 256, (3, 2, 28, 28), dtype=torch.uint8)
    assert torch.equal(data.center_crop(images, 24, 24), images[:, :, 2:26, 2:26])
    assert torch.equal(data.center_crop(images, 25, 28), images[:, :, 1:26, :])
    assert torch.equal(data.center_crop(images, 28, 28), images)


@pytest.mark.parametrize("device", DEVICES)
def test_random_flip(device):
    images = torch.randint(0, 256, (400, 2, 5, 7), dtype=torch.uint8).to(device)
    out = data.random_flip(images, torch.Generator().manual_seed(1))
    same = (out == images).flatten(1).all(1)
    flipped = (out == images.flip(-1)).flatten(1).all(1)
    assert bool((same | flipped).all())
    assert 150 < int(flipped.sum()) < 250
    again = data.random_flip(images, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


# --- batch stream -------------------------------------------------------------

def indexed_split(n: int) -> Split:
    """A split whose labels are the example indices, so batches reveal what they hold."""
    return Split(torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8), torch.arange(n))


def test_stream_covers_each_example_once_per_epoch():
    stream = BatchStream(indexed_split(103), 10, generator=torch.Generator().manual_seed(0))
    seen = torch.cat([stream.next()[1] for _ in range(31)])  # 310 examples: 3 epochs + 1
    for e in range(3):
        assert sorted(seen[e * 103:(e + 1) * 103].tolist()) == list(range(103))
    assert not torch.equal(seen[:103], seen[103:206])  # reshuffled
    assert stream.epoch == 3 and stream.position == 1


def test_stream_batches_scaled_and_cropped():
    split = indexed_split(40)
    stream = BatchStream(split, 16, crop=(6, 5), flip=True, generator=torch.Generator().manual_seed(0))
    x, y = stream.next()
    assert x.shape == (16, 1, 6, 5) and x.dtype == torch.float32 and y.shape == (16,)
    assert float(x.min()) >= -0.5 and float(x.max()) <= 0.5
    x, y = stream.next(3)  # batch size may change between calls
    assert x.shape[0] == 3 and stream.position == 19
    with pytest.raises(ValueError):
        stream.next(0)


@pytest.mark.parametrize("device", DEVICES)
def test_stream_crops_what_random_crop_of_its_batch_gives(device):
    """The stream crops straight out of the split, with the same draws as cropping the gathered batch."""
    split = indexed_split(30).to(device)
    stream = BatchStream(split, 7, crop=(5, 6), generator=torch.Generator().manual_seed(4), device=device)
    generator = torch.Generator().manual_seed(4)
    index = torch.randperm(30, generator=generator)[:7].to(device)
    expected = data.to_input(data.random_crop(split.images[index], 5, 6, generator))
    x, y = stream.next()
    assert torch.equal(x, expected) and torch.equal(y, split.labels[index])


@needs_mnist
def test_stream_real_mnist_epoch():
    ds = data.load("mnist", DATA_DIR, download=False)
    stream = BatchStream(ds.train, 1000, crop=(24, 24), generator=torch.Generator().manual_seed(0))
    labels = torch.cat([stream.next()[1] for _ in range(54)])
    assert torch.equal(torch.bincount(labels, minlength=10), torch.bincount(ds.train.labels, minlength=10))
    assert stream.epochs_done == 1.0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("before", [0, 3, 7, 10])
def test_stream_resume_equals_uninterrupted(device, before):
    split = indexed_split(37).to(device)
    sizes = [5, 8, 3, 13, 5, 37, 1, 9, 4, 6, 11, 2, 8, 7]
    make = lambda seed: BatchStream(split, 5, crop=(6, 6), flip=True,
                                    generator=torch.Generator().manual_seed(seed), device=device)
    straight = make(0)
    expected = [straight.next(b) for b in sizes]
    first = make(0)
    for b in sizes[:before]:
        first.next(b)
    buffer = io.BytesIO()  # through torch.save, as a checkpoint would go
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = make(123)
    resumed.load_state_dict(torch.load(buffer))
    for b, (x, y) in zip(sizes[before:], expected[before:]):
        rx, ry = resumed.next(b)
        assert torch.equal(rx, x) and torch.equal(ry, y)


def test_stream_state_for_other_split_rejected():
    state = BatchStream(indexed_split(10), 2, generator=torch.Generator()).state_dict()
    with pytest.raises(ValueError):
        BatchStream(indexed_split(11), 2, generator=torch.Generator()).load_state_dict(state)


def test_stream_rejects_empty_split():
    with pytest.raises(ValueError):
        BatchStream(Split(torch.zeros(0, 1, 2, 2, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64)),
                    4, generator=torch.Generator())
