"""Sweeps end to end: real jobs through the shared worker, their report, cancel and delete, and `convtrain sweep`."""

from __future__ import annotations

import copy
import csv
import io
import json

import pytest
from PIL import Image

from service.cli.main import main
from tests.conftest import example, wait_for, wait_status

pytestmark = pytest.mark.e2e

TERMINAL = ("succeeded", "failed", "cancelled")
LAYERS = example("net1-default.json")["network"]["layers"]
THREE = [
    {"name": "default", "patch": {}},
    {"name": "3x3 kernels", "patch": {"network": {"layers": example("net2-3x3.json")["network"]["layers"]}}},
    {"name": "single conv layer", "patch": {"network": {"layers": example("net6-single-conv.json")["network"]["layers"]}}},
]


def small_sweep(examples: int = 1000, repeats: int = 2, **changes) -> dict:
    base = example("net1-default.json", budget={"examples": examples}, seed=11)
    return {"name": "e2e-sweep", "base": base, "variants": copy.deepcopy(THREE), "repeats": repeats, **changes}


def wait_sweep(client, sweep_id: str, timeout: float = 300) -> dict:
    """Poll the sweep until it has ended; raise TimeoutError at the deadline, which only detects a hang."""
    def ended():
        sweep = client.get(f"/v1/sweeps/{sweep_id}").get_json()
        return sweep if sweep["status"] != "running" else None
    return wait_for(ended, timeout, f"sweep {sweep_id} ended", every=0.2)


def job_ids(sweep: dict) -> list[str]:
    return [job["id"] for variant in sweep["variants"] for job in variant["jobs"]]


