"""Attacks and their answers: tokens, tenants, quotas, hostile input, headers; with real Redis and a real worker."""

from __future__ import annotations

import io
import json
import pickle
import ssl
from pathlib import Path

import pytest

from service import auth
from service.api import create_app
from service.store.jobs import JobStore
from tests.conftest import example, wait_status

pytestmark = pytest.mark.e2e


@pytest.fixture
def secured(own_service, tmp_path):
    """A service that requires tokens: alice and bob (users, bob with small quotas) and root (admin)."""
    path = tmp_path / "tokens.json"
    tokens = {"alice": auth.create(path, "alice"), "bob": auth.create(path, "bob"),
              "root": auth.create(path, "root", admin=True)}
    data = json.loads(path.read_text())
    for entry in data["tokens"]:
        if entry["principal"] == "bob":
            entry["quotas"] = {"active_jobs": 2, "submits_per_minute": 4, "examples_per_job": 50_000,
                               "params_per_network": 100_000}
    path.write_text(json.dumps(data))
    own_service.env["CONVTRAIN_TOKENS_FILE"] = str(path)
    app = create_app(own_service.config, own_service.url)
    return own_service, app.test_client(), tokens


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def small(examples: int = 300, **changes) -> dict:
    return example("net1-default.json", budget={"examples": examples}, **changes)


JOB_ENDPOINTS = [  # (method, path suffix, body)
    ("get", "", None), ("get", "/metrics", None), ("get", "/metrics?points=5", None), ("get", "/events", None),
    ("get", "/layers", None), ("get", "/layers/1/filters.png", None), ("get", "/predictions", None),
    ("post", "/predict", [0] * 784), ("post", "/cancel", None), ("post", "/pause", None), ("post", "/resume", None),
    ("patch", "/trainer", {"learning_rate": 0.1}), ("delete", "", None), ("get", "/model", None),
]


def call(client, method, path, body=None, headers=None):
    kwargs = {"headers": headers or {}}
    if body is not None:
        kwargs["json"] = body
    return getattr(client, method)(path, **kwargs)


def test_no_token_and_a_wrong_token_are_401_with_www_authenticate(secured):
    _, client, tokens = secured
    job_id = client.post("/v1/jobs", json=small(), headers=bearer(tokens["alice"])).get_json()["id"]
    for headers, error in (({}, None), (bearer("ct_wrong"), "invalid_token"), ({"Authorization": "Basic abc"}, None)):
        for method, suffix, body in [("post", "", small()), ("get", "", None)] + [
                (m, f"/{job_id}{s}", b) for m, s, b in JOB_ENDPOINTS]:
            response = call(client, method, f"/v1/jobs{suffix}", body, headers)
            assert response.status_code == 401, (method, suffix, headers)
            challenge = response.headers["WWW-Authenticate"]
            assert challenge.startswith("Bearer") and (error is None or error in challenge)
            assert response.mimetype == "application/problem+json"
    for public in ("/healthz", "/openapi.yaml", "/docs", "/"):
        assert client.get(public).status_code == 200, public
    assert client.get("/readyz").status_code == 503  # no worker, but no token needed to ask


def test_another_tenants_job_does_not_exist_for_you(secured):
    svc, client, tokens = secured
    svc.start_worker("w")
    job = client.post("/v1/jobs", json=small(1500), headers=bearer(tokens["alice"])).get_json()
    wait_status_as(client, job["id"], tokens["alice"], ("succeeded",))
    for method, suffix, body in JOB_ENDPOINTS:
        response = call(client, method, f"/v1/jobs/{job['id']}{suffix}", body, bearer(tokens["bob"]))
        assert response.status_code == 404, (method, suffix, response.status_code)
    assert client.get("/v1/jobs", headers=bearer(tokens["bob"])).get_json()["jobs"] == []
    mine = client.get("/v1/jobs", headers=bearer(tokens["alice"])).get_json()["jobs"]
    assert [j["id"] for j in mine] == [job["id"]] and mine[0]["owner"] == "alice"
    # Alice's own view works on every endpoint (no 401/404), and the model downloads.
    assert client.get(f"/v1/jobs/{job['id']}/model", headers=bearer(tokens["alice"])).status_code == 200
    assert client.get(f"/v1/jobs/{job['id']}/layers", headers=bearer(tokens["alice"])).status_code == 200


def wait_status_as(client, job_id, token, statuses, timeout=120):
    """wait_status with `token`: the job once its status is in `statuses`; TimeoutError at the deadline."""
    return wait_status(client, job_id, statuses, timeout=timeout, headers=bearer(token))


