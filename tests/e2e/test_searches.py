"""Searches end to end: Optuna in real Celery workers on a real Redis, each trial a real MNIST job.

Small nets and budgets (a few thousand examples, rungs from 500), so that each search takes seconds."""

from __future__ import annotations

import csv
import io
import json
import signal

import pytest
from PIL import Image

from service.cli.main import main
from tests.conftest import wait_for, wait_status

pytestmark = pytest.mark.e2e

LAYERS = [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
          {"type": "conv", "sx": 5, "filters": 4, "stride": 2, "activation": "relu"},
          {"type": "pool", "sx": 2, "stride": 2},
          {"type": "softmax", "num_classes": 10}]
TWO_CONVS = LAYERS[:3] + [{"type": "conv", "sx": 3, "filters": 4, "pad": 1, "activation": "relu"}, LAYERS[3]]


def small_search(trials: int = 6, examples: int = 3000, **changes) -> dict:
    body = {
        "name": "e2e-search",
        "base": {"network": {"layers": LAYERS}, "trainer": {"method": "adadelta", "batch_size": 20},
                 "budget": {"examples": examples}, "device": "cpu"},
        "architectures": [{"name": "one conv", "patch": {}},
                          {"name": "two convs", "patch": {"network": {"layers": TWO_CONVS}}}],
        "space": {"network.layers[1].filters": {"choice": [2, 4, 8]},
                  "network.layers[3].filters": {"choice": [4, 8]},
                  "trainer.l2_decay": {"float": [1e-5, 1e-2], "log": True}},
        "trials": trials, "parallel": 1, "sampler": "random", "seed": 3, "val_slice": 500,
        "pruner": {"type": "successive_halving", "min_examples": 500, "reduction_factor": 2},
    }
    body.update(changes)
    return body


def wait_search(client, search_id: str, timeout: float = 300) -> dict:
    """Poll the search until it has ended; the deadline only detects a hang."""
    def ended():
        search = client.get(f"/v1/searches/{search_id}").get_json()
        return search if search["status"] != "running" else None
    return wait_for(ended, timeout, f"search {search_id} ended", every=0.2)


def test_a_small_search_prunes_and_reports(client):
    r = client.post("/v1/searches", json=small_search())
    assert r.status_code == 202, r.get_json()
    search = wait_search(client, r.get_json()["id"])
    assert search["status"] == "succeeded", search
    trials = search["trials"]
    assert len(trials) == 6 and search["trials_asked"] == 6
    assert {t["status"] for t in trials} <= {"succeeded", "pruned"}
    assert any(t["status"] == "pruned" for t in trials), [t["status"] for t in trials]
    # The second conv layer's filters are a path of "two convs" only: "one conv" trials skip it.
    for t in trials:
        if t["architecture"] == "one conv":
            assert t["skipped"] == ["network.layers[3].filters"] and "network.layers[3].filters" not in t["params"]
        else:
            assert t["skipped"] == [] and t["params"]["network.layers[3].filters"] in (4, 8)
    for t in trials:
        job = client.get(f"/v1/jobs/{t['job']}").get_json()
        assert job["status"] == t["status"] and job["model"] is not None, "a pruned trial keeps its weights"
        assert t["rungs"] and t["rungs"][0]["examples"] == 500
        if t["status"] == "pruned":
            assert t["examples"] < 3000
            assert client.get(f"/v1/jobs/{t['job']}/model?format=onnx").status_code == 200, "its exports too"
        else:
            assert t["examples"] == 3000 and [r["examples"] for r in t["rungs"]] == [500, 1000, 2000]
    assert search["progress"]["examples_spent"] == sum(t["examples"] for t in trials) < 6 * 3000
    best = search["best"]
    assert best["val_acc"] == max(t["final_val_acc"] for t in trials if t["status"] == "succeeded")
    assert 0.3 < best["test_acc"] <= 1 and best["network"]["layers"][0]["type"] == "input"
    assert "net.makeLayers(layer_defs);" in best["javascript"]

    md = client.get(f"/v1/searches/{search['id']}/report?format=md").get_data(as_text=True)
    assert md.count("\n| ") == 1 + 6 and f"job `{best['job']}`" in md
    rows = list(csv.DictReader(io.StringIO(
        client.get(f"/v1/searches/{search['id']}/report?format=csv").get_data(as_text=True))))
    assert [int(row["rank"]) for row in rows] == list(range(1, 7)) and rows[0]["job"] == best["job"]
    png = client.get(f"/v1/searches/{search['id']}/report?format=png")
    assert png.mimetype == "image/png" and Image.open(io.BytesIO(png.data)).size == (1500, 620)

    listed = client.get("/v1/searches").get_json()["searches"]
    assert search["id"] in [s["id"] for s in listed]
    assert client.delete(f"/v1/searches/{search['id']}").status_code == 204
    assert client.get(f"/v1/searches/{search['id']}").status_code == 404
    assert client.get(f"/v1/jobs/{best['job']}").status_code == 404, "its trials' jobs go with it"