def test_a_sweep_of_three_variants_trains_and_reports(client):
    r = client.post("/v1/sweeps", json=small_sweep())
    assert r.status_code == 202, r.get_json()
    sweep = wait_sweep(client, r.get_json()["id"])
    assert sweep["status"] == "succeeded", [j["error"] for v in sweep["variants"] for j in v["jobs"]]
    assert sweep["counts"]["succeeded"] == 6 and sweep["progress"]["fraction"] == 1.0
    assert sweep["finished_at"] >= sweep["created_at"] and sweep["wall_seconds"] > 0

    table = sweep["table"]
    assert [row["variant"] for row in table] == ["default", "3x3 kernels", "single conv layer"]
    assert [row["params"] for row in table] == [5994, 5258, 11738]
    for row in table:
        assert row["succeeded"] == 2 and len(row["test_accs"]) == 2
        assert 0.2 < row["test_acc_mean"] <= 1 and row["test_acc_std"] >= 0
        assert row["test_acc_min"] <= row["test_acc_mean"] <= row["test_acc_max"]
        assert row["examples_per_second"] > 0 and row["seconds"] > 0 and row["train_loss"] > 0
    # Both repeats of every variant trained with the same two seeds, so the variants differ only by their patch.
    seeds = [[job["seed"] for job in variant["jobs"]] for variant in sweep["variants"]]
    assert seeds == [[11, 12]] * 3

    md = client.get(f"/v1/sweeps/{sweep['id']}/report?format=md")
    assert md.status_code == 200 and md.mimetype == "text/markdown"
    rows = [line for line in md.get_data(as_text=True).splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 3, "a header and three rows"
    assert [row.split(" | ")[0].lstrip("| ") for row in rows[1:]] == ["default", "3x3 kernels", "single conv layer"]

    text = client.get(f"/v1/sweeps/{sweep['id']}/report?format=csv").get_data(as_text=True)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == 3 and all(len(row) == len(parsed[0]) for row in parsed)
    assert [float(row["test_acc_mean"]) for row in parsed] == pytest.approx([row["test_acc_mean"] for row in table])

    png = client.get(f"/v1/sweeps/{sweep['id']}/report?format=png")
    assert png.status_code == 200 and png.mimetype == "image/png"
    image = Image.open(io.BytesIO(png.data)).convert("RGB")
    colours = image.getcolors(1 << 20)
    white = dict((c, n) for n, c in colours).get((255, 255, 255), 0)
    assert len(colours) > 50 and white < 0.97 * image.width * image.height, "the figure is not blank"

    assert client.delete(f"/v1/sweeps/{sweep['id']}").status_code == 204
    assert all(client.get(f"/v1/jobs/{job_id}").status_code == 404 for job_id in job_ids(sweep))


def test_cancel_and_delete_a_whole_sweep(client):
    budget = 2_000_000
    sweep = client.post("/v1/sweeps", json=small_sweep(budget, repeats=1)).get_json()
    first = sweep["variants"][0]["jobs"][0]["id"]
    wait_status(client, first, ("running",), timeout=120)
    assert client.delete(f"/v1/sweeps/{sweep['id']}").status_code == 409, "a running sweep must be cancelled first"

    r = client.post(f"/v1/sweeps/{sweep['id']}/cancel")
    assert r.status_code == 202
    done = wait_sweep(client, sweep["id"], timeout=120)  # how soon is bench/'s question; this only detects a hang
    assert done["status"] == "cancelled" and done["counts"]["cancelled"] == 3
    jobs = {job_id: client.get(f"/v1/jobs/{job_id}").get_json() for job_id in job_ids(done)}
    assert [job["status"] for job in jobs.values()] == ["cancelled"] * 3
    for job_id, job in jobs.items():
        points = client.get(f"/v1/jobs/{job_id}/metrics?limit=10000").get_json()["points"]
        assert points[-1]["event"] == "cancelled" and job["progress"]["examples_seen"] < budget, (job_id, points[-1])
    # The running one was stopped mid-run, long before its budget; the others never started.
    running = jobs[first]
    assert running["attempts"] == 1 and running["progress"]["examples_seen"] > 0 and running["result"] is None
    assert [p["event"] for p in client.get(f"/v1/jobs/{first}/metrics?limit=10000").get_json()["points"]
            if "event" in p][0] == "started"
    assert all(job["attempts"] == 0 and job["started_at"] is None for job_id, job in jobs.items() if job_id != first)
    assert client.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 409

    assert client.delete(f"/v1/sweeps/{sweep['id']}").status_code == 204
    assert client.get(f"/v1/sweeps/{sweep['id']}").status_code == 404
    assert all(client.get(f"/v1/jobs/{job_id}").status_code == 404 for job_id in job_ids(done))


def test_a_bad_variant_is_a_422_naming_it_and_nothing_is_queued(client):
    before_jobs = len(client.get("/v1/jobs?limit=500").get_json()["jobs"])
    before_sweeps = len(client.get("/v1/sweeps?limit=500").get_json()["sweeps"])
    body = small_sweep()
    layers = copy.deepcopy(LAYERS)
    layers[4]["sx"] = 30  # a pool window larger than its 12x12 input
    body["variants"].append({"name": "huge pool", "patch": {"network": {"layers": layers}}})
    r = client.post("/v1/sweeps", json=body)
    assert r.status_code == 422
    problem = r.get_json()
    assert problem["variants"] == ["huge pool"] and "huge pool" in problem["detail"]
    assert [(e["variant"], e["path"]) for e in problem["errors"]] == [("huge pool", "network.layers[4].sx")]
    assert "variant 'huge pool'" in problem["errors"][0]["message"]
    assert len(client.get("/v1/jobs?limit=500").get_json()["jobs"]) == before_jobs
    assert len(client.get("/v1/sweeps?limit=500").get_json()["sweeps"]) == before_sweeps


def test_convtrain_sweep_waits_prints_the_table_and_saves_the_report(http_api, client, tmp_path, capsys):
    request = tmp_path / "study.json"
    request.write_text(json.dumps(small_sweep(300, repeats=1)))
    out = tmp_path / "reports"
    status = main(["sweep", str(request), "--wait", "--out", str(out), "--url", http_api])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    sweep_id = captured.out.splitlines()[0]
    assert "| default | 5,994 |" in captured.out and "## Sweep e2e-sweep" in captured.out
    assert "single conv layer" in captured.err and "[####################]" in captured.err, "a bar per variant"
    assert sorted(p.name for p in out.iterdir()) == ["study.csv", "study.md", "study.png"]
    assert len(list(csv.DictReader(io.StringIO((out / "study.csv").read_text())))) == 3
    assert Image.open(out / "study.png").size == (1500, 620)

    # Without --wait it only submits; a sweep the service refuses is exit 1 with the errors.
    request.write_text(json.dumps(small_sweep(300, repeats=1, variants=[{"name": "x", "patch": {"budget": None}}])))
    assert main(["sweep", str(request), "--url", http_api]) == 1
    assert "budget" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "missing.json"), "--url", http_api]) == 1
    assert client.delete(f"/v1/sweeps/{sweep_id}").status_code == 204
