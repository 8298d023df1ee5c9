"""Colour (depth 3) and uploaded datasets in the worker: loading by hash, augmentation, training, pictures,
exports and the prediction preprocessing."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from service.config import Config
from service.datasets import stored
from service.datasets.convert import Options, convert
from service.datasets.limits import UploadLimits
from service.spec.schemas import load_job_request
from service.storage import Artifacts
from tests.service.datasets import uploads
from worker import data, exports, imaging
from worker.trainer import Hooks, Training

COLOURS = np.array([(230, 30, 30), (30, 200, 40), (40, 60, 220)], np.uint8)  # one colour per class


def coloured(n: int, size: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n noisy images, each mostly its class's colour: learnable in a few hundred examples."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    noise = rng.integers(-40, 40, (n, size, size, 3))
    return np.clip(COLOURS[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8), labels


@pytest.fixture
def upload(tmp_path):
    """A colour .npz converted as the API converts it and stored by hash: (artifacts, record, x, y)."""
    x, y = coloured(300)
    converted = convert(uploads.npz(x_train=x, y_train=y), Options(class_names=["red", "green", "blue"]),
                        UploadLimits.from_config(Config()))
    artifacts = Artifacts(str(tmp_path / "artifacts"))
    sha, size = stored.store(artifacts, converted)
    record = {"name": "rgb", "sha256": sha, "width": 12, "height": 12, "depth": 3, "owner": "local",
              "class_names": converted.class_names, "train_size": len(converted.train),
              "test_size": len(converted.test), "bytes": size}
    data.clear_cache()
    yield artifacts, record, x, y
    data.clear_cache()


def test_an_upload_loads_by_its_hash_channels_first(upload):
    artifacts, record, x, y = upload
    ds = data.load("ignored", None, upload={"sha256": record["sha256"]}, artifacts=artifacts, validation_fraction=0)
    assert ds.train.images.shape == (270, 3, 12, 12) and ds.test.images.shape == (30, 3, 12, 12)
    assert torch.equal(ds.train.images[0], torch.from_numpy(x[0]).permute(2, 0, 1))
    assert ds.test.labels.tolist() == y[9::10].tolist()  # every 10th held out
    info = data.info_of({"dataset": "rgb", "upload": {"sha256": record["sha256"]}}, artifacts)
    assert (info.name, info.width, info.depth, info.class_names) == ("rgb", 12, 3, ("red", "green", "blue"))
    assert data.info_of({"dataset": "cifar10"}, artifacts).width == 32


def test_a_missing_upload_is_unavailable(tmp_path):
    with pytest.raises(data.DatasetUnavailable, match="missing from the artifact store"):
        data.load("x", None, upload={"sha256": "0" * 64}, artifacts=Artifacts(str(tmp_path)))


def test_colour_batches_crop_flip_and_shift_every_channel_together():
    images = torch.arange(4 * 3 * 6 * 6, dtype=torch.int64).remainder(251).to(torch.uint8).view(4, 3, 6, 6)
    split = data.Split(images, torch.arange(4))
    stream = data.BatchStream(split, 4, crop=(4, 4), flip=True, generator=torch.Generator().manual_seed(3))
    x, labels = stream.next()
    assert x.shape == (4, 3, 4, 4)
    for out, label in zip(x, labels):
        source = data.to_input(images[label])
        windows = [source[:, oy:oy + 4, ox:ox + 4] for oy in range(3) for ox in range(3)]
        assert any(torch.equal(out, w) or torch.equal(out, w.flip(-1)) for w in windows)
    shifted = data.random_shift(torch.ones(64, 3, 5, 5), 2, torch.Generator().manual_seed(0))
    assert shifted.shape == (64, 3, 5, 5)
    zeros = (shifted == 0).all(1)  # a filled-in pixel is 0 in every channel at once
    assert ((shifted == 0).any(1) == zeros).all() and zeros.any() and (~zeros).any()


def test_training_on_a_colour_upload_with_the_demo_augmentation(upload):
    artifacts, record, _, _ = upload
    body = {"network": {"layers": [{"type": "input", "out_sx": 10, "out_sy": 10, "out_depth": 3},
                                   {"type": "conv", "sx": 3, "filters": 4, "activation": "relu"},
                                   {"type": "pool", "sx": 2}, {"type": "softmax", "num_classes": 3}]},
            "trainer": {"method": "adadelta", "batch_size": 10},
            "data": {"dataset": "rgb", "augment": {"flip": True, "shift": 2}, "val_interval": 200},
            "budget": {"examples": 600}, "seed": 1}
    request, network = load_job_request(body, Config(), {"rgb": record}.get)
    assert request["data"]["upload"] == {"sha256": record["sha256"], "train_size": 270}
    run = Training(request, network, device="cpu", artifacts=artifacts)
    result = run.run(Hooks())
    assert result["test_acc"] > 0.9, result  # the colours tell the classes apart
    snap = run.snapshot()
    assert Image.open(io.BytesIO(snap.images["layer-0-activations.png"])).mode == "RGB"
    assert Image.open(io.BytesIO(snap.images["layer-1-filters.png"])).mode == "RGB"
    shown = run.predictions(2)[0]["image"]
    assert shown.startswith("data:image/png;base64,")


def test_colour_exports_compute_the_model_and_keep_depth_3():
    from tests.service.spec.test_jsparse import CIFAR10_LAYERS
    from tests.worker.test_exports import trained_like

    weights = trained_like(CIFAR10_LAYERS)
    files = exports.export_all(weights)
    import onnxruntime

    x = torch.rand(3, 3, 32, 32) - 0.5
    with torch.no_grad():
        expected = exports.Predictor(exports.load_net(weights))(x).numpy()
    session = onnxruntime.InferenceSession(files["onnx"], providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"input": x.numpy()})[0] - expected).max() <= 1e-5
    net = json.loads(files["convnetjs"])
    assert net["layers"][0]["out_depth"] == 3 and net["layers"][1]["in_depth"] == 3
    assert len(net["layers"][1]["filters"][0]["w"]) == 5 * 5 * 3


def test_a_colour_picture_is_resized_like_an_upload_and_pixels_may_be_oblong():
    picture = Image.new("RGB", (40, 20), (10, 200, 30))
    out = imaging.resize(picture, 3, 8, 6)
    assert out.shape == (3, 6, 8) and out[:, 0, 0].tolist() == [10, 200, 30]
    assert imaging.resize(picture, 1, 8, 6).shape == (1, 6, 8)
    assert imaging.from_pixels([[[1, 2, 3]] * 8] * 6, 3, 8, 6).shape == (3, 6, 8)
    with pytest.raises(ValueError, match="expected 144 numbers"):
        imaging.from_pixels([0] * 10, 3, 8, 6)
