"""The sweeps API on a real Redis, with the store playing the worker: submit, read, report, cancel, list, delete."""

from __future__ import annotations

import base64
import copy
import csv
import io
import json

import pytest
from PIL import Image

from service.lifecycle import Attempt
from tests.conftest import example

BASE = example("net1-default.json", budget={"examples": 600})


LAYERS = BASE["network"]["layers"]


SINGLE_CONV = [LAYERS[0], LAYERS[1], LAYERS[2], LAYERS[5]]


def _train_by_hand(store, job_id: str, test_acc: float, losses=(2.0, 1.0, 0.5)) -> None:
    start = store.start(job_id, "w1", 30, 3)
    store.add_point(job_id, start.token, {"event": "started", "examples": 0, "attempt": start.attempt})
    for i, loss in enumerate(losses, 1):
        point = {"examples": 200 * i, "epoch": 0.01 * i, "seconds": 0.1 * i, "class_loss": loss, "l2_loss": 0.01,
                 "l1_loss": 0.0, "train_acc": 0.9, "val_acc": None, "examples_per_second": 4000.0,
                 "forward_ms": 0.1, "backward_ms": 0.2, "learning_rate": 0.01, "batch_size": 20}
        store.add_point(job_id, start.token, point, metrics=point, examples_seen=point["examples"])
    result = {"examples_seen": 600, "epochs": 0.011, "train_acc": 0.9, "val_acc": 0.91, "test_acc": test_acc,
              "class_loss": losses[-1], "l2_loss": 0.01, "examples_per_second": 4000.0, "seconds": 0.15}
    assert Attempt(store, job_id, start.token).succeed(600, result, None)


def test_submit_read_report_and_delete(stored):
    c, services = stored
    body = {"name": "api", "base": BASE, "repeats": 2,
            "variants": [{"name": "default", "patch": {}}, {"name": "single", "patch": {"network": {"layers": SINGLE_CONV}}}]}
    r = c.post("/v1/sweeps", json=body)
    assert r.status_code == 202, r.get_json()
    sweep = r.get_json()
    assert r.headers["Location"] == f"/v1/sweeps/{sweep['id']}"
    assert (sweep["status"], sweep["jobs"], sweep["counts"]["queued"]) == ("running", 4, 4)
    assert [v["name"] for v in sweep["variants"]] == ["default", "single"]
    assert [len(v["jobs"]) for v in sweep["variants"]] == [2, 2]
    assert [row["params"] for row in sweep["table"]] == [5994, services.store.get(
        sweep["variants"][1]["jobs"][0]["id"])["network"]["params"]]
    ids = [job["id"] for v in sweep["variants"] for job in v["jobs"]]
    jobs = {job_id: services.store.get(job_id) for job_id in ids}
    assert [jobs[i]["name"] for i in ids] == ["api/default/1", "api/default/2", "api/single/1", "api/single/2"]
    assert [jobs[i]["request"]["seed"] for i in ids] == [sweep["seed"], sweep["seed"] + 1] * 2
    # Published repeat by repeat, the first repeat of every variant first (kombu pushes left, workers pop right).
    messages = [json.loads(m) for m in reversed(services.store.r.lrange("auto", 0, -1))]
    assert [json.loads(base64.b64decode(m["body"]))[0][0] for m in messages] == [ids[0], ids[2], ids[1], ids[3]]

    assert c.get("/v1/sweeps").get_json()["sweeps"][0]["id"] == sweep["id"]
    assert c.delete(f"/v1/sweeps/{sweep['id']}").status_code == 409, "jobs are queued: cancel first"
    for n, job_id in enumerate(ids):
        _train_by_hand(services.store, job_id, 0.9 + 0.01 * n)
    done = c.get(f"/v1/sweeps/{sweep['id']}").get_json()
    assert done["status"] == "succeeded" and done["finished_at"] >= done["created_at"]
    assert [row["test_acc_mean"] for row in done["table"]] == [pytest.approx(0.905), pytest.approx(0.925)]
    assert done["progress"] == {"jobs": 4, "ended": 4, "examples_seen": 2400, "examples_total": 2400, "fraction": 1.0}

    md = c.get(f"/v1/sweeps/{sweep['id']}/report")
    assert md.mimetype == "text/markdown" and md.get_data(as_text=True).count("\n| ") == 3
    assert 'filename="api-' in md.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(c.get(f"/v1/sweeps/{sweep['id']}/report?format=csv").get_data(as_text=True))))
    assert [row["variant"] for row in table] == ["default", "single"] and table[0]["succeeded"] == "2"
    png = c.get(f"/v1/sweeps/{sweep['id']}/report?format=png")
    assert png.mimetype == "image/png" and Image.open(io.BytesIO(png.data)).size == (1500, 620)
    assert c.get(f"/v1/sweeps/{sweep['id']}/report?format=pdf").status_code == 400
    assert c.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 409, "every job has ended"

    assert c.delete(f"/v1/sweeps/{sweep['id']}").status_code == 204
    assert c.get(f"/v1/sweeps/{sweep['id']}").status_code == 404
    assert all(not services.store.exists(job_id) for job_id in ids)
    assert c.get("/v1/sweeps").get_json() == {"sweeps": [], "next": None}


