"""The searches API on a real Redis with no worker: hostile bodies get a 422 naming the field at fault, and a
stored search is read, listed, cancelled and deleted from convtrain's records alone."""

from __future__ import annotations

import copy

import pytest

from service.store.searches import SearchStore

LAYERS = [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
          {"type": "conv", "sx": 5, "filters": 4, "activation": "relu"},
          {"type": "pool", "sx": 2, "stride": 2},
          {"type": "softmax", "num_classes": 10}]
BODY = {"name": "api-search", "base": {"network": {"layers": LAYERS}, "trainer": {"method": "adadelta"},
                                       "budget": {"examples": 2000}},
        "space": {"network.layers[1].filters": {"choice": [2, 4]}}, "trials": 3, "seed": 4,
        "pruner": {"type": "hyperband", "min_examples": 500}}


def body(**changes) -> dict:
    return {**copy.deepcopy(BODY), **changes}


@pytest.mark.parametrize("changes, path", [
    ({"space": {f"trainer.p{i}": {"choice": [1]} for i in range(50)}}, "space"),
    ({"space": {"network.layers[1].filters": {"choice": list(range(1, 1000))}}}, "space.network.layers[1].filters.choice"),
    ({"space": {"network.layers[9].sx": {"choice": [3, 5]}}}, "space.network.layers[9].sx"),
    ({"space": {"trainer.l2_decay": {"float": [1, 0]}}}, "space.trainer.l2_decay.float"),
    ({"space": {"trainer.l2_decay": {"float": [0, 10**400]}}}, "space.trainer.l2_decay.float"),
    ({"space": {"trainer.batch_size": {"int": [1, 10**400]}}}, "space.trainer.batch_size.int"),
    ({"space": {"network.layers[1].filters": {"choice": [2, 10**400]}}}, "space.network.layers[1].filters.choice"),
    ({"trials": 100_000}, "trials"),
    ({"parallel": 0}, "parallel"),
    ({"pruner": {"type": "hyperband", "min_examples": 5000}}, "pruner.min_examples"),
    ({"architectures": [{"name": "bad", "patch": {"network": {"layers": [LAYERS[0], {"type": "conv", "sx": 40,
                                                                                     "filters": 2}, LAYERS[3]]}}}]},
     "architectures[0].patch.network.layers[1]"),
])
def test_hostile_bodies_get_a_422_naming_the_field(stored, changes, path):
    c, _services = stored
    r = c.post("/v1/searches", json=body(**changes))
    assert r.status_code == 422 and r.mimetype == "application/problem+json", r.get_json()
    problem = r.get_json()
    assert problem["title"] == "Invalid search" and problem["detail"]
    assert any(e["path"].startswith(path) for e in problem["errors"]), problem["errors"]
    assert c.get("/v1/searches").get_json()["searches"] == [], "nothing was stored"


def test_a_search_is_stored_read_cancelled_and_deleted(stored):
    c, services = stored
    r = c.post("/v1/searches", json=body())
    assert r.status_code == 202 and r.headers["Location"].endswith(r.get_json()["id"])
    search = r.get_json()
    assert search["status"] == "running" and search["trials"] == [] and search["best"] is None
    assert search["trials_total"] == 3 and search["seed"] == 4 and search["parallel"] == 2
    assert [s["id"] for s in c.get("/v1/searches").get_json()["searches"]] == [search["id"]]
    assert c.delete(f"/v1/searches/{search['id']}").status_code == 409, "a running search is cancelled first"
    # No worker here, so nothing advances it: a cancel asks for one step, which would end it.
    cancelled = c.post(f"/v1/searches/{search['id']}/cancel").get_json()
    assert cancelled["cancel_requested"] is True and cancelled["status"] == "running"
    store = SearchStore(services.store.r)
    token = store.lock(search["id"], 5)
    assert store.lock(search["id"], 5) is None, "one step at a time"
    assert store.write(search["id"], token, fields={"status": "cancelled"})
    store.unlock(search["id"], token)
    assert not store.write(search["id"], token, fields={"status": "running"}), "a step without the lock is fenced out"
    assert c.get(f"/v1/searches/{search['id']}").get_json()["status"] == "cancelled"
    for fmt, kind in (("md", "text/markdown"), ("csv", "text/csv"), ("png", "image/png")):
        report = c.get(f"/v1/searches/{search['id']}/report?format={fmt}")
        assert report.status_code == 200 and report.mimetype == kind
    assert c.delete(f"/v1/searches/{search['id']}").status_code == 204
    assert c.get(f"/v1/searches/{search['id']}").status_code == 404
    assert c.get("/v1/searches/not-an-id").status_code == 404


def test_a_user_has_a_quota_of_running_searches(tmp_path, redis_url):
    """Searches that wait for quota would otherwise pile up; an admin (the local user) has none."""
    from service import auth
    from service.api import create_app
    from service.config import Config

    path = tmp_path / "tokens.json"
    token = auth.create(path, "dave")
    application = create_app(Config(home=tmp_path, tokens_file=path, quota_searches=1), redis_url)
    application.extensions["convtrain"].store.r.flushdb()
    client = application.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    first = client.post("/v1/searches", json=body())
    assert first.status_code == 202, first.get_json()
    r = client.post("/v1/searches", json=body())
    assert r.status_code == 429 and r.get_json()["limit"] == "searches" and r.headers["Retry-After"]
    searches = SearchStore(application.extensions["convtrain"].store.r)
    assert searches.running("dave") == 1 and searches.running("erin") == 0, "counted per owner"
