"""Layer snapshots on real MNIST: stats per layer, PNG tile grids, untouched parameter grads, predictions."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from service.spec import netspec
from service.config import Config
from service.spec.schemas import load_job_request
from tests.conftest import data_dir, example
from worker import data, snapshots
from worker.model import Net
from worker.trainer import Hooks, Training

BASE_KEYS = {"index", "type", "out_sx", "out_sy", "out_depth", "params", "act_min", "act_max", "grad_min", "grad_max"}
WEIGHT_KEYS = {"weight_min", "weight_max", "weight_grad_min", "weight_grad_max"}


@pytest.fixture(scope="module")
def trained() -> Training:
    """net1 after 1500 MNIST examples: its parameters' .grad hold the last batch's gradients."""
    request, network = load_job_request(example("net1-default.json", budget={"examples": 1500}, seed=3), Config())
    run = Training(request, network, data_dir=data_dir(), device="cpu")
    run.run(Hooks())
    return run


@pytest.fixture(scope="module")
def snap(trained):
    image, label = snapshots.probe(trained.dataset.test, trained.input_size)
    return snapshots.take(trained.model, image, label)


def picture(blob: bytes) -> Image.Image:
    assert blob.startswith(b"\x89PNG")
    img = Image.open(io.BytesIO(blob))
    img.load()
    return img


def net_of(layers: list[dict]) -> Net:
    torch.manual_seed(0)
    return Net(netspec.analyze({"layers": layers}))


def test_probe_is_the_first_image_centre_cropped(trained):
    test = trained.dataset.test
    image, label = snapshots.probe(test, (24, 24))
    assert image.shape == (1, 1, 24, 24) and image.dtype == torch.uint8
    assert label == int(test.labels[0])
    assert torch.equal(image, test.images[:1, :, 2:26, 2:26])
    again, _ = snapshots.probe(test, (24, 24))
    assert torch.equal(image, again)
    with pytest.raises(ValueError):
        snapshots.probe(data.Split(test.images[:0], test.labels[:0]), (24, 24))


def test_stats_for_every_layer_of_net1(trained, snap):
    spec = trained.network.layers
    assert [s["index"] for s in snap.stats] == list(range(len(spec))) and len(spec) == 9
    for entry, layer in zip(snap.stats, spec):
        keys = set(BASE_KEYS)
        if layer["type"] in ("conv", "pool"):
            keys |= {"sx", "sy", "stride", "pad"}
        if layer["type"] == "conv":
            keys.add("filters")
        if layer["type"] in ("conv", "fc"):
            keys |= WEIGHT_KEYS
        assert set(entry) == keys, entry
        for key in keys - {"index"}:
            if key in layer:
                assert entry[key] == layer[key], key
        for prefix in ("act", "grad", "weight", "weight_grad"):
            if f"{prefix}_min" in entry:
                assert isinstance(entry[f"{prefix}_min"], float), (prefix, entry)
                assert entry[f"{prefix}_min"] <= entry[f"{prefix}_max"], (prefix, entry)
    shapes = [(s["type"], s["out_sx"], s["out_sy"], s["out_depth"]) for s in snap.stats]
    assert shapes == [("input", 24, 24, 1), ("conv", 24, 24, 8), ("relu", 24, 24, 8), ("pool", 12, 12, 8),
                      ("conv", 12, 12, 16), ("relu", 12, 12, 16), ("pool", 4, 4, 16), ("fc", 1, 1, 10),
                      ("softmax", 1, 1, 10)]
    relu, softmax = snap.stats[2], snap.stats[8]
    assert relu["act_min"] >= 0.0
    assert 0.0 <= softmax["act_min"] <= softmax["act_max"] <= 1.0
    assert softmax["grad_max"] == 0.0 and softmax["grad_min"] < -1.0 + 1e-6  # -1/p at the label only
    assert snap.stats[0]["act_min"] >= -0.5 and snap.stats[0]["act_max"] <= 0.5


def test_activation_values_and_gradients_match_a_plain_backward(trained, snap):
    """Stats equal what a separate forward/backward on a copy of the net computes."""
    image, label = snapshots.probe(trained.dataset.test, trained.input_size)
    net = Net(trained.network)
    net.load_state_dict(trained.model.state_dict())
    net.eval()
    x = data.to_input(image).requires_grad_(True)
    acts = net.activations(x)
    for a in acts[:-1]:
        a.retain_grad()
    net.loss(acts[-2].flatten(1), torch.tensor([label])).backward()
    for i, a in enumerate(acts[:-1]):
        assert snap.stats[i]["act_min"] == pytest.approx(a.min().item(), rel=1e-5, abs=1e-6)
        assert snap.stats[i]["act_max"] == pytest.approx(a.max().item(), rel=1e-5, abs=1e-6)
        assert snap.stats[i]["grad_min"] == pytest.approx(a.grad.min().item(), rel=1e-4, abs=1e-7)
        assert snap.stats[i]["grad_max"] == pytest.approx(a.grad.max().item(), rel=1e-4, abs=1e-7)
    conv = trained.model.layers[0].weight
    assert snap.stats[1]["weight_min"] == pytest.approx(conv.min().item())


def test_take_leaves_parameter_grads_and_mode_alone(trained):
    model = trained.model
    before = [p.grad.clone() for p in model.parameters()]
    image, label = snapshots.probe(trained.dataset.test, trained.input_size)
    for mode in (True, False):
        model.train(mode)
        with torch.no_grad():  # a caller inside no_grad still gets gradients
            snap = snapshots.take(model, image, label)
        assert model.training is mode
        assert snap.stats[0]["grad_max"] > snap.stats[0]["grad_min"]
    model.train()
    assert all(torch.equal(p.grad, b) for p, b in zip(model.parameters(), before))
    fc = snap.stats[7]
    assert fc["weight_grad_min"] == pytest.approx(model.layers[-1].weight.grad.min().item())
    assert fc["weight_grad_min"] < fc["weight_grad_max"]


def tiles(img: Image.Image, rows: int, cols: int, th: int, tw: int) -> np.ndarray:
    """The grid's tiles as (rows*cols, th, tw[, 3]), checking the 1 px white gaps between them."""
    a = np.asarray(img)
    assert a.shape[:2] == (rows * (th + 1) - 1, cols * (tw + 1) - 1)
    if rows > 1:
        assert (a[th::th + 1] == 255).all()
    if cols > 1:
        assert (a[:, tw::tw + 1] == 255).all()
    a = np.pad(a, [(0, 1), (0, 1)] + [(0, 0)] * (a.ndim - 2), constant_values=255)
    a = a.reshape(rows, th + 1, cols, tw + 1, *a.shape[2:]).swapaxes(1, 2)[:, :, :th, :tw]
    return a.reshape(rows * cols, th, tw, *a.shape[4:])


