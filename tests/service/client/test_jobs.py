"""What the client sends for a submit and a prediction, and how it follows, waits for and saves, against a
scripted server."""

from __future__ import annotations

import io
import json

import pytest
import requests
from PIL import Image

from service.client import ApiError, Client, Job, WaitTimeout
from service.client.jobs import _image_part, request_body
from service.client.resource import suggested_name
from service.client.session import Session
from service.spec.request_body import DEMO_EXAMPLES
from tests.conftest import EXAMPLES
from tests.service.client.conftest import reply

NETWORK = {"layers": [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
                      {"type": "softmax", "num_classes": 10}]}


def test_a_network_a_request_and_overrides():
    assert request_body(NETWORK, {"budget": {"examples": 300}}) == {"network": NETWORK, "budget": {"examples": 300}}
    request = {"network": NETWORK, "trainer": {"method": "sgd"}, "budget": {"epochs": 1}, "name": "a"}
    # Each keyword replaces that member whole: a budget in examples is not mixed with one in epochs.
    assert request_body(request, {"budget": {"examples": 5}, "seed": 3}) == {
        "network": NETWORK, "trainer": {"method": "sgd"}, "budget": {"examples": 5}, "name": "a", "seed": 3}
    assert request == {"network": NETWORK, "trainer": {"method": "sgd"}, "budget": {"epochs": 1}, "name": "a"}


def test_files_are_read_as_convtrain_submit_reads_them(tmp_path):
    body = request_body(EXAMPLES / "net1-default.json", {"budget": {"examples": 600}})
    assert body["network"]["layers"][0]["type"] == "input" and body["budget"] == {"examples": 600}
    demo = request_body(str(EXAMPLES / "net1-default.js"), {})
    assert demo["convnetjs"] == (EXAMPLES / "net1-default.js").read_text()
    assert demo["name"] == "net1-default" and demo["budget"] == {"examples": DEMO_EXAMPLES}
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(NETWORK))
    assert request_body(bare, {"budget": {"examples": 1}}) == {"network": NETWORK, "budget": {"examples": 1}}


def test_demo_source_as_a_string_is_sent_for_the_service_to_parse():
    source = (EXAMPLES / "net1-default.js").read_text()
    assert request_body(source, {"name": "pasted"}) == {"convnetjs": source, "budget": {"examples": DEMO_EXAMPLES},
                                                        "name": "pasted"}


def test_a_file_that_cannot_be_read_is_an_api_error(tmp_path):
    with pytest.raises(ApiError, match=r"cannot read .*missing\.json") as caught:
        request_body(str(tmp_path / "missing.json"), {})
    assert caught.value.status is None
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ApiError):
        request_body(broken, {})


def test_an_image_goes_as_a_file_and_pixels_as_json(tmp_path):
    picture = Image.new("L", (40, 30), 255)
    sent = _image_part(picture)["files"]["image"][1]
    assert Image.open(io.BytesIO(sent)).size == (40, 30) and sent[:8] == b"\x89PNG\r\n\x1a\n"
    path = tmp_path / "digit.png"
    picture.save(path)
    assert _image_part(path) == _image_part(str(path)) == _image_part(path.read_bytes())
    assert _image_part(path)["files"]["image"][1] == path.read_bytes()
    rows = [[0] * 28 for _ in range(28)]
    assert _image_part(rows) == {"json": {"pixels": rows}}

    class Array:  # what numpy arrays and tensors offer, without importing either
        def tolist(self):
            return rows

    assert _image_part(Array()) == {"json": {"pixels": rows}}


@pytest.mark.parametrize(("header", "name"), [
    ('attachment; filename="net1-abc.pt"', "net1-abc.pt"),
    ("attachment; filename*=UTF-8''r%C3%A9seau.onnx", "r\u00e9seau.onnx"),
    ('attachment; filename="../../etc/passwd"', "passwd"),
    ('attachment; filename="..\\\\evil.pt"', "evil.pt"),
    ('attachment; filename=".."', None),
    ("inline", None),
])
def test_suggested_name(header, name):
    response = requests.Response()
    response.headers["Content-Disposition"] = header
    assert suggested_name(response) == name


def record(status: str, seen: int = 0) -> dict:
    return {"id": "j1", "status": status, "progress": {"examples_seen": seen, "examples_total": 600,
                                                       "fraction": seen / 600, "eta_seconds": None},
            "metrics": {"class_loss": 0.5, "train_acc": 0.9, "val_acc": None} if seen else None}


def test_wait_follows_to_the_end_with_a_bar_and_returns_the_final_record(server, capsys):
    server.answers = [reply(200, record("queued")), reply(200, record("running", 300)),
                      reply(200, record("failed", 400) | {"error": {"type": "diverged", "message": "NaN"}})]
    job = Client(server.url).job("j1")
    final = job.wait(every=0)
    assert final["status"] == "failed" and job.error["type"] == "diverged" and job.ended()
    bar = capsys.readouterr().err
    assert "job j1" in bar and "400/600" in bar and "loss 0.500" in bar and "failed" in bar


def test_wait_gives_up_after_its_timeout(server):
    server.answers = [reply(200, record("running", 10))] * 2
    job = Client(server.url).job("j1")
    with pytest.raises(WaitTimeout, match="still running") as caught:
        job.wait(progress=False, timeout=0)
    assert isinstance(caught.value, ApiError) and isinstance(caught.value, TimeoutError)


def test_metrics_follow_the_cursor_and_records_leave_events_out(server):
    points = [{"seq": 1, "event": "started", "examples": 0, "attempt": 1}, {"seq": 2, "examples": 100, "class_loss": 1.0},
              {"seq": 3, "examples": 200, "class_loss": 0.8}]
    server.answers = [reply(200, {"points": points[:2], "next": 2}), reply(200, {"points": points[2:], "next": 3}),
                      reply(200, {"points": [], "next": 3})] * 2
    job = Job(Session(server.url), {"id": "j1"})
    assert list(job.metrics(page=2)) == points
    assert [s.path for s in server.seen] == ["/v1/jobs/j1/metrics?after=0&limit=2",
                                            "/v1/jobs/j1/metrics?after=2&limit=2", "/v1/jobs/j1/metrics?after=3&limit=2"]
    assert job.metrics_records() == points[1:]


def test_a_download_into_a_folder_takes_the_name_the_service_suggests(server, tmp_path):
    model = b"PK\x03\x04 weights"
    headers = {"Content-Disposition": 'attachment; filename="net1-j1.pt"'}
    server.answers = [reply(200, model, headers, "application/octet-stream")] * 3 + [
        reply(200, model, {}, "application/octet-stream")]
    job = Job(Session(server.url), {"id": "j1"})
    assert job.download("pt") == model
    assert job.download("pt", tmp_path) == tmp_path / "net1-j1.pt" and (tmp_path / "net1-j1.pt").read_bytes() == model
    assert job.download("pt", tmp_path / "mine.pt") == tmp_path / "mine.pt"
    assert job.download("onnx", tmp_path) == tmp_path / "model-j1.onnx"
    assert server.seen[-1].path == "/v1/jobs/j1/model?format=onnx"
