"""The real ConvNetJS library (the `convnetjs` npm package, 0.3.0) run by Node.js, for tests: forward, snapshot, train.

It is installed once into `.cache/node/` (git-ignored). Where Node.js or npm is missing the
tests that need it are skipped, saying so; under CI (CI=true) they fail instead, because
this project's CI has both and must run them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT

VERSION = "0.3.0"
CACHE = ROOT / ".cache" / "node"
MODULE = CACHE / "node_modules" / "convnetjs"
SCRIPT = r"""
const fs = require('fs');
const cmd = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const convnetjs = require(cmd.module);
function loadNet() {
  const net = new convnetjs.Net();
  net.fromJSON(JSON.parse(fs.readFileSync(cmd.net, 'utf8')));
  return net;
}
function inputVols() {  // (N, depth, sy, sx) float64 in CHW order -> Vols in ConvNetJS's HWC order
  const raw = fs.readFileSync(cmd.inputs);
  const x = new Float64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
  const [n, depth, sy, sx] = cmd.shape;
  const vols = [];
  for (let i = 0; i < n; i++) {
    const v = new convnetjs.Vol(sx, sy, depth, 0.0);
    for (let d = 0; d < depth; d++)
      for (let y = 0; y < sy; y++)
        for (let xx = 0; xx < sx; xx++)
          v.w[((sx * y) + xx) * depth + d] = x[((i * depth + d) * sy + y) * sx + xx];
    vols.push(v);
  }
  return vols;
}
let out;
if (cmd.op === 'forward') {
  const net = loadNet();
  out = inputVols().map(v => Array.from(net.forward(v, false).w));
} else if (cmd.op === 'train') {
  const net = loadNet();
  const trainer = new convnetjs.SGDTrainer(net, cmd.trainer);
  inputVols().forEach((v, i) => {
    Object.assign(trainer, cmd.changes[i] || {});  // a live change, before the i-th example
    trainer.train(v, cmd.labels[i]);
  });
  out = {k: trainer.k, layers: net.layers.map(layer => layer.filters === undefined ? null : {
    filters: layer.filters.map(f => Array.from(f.w)), biases: Array.from(layer.biases.w)})};
} else if (cmd.op === 'snapshot') {
  const net = new convnetjs.Net();
  net.makeLayers(cmd.layer_defs);
  out = net.toJSON();  // stringified below as the demo's "save network snapshot" does: Float64Arrays become objects
}
fs.writeFileSync(cmd.output, JSON.stringify(out));
"""


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the ConvNetJS checks, but {reason}")
    pytest.skip(f"ConvNetJS checks skipped: {reason}")


def ensure() -> Path:
    """The installed package's folder; skip (fail under CI) when Node.js, npm or the package cannot be had."""
    if shutil.which("node") is None:
        _unavailable("Node.js (node) is not installed")
    if not (MODULE / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            _unavailable("npm is not installed")
        CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund",
                               f"convnetjs@{VERSION}"], capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not (MODULE / "package.json").exists():
            _unavailable(f"npm install convnetjs@{VERSION} failed: {done.stderr.strip()[-500:]}")
    return MODULE


def _run(command: dict) -> object:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        script, cmd_file, output = folder / "run.js", folder / "cmd.json", folder / "out.json"
        script.write_text(SCRIPT)
        cmd_file.write_text(json.dumps({**command, "module": str(ensure()), "output": str(output)}))
        done = subprocess.run(["node", str(script), str(cmd_file)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return json.loads(output.read_text())


def forward(net_json: dict | bytes, inputs: np.ndarray) -> np.ndarray:
    """ConvNetJS's `net.forward` (prediction mode) of each (depth, sy, sx) input, as float64 outputs (N, classes)."""
    inputs = np.ascontiguousarray(inputs, dtype="<f8")
    with tempfile.TemporaryDirectory() as folder:
        net_file, input_file = Path(folder) / "net.json", Path(folder) / "inputs.f64"
        net_file.write_bytes(net_json if isinstance(net_json, bytes) else json.dumps(net_json).encode())
        input_file.write_bytes(inputs.tobytes())
        return np.array(_run({"op": "forward", "net": str(net_file), "inputs": str(input_file),
                              "shape": list(inputs.shape)}))


def train(net_json: dict, inputs: np.ndarray, labels: list[int], trainer: dict,
          changes: dict[int, dict] | None = None) -> dict:
    """ConvNetJS's `SGDTrainer(net, trainer).train(x, y)` on each (depth, sy, sx) input in order, from `net_json`.

    `changes` maps an example's index to trainer fields set just before it (live changes). Returns
    the trainer's k and, per layer, its filters' and biases' weights in ConvNetJS's own (HWC) order
    (None for layers without weights).
    """
    inputs = np.ascontiguousarray(inputs, dtype="<f8")
    with tempfile.TemporaryDirectory() as folder:
        net_file, input_file = Path(folder) / "net.json", Path(folder) / "inputs.f64"
        net_file.write_text(json.dumps(net_json))
        input_file.write_bytes(inputs.tobytes())
        return _run({"op": "train", "net": str(net_file), "inputs": str(input_file), "shape": list(inputs.shape),
                     "labels": [int(y) for y in labels], "trainer": trainer,
                     "changes": {str(i): c for i, c in (changes or {}).items()}})


def snapshot(layer_defs: list[dict]) -> dict:
    """A net built by ConvNetJS from `layer_defs` (random initialisation), as `JSON.stringify(net.toJSON())` gives it."""
    return _run({"op": "snapshot", "layer_defs": layer_defs})


@pytest.fixture(scope="session")
def convnetjs():
    """The ConvNetJS helpers, once the package is installed."""
    ensure()
    import tests.convnetjs_node as helpers

    return helpers
