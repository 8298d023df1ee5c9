"""`convtrain train`: training a job request in-process from the command line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from service.spec import request_body
from worker.__main__ import main
from tests.conftest import EXAMPLES, ROOT, data_dir
from worker import train_cmd

needs_mnist = pytest.mark.skipif(not (data_dir() / "mnist").is_dir(), reason=f"no MNIST in {data_dir()}")
KEYS = {"examples_seen", "train_acc", "val_acc", "test_acc", "class_loss", "l2_loss",
        "examples_per_second", "seconds"}


@pytest.fixture(autouse=True)
def _no_thread_env(monkeypatch):
    # Setting torch's threads in this process would change them for every later test.
    monkeypatch.delenv("CONVTRAIN_TORCH_THREADS", raising=False)


def _check_summary(path):
    summary = json.loads(path.read_text())
    assert set(summary) == KEYS
    assert summary["examples_seen"] == 2000
    assert summary["test_acc"] > 0.5
    assert 0 <= summary["train_acc"] <= 1 and 0 <= summary["val_acc"] <= 1
    assert summary["class_loss"] > 0 and summary["l2_loss"] > 0
    assert summary["examples_per_second"] > 0 and summary["seconds"] > 0
    return summary


@needs_mnist
def test_train_in_process_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "result.json"
    code = main(["train", str(EXAMPLES / "net1-default.json"), "--examples", "2000", "--seed", "7",
                 "--data-dir", str(data_dir()), "--device", "cpu", "--json-out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = _check_summary(out)
    for label in ("examples seen", "train acc", "val acc", "test acc", "class loss", "L2 loss",
                  "examples/s", "seconds"):
        assert label in captured.out
    assert "2,000" in captured.out
    assert f"{summary['test_acc']:.4f}" in captured.out
    # Not a terminal: no progress bar, nothing on stderr.
    assert "\r" not in captured.err and "ETA" not in captured.err


@needs_mnist
def test_train_subprocess(tmp_path):
    out = tmp_path / "result.json"
    env = {**os.environ, "CONVTRAIN_DATA_DIR": str(data_dir()), "CONVTRAIN_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "service.cli", "train", str(EXAMPLES / "net1-default.json"),
                           "--examples", "2000", "--seed", "3", "--threads", "2", "--json-out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    _check_summary(out)
    assert "test acc" in proc.stdout
    assert proc.stderr.strip() == ""


@needs_mnist
def test_train_js_paste_with_examples(tmp_path, capsys):
    out = tmp_path / "result.json"
    code = main(["train", str(EXAMPLES / "net1-default.js"), "--examples", "300", "--seed", "1",
                 "--data-dir", str(data_dir()), "--device", "cpu", "--json-out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert json.loads(out.read_text())["examples_seen"] == 300


def test_js_paste_defaults_to_the_demo_budget():
    from service.config import Config

    body = request_body.read_body(str(EXAMPLES / "net1-default.js"), Config(), demo_budget=True)
    assert body["budget"] == {"examples": 30_000}
    assert "layer_defs" in body["convnetjs"]


def test_invalid_file_exits_1_with_paths(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"network": {"layers": [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
                                                      {"type": "pool", "sx": 40}, {"type": "softmax", "num_classes": 10}]},
                               "trainer": {"method": "adadeltaa"}}))
    code = main(["train", str(bad), "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "budget: a job needs a budget" in err
    assert "trainer.method: " in err and "adadelta" in err
    assert "network.layers[1]" in err


def test_not_json_and_missing_file_exit_1(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["train", str(bad)]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "absent.json")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_missing_data_dir_names_the_folder(tmp_path, capsys):
    # A data folder below a plain file can be neither read nor created, so this never downloads.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    missing = blocker / "data"
    code = main(["train", str(EXAMPLES / "net1-default.json"), "--examples", "100", "--data-dir", str(missing)])
    err = capsys.readouterr().err
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("convtrain train: dataset 'mnist' is not available")
    assert str(missing / "mnist") in lines[0]


def test_unavailable_device_exits_1(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code = main(["train", str(EXAMPLES / "net1-default.json"), "--examples", "100", "--device", "cuda",
                 "--data-dir", str(data_dir())])
    err = capsys.readouterr().err
    assert code == 1
    assert "no CUDA GPU" in err and len(err.strip().splitlines()) == 1


def test_progress_line_and_bar():
    point = {"examples": 12_300, "class_loss": 0.2314, "train_acc": 0.931, "val_acc": 0.95,
             "examples_per_second": 1000.0, "seconds": 12.3}
    line = train_cmd.progress_line(point, 30_000)
    assert line.startswith("[########............] 12,300/30,000 examples")
    assert "loss 0.231" in line and "acc 0.93" in line and "val 0.95" in line
    assert line.endswith("ETA 18s")

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = train_cmd.ProgressBar(stream, 30_000, None)
    bar(point)
    bar({**point, "examples": 30_000})
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "30,000/30,000 examples" in text
