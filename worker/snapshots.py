"""Layer views for the visualisation: per-layer stats and PNG images of one fixed probe example."""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from worker import data
from worker.model import Net

MIN_TILE = 24  # px: small maps are upscaled by an integer factor until a tile is at least this big
MAX_PIXELS = 4_000_000  # per image: a huge layer gets smaller tiles first, then only its first tiles
ROW_CELLS = 128  # 1x1 maps (fc outputs) go in one row, wrapped only past this many cells
GAP = 255  # the 1 px gaps between tiles: white, the demo page's background
MID_GREY = 128  # what constant data is drawn as
WINDOW_KEYS = ("sx", "sy", "stride", "pad")
WEIGHTED = ("conv", "fc")
# Layers that keep the image's channels as they are, so a conv after only these still sees RGB.
CHANNEL_PRESERVING = ("input", "pool", "relu", "sigmoid", "tanh", "dropout", "lrn")


@dataclass
class Snapshot:
    """Stats for every desugared layer and PNG images keyed by file name."""

    stats: list[dict]
    images: dict[str, bytes]


def probe(dataset_split: data.Split, input_size: tuple[int, int]) -> tuple[torch.Tensor, int]:
    """The split's first image centre-cropped to input_size (sy, sx), as uint8 (1, C, sy, sx), and its label."""
    if len(dataset_split) == 0:
        raise ValueError("cannot take a probe example from an empty split")
    image = data.center_crop(dataset_split.images[:1], *input_size)
    return image.cpu().contiguous(), int(dataset_split.labels[0])


def take(net: Net, image_uint8: torch.Tensor, label: int) -> Snapshot:
    """Stats and images of every layer for one probe example; parameters' .grad are left untouched."""
    acts, grads = _activations_and_gradients(net, image_uint8, label)
    stats: list[dict] = []
    images: dict[str, bytes] = {}
    rgb = net.spec[0]["out_depth"] == 3
    for i, layer in enumerate(net.spec):
        shape = (layer["out_depth"], layer["out_sy"], layer["out_sx"])
        act = acts[i].detach()[0].reshape(shape).float().cpu().numpy()
        grad = grads[i].detach()[0].reshape(shape).float().cpu().numpy()
        entry = {"index": i, **{key: layer[key] for key in ("type", "out_sx", "out_sy", "out_depth", "params")}}
        if layer["type"] in ("conv", "pool"):
            entry.update({key: layer[key] for key in WINDOW_KEYS})
        if layer["type"] == "conv":
            entry["filters"] = layer["filters"]
        entry["act_min"], entry["act_max"] = act_range = _range(act)
        entry["grad_min"], entry["grad_max"] = grad_range = _range(grad)
        colour = rgb and layer["out_depth"] == 3  # still the image's own channels: one RGB picture
        images[f"layer-{i}-activations.png"] = _png(_maps_image(act, *act_range, colour))
        images[f"layer-{i}-gradients.png"] = _png(_maps_image(grad, *grad_range, colour))
        if layer["type"] in WEIGHTED:
            weight = net.layers[i - 1].weight
            w = weight.detach().float().cpu().numpy()
            entry["weight_min"], entry["weight_max"] = w_range = _range(w)
            wg = weight.grad.detach().float().cpu().numpy() if weight.grad is not None else None
            entry["weight_grad_min"], entry["weight_grad_max"] = _range(wg) if wg is not None else (None, None)
            if layer["type"] == "conv":
                images[f"layer-{i}-filters.png"] = _png(_filters_image(w, *w_range, rgb))
        if layer["type"] not in CHANNEL_PRESERVING:
            rgb = False  # from here on channels are learned features, not the image's colours
        stats.append(entry)
    return Snapshot(stats, images)


def predictions(net: Net, split: data.Split, input_size: tuple[int, int], limit: int, *,
                device) -> list[dict]:
    """Top-3 softmax classes (centre crop) of the split's first `limit` images, each with its PNG."""
    images, labels = split.images[:limit], split.labels[:limit].tolist()
    was_training = net.training
    net.eval()
    probs = []
    try:
        with torch.no_grad():
            for start in range(0, len(images), 1000):
                batch = data.center_crop(images[start:start + 1000].to(device), *input_size)
                probs.append(torch.softmax(net(data.to_input(batch)).float(), 1).cpu())
    finally:
        net.train(was_training)
    if not probs:
        return []
    probs = torch.cat(probs)
    top_p, top_c = probs.topk(min(3, probs.shape[1]), 1)
    return [{"index": i, "label": labels[i], "image": image_data_url(images[i]),
             "top": [{"class": c, "probability": p} for c, p in zip(top_c[i].tolist(), top_p[i].tolist())]}
            for i in range(len(labels))]


def image_data_url(image_uint8: torch.Tensor | np.ndarray) -> str:
    """A uint8 (C, H, W) image, C 1 or 3, as a data:image/png;base64 URL."""
    chw = image_uint8.cpu().numpy() if isinstance(image_uint8, torch.Tensor) else np.asarray(image_uint8)
    hwc = np.ascontiguousarray(chw.astype(np.uint8).transpose(1, 2, 0))
    picture = Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)
    return "data:image/png;base64," + base64.b64encode(_png(picture)).decode("ascii")


