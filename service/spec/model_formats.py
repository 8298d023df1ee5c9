"""The formats a trained model is exported in: artifact names, media types, file suffixes and how to load each.

Shared by the worker (which writes the files) and the API (which serves them and
describes them in the model card), so that a name is spelled in one place.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelFormat:
    name: str
    file: str  # the artifact's name in the job's folder
    media_type: str
    suffix: str  # the downloaded file's name ends with this
    load: str  # how to load it, for the model card


FORMATS: dict[str, ModelFormat] = {f.name: f for f in (
    ModelFormat("pt", "model.pt", "application/octet-stream", ".pt",
                "m = torch.load('FILE', weights_only=True)  # {'state_dict', 'network', 'layers'}; "
                "net = worker.model.Net(service.spec.netspec.analyze(m['network'])); net.load_state_dict(m['state_dict'])"),
    ModelFormat("safetensors", "model.safetensors", "application/octet-stream", ".safetensors",
                "from safetensors import safe_open; f = safe_open('FILE', 'pt'); "
                "state_dict = {k: f.get_tensor(k) for k in f.keys()}; network = json.loads(f.metadata()['network'])"),
    ModelFormat("torchscript", "model.torchscript.pt", "application/octet-stream", ".torchscript.pt",
                "m = torch.jit.load('FILE').eval(); probabilities = m(x)  # x: (N, depth, sy, sx), p/255 - 0.5"),
    ModelFormat("onnx", "model.onnx", "application/octet-stream", ".onnx",
                "s = onnxruntime.InferenceSession('FILE'); probabilities = s.run(None, {'input': x})[0]  "
                "# x: float32 (N, depth, sy, sx), p/255 - 0.5; the batch dimension is dynamic"),
    ModelFormat("convnetjs", "model.convnetjs.json", "application/json", ".convnetjs.json",
                "var net = new convnetjs.Net(); net.fromJSON(JSON.parse(fs.readFileSync('FILE', 'utf8'))); "
                "var probabilities = net.forward(vol).w;  // vol: a convnetjs.Vol(sx, sy, depth), p/255 - 0.5"),
)}
# What an export takes and gives, for the model card.
INPUT = ("a float32 tensor (N, depth, sy, sx) of the network's input size (a convnetjs.Vol(sx, sy, depth) "
         "for ConvNetJS), pixels scaled as in training, p/255 - 0.5; evaluation centre-crops the dataset's images "
         "to the input size")
OUTPUT = {"softmax": "class probabilities (N, classes), as ConvNetJS's softmax layer gives them",
          "svm": "class scores (N, classes), as ConvNetJS's svm layer gives them",
          "regression": "the regression outputs (N, outputs)"}
