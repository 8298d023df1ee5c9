"""Tests for the torch-free dataset registry."""

import gzip
import os
import pathlib
import subprocess
import sys

import pytest

from service.spec import datasets

REPO = pathlib.Path(__file__).resolve().parents[3]
DATA_DIR = pathlib.Path(os.environ.get("CONVTRAIN_DATA_DIR") or REPO.parent / "shared" / "data")
needs_mnist = pytest.mark.skipif(not (DATA_DIR / "mnist").is_dir(), reason=f"no MNIST in {DATA_DIR}")


def test_registry_entries():
    mnist = datasets.get("mnist")
    assert (mnist.width, mnist.height, mnist.depth, mnist.num_classes) == (28, 28, 1, 10)
    assert (mnist.train_size, mnist.test_size) == (60000, 10000)
    assert mnist.files == ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    assert mnist.class_names == tuple("0123456789")
    fashion = datasets.get("fashion-mnist")
    assert fashion.files == mnist.files and fashion.torchvision == "FashionMNIST"
    assert fashion.class_names[0] == "T-shirt/top" and len(fashion.class_names) == 10
    cifar = datasets.get("cifar10")
    assert (cifar.width, cifar.height, cifar.depth) == (32, 32, 3)
    assert cifar.files == ("cifar-10-batches-py",) and cifar.torchvision == "CIFAR10"
    for name, info in datasets.DATASETS.items():
        assert info.name == name and len(info.class_names) == info.num_classes


def test_info_is_frozen():
    with pytest.raises(AttributeError):
        datasets.get("mnist").width = 3


@pytest.mark.parametrize("name", ["nope", "MNIST", "../mnist", "", None])
def test_unknown_name_is_key_error(name, tmp_path):
    with pytest.raises(KeyError):
        datasets.get(name)
    with pytest.raises(KeyError):
        datasets.dataset_dir(tmp_path, name)
    with pytest.raises(KeyError):
        datasets.present(tmp_path, name)


def test_dataset_dir(tmp_path):
    assert datasets.dataset_dir(str(tmp_path), "fashion-mnist") == tmp_path / "fashion-mnist"


@needs_mnist
def test_present_in_shared_folder():
    assert datasets.present(DATA_DIR, "mnist")
    assert datasets.present(str(DATA_DIR), "mnist")


def test_absent_in_empty_folder(tmp_path):
    for name in datasets.DATASETS:
        assert not datasets.present(tmp_path, name)


def test_present_accepts_plain_and_gzip(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    files = datasets.get("mnist").files
    for i, name in enumerate(files):
        if i % 2:
            (folder / name).write_bytes(b"x")
        else:
            (folder / (name + ".gz")).write_bytes(gzip.compress(b"x"))
    assert datasets.present(tmp_path, "mnist")
    (folder / files[1]).unlink()
    assert not datasets.present(tmp_path, "mnist")


def test_cifar_present_is_a_folder(tmp_path):
    (tmp_path / "cifar10" / "cifar-10-batches-py").mkdir(parents=True)
    assert datasets.present(tmp_path, "cifar10")


def test_describe(tmp_path):
    (tmp_path / "cifar10" / "cifar-10-batches-py").mkdir(parents=True)
    rows = {row["name"]: row for row in datasets.describe(tmp_path)}
    assert set(rows) == set(datasets.DATASETS)
    assert rows["cifar10"]["present"] and not rows["mnist"]["present"]
    assert rows["mnist"] == {
        "name": "mnist", "title": datasets.get("mnist").title, "width": 28, "height": 28,
        "depth": 1, "num_classes": 10, "class_names": list("0123456789"),
        "train_size": 60000, "test_size": 10000, "present": False,
    }


def test_unavailable_names_folder_and_files(tmp_path):
    err = datasets.unavailable(tmp_path, "mnist", "offline")
    assert isinstance(err, datasets.DatasetError)
    message = str(err)
    assert str(tmp_path / "mnist") in message and "offline" in message
    assert all(f in message for f in datasets.get("mnist").files)
    assert err.folder == str(tmp_path / "mnist") and err.files == datasets.get("mnist").files


def test_import_is_torch_free():
    code = ("import sys, service.spec.datasets; "
            "bad = [m for m in ('torch', 'torchvision', 'numpy') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
