"""The service end to end: a real redis-server, a real Celery worker process, real MNIST."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import torch

from service.spec import netspec, schemas
from tests.conftest import ROOT, data_dir, example, wait_for, wait_status

pytestmark = pytest.mark.e2e


def small(examples: int = 3000, **changes) -> dict:
    return example("net1-default.json", budget={"examples": examples}, **changes)


def test_submit_poll_metrics_download_and_predict(client):
    response = client.post("/v1/jobs", json=small(seed=5, name="net1 small"))
    assert response.status_code == 202
    job = response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["progress"]["examples_total"] == 3000
    assert job["network"]["params"] == 5994
    assert job["request"]["defaults"] == {"trainer.eps": schemas.EPS_SOURCES[1e-6]}  # adadelta, as in ConvNetJS 0.3.0

    job = wait_status(client, job["id"], ("succeeded", "failed"))
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"] == {"examples_seen": 3000, "examples_total": 3000, "fraction": 1.0, "eta_seconds": None}
    assert job["attempts"] == 1 and job["worker"] == "shared-worker" and job["device"] == "cpu"
    assert job["started_at"] >= job["created_at"] and job["finished_at"] >= job["started_at"]
    result = job["result"]
    assert set(result) >= {"examples_seen", "train_acc", "val_acc", "test_acc", "class_loss", "l2_loss",
                           "examples_per_second", "seconds"}
    assert result["test_acc"] > 0.8

    everything = client.get(f"/v1/jobs/{job['id']}/metrics").get_json()["points"]
    seqs = [p["seq"] for p in everything]
    assert seqs == list(range(1, len(seqs) + 1))
    metric_points = [p for p in everything if "event" not in p]
    assert len(metric_points) >= 3 and metric_points[-1]["examples"] == 3000
    examples = [p["examples"] for p in metric_points]
    # At least 100 examples apart, except the final point at the end of the budget.
    assert examples == sorted(examples) and all(b - a >= 100 for a, b in zip(examples, examples[1:-1]))
    cursor = seqs[2]
    page = client.get(f"/v1/jobs/{job['id']}/metrics?after={cursor}&limit=2").get_json()
    assert [p["seq"] for p in page["points"]] == seqs[3:5] and page["next"] == seqs[4]
    rest = client.get(f"/v1/jobs/{job['id']}/metrics?after={page['next']}").get_json()
    assert [p["seq"] for p in rest["points"]] == seqs[5:] and rest["next"] == seqs[-1]
    assert client.get(f"/v1/jobs/{job['id']}/metrics?after={seqs[-1]}").get_json() == {"points": [], "next": seqs[-1]}

    download = client.get(f"/v1/jobs/{job['id']}/model")
    assert download.status_code == 200 and "attachment" in download.headers["Content-Disposition"]
    saved = torch.load(io.BytesIO(download.data), weights_only=True)
    from worker import data
    from worker.model import Net

    net = Net(netspec.analyze(saved["network"]))
    net.load_state_dict(saved["state_dict"])
    net.eval()
    test = data.load("mnist", data_dir()).test
    with torch.no_grad():
        predicted = net(data.to_input(data.center_crop(test.images, 24, 24))).argmax(1)
    accuracy = (predicted == test.labels).float().mean().item()
    assert accuracy == pytest.approx(result["test_acc"], abs=1e-4)


def test_a_demo_paste_names_where_its_eps_came_from(client):
    paste = {"convnetjs": (ROOT / "examples" / "net1-default.js").read_text().replace("adadelta", "adam"),
             "budget": {"examples": 100}}
    response = client.post("/v1/jobs", json=paste)
    assert response.status_code == 202, response.get_json()
    job = wait_status(client, response.get_json()["id"], ("succeeded", "failed"))
    assert job["status"] == "succeeded", job["error"]
    assert (job["request"]["trainer"]["method"], job["request"]["trainer"]["eps"]) == ("adam", 1e-8)
    assert job["request"]["defaults"] == {"trainer.eps": schemas.EPS_SOURCES[1e-8]}


def test_list_is_newest_first_with_cursor_and_status_filter(client):
    ids = [client.post("/v1/jobs", json=small(200, name=f"list-{i}")).get_json()["id"] for i in range(3)]
    for job_id in ids:
        wait_status(client, job_id, ("succeeded",))
    first = client.get("/v1/jobs?limit=2").get_json()
    assert [j["id"] for j in first["jobs"]] == ids[::-1][:2] and first["next"]
    second = client.get(f"/v1/jobs?limit=2&cursor={first['next']}").get_json()
    assert second["jobs"][0]["id"] == ids[0]
    succeeded = client.get("/v1/jobs?status=succeeded&limit=500").get_json()["jobs"]
    assert {j["status"] for j in succeeded} == {"succeeded"} and set(ids) <= {j["id"] for j in succeeded}
    assert client.get("/v1/jobs?status=nonsense").status_code == 400
    assert client.get("/v1/jobs?limit=0").status_code == 400


def timeline(client, job_id: str) -> list[dict]:
    return client.get(f"/v1/jobs/{job_id}/metrics?limit=10000").get_json()["points"]


def test_cancel_a_running_job_stops_it_before_its_budget(client):
    """How soon a cancel lands is bench/'s question; this test proves that it stops the job mid-run."""
    budget = 2_000_000
    job = client.post("/v1/jobs", json=small(budget)).get_json()
    wait_for(lambda: client.get(f"/v1/jobs/{job['id']}").get_json()["progress"]["examples_seen"] > 0,
             what="the job training")
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    job = wait_status(client, job["id"], ("cancelled", "succeeded", "failed"), timeout=120)  # hang detection only
    assert job["status"] == "cancelled" and job["finished_at"] is not None and job["result"] is None
    seen = job["progress"]["examples_seen"]
    assert 0 < seen < budget, "the worker stopped training mid-run, long before its budget"
    points = timeline(client, job["id"])
    kinds = [p["event"] for p in points if "event" in p]
    assert kinds[0] == "started" and kinds[-1] == "cancelled" and "finished" not in kinds
    assert points[-1]["event"] == "cancelled" and points[-1]["examples"] == seen  # the timeline ends with the cancel
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 409
    assert client.get(f"/v1/jobs/{job['id']}/model").status_code == 409
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 404