def test_images_are_tile_grids_of_the_expected_size(trained, snap):
    expected = {f"layer-{i}-{kind}.png" for i in range(9) for kind in ("activations", "gradients")}
    expected |= {"layer-1-filters.png", "layer-4-filters.png"}
    assert set(snap.images) == expected
    # (maps or filters, rows, cols, tile px): small maps upscaled by an integer factor to >= 24 px.
    grids = {0: (1, 1, 1, 24), 1: (8, 3, 3, 24), 2: (8, 3, 3, 24), 3: (8, 3, 3, 24), 4: (16, 4, 4, 24),
             5: (16, 4, 4, 24), 6: (16, 4, 4, 24), 7: (10, 1, 10, 24), 8: (10, 1, 10, 24)}
    for i, (n, rows, cols, px) in grids.items():
        for kind in ("activations", "gradients"):
            img = picture(snap.images[f"layer-{i}-{kind}.png"])
            assert img.mode == "L"
            cells = tiles(img, rows, cols, px, px)[:n]
            assert cells.min() == 0 and cells.max() == 255, (i, kind)  # scaled to the layer's min/max
            assert len({c.tobytes() for c in cells}) > 1 or n == 1, (i, kind)
    # net1's first conv sees one channel: 8 filters as 8 rows of one 5x5 tile upscaled 5x.
    first = tiles(picture(snap.images["layer-1-filters.png"]), 8, 1, 25, 25)
    second = tiles(picture(snap.images["layer-4-filters.png"]), 16, 8, 25, 25)
    for cells in (first, second):
        assert cells.min() == 0 and cells.max() == 255
        assert (cells.reshape(len(cells), 5, 5, 5, 5)[:, :, 0, :, 0].repeat(5, 1).repeat(5, 2) == cells).all()
    # Filter 0's weights, scaled to the layer's weight range, are tile 0 of the second conv.
    w = trained.model.layers[3].weight.detach()
    lo, hi = w.min(), w.max()
    scaled = ((w[0, 0] - lo) * 255 / (hi - lo)).round().numpy()
    assert np.abs(second[0, ::5, ::5] - scaled).max() <= 1


def test_input_activation_image_is_the_probe(trained, snap):
    """The probe spans 0..255, so the input layer's map scaled to its min/max is the probe itself."""
    image, _ = snapshots.probe(trained.dataset.test, trained.input_size)
    assert image.min() == 0 and image.max() == 255
    shown = np.asarray(picture(snap.images["layer-0-activations.png"]))
    assert np.abs(shown.astype(int) - image[0, 0].numpy().astype(int)).max() <= 1


def test_constant_data_is_mid_grey_not_blank_white():
    net = net_of([{"type": "input", "out_sx": 6, "out_sy": 6, "out_depth": 1},
                  {"type": "conv", "sx": 3, "filters": 2, "pad": 1}, {"type": "softmax", "num_classes": 3}])
    snap = snapshots.take(net, torch.zeros(1, 1, 6, 6, dtype=torch.uint8), 0)
    assert snap.stats[0]["act_min"] == snap.stats[0]["act_max"] == -0.5
    assert (np.asarray(picture(snap.images["layer-0-activations.png"])) == 128).all()
    assert snap.stats[1]["weight_grad_min"] is None and snap.stats[1]["weight_grad_max"] is None  # never trained
    conv = tiles(picture(snap.images["layer-1-activations.png"]), 1, 2, 24, 24)
    assert conv.min() < conv.max()  # a conv of a constant input still varies at the padded border