def test_cancel_stops_every_job_and_a_job_deleted_alone_is_tolerated(stored):
    c, services = stored
    sweep = c.post("/v1/sweeps", json={"base": BASE, "grid": {"trainer.batch_size": [10, 20, 40]}}).get_json()
    first, second, third = [v["jobs"][0]["id"] for v in sweep["variants"]]
    start = services.store.start(first, "w1", 30, 3)  # one running, two queued
    r = c.post(f"/v1/sweeps/{sweep['id']}/cancel")
    assert r.status_code == 202
    cancelling = r.get_json()
    assert cancelling["status"] == "running", "the running job stops at its next poll"
    assert [v["jobs"][0]["status"] for v in cancelling["variants"]] == ["running", "cancelled", "cancelled"]
    assert services.store.flags(first)["cancel"]
    Attempt(services.store, first, start.token).cancelled(0)
    cancelled = c.get(f"/v1/sweeps/{sweep['id']}").get_json()
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["cancelled"] == 3
    events = [p.get("event") for p in services.store.points(third)]
    assert events == ["cancelled"]
    services.store.delete(second)
    assert c.get(f"/v1/sweeps/{sweep['id']}").get_json()["variants"][1]["jobs"][0]["status"] == "deleted"
    assert c.get(f"/v1/sweeps/{sweep['id']}/report?format=png").status_code == 200
    assert c.delete(f"/v1/sweeps/{sweep['id']}").status_code == 204


def test_a_bad_variant_is_a_422_naming_it_and_nothing_is_queued(stored):
    c, services = stored
    bad = copy.deepcopy(LAYERS)
    bad[1]["activation"] = "relux"
    body = {"base": BASE, "variants": [{"name": "good", "patch": {}}, {"name": "typo", "patch": {"network": {"layers": bad}}}]}
    r = c.post("/v1/sweeps", json=body)
    assert r.status_code == 422
    problem = r.get_json()
    assert problem["variants"] == ["typo"] and "'typo'" in problem["detail"]
    assert [(e["variant"], e["path"]) for e in problem["errors"]] == [("typo", "network.layers[1].activation")]
    assert services.store.r.zcard("convtrain:jobs") == 0 and services.store.r.zcard("convtrain:sweeps") == 0
    malformed = c.post("/v1/sweeps", json={"base": BASE, "variants": [{"name": "x"}]})
    assert malformed.status_code == 422 and malformed.get_json()["errors"][0]["path"] == "variants[0].patch"


def test_listing_pages_and_bad_queries(stored):
    c, _ = stored
    ids = [c.post("/v1/sweeps", json={"base": {**BASE, "device": "gpu"}, "name": f"s{i}"}).get_json()["id"]
           for i in range(3)]
    first = c.get("/v1/sweeps?limit=2").get_json()
    assert [s["id"] for s in first["sweeps"]] == ids[::-1][:2] and first["next"]
    second = c.get(f"/v1/sweeps?limit=2&cursor={first['next']}").get_json()
    assert [s["id"] for s in second["sweeps"]] == ids[:1]
    assert second["sweeps"][0]["variant_names"] == ["s0"]
    for query in ("limit=0", "limit=x", "cursor=never", "cursor=nan"):
        assert c.get(f"/v1/sweeps?{query}").status_code == 400, query
    for sweep_id in ("not-an-id", "0123abcd"):
        assert c.get(f"/v1/sweeps/{sweep_id}").status_code == 404
        assert c.get(f"/v1/sweeps/{sweep_id}/report").status_code == 404
        assert c.post(f"/v1/sweeps/{sweep_id}/cancel").status_code == 404
        assert c.delete(f"/v1/sweeps/{sweep_id}").status_code == 404
    for body, status in (([1], 422), (b"{", 400), ("x", 415)):
        r = c.post("/v1/sweeps", data=body, content_type="text/plain") if status == 415 else \
            c.post("/v1/sweeps", data=body if isinstance(body, bytes) else json.dumps(body), content_type="application/json")
        assert r.status_code == status
