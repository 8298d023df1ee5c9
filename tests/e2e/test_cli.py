"""`convtrain serve` as a user runs it, driven only over HTTP and with the client commands.

Starts the real thing in a subprocess (embedded redis-server, gunicorn, a worker),
trains a small job through `convtrain submit --wait`, downloads its model, uploads,
lists and deletes a dataset with `convtrain dataset`, stops the service with SIGTERM
and checks that nothing it started is left behind, then starts it again on the same
home folder and finds the job still there.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from service.cli.embedded import free_port, pid_alive
from service.cli.main import main
from tests.conftest import EXAMPLES, FAST, ROOT, data_dir, wait_for
from tests.service.datasets import uploads

pytestmark = pytest.mark.e2e

READY_TIMEOUT = 90
STOP_TIMEOUT = 30


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (psutil if installed, else /proc/<pid>/task/*/children)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            return {p.pid for p in psutil.Process(pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Alive and not a zombie (a zombie's pid still answers kill(pid, 0))."""
    if not pid_alive(pid):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return pid_alive(pid)
    return state not in ("Z", "X")


class Serve:
    """One `convtrain serve` subprocess, with everything it started remembered for cleanup."""

    def __init__(self, home: Path, log: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        env = {k: v for k, v in os.environ.items() if k not in ("CONVTRAIN_REDIS_URL", "CONVTRAIN_URL")}
        env.update(FAST)
        env.update({"CONVTRAIN_HOME": str(home), "CONVTRAIN_DATA_DIR": str(data_dir()), "PYTHONUNBUFFERED": "1"})
        self.log = open(log, "ab")  # noqa: SIM115 -- held for the process's life, closed in stop/kill
        self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(self.port)],
                                     env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.children: set[int] = set()

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def remember_children(self) -> set[int]:
        self.children |= descendants(self.proc.pid)
        return self.children

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> dict:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.tail()}")
            self.remember_children()
            try:
                r = requests.get(self.base + "/readyz", timeout=2)
            except requests.exceptions.RequestException:
                return None
            return r.json() if r.status_code == 200 else None

        try:
            answer = wait_for(ready, timeout, "serve ready", every=0.25)
        except TimeoutError:
            raise AssertionError(f"serve not ready after {timeout} s:\n{self.tail()}") from None
        self.remember_children()
        return answer

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        self.remember_children()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.close()

    def kill(self) -> None:
        """Cleanup after a failure: only the processes this test started."""
        self.remember_children()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in self.children:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if not self.log.closed:
            self.log.close()


def _names(pids: set[int]) -> list[str]:
    """The command lines of `pids`, for messages and to check what serve started."""
    out = []
    for pid in pids:
        try:
            out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    return out


def left_alive(pids: set[int], timeout: float = 5) -> list[int]:
    """Those of `pids` still alive once they had `timeout` seconds to leave the process table (reaped children
    can take a moment)."""
    try:
        wait_for(lambda: not any(alive(pid) for pid in pids), timeout, "every child gone")
    except TimeoutError:
        pass
    return [pid for pid in pids if alive(pid)]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.skipif(not (data_dir() / "mnist").is_dir(), reason=f"no MNIST in {data_dir()}")