def test_colour_filters_for_a_three_channel_input():
    net = net_of([{"type": "input", "out_sx": 8, "out_sy": 8, "out_depth": 3},
                  {"type": "pool", "sx": 2, "stride": 1},
                  {"type": "conv", "sx": 3, "filters": 5, "activation": "relu"},
                  {"type": "conv", "sx": 3, "filters": 2}, {"type": "softmax", "num_classes": 4}])
    image = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    snap = snapshots.take(net, image, 2)
    first = picture(snap.images["layer-2-filters.png"])
    assert first.mode == "RGB"
    cells = tiles(first, 2, 3, 24, 24)  # 5 filters of 3x3 upscaled 8x, in a 2x3 grid
    assert (cells[5] == 255).all()  # the unused cell is background
    assert cells[:5].min() == 0 and cells[:5].max() == 255
    w = net.layers[1].weight.detach()
    scaled = ((w[1].permute(1, 2, 0) - w.min()) * 255 / (w.max() - w.min())).round().numpy()
    assert np.abs(cells[1, ::8, ::8] - scaled).max() <= 1
    second = picture(snap.images["layer-4-filters.png"])  # its inputs are features: grey, filters as rows
    assert second.mode == "L"
    tiles(second, 2, 5, 24, 24)
    colour = picture(snap.images["layer-0-activations.png"])  # the image's own channels: one RGB picture
    assert colour.mode == "RGB" and colour.size == (24, 24)
    pixels = np.asarray(colour)[::3, ::3].astype(int)  # 8x8 upscaled 3x, nearest neighbour
    lo, hi = image.min().item(), image.max().item()
    expected = ((image[0].permute(1, 2, 0).numpy().astype(float) - lo) * 255 / (hi - lo)).round()
    assert np.abs(pixels - expected).max() <= 1
    pooled = picture(snap.images["layer-1-activations.png"])  # a pool keeps the colours too
    assert pooled.mode == "RGB" and picture(snap.images["layer-2-activations.png"]).mode == "L"


@pytest.mark.parametrize("loss", ["svm", "regression"])
def test_scores_losses_have_the_gradient_of_their_output(loss):
    net = net_of([{"type": "input", "out_sx": 5, "out_sy": 5, "out_depth": 1},
                  {"type": "fc", "num_neurons": 6, "activation": "tanh"},
                  {"type": loss, ("num_neurons" if loss == "regression" else "num_classes"): 4}])
    image = torch.randint(0, 256, (1, 1, 5, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    stats = snapshots.take(net, image, 1).stats
    assert stats[-1]["type"] == loss
    # The loss layer outputs the scores unchanged, so both have the same gradient.
    assert (stats[-1]["grad_min"], stats[-1]["grad_max"]) == (stats[-2]["grad_min"], stats[-2]["grad_max"])
    assert stats[-1]["grad_min"] < stats[-1]["grad_max"]


def test_huge_layers_are_capped(monkeypatch):
    monkeypatch.setattr(snapshots, "MAX_PIXELS", 10_000)
    small = snapshots._grid(np.zeros((50, 30, 30), np.uint8), 8)  # 7 rows of 30 px would be 217x247
    assert small.size[0] * small.size[1] <= 10_000 and small.size == (247, 30)
    wide = snapshots._maps_image(np.arange(300, dtype=np.float32).reshape(300, 1, 1), 0.0, 299.0)
    assert wide.size == (128 * 5 - 1, 3 * 5 - 1)  # 1x1 cells wrap at 128; 4 px cells fit the budget


def test_predictions_top3(trained):
    test = trained.dataset.test
    was = trained.model.training
    preds = snapshots.predictions(trained.model, test, trained.input_size, 12, device="cpu")
    assert trained.model.training == was
    assert [p["index"] for p in preds] == list(range(12))
    assert [p["label"] for p in preds] == test.labels[:12].tolist()
    for p in preds:
        assert set(p) == {"index", "label", "image", "top"}
        probs = [t["probability"] for t in p["top"]]
        assert len(p["top"]) == 3 and probs == sorted(probs, reverse=True)
        assert sum(probs) <= 1.0 + 1e-6 and all(0.0 <= q <= 1.0 for q in probs)
        assert len({t["class"] for t in p["top"]}) == 3 and all(0 <= t["class"] < 10 for t in p["top"])
        assert p["image"].startswith("data:image/png;base64,")
        img = picture(base64.b64decode(p["image"].split(",", 1)[1]))
        assert img.size == (28, 28) and img.mode == "L"
        assert np.array_equal(np.asarray(img), test.images[p["index"], 0].numpy())
    correct = sum(p["top"][0]["class"] == p["label"] for p in preds)
    assert correct >= 9  # a trained net1 gets most of them right
    expected = trained.probabilities(test.images[:12])
    assert preds[0]["top"][0]["probability"] == pytest.approx(expected[0].max().item(), rel=1e-5)
    assert snapshots.predictions(trained.model, test, trained.input_size, 0, device="cpu") == []