# --- forward and backward ----------------------------------------------------

def _activations_and_gradients(net: Net, image_uint8: torch.Tensor, label: int):
    """Every layer's output and dLoss/dOutput, in eval mode, through autograd.grad alone."""
    device = next(net.parameters(), torch.empty(0)).device
    was_training = net.training
    net.eval()
    try:
        with torch.enable_grad():  # the caller may be inside no_grad
            x = data.to_input(image_uint8.to(device)).requires_grad_(True)
            acts = net.activations(x)
            y = torch.tensor([int(label)], device=device)
            softmax = net.loss_type == "softmax"
            # svm and regression output their scores, so their loss flows through the last activation;
            # the softmax loss is taken from the scores, where it is numerically stable.
            loss = net.loss(acts[-2].flatten(1) if softmax else acts[-1], y)
            wrt = acts[:-1] if softmax else acts
            # autograd.grad, not backward(): the parameters' .grad keep the last training batch's gradients.
            grads = list(torch.autograd.grad(loss, wrt, allow_unused=True))
    finally:
        net.train(was_training)
    if softmax:
        # dL/dp for L = -log p[label]: -1/p at the label, 0 elsewhere.
        p = acts[-1].detach()
        g = torch.zeros_like(p)
        g[0, int(label)] = -1.0 / p[0, int(label)].clamp_min(torch.finfo(p.dtype).tiny)
        grads.append(g)
    return acts, [torch.zeros_like(a) if g is None else g for a, g in zip(acts, grads)]


def _range(values: np.ndarray) -> tuple[float | None, float | None]:
    """(min, max) over the finite values, None when there are none (JSON has no inf or NaN)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None, None
    return float(finite.min()), float(finite.max())


# --- images ------------------------------------------------------------------

def _scale(values: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    """values mapped from [lo, hi] onto 0..255 as uint8; constant (or no finite) data is mid-grey."""
    if lo is None or hi is None or not hi > lo:
        return np.full(values.shape, MID_GREY, np.uint8)
    clean = np.nan_to_num(values, nan=lo, posinf=hi, neginf=lo)
    return np.clip((clean - lo) * (255.0 / (hi - lo)), 0, 255).round().astype(np.uint8)


def _maps_image(maps: np.ndarray, lo, hi, colour: bool = False) -> Image.Image:
    """(C, H, W) maps as grey tiles: 1x1 maps in one row, larger ones in a near-square grid; or, `colour`,
    three maps as one RGB tile."""
    if colour:
        return _grid(_scale(maps, lo, hi).transpose(1, 2, 0)[None], 1)
    n, h, w = maps.shape
    cols = min(n, ROW_CELLS) if h == w == 1 else math.ceil(math.sqrt(n))
    return _grid(_scale(maps, lo, hi), cols)


def _filters_image(weight: np.ndarray, lo, hi, colour: bool) -> Image.Image:
    """(F, Cin, kh, kw) filters: RGB tiles in a grid when colour, else one row of grey tiles per filter."""
    tiles = _scale(weight, lo, hi)
    if colour:
        return _grid(tiles.transpose(0, 2, 3, 1), math.ceil(math.sqrt(len(tiles))))
    f, c, kh, kw = tiles.shape
    return _grid(tiles.reshape(f * c, kh, kw), c)


def _grid(tiles: np.ndarray, cols: int) -> Image.Image:
    """uint8 tiles (N, h, w[, 3]) in rows of `cols` with 1 px gaps, upscaled to at least MIN_TILE px."""
    n, h, w = tiles.shape[:3]
    rows = -(-n // cols)
    factor = max(1, -(-MIN_TILE // max(h, w)))

    def area(f, r):
        return (r * (h * f + 1) - 1) * (cols * (w * f + 1) - 1)

    while factor > 1 and area(factor, rows) > MAX_PIXELS:
        factor -= 1
    if area(factor, rows) > MAX_PIXELS:  # even unscaled too big: show the first rows that fit
        rows = max(1, MAX_PIXELS // max(1, (h + 1) * (cols * (w + 1))))
        tiles = tiles[:rows * cols]
    tiles = tiles.repeat(factor, axis=1).repeat(factor, axis=2)  # nearest neighbour, as the demo draws
    th, tw, extra = h * factor, w * factor, tiles.shape[3:]
    canvas = np.full((rows * cols, th + 1, tw + 1, *extra), GAP, np.uint8)
    canvas[:len(tiles), :th, :tw] = tiles
    # (rows, cols, th+1, tw+1) -> (rows, th+1, cols, tw+1): one reshape lays the tiles out, no loops.
    canvas = canvas.reshape(rows, cols, th + 1, tw + 1, *extra).swapaxes(1, 2)
    canvas = canvas.reshape(rows * (th + 1), cols * (tw + 1), *extra)[:-1, :-1]
    return Image.fromarray(np.ascontiguousarray(canvas))


def _png(picture: Image.Image) -> bytes:
    buf = io.BytesIO()
    picture.save(buf, "PNG")
    return buf.getvalue()