def test_invalid_candidates_are_recorded_and_cost_no_training(client):
    # A 40x40 kernel cannot fit a 24x24 input: every trial that draws it is invalid, and no job is made for it.
    body = small_search(trials=5, examples=1000, architectures=[{"name": "one conv", "patch": {}}],
                        space={"network.layers[1].sx": {"choice": [3, 40]}}, pruner={"type": "none"}, seed=5)
    search = wait_search(client, client.post("/v1/searches", json=body).get_json()["id"])
    assert search["status"] == "succeeded"
    invalid = [t for t in search["trials"] if t["params"]["network.layers[1].sx"] == 40]
    valid = [t for t in search["trials"] if t["params"]["network.layers[1].sx"] == 3]
    assert invalid and valid and len(invalid) + len(valid) == 5
    for t in invalid:
        assert t["status"] == "invalid" and t["job"] is None and t["examples"] == 0
        assert t["errors"] and t["errors"][0]["path"].startswith("network.layers[1]")
    assert all(t["status"] == "succeeded" and t["examples"] == 1000 for t in valid)
    assert search["progress"]["invalid"] == len(invalid)
    assert search["progress"]["examples_spent"] == 1000 * len(valid)


def test_a_cancelled_search_stops_its_trials(client):
    body = small_search(trials=4, examples=200_000, pruner={"type": "none"})
    search_id = client.post("/v1/searches", json=body).get_json()["id"]

    def training():
        trials = client.get(f"/v1/searches/{search_id}").get_json()["trials"]
        return trials if trials and trials[0]["status"] == "running" else None

    first = wait_for(training, 120, "the first trial training")[0]
    r = client.post(f"/v1/searches/{search_id}/cancel")
    assert r.status_code == 202 and r.get_json()["cancel_requested"] is True
    search = wait_search(client, search_id)
    assert search["status"] == "cancelled" and search["trials_asked"] == 1, "no trial is asked after a cancel"
    assert [t["status"] for t in search["trials"]] == ["cancelled"]
    assert client.get(f"/v1/jobs/{first['job']}").get_json()["status"] == "cancelled"
    assert search["trials"][0]["examples"] < 200_000
    again = client.post(f"/v1/searches/{search_id}/cancel")
    assert again.status_code == 409 and again.mimetype == "application/problem+json"


def test_a_paused_trial_holds_its_place_and_resumes(client):
    body = small_search(trials=2, examples=60_000, pruner={"type": "none"})
    search_id = client.post("/v1/searches", json=body).get_json()["id"]

    def training():
        trials = client.get(f"/v1/searches/{search_id}").get_json()["trials"]
        return trials[0] if trials and trials[0]["status"] == "running" else None

    first = wait_for(training, 120, "the first trial training")
    assert client.post(f"/v1/jobs/{first['job']}/pause").status_code == 202
    wait_status(client, first["job"], ("paused",))
    search = client.get(f"/v1/searches/{search_id}").get_json()
    assert search["status"] == "running" and search["trials_asked"] == 1, "a paused trial keeps its place"
    assert client.post(f"/v1/jobs/{first['job']}/resume").status_code == 202
    search = wait_search(client, search_id)
    assert search["status"] == "succeeded" and [t["status"] for t in search["trials"]] == ["succeeded"] * 2
    assert client.get(f"/v1/jobs/{first['job']}").get_json()["attempts"] == 2, "resumed, not trained again"


def test_a_worker_killed_during_a_trial_loses_and_duplicates_nothing(own_service):
    from service.api import create_app

    svc = own_service
    victim = svc.start_worker("victim")
    client = create_app(svc.config, svc.url).test_client()
    body = small_search(trials=2, examples=30_000, pruner={"type": "none"}, sampler="random")
    search_id = client.post("/v1/searches", json=body).get_json()["id"]

    def checkpointed():
        trials = client.get(f"/v1/searches/{search_id}").get_json()["trials"]
        if not trials or not trials[0]["job"]:
            return None
        points = client.get(f"/v1/jobs/{trials[0]['job']}/metrics?limit=10000").get_json()["points"]
        return trials[0] if any(p.get("event") == "checkpoint" for p in points) else None

    first = wait_for(checkpointed, 120, "the first trial checkpointed")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    svc.start_worker("rescuer")
    search = wait_search(client, search_id)
    assert search["status"] == "succeeded" and search["trials_asked"] == 2
    assert [t["number"] for t in search["trials"]] == [0, 1] and search["trials"][0]["job"] == first["job"]
    assert all(t["status"] == "succeeded" and t["examples"] == 30_000 for t in search["trials"])
    job = client.get(f"/v1/jobs/{first['job']}").get_json()
    assert job["attempts"] == 2 and job["worker"] == "rescuer", "resumed by the rescuer, not trained again"
    jobs = client.get("/v1/jobs?limit=100").get_json()["jobs"]
    assert sorted(j["id"] for j in jobs) == sorted(t["job"] for t in search["trials"]), "one job per trial"


def test_convtrain_search_waits_prints_the_leaderboard_and_saves_the_report(http_api, client, tmp_path, capsys):
    request = tmp_path / "search.json"
    request.write_text(json.dumps(small_search(trials=3, examples=1000)))
    out = tmp_path / "reports"
    status = main(["search", str(request), "--wait", "--out", str(out), "--url", http_api])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    search_id = captured.out.splitlines()[0]
    assert "## Search e2e-search" in captured.out and captured.out.count("\n| ") == 1 + 3
    assert f"search {search_id}" in captured.err and "trials 3/3 done" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["search.csv", "search.md", "search.png"]
    # A search the service refuses is exit 1 with the field at fault.
    request.write_text(json.dumps(small_search(space={"network.layers[9].sx": {"choice": [3]}})))
    assert main(["search", str(request), "--url", http_api]) == 1
    assert "space.network.layers[9].sx" in capsys.readouterr().err
    assert client.delete(f"/v1/searches/{search_id}").status_code == 204