def test_an_admin_sees_and_controls_every_job(secured):
    _, client, tokens = secured
    alice = client.post("/v1/jobs", json=small(), headers=bearer(tokens["alice"])).get_json()
    bob = client.post("/v1/jobs", json=small(), headers=bearer(tokens["bob"])).get_json()
    listed = {j["id"] for j in client.get("/v1/jobs", headers=bearer(tokens["root"])).get_json()["jobs"]}
    assert {alice["id"], bob["id"]} <= listed
    assert client.get(f"/v1/jobs/{bob['id']}", headers=bearer(tokens["root"])).get_json()["owner"] == "bob"
    assert client.post(f"/v1/jobs/{alice['id']}/cancel", headers=bearer(tokens["root"])).status_code == 202
    assert client.get("/v1/whoami", headers=bearer(tokens["root"])).get_json() == {
        "principal": "root", "role": "admin", "tokens_required": True}


@pytest.mark.parametrize(("body", "limit"), [
    (small(60_000), "examples_per_job"),
    (small(100, network={"layers": [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
                                     {"type": "fc", "num_neurons": 300}, {"type": "softmax", "num_classes": 10}]}),
     "params_per_network"),
])
def test_a_job_over_a_size_quota_is_429(secured, body, limit):
    _, client, tokens = secured
    response = client.post("/v1/jobs", json=body, headers=bearer(tokens["bob"]))
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert response.get_json()["limit"] == limit and response.mimetype == "application/problem+json"
    assert client.post("/v1/jobs", json=body, headers=bearer(tokens["alice"])).status_code == 202  # alice's defaults


def test_active_jobs_and_submit_rate_quotas(secured):
    _, client, tokens = secured
    ids = [client.post("/v1/jobs", json=small(), headers=bearer(tokens["bob"])).get_json()["id"] for _ in range(2)]
    third = client.post("/v1/jobs", json=small(), headers=bearer(tokens["bob"]))
    assert third.status_code == 429 and third.get_json()["limit"] == "active_jobs"
    for job_id in ids:  # cancelling frees the quota
        client.post(f"/v1/jobs/{job_id}/cancel", headers=bearer(tokens["bob"]))
    fourth = client.post("/v1/jobs", json=small(), headers=bearer(tokens["bob"]))
    assert fourth.status_code == 202
    client.post(f"/v1/jobs/{fourth.get_json()['id']}/cancel", headers=bearer(tokens["bob"]))
    fifth = client.post("/v1/jobs", json=small(), headers=bearer(tokens["bob"]))  # the 4th accepted this minute
    assert fifth.status_code == 202
    client.post(f"/v1/jobs/{fifth.get_json()['id']}/cancel", headers=bearer(tokens["bob"]))
    sixth = client.post("/v1/jobs", json=small(), headers=bearer(tokens["bob"]))
    assert sixth.status_code == 429 and sixth.get_json()["limit"] == "submits_per_minute"
    assert 0 < int(sixth.headers["Retry-After"]) <= 60


def test_oversized_and_deeply_nested_bodies(secured):
    _, client, tokens = secured
    big = client.post("/v1/jobs", data="[" + " " * (2 << 20) + "]", content_type="application/json",
                      headers=bearer(tokens["alice"]))
    assert big.status_code == 413
    deep = client.post("/v1/jobs", data="{\"a\":" * 100 + "1" + "}" * 100, content_type="application/json",
                       headers=bearer(tokens["alice"]))
    assert deep.status_code == 400 and "nested" in deep.get_json()["detail"]