def test_a_queued_job_that_is_cancelled_never_starts(own_service):
    from service.api import create_app

    client = create_app(own_service.config, own_service.url).test_client()
    job = client.post("/v1/jobs", json=small(500)).get_json()
    assert client.post(f"/v1/jobs/{job['id']}/cancel").get_json()["status"] == "cancelled"
    after = client.post("/v1/jobs", json=small(200, name="queued after the cancelled one")).get_json()
    own_service.start_worker("late-worker")
    # One worker, one slot, one queue served in order: once the job queued after the cancelled one has run,
    # the worker has read the cancelled job's message and discarded it.
    later = wait_status(client, after["id"], ("succeeded", "failed"))
    assert later["status"] == "succeeded" and later["worker"] == "late-worker"
    job = client.get(f"/v1/jobs/{job['id']}").get_json()
    assert job["status"] == "cancelled" and job["started_at"] is None and job["attempts"] == 0
    assert job["worker"] is None and job["progress"]["examples_seen"] == 0
    assert [p["event"] for p in timeline(client, job["id"])] == ["cancelled"]


def test_a_running_job_cannot_be_deleted_and_its_model_is_not_ready(client):
    job = client.post("/v1/jobs", json=small(2_000_000)).get_json()
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 409
    model = client.get(f"/v1/jobs/{job['id']}/model")
    assert model.status_code == 409 and model.mimetype == "application/problem+json"
    client.post(f"/v1/jobs/{job['id']}/cancel")
    wait_status(client, job["id"], ("cancelled",))


