"""The weights a job starts from when its request has `init` (service/spec/initial_weights.py checked it)."""

from __future__ import annotations

import io
import json

import torch

from service.spec.model_formats import FORMATS
from service.storage import Artifacts, sha256
from worker.convnetjs_io import from_convnetjs


def initial_state(request: dict, layers: list[dict], artifacts: Artifacts | None = None,
                  job_id: str | None = None) -> dict[str, torch.Tensor] | None:
    """A state dict for Net(layers) from the request's `init`, or None without one; ValueError if it cannot be had."""
    init = request.get("init")
    if not init:
        return None
    if "job" in init:
        # Older requests pinned only the checksum, when every model was stored under the fixed name.
        blob = _artifact(artifacts, init["job"], init.get("file", FORMATS["pt"].file), f"the model of job {init['job']}")
        if init.get("sha256") not in (None, sha256(blob)):
            raise ValueError(f"the model of job {init['job']} has changed since this job was submitted")
        return _fitting(torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)["state_dict"], layers,
                        f"job {init['job']}")
    snapshot = init["convnetjs"]
    if "layers" not in snapshot:  # the API keeps submitted snapshots as an artifact of the job
        blob = _artifact(artifacts, job_id, snapshot["file"], "the ConvNetJS snapshot this job starts from")
        if sha256(blob) != snapshot["sha256"]:
            raise ValueError("the ConvNetJS snapshot this job starts from has changed since it was submitted")
        snapshot = json.loads(blob)
    return from_convnetjs(snapshot, layers)


def _artifact(artifacts: Artifacts | None, job_id: str | None, name: str, what: str) -> bytes:
    if artifacts is None or job_id is None:
        raise ValueError(f"{what} is in the service's artifact store; submit this job to the service")
    try:
        return artifacts.get(job_id, name)
    except FileNotFoundError:
        raise ValueError(f"{what} is gone from the artifact store (was its job deleted?)") from None


def _fitting(state: dict[str, torch.Tensor], layers: list[dict], what: str) -> dict[str, torch.Tensor]:
    """`state` if it has exactly the weights Net(layers) has; else a ValueError naming the first layer that differs."""
    expected = {}
    for index, layer in enumerate(layers):
        if layer["type"] == "conv":
            expected[index] = (layer["filters"], layer["in_depth"], layer["sy"], layer["sx"])
        elif layer["type"] == "fc":
            expected[index] = (layer["num_neurons"], layer["in_sx"] * layer["in_sy"] * layer["in_depth"])
    for index, shape in expected.items():
        weight, bias = state.get(f"layers.{index - 1}.weight"), state.get(f"layers.{index - 1}.bias")
        if weight is None or bias is None or tuple(weight.shape) != shape or tuple(bias.shape) != shape[:1]:
            raise ValueError(f"the weights of {what} do not fit this network at its layer {index} ({layer_name(layers[index])})")
    names = {f"layers.{i - 1}.{p}" for i in expected for p in ("weight", "bias")}
    if set(state) != names:
        raise ValueError(f"the weights of {what} do not fit this network: it has other layers")
    return state


def layer_name(layer: dict) -> str:
    return f"{layer['type']} -> {layer['out_sx']}x{layer['out_sy']}x{layer['out_depth']}"
