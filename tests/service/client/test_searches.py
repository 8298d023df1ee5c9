"""What the client sends for a search and how it pages, waits for, reads and saves one, against a scripted server."""

from __future__ import annotations

import json

import pytest

from service.client import ApiError, Client, Job, Search
from tests.service.client.conftest import reply

BODY = {"name": "s", "base": {"network": {"layers": [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
                                                     {"type": "softmax", "num_classes": 10}]}},
        "space": {"trainer.l2_decay": {"float": [1e-5, 1e-2], "log": True}}, "trials": 3}


def trial(number: int, status: str, job: str | None, val_acc: float | None = None) -> dict:
    return {"number": number, "job": job, "architecture": "one conv", "params": {"trainer.l2_decay": 0.001},
            "skipped": [], "status": status, "val_acc": val_acc, "final_val_acc": val_acc, "test_acc": val_acc,
            "test_acc_crops": None, "examples": 1000 if job else 0, "rungs": [], "errors": []}


def record(status: str, trials: list[dict], best: float | None = None) -> dict:
    done = [t for t in trials if t["status"] not in ("queued", "running", "paused")]
    return {"id": "s1", "name": "s", "status": status, "trials_total": 3, "trials_asked": len(trials),
            "parallel": 2, "cancel_requested": False,
            "progress": {"trials_done": len(done), "trials_running": len(trials) - len(done),
                         "pruned": sum(t["status"] == "pruned" for t in trials),
                         "invalid": sum(t["status"] == "invalid" for t in trials),
                         "examples_spent": sum(t["examples"] for t in trials), "elapsed_seconds": 1.5},
            "trials": trials, "best": None if best is None else {"job": "j0", "number": 0, "val_acc": best}}


ENDED = [trial(0, "succeeded", "j0", 0.91), trial(1, "invalid", None), trial(2, "pruned", "j2", 0.5)]


def test_a_search_is_posted_as_a_dict_or_read_from_its_file(server, tmp_path):
    server.answers = [reply(202, record("running", []))] * 2
    client = Client(server.url)
    search = client.search(BODY)
    assert isinstance(search, Search) and search.id == "s1" and search.status == "running"
    path = tmp_path / "search.json"
    path.write_text(json.dumps(BODY))
    client.search(path)
    assert [(s.method, s.path) for s in server.seen] == [("POST", "/v1/searches")] * 2
    assert [json.loads(s.body) for s in server.seen] == [BODY, BODY]
    with pytest.raises(ApiError, match=r"cannot read .*missing\.json") as caught:
        client.search(tmp_path / "missing.json")
    assert caught.value.status is None and len(server.seen) == 2, "nothing is sent"


def test_a_refusal_is_an_api_error_with_the_field_at_fault(server):
    problem = {"type": "about:blank", "title": "Invalid search", "status": 422, "detail": "1 problem(s) found",
               "errors": [{"path": "space.network.layers[9].sx", "message": "no layer 9"}]}
    server.answers = [reply(422, problem, media="application/problem+json"),
                      reply(404, {"title": "Not Found", "status": 404, "detail": "no search s9"},
                            media="application/problem+json")]
    client = Client(server.url)
    with pytest.raises(ApiError) as caught:
        client.search(BODY)
    assert caught.value.status == 422 and caught.value.title == "Invalid search"
    assert [e["path"] for e in caught.value.errors] == ["space.network.layers[9].sx"]
    with pytest.raises(ApiError) as caught:
        client.get_search("s9")
    assert caught.value.status == 404 and server.seen[-1].path == "/v1/searches/s9"


