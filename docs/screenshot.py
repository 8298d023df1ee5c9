"""Take docs/dashboard.png: the first network trained for 30,000 examples, as the dashboard shows it.

Starts `convtrain serve` (its embedded Redis, one worker) on a free port with a temporary home,
submits examples/net1-default.json with a 30,000-example budget (the demo's), waits for it to
succeed, and checks that the job has at least 150 metric points (metric points are placed by
examples, so the count does not depend on the machine's speed). Then it opens the dashboard on that
job in headless Chromium (Debian's `chromium`, driven by Playwright; Playwright's own browser
downloads are never used), waits until the loss chart holds every point, and saves the page. It
prints the point count.

    CONVTRAIN_DATA_DIR=../shared/data .venv/bin/python docs/screenshot.py
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the service package is the checkout's

from service.cli.embedded import free_port  # after the path above

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
EXAMPLES = 30_000  # the demo's budget
LAYER_IMAGES_LOADED = """() => {
  const imgs = [...document.querySelectorAll("#layers img")];
  return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
}"""
MIN_POINTS = 150  # what a loss curve of that budget must at least have (points come every 100 examples)


def wait_until(predicate, timeout: float, what: str):
    """Poll `predicate` until it returns something true, and return that; raise TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout} s")
        time.sleep(0.25)  # the polling step: look again shortly
    return value


def start_serve(home: Path, data: Path) -> tuple[subprocess.Popen, str]:
    """`convtrain serve` with its own home, and its base URL once /readyz says a worker is there."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("CONVTRAIN_REDIS_URL", "CONVTRAIN_URL")}
    env.update({"CONVTRAIN_HOME": str(home), "CONVTRAIN_DATA_DIR": str(data)})
    log = open(home.parent / "serve.log", "ab")  # noqa: SIM115 -- the child holds it; closed when it ends
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], env=env,
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    base = f"http://127.0.0.1:{port}"

    def ready():
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}: see {home.parent / 'serve.log'}")
        try:
            return requests.get(f"{base}/readyz", timeout=5).status_code == 200
        except requests.RequestException:  # not listening yet
            return False

    wait_until(ready, 120, "serve ready")
    return proc, base


def train(base: str, examples: int) -> tuple[str, int]:
    """Submit the first network for `examples` examples; return its id and its metric point count."""
    body = {**json.loads((ROOT / "examples" / "net1-default.json").read_text()),
            "budget": {"examples": examples}, "name": f"net1-default, {examples:,} examples"}
    response = requests.post(f"{base}/v1/jobs", json=body, timeout=30)
    response.raise_for_status()
    job_id = response.json()["id"]

    def finished():
        job = requests.get(f"{base}/v1/jobs/{job_id}", timeout=10).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    job = wait_until(finished, 1800, "the job finished")
    if job["status"] != "succeeded":
        raise RuntimeError(f"the job {job['status']}: {job.get('error')}")
    points = requests.get(f"{base}/v1/jobs/{job_id}/metrics?limit=10000", timeout=30).json()["points"]
    return job_id, sum("event" not in p for p in points)


def screenshot(base: str, job_id: str, points: int, out: Path, chromium: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(f"{base}/#job={job_id}")
            expect(page.locator('#job[data-status="succeeded"]')).to_be_visible(timeout=30_000)
            # The chart draws its history as it sets the count, so this is every point on the canvas.
            expect(page.locator("#chart-loss")).to_have_attribute("data-points", str(points), timeout=30_000)
            expect(page.locator(".prediction").first).to_be_visible(timeout=30_000)
            expect(page.locator("#trainer-form input").first).to_be_attached(timeout=30_000)
            page.wait_for_function(LAYER_IMAGES_LOADED, timeout=30_000)
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("CONVTRAIN_DATA_DIR")
                                                           or ROOT.parent / "shared" / "data"))
    parser.add_argument("--chromium", type=Path, default=Path(os.environ.get("CONVTRAIN_CHROMIUM",
                                                                             "/usr/bin/chromium")))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="convtrain-screenshot-") as folder:
        proc, base = start_serve(Path(folder) / "home", args.data)
        try:
            job_id, points = train(base, EXAMPLES)
            print(f"{EXAMPLES:,} examples: {points} metric points")
            if points < MIN_POINTS:
                print(f"fewer than {MIN_POINTS} metric points: no screenshot", file=sys.stderr)
                return 1
            screenshot(base, job_id, points, args.out, args.chromium)
            print(f"saved {args.out}")
        finally:
            proc.send_signal(signal.SIGTERM)  # serve stops its worker, the API and its Redis in order
            proc.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
