"""A trained model in every format of service.spec.model_formats, each computing what the trained model computes.

Every export takes the network's input as trained, (N, depth, sy, sx) with pixels
scaled p/255 - 0.5, and outputs what ConvNetJS's forward outputs: class
probabilities for softmax nets, scores for svm and regression nets.
"""

from __future__ import annotations

import io
import json
import logging
import warnings

import torch
from torch import nn

from service.spec.model_formats import FORMATS
from service.spec.netspec import Network
from service.storage import Artifacts, sha256
from worker.convnetjs_io import to_convnetjs
from worker.model import Net

log = logging.getLogger("convtrain.worker")
ONNX_OPSET = 17


class Predictor(nn.Module):
    """The trained net with its loss layer's output: what an export computes."""

    def __init__(self, net: Net):
        super().__init__()
        self.net = net
        self.softmax = net.loss_type == "softmax"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.net(x)
        return torch.softmax(scores, 1) if self.softmax else scores


def load_net(weights: dict) -> Net:
    """The Net of a model file's contents ({"state_dict", "network", "layers"}), on the CPU, in eval mode."""
    net = Net(Network(weights["layers"], 0, 0))  # the desugared layers as trained, whatever the limits are now
    net.load_state_dict(weights["state_dict"])
    return net.eval()


def _example(net: Net) -> torch.Tensor:
    first = net.spec[0]
    return torch.zeros(2, first["out_depth"], first["out_sy"], first["out_sx"])


def to_pt(weights: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(weights, buf)
    return buf.getvalue()


def to_safetensors(weights: dict) -> bytes:
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in weights["state_dict"].items()}
    return save(tensors, metadata={"format": "pt", "network": json.dumps(weights["network"]),
                                   "layers": json.dumps(weights["layers"])})


def to_torchscript(weights: dict) -> bytes:
    net = load_net(weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export, still the format users load
        module = torch.jit.trace(Predictor(net).eval(), _example(net), check_trace=False)
        buf = io.BytesIO()
        torch.jit.save(module, buf)
    return buf.getvalue()


def preload() -> None:
    """Import what the exporters load lazily: torch.onnx.export imports onnx on its first call, 0.6 s of a
    worker's first job (14% of a 30,000-example one) that a worker pays at start instead."""
    import onnx  # noqa: F401


def to_onnx(weights: dict) -> bytes:
    net = load_net(weights)
    output = "probabilities" if net.loss_type == "softmax" else "scores"
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript-based exporter: no onnxscript needed, and these layers all have ONNX ops.
        torch.onnx.export(Predictor(net).eval(), (_example(net),), buf, dynamo=False, opset_version=ONNX_OPSET,
                          input_names=["input"], output_names=[output],
                          dynamic_axes={"input": {0: "batch"}, output: {0: "batch"}})
    return buf.getvalue()


def to_convnetjs_json(weights: dict) -> bytes:
    return json.dumps(to_convnetjs(weights["layers"], weights["state_dict"]), separators=(",", ":")).encode()


EXPORTERS = {"pt": to_pt, "safetensors": to_safetensors, "torchscript": to_torchscript, "onnx": to_onnx,
             "convnetjs": to_convnetjs_json}
assert set(EXPORTERS) == set(FORMATS)


def export_all(weights: dict, **done: bytes) -> dict[str, bytes | str]:
    """Each format's bytes (those in `done` as given), or a sentence saying why that format could not be made."""
    out: dict[str, bytes | str] = {}
    for name, export in EXPORTERS.items():
        try:
            out[name] = done[name] if name in done else export(weights)
        except Exception as exc:  # one format failing must not cost the job its other formats
            log.warning("export to %s failed: %s", name, exc)
            out[name] = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
    return out


def store_exports(artifacts: Artifacts, job_id: str, weights: dict, pt: bytes, folder: str) -> dict[str, dict]:
    """Write every format but pt (stored already) into `folder` of the job's artifacts (the attempt's own):
    {format: {file, bytes, sha256} or {error}}."""
    out = {}
    for name, data in export_all(weights, pt=pt).items():
        if isinstance(data, str):
            out[name] = {"error": data}
            continue
        file = f"{folder}/{FORMATS[name].file}"
        if name != "pt":
            artifacts.put(job_id, file, data)
        out[name] = {"file": file, "bytes": len(data), "sha256": sha256(data)}
    return out