BAD_REQUESTS = [
    # (description, kwargs for client.post, status, a path in errors or None, text in the body)
    ("malformed JSON", {"data": "{\"network\": ", "content_type": "application/json"}, 400, None, "not valid JSON"),
    ("not JSON at all", {"data": "layers=3", "content_type": "application/x-www-form-urlencoded"}, 415, None, "application/json"),
    ("no content type", {"data": "{}"}, 415, None, "application/json"),
    ("binary garbage", {"data": b"\xff\xfe\x00garbage", "content_type": "application/json"}, 400, None, "UTF-8"),
    ("a JSON list", {"json": [1, 2]}, 422, "", "JSON object"),
    ("NaN literal", {"data": "{\"seed\": NaN}", "content_type": "application/json"}, 400, None, "NaN"),
    ("deep nesting", {"data": "[" * 5000 + "]" * 5000, "content_type": "application/json"}, 400, None, "nested deeper"),
    ("huge integer", {"data": "{\"seed\": " + "9" * 5000 + "}", "content_type": "application/json"}, 400, None, "not valid JSON"),
    ("invalid spec", {"json": {"network": {"layers": [{"type": "conv"}]}, "budget": {"examples": 10}}}, 422,
     "network.layers[0].type", "input layer"),
    ("no budget", {"json": {"network": example("net1-default.json")["network"]}}, 422, "budget", "budget"),
    ("budget over the limit", {"json": small(10**9)}, 422, "budget.examples", "more than the limit"),
    ("unknown device", {"json": small(device="tpu")}, 422, "device", "unknown device"),
    ("unicode name too long", {"json": small(name="ü" * 300)}, 422, "name", "longer than"),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_input_gets_a_clear_4xx(client, case):
    _, kwargs, status, path, text = case
    response = client.post("/v1/jobs", **kwargs)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and text in json.dumps(body)
    if path is not None:
        assert path in [e["path"] for e in body["errors"]]


def test_oversized_body_is_413(app):
    client = app.test_client()
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = client.post("/v1/jobs", data="[" + " " * limit + "]", content_type="application/json")
    assert response.status_code == 413 and response.mimetype == "application/problem+json"


def test_invalid_spec_body_equals_validate_json(client, tmp_path):
    body = {"network": {"layers": [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
                                   {"type": "pool", "sx": 30}, {"type": "softmax", "num_classes": 10}]},
            "budget": {"examples": 100}}
    response = client.post("/v1/jobs", json=body)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(body))
    cli = subprocess.run([sys.executable, "-m", "service.cli", "validate", "--json", str(path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert cli.returncode == 1
    assert response.status_code == 422 and response.get_json()["errors"] == json.loads(cli.stdout)["errors"]
    validate = client.post("/v1/networks/validate", json=body)
    assert validate.status_code == 422 and validate.get_json()["errors"] == json.loads(cli.stdout)["errors"]


def test_validate_endpoint_returns_the_shape_table(client):
    response = client.post("/v1/networks/validate", json=example("net1-default.json")["network"])
    assert response.status_code == 200
    body = response.get_json()
    assert [l["out_sx"] for l in body["layers"] if l["type"] in ("conv", "pool")] == [24, 12, 12, 4]
    assert body["params"] == 5994


def test_unknown_ids_are_404_everywhere(client):
    for method, path in (("get", ""), ("get", "/metrics"), ("post", "/cancel"), ("delete", ""), ("get", "/model"),
                         ("post", "/pause"), ("post", "/resume")):
        for job_id in ("0123456789abcdef", "../../etc/passwd", "x" * 300):
            response = getattr(client, method)(f"/v1/jobs/{job_id}{path}")
            assert response.status_code == 404, (method, path, job_id)
            assert response.mimetype == "application/problem+json"


def test_datasets_health_and_readiness(client):
    datasets = client.get("/v1/datasets").get_json()["datasets"]
    mnist = next(d for d in datasets if d["name"] == "mnist")
    assert mnist["present"] and (mnist["width"], mnist["height"], mnist["depth"], mnist["num_classes"]) == (28, 28, 1, 10)
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and "shared-worker" in ready.get_json()["workers"]


def test_readyz_is_503_without_workers_or_redis(own_service):
    from service.api import create_app

    client = create_app(own_service.config, own_service.url).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503 and response.headers["Retry-After"]
    own_service.redis.stop()
    for response in (client.get("/readyz"), client.get("/v1/jobs"), client.post("/v1/jobs", json=small(100))):
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert response.mimetype == "application/problem+json"


def test_the_api_never_imports_torch():
    code = ("import sys; from service.api import create_app; from service.config import Config; "
            "import service.cli, service.cli.jobs, service.cli.validate, service.cli.serve, service.store.reaper; "
            "app = create_app(Config(), 'redis://127.0.0.1:1/0'); app.test_client().get('/healthz'); "
            "app.test_client().post('/v1/networks/validate', json={'layers': []}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'numpy', 'worker')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_resume_needs_a_paused_job_and_cursors_must_be_numbers(own_service):
    from service.api import create_app

    client = create_app(own_service.config, own_service.url).test_client()
    job = client.post("/v1/jobs", json=small(500)).get_json()
    assert client.post(f"/v1/jobs/{job['id']}/resume").status_code == 409  # queued, not paused
    assert client.post(f"/v1/jobs/{job['id']}/pause").get_json()["status"] == "paused"
    assert client.post(f"/v1/jobs/{job['id']}/resume").get_json()["status"] == "queued"
    for cursor in ("nan", "inf", "abc"):
        assert client.get(f"/v1/jobs?cursor={cursor}").status_code == 400
    assert client.get("/v1/jobs?limit=1_0").status_code == 400


def test_trainer_changes_keep_full_precision(own_service):
    from service.api import create_app

    client = create_app(own_service.config, own_service.url).test_client()
    job = client.post("/v1/jobs", json=small(500, seed=2**62 + 1)).get_json()
    client.post(f"/v1/jobs/{job['id']}/pause")
    changed = client.patch(f"/v1/jobs/{job['id']}/trainer", json={"learning_rate": 0.123456789012345678})
    assert changed.status_code == 200
    request = changed.get_json()["request"]
    assert request["seed"] == 2**62 + 1 and request["trainer"]["learning_rate"] == 0.123456789012345678