def test_serve_cli_roundtrip_shutdown_and_restart(tmp_path, capsys, monkeypatch, serves):
    home = tmp_path / "home"
    first = Serve(home, tmp_path / "serve1.log")
    serves.append(first)
    ready = first.wait_ready()
    assert ready["checks"] == {"redis": True, "workers": 1}
    base = first.base

    # The API over plain HTTP.
    assert requests.get(base + "/healthz", timeout=5).json() == {"status": "ok"}

    # submit --wait: prints the id first, then follows the job to its end.
    job_file = tmp_path / "net1.json"
    body = json.loads((EXAMPLES / "net1-default.json").read_text())
    body.update(budget={"examples": 3000}, seed=5)
    job_file.write_text(json.dumps(body))
    code, out, err = run_cli(capsys, "submit", str(job_file), "--url", base, "--wait")
    assert code == 0, out + err
    job_id = out.splitlines()[0].strip()
    assert "succeeded" in out and "test acc" in out
    assert "succeeded" in err  # the plain progress lines (not a terminal)

    job = requests.get(f"{base}/v1/jobs/{job_id}", timeout=5).json()
    assert job["status"] == "succeeded"
    assert job["progress"]["examples_seen"] == 3000
    assert job["result"]["test_acc"] > 0.5

    # status: a readable summary.
    code, out, err = run_cli(capsys, "status", job_id, "--url", base)
    assert code == 0, err
    assert "net1-default" in out and "succeeded" in out and "test acc" in out and "3,000/3,000" in out

    # list: a table with the job; --status filters.
    code, out, err = run_cli(capsys, "list", "--url", base)
    assert code == 0, err
    assert out.splitlines()[0].split() == ["ID", "NAME", "STATUS", "PROGRESS", "TEST_ACC", "CREATED"]
    row = next(line for line in out.splitlines() if line.startswith(job_id))
    assert "net1-default" in row and "succeeded" in row and f"{job['result']['test_acc']:.4f}" in row
    code, out, _ = run_cli(capsys, "list", "--status", "failed", "--url", base)
    assert code == 0 and job_id not in out

    # download -o: a torch file with the weights and the network.
    model = tmp_path / "model.pt"
    code, out, err = run_cli(capsys, "download", job_id, "-o", str(model), "--url", base)
    assert code == 0, err
    import torch

    saved = torch.load(model, weights_only=True)
    assert "state_dict" in saved and "network" in saved
    assert saved["network"]["layers"][0]["type"] == "input"
    # Without -o: the name from Content-Disposition, in the current folder.
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "download", job_id, "--url", base)
    assert code == 0, err
    assert (tmp_path / f"net1-default-{job_id}.pt").read_bytes() == model.read_bytes()

    # cancel on a finished job: the 409 problem, exit 1.
    code, out, err = run_cli(capsys, "cancel", job_id, "--url", base)
    assert code == 1
    assert err.startswith("error: Conflict: the job has succeeded already")

    # An invalid request: the problem's title, detail and each field error.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"network": body["network"], "budget": {"examples": 0}}))
    code, out, err = run_cli(capsys, "submit", str(bad), "--url", base)
    assert code == 1
    assert err.splitlines()[0].startswith("error: Invalid job request: ")
    assert "  budget.examples: " in err
    code, out, err = run_cli(capsys, "status", "0123456789abcdef", "--url", base)
    assert code == 1 and err.startswith("error: Not Found:")

    # A long job, cancelled: cancel exits 0, watch ends with 1 and says so.
    long_file = tmp_path / "long.json"
    long_file.write_text(json.dumps({**body, "budget": {"examples": 1_000_000}, "name": "long"}))
    code, out, err = run_cli(capsys, "submit", str(long_file), "--url", base)
    assert code == 0, err
    long_id = out.strip()
    code, out, err = run_cli(capsys, "cancel", long_id, "--url", base)
    assert code == 0, err
    assert out.startswith(f"job {long_id}: ") and ("cancel" in out)
    code, out, err = run_cli(capsys, "watch", long_id, "--url", base)
    assert code == 1
    assert f"job {long_id} was cancelled" in out
    code, out, _ = run_cli(capsys, "list", "--status", "cancelled", "--url", base)
    assert code == 0 and long_id in out and job_id not in out

    # dataset upload: two IDX files as MNIST ships them, sent as repeated file fields, with class names.
    rng = np.random.default_rng(0)
    idx_files = []
    for name, array in (("train-images-idx3-ubyte.gz", rng.integers(0, 256, (40, 28, 28))),
                        ("train-labels-idx1-ubyte.gz", np.arange(40) % 2)):
        (tmp_path / name).write_bytes(gzip.compress(uploads.idx(array)))
        idx_files.append(str(tmp_path / name))
    code, out, err = run_cli(capsys, "dataset", "upload", *idx_files, "--name", "noise", "--title", "Noise",
                             "--class-names", '["even", "odd"]', "--url", base)
    assert code == 0, err
    assert out.startswith("noise: 28x28x1, 2 classes (even, odd), ") and "sha256 " in out
    # dataset list: the built-ins first, then the upload; --json as the API has it.
    code, out, err = run_cli(capsys, "dataset", "list", "--url", base)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "SHAPE", "CLASSES", "TRAIN", "TEST", "OWNER"]
    assert lines[1].startswith("mnist ") and "28x28x1" in lines[1] and "builtin" in lines[1]
    noise = next(line for line in lines if line.startswith("noise "))
    assert "2 (even, odd)" in noise and noise.split()[-1] != "builtin"
    code, out, err = run_cli(capsys, "dataset", "list", "--json", "--url", base)
    assert code == 0, err
    noise = next(d for d in json.loads(out)["datasets"] if d["name"] == "noise")
    assert noise["source"] == "idx" and noise["title"] == "Noise" and noise["train_size"] + noise["test_size"] == 40
    # Refusals: a bad name names the field; a built-in cannot be deleted; then the upload is deleted.
    code, out, err = run_cli(capsys, "dataset", "upload", idx_files[0], "--name", "No Good", "--url", base)
    assert code == 1 and err.startswith("error: Invalid dataset upload: ") and "  name: " in err
    code, out, err = run_cli(capsys, "dataset", "delete", "mnist", "--url", base)
    assert code == 1 and err.startswith("error: Conflict: mnist is a built-in dataset")
    code, out, err = run_cli(capsys, "dataset", "delete", "noise", "--url", base)
    assert code == 0 and out.strip() == "deleted dataset noise", err
    code, out, err = run_cli(capsys, "dataset", "delete", "noise", "--url", base)
    assert code == 1 and err.startswith("error: Not Found")

    # SIGTERM: serve exits 0 within 30 s and takes redis-server, gunicorn and the worker with it.
    children = first.remember_children()
    names = _names(children)
    for wanted in ("redis-server", "gunicorn", "worker"):
        assert any(wanted in n for n in names), names
    assert first.stop() == 0, first.tail()
    left = left_alive(children)
    assert not left, f"still alive after serve exited: {left}\n{first.tail()}"

    # Nothing answers any more: the client says so, naming the URL, exit 2.
    code, out, err = run_cli(capsys, "status", job_id, "--url", base)
    assert code == 2
    assert base in err and "cannot connect" in err

    # Start again on the same home: the job and its model survived.
    second = Serve(home, tmp_path / "serve2.log")
    serves.append(second)
    second.wait_ready()
    again = requests.get(f"{second.base}/v1/jobs/{job_id}", timeout=5).json()
    assert again["status"] == "succeeded"
    assert again["result"] == job["result"]
    model2 = tmp_path / "model2.pt"
    code, out, err = run_cli(capsys, "download", job_id, "-o", str(model2), "--url", second.base)
    assert code == 0, err
    assert model2.read_bytes() == model.read_bytes()
    children = second.remember_children()
    assert second.stop() == 0, second.tail()
    assert not left_alive(children), second.tail()