def test_searches_follow_the_cursor_and_a_summary_fetches_its_trials(server):
    summary = {k: v for k, v in record("succeeded", ENDED).items() if k not in ("progress", "trials", "best")}
    server.answers = [reply(200, {"searches": [summary], "next": "c1"}),
                      reply(200, {"searches": [summary | {"id": "s0"}], "next": None}),
                      reply(200, record("succeeded", ENDED, best=0.91))]
    listed = list(Client(server.url).searches(page_size=1))
    assert [s.id for s in listed] == ["s1", "s0"] and listed[0].status == "succeeded"
    assert [s.path for s in server.seen] == ["/v1/searches?limit=1", "/v1/searches?limit=1&cursor=c1"]
    assert [t["status"] for t in listed[0].trials] == ["succeeded", "invalid", "pruned"]
    assert listed[0].best["val_acc"] == 0.91 and listed[0].progress["trials_done"] == 3
    assert server.seen[-1].path == "/v1/searches/s1" and len(server.seen) == 3, "fetched once, then read"


def test_wait_follows_to_the_end_with_a_bar_of_trials(server, capsys):
    server.answers = [reply(200, record("running", [])),
                      reply(200, record("running", [trial(0, "succeeded", "j0", 0.91), trial(1, "running", "j1")],
                                        best=0.91)),
                      reply(200, record("succeeded", ENDED, best=0.91))]
    search = Client(server.url).get_search("s1")
    final = search.wait(every=0)
    assert final["status"] == "succeeded" and search.ended() and len(server.seen) == 3
    bar = capsys.readouterr().err
    assert "search s1" in bar and "| 3/3 [" in bar and "trial/s" in bar
    assert "best val 0.9100" in bar and "1 pruned" in bar and "succeeded" in bar


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_wait_ends_on_every_terminal_status(server, status):
    server.answers = [reply(200, record(status, ENDED[:1], best=0.91))] * 2
    assert Client(server.url).get_search("s1").wait(progress=False)["status"] == status
    assert len(server.seen) == 2, "one GET to fetch it, one to see it has ended"


def test_jobs_are_the_trials_jobs_without_the_invalid_ones(server):
    search = Search(Client(server.url).session, record("succeeded", ENDED, best=0.91))
    jobs = search.jobs()
    assert all(isinstance(j, Job) for j in jobs)
    assert [(j.id, j.status) for j in jobs] == [("j0", "succeeded"), ("j2", "pruned")]
    assert server.seen == [], "the record already has the trials"


def test_a_report_as_bytes_or_into_a_file(server, tmp_path):
    md = b"## Search s\n\n| rank | job |\n"
    headers = {"Content-Disposition": 'inline; filename="s-s1.md"'}
    server.answers = [reply(200, md, headers, "text/markdown")] * 3 + [reply(200, b"\x89PNG\r\n\x1a\n", {}, "image/png")]
    search = Search(Client(server.url).session, {"id": "s1"})
    assert search.report() == md
    assert search.report("md", tmp_path) == tmp_path / "s-s1.md" and (tmp_path / "s-s1.md").read_bytes() == md
    assert search.report("md", tmp_path / "mine.md") == tmp_path / "mine.md"
    assert search.report("png", tmp_path) == tmp_path / "search-s1.png"
    assert (tmp_path / "search-s1.png").read_bytes()[:4] == b"\x89PNG"
    assert [s.path for s in server.seen] == ["/v1/searches/s1/report?format=md"] * 3 + [
        "/v1/searches/s1/report?format=png"]


def test_cancel_and_delete(server):
    conflict = {"title": "Conflict", "status": 409, "detail": "the search is running; cancel it before deleting it"}
    server.answers = [reply(409, conflict, media="application/problem+json"),
                      reply(202, record("running", ENDED[:1]) | {"cancel_requested": True}),
                      reply(204)]
    search = Search(Client(server.url).session, {"id": "s1"})
    with pytest.raises(ApiError, match="cancel it before deleting") as caught:
        search.delete()
    assert caught.value.status == 409
    assert search.cancel()["cancel_requested"] is True and search.status == "running"
    search.delete()
    assert [(s.method, s.path) for s in server.seen] == [
        ("DELETE", "/v1/searches/s1"), ("POST", "/v1/searches/s1/cancel"), ("DELETE", "/v1/searches/s1")]