HOSTILE = [  # (id, the request made with a marker file's path, the field its 422 names)
    ("dataset path", lambda marker: small(data={"dataset": "../../../../etc"}), "data.dataset"),
    ("python in a layer type", lambda marker: small(network={"layers": [
        {"type": f"__import__('os').system('touch {marker}')"}]}), "network.layers[0].type"),
    ("dunder field", lambda marker: small(network={"layers": [
        {"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1, "__class__": "os"},
        {"type": "softmax", "num_classes": 10}]}), "network.layers[0].__class__"),
    ("node in the paste", lambda marker: {
        "convnetjs": f"require('child_process').execSync('touch {marker}'); layer_defs.push({{type:'input'}});",
        "budget": {"examples": 10}}, "convnetjs"),
    ("a function in the paste", lambda marker: {
        "convnetjs": "layer_defs.push({type: (function(){ return 'input' })()});", "budget": {"examples": 10}},
     "convnetjs"),
]


@pytest.mark.parametrize(("make", "path"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_strings_that_look_like_paths_or_code_are_refused_as_data(secured, tmp_path, make, path):
    """Each is a 422 naming its field, and nothing runs: the API parses the request here, in this test's own
    process (the test client), so code run while parsing would have made the marker; and no job is created,
    so no worker ever gets one to run (a path-like string that is accepted is the next test's)."""
    _, client, tokens = secured
    marker = tmp_path / "pwned"
    response = client.post("/v1/jobs", json=make(marker), headers=bearer(tokens["alice"]))
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert path in [e["path"] for e in response.get_json()["errors"]]
    assert client.get("/v1/jobs", headers=bearer(tokens["root"])).get_json()["jobs"] == []
    assert not marker.exists()


def traversal_targets(folder: Path) -> dict[Path, bytes | None]:
    """What "../../../../etc/passwd" could reach from `folder` or any folder above it, and what it holds."""
    return {d / "etc" / "passwd": (d / "etc" / "passwd").read_bytes() if (d / "etc" / "passwd").is_file() else None
            for d in (folder, *folder.parents)}


def test_a_name_that_looks_like_a_path_is_only_a_label(secured, tmp_path):
    """Accepted, trained to the end by a real worker that writes checkpoints, snapshots, the model and its
    exports: every file lands in the job's own artifact folder, and no etc/passwd anywhere above it is
    created or changed (/etc/passwd included: a worker that runs as root could overwrite it)."""
    svc, client, tokens = secured
    svc.start_worker("w")
    root = svc.config.home / "artifacts"
    before, before_targets = set(tmp_path.rglob("*")), traversal_targets(root)
    name = "../../../../etc/passwd"
    response = client.post("/v1/jobs", json=small(600, name=name), headers=bearer(tokens["alice"]))
    assert response.status_code == 202
    job = response.get_json()
    assert job["name"] == name  # a name is only a label
    folder = root / job["id"]
    job = wait_status_as(client, job["id"], tokens["alice"], ("succeeded", "failed"))
    assert job["status"] == "succeeded", job["error"]
    assert job["name"] == name

    created = {p for p in set(tmp_path.rglob("*")) - before if svc.redis.folder not in (p, *p.parents)}
    assert any(p.name == "model.pt" for p in created), "the worker wrote the model"
    outside = {p for p in created if p != folder and folder not in p.parents and p not in folder.parents}
    assert not outside, f"written outside the job's artifact folder {folder}: {sorted(outside)}"
    assert not any(p.name == "passwd" or p.name == "etc" for p in created)
    assert traversal_targets(root) == before_targets
    download = client.get(f"/v1/jobs/{job['id']}/model", headers=bearer(tokens["alice"]))
    disposition = download.headers["Content-Disposition"]
    filename = disposition.split('filename="')[1].rstrip('"')
    assert download.status_code == 200 and "/" not in filename and "\\" not in filename, disposition


def test_a_pickle_where_weights_belong_is_refused_without_running(secured, tmp_path):
    from worker.trainer import load_state

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = pickle.dumps(Exploit())
    with pytest.raises(Exception):
        load_state(payload)
    buffer = io.BytesIO()
    import torch
    torch.save({"state_dict": Exploit()}, buffer)
    with pytest.raises(Exception):
        load_state(buffer.getvalue())
    assert not marker.exists()

    # The same through the service: a succeeded job whose model file was replaced by a pickle.
    svc, client, tokens = secured
    svc.start_worker("w")
    job = client.post("/v1/jobs", json=small(600), headers=bearer(tokens["alice"])).get_json()
    wait_status_as(client, job["id"], tokens["alice"], ("succeeded",))
    svc.config.home.joinpath("artifacts", job["id"], "model.pt").write_bytes(buffer.getvalue())
    JobStore.from_url(svc.url).r.hset(f"convtrain:job:{job['id']}", "model",
                                       json.dumps({"file": "model.pt", "format": "pt", "sha256": "forged"}))
    answer = client.post(f"/v1/jobs/{job['id']}/predict", json=[0] * 784, headers=bearer(tokens["alice"]))
    assert answer.status_code == 500 and answer.mimetype == "application/problem+json"
    assert not marker.exists()


def test_security_headers_on_api_and_dashboard(secured):
    _, client, tokens = secured
    for response in (client.get("/"), client.get("/docs"), client.get("/healthz"),
                     client.get("/v1/jobs", headers=bearer(tokens["alice"])), client.get("/v1/jobs")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_the_dashboard_session_cookie(secured):
    _, client, tokens = secured
    assert client.post("/v1/session", json={"token": "ct_nope"}).status_code == 401
    response = client.post("/v1/session", json={"token": tokens["alice"]})
    assert response.status_code == 204
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/v1/whoami").get_json()["principal"] == "alice"  # the test client keeps the cookie
    assert client.delete("/v1/session").status_code == 204
    assert client.get("/v1/whoami").status_code == 401


def test_serve_refuses_a_public_address_without_tokens(tmp_path, capsys):
    from service.config import Config
    from service.cli.serve import run

    assert run(Config(home=tmp_path), host="0.0.0.0", port=1) == 2
    assert "refusing" in capsys.readouterr().err
    assert not (tmp_path / "redis").exists()  # it started nothing


def test_a_password_protected_redis_works_end_to_end(tmp_path):
    from service.cli.embedded import EmbeddedRedis
    from tests.conftest import Service

    secret = EmbeddedRedis(tmp_path / "redis", password="s3cret-pw")
    secret.start()
    svc = Service(tmp_path, secret.url)
    try:
        svc.start_worker("pw-worker")
        client = create_app(svc.config, svc.url).test_client()
        job = client.post("/v1/jobs", json=small(300)).get_json()
        assert wait_status(client, job["id"], ("succeeded", "failed"))["status"] == "succeeded"
        anonymous = create_app(svc.config, secret.url.replace(":s3cret-pw@", "")).test_client()
        assert anonymous.get("/v1/jobs").status_code == 503  # NOAUTH is an unreachable store, not a 500
    finally:
        svc.stop_workers()
        secret.stop()


def test_tls_urls_configure_tls():
    from service.celery_app import make_celery
    from service.config import Config

    app = make_celery(Config(), "rediss://:pw@redis.example:6380/0")
    # CERT_NONE is 0 and CERT_OPTIONAL 1: only CERT_REQUIRED verifies the server.
    assert app.conf.broker_use_ssl["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    store = JobStore.from_url("rediss://:pw@redis.example:6380/0")
    assert store.r.connection_pool.connection_class.__name__ == "SSLConnection"
    connection = store.r.connection_pool.make_connection()  # built, not connected
    assert connection.cert_reqs == ssl.CERT_REQUIRED and connection.check_hostname is True


def test_idempotency_keys_belong_to_their_principal(secured):
    _, client, tokens = secured
    body = small()
    alice = client.post("/v1/jobs", json=body, headers={**bearer(tokens["alice"]), "Idempotency-Key": "k1"})
    bob = client.post("/v1/jobs", json=body, headers={**bearer(tokens["bob"]), "Idempotency-Key": "k1"})
    assert alice.status_code == bob.status_code == 202
    assert bob.get_json()["id"] != alice.get_json()["id"] and bob.get_json()["owner"] == "bob"
    again = client.post("/v1/jobs", json=body, headers={**bearer(tokens["alice"]), "Idempotency-Key": "k1"})
    assert again.status_code == 200 and again.get_json()["id"] == alice.get_json()["id"]


def test_a_refused_submit_does_not_use_up_its_idempotency_key(secured):
    _, client, tokens = secured
    headers = {**bearer(tokens["bob"]), "Idempotency-Key": "retry-me"}
    assert client.post("/v1/jobs", json=small(60_000), headers=headers).status_code == 429  # over bob's quota
    accepted = client.post("/v1/jobs", json=small(300), headers=headers)
    assert accepted.status_code == 202  # the key was released: a corrected request may use it


def test_a_sweep_cannot_start_from_weights(secured):
    _, client, tokens = secured
    body = {"base": {**small(), "init": {"job": "0123456789abcdef"}}, "variants": [{"name": "a", "patch": {}}]}
    response = client.post("/v1/sweeps", json=body, headers=bearer(tokens["alice"]))
    assert response.status_code == 422 and any(e["path"] == "init" for e in response.get_json()["errors"])


def test_api_refuses_a_public_address_without_tokens(tmp_path, capsys):
    from service.config import Config
    from service.cli.serve import exec_api

    assert exec_api(Config(home=tmp_path, redis_url="redis://127.0.0.1:1/0"), host="0.0.0.0", port=1, processes=1) == 2
    assert "refusing" in capsys.readouterr().err


def test_a_removed_tokens_file_locks_everyone_out(secured, tmp_path):
    svc, client, tokens = secured
    (tmp_path / "tokens.json").unlink()
    response = client.get("/v1/jobs", headers=bearer(tokens["root"]))
    assert response.status_code == 401


def test_latest_layer_pictures_are_private_and_not_cached(secured):
    svc, client, tokens = secured
    svc.start_worker("w")
    job = client.post("/v1/jobs", json=small(600), headers=bearer(tokens["alice"])).get_json()
    wait_status_as(client, job["id"], tokens["alice"], ("succeeded",))
    latest = client.get(f"/v1/jobs/{job['id']}/layers/1/filters.png", headers=bearer(tokens["alice"]))
    numbered = client.get(f"/v1/jobs/{job['id']}/layers/1/filters.png?snapshot=1", headers=bearer(tokens["alice"]))
    assert latest.headers["Cache-Control"] == "private, no-cache"
    assert numbered.headers["Cache-Control"].startswith("private, max-age=")
