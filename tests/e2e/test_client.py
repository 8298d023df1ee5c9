"""The user journey through convtrain's own Python client, against the real service.

The `app` fixture (the shared Redis and worker, every response checked against openapi.yaml) is served over
real HTTP; `service.client.Client` alone talks to it: submit the default network, wait for it, page its
metrics with the cursor, follow its events, download two formats as bytes, predict images, list with the
cursor, control, cancel and delete a second job, read a 422's field errors, run a small sweep, and cancel
and delete another. Then a dataset of one's own: upload an .npz of real digits, list it, train on it,
predict, delete it; and one over the size limit, refused by gunicorn while it is still being sent. And a
tiny architecture search, waited for to its end: its best trial, its trials' jobs, its report.
"""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image, ImageDraw

from service.client import ApiError, Client
from tests.conftest import EXAMPLES, example, gunicorn, wait_for
from tests.e2e.test_datasets import digits, digits_job  # noqa: F401 (a fixture)
from tests.e2e.test_searches import small_search
from tests.service.datasets import uploads

pytestmark = pytest.mark.e2e


def digit() -> Image.Image:
    """A hand-drawn 7, dark on light like a photo of paper."""
    picture = Image.new("L", (120, 140), 250)
    ImageDraw.Draw(picture).line([(20, 20), (100, 20), (50, 125)], fill=10, width=12)
    return picture


def test_the_user_journey_through_the_client(http_api, tmp_path, capsys):
    client = Client(http_api)

    # Submit the default network from its file, with a small budget; the same key is the same job.
    job = client.submit(EXAMPLES / "net1-default.json", budget={"examples": 600}, name="client-journey",
                        idempotency_key="client-journey-1")
    assert job.status in ("queued", "running") and job.record["request"]["budget"] == {"examples": 600}
    again = client.submit(EXAMPLES / "net1-default.json", budget={"examples": 600}, name="client-journey",
                          idempotency_key="client-journey-1")
    assert again.id == job.id

    # Wait to succeeded with a progress bar.
    final = job.wait(progress=True, timeout=240)
    assert final["status"] == "succeeded", final.get("error")
    assert 0 <= job.result["test_acc"] <= 1 and job.progress["examples_seen"] == 600
    assert f"job {job.id}" in capsys.readouterr().err

    # Every metric point, three at a time, following the cursor; the records leave the events out.
    points = list(job.metrics(page=3))
    assert [p["seq"] for p in points] == list(range(1, len(points) + 1)) and len(points) > 6
    assert points[0]["event"] == "started" and points[-1]["event"] == "finished"
    records = job.metrics_records()
    assert records and all("event" not in r and r["examples"] <= 600 for r in records)
    assert len(records) == sum(1 for p in points if "event" not in p)

    # The event stream from the start, and from a cursor, to `end` with the finished job.
    events = list(job.events())
    assert events[-1].event == "end" and events[-1].data["status"] == "succeeded"
    assert [e.id for e in events[:-1]] == [p["seq"] for p in points]
    assert [e.id for e in job.events(after=points[-3]["seq"])] == [points[-2]["seq"], points[-1]["seq"], None]

    # Two formats as bytes, each the file the job's record describes; and one into a folder.
    for fmt in ("pt", "onnx"):
        data = job.download(fmt)
        export = job.record["model"]["exports"][fmt]
        assert hashlib.sha256(data).hexdigest() == export["sha256"] and len(data) == export["bytes"]
    saved = job.download("convnetjs", tmp_path)
    assert saved.parent == tmp_path and saved.name.endswith(".json") and saved.read_bytes()[:1] == b"{"

    # Predict: a PIL image, its PNG bytes, a file, and pixels.
    png = io.BytesIO()
    digit().save(png, format="PNG")
    (tmp_path / "seven.png").write_bytes(png.getvalue())
    grey = digit().resize((28, 28))
    pixels = [[255 - grey.getpixel((x, y)) for x in range(28)] for y in range(28)]
    for image in (digit(), png.getvalue(), tmp_path / "seven.png", pixels):
        prediction = job.predict(image)
        assert len(prediction["probabilities"]) == 10 and abs(sum(prediction["probabilities"]) - 1) < 1e-4
        assert prediction["top"][0]["probability"] == max(prediction["probabilities"])

    # A second, long job: change its trainer, pause, resume, list both with the cursor, cancel it.
    second = client.submit(example("net1-default.json"), budget={"examples": 1_000_000}, name="client-second")
    assert second.set_trainer(learning_rate=0.5)["request"]["trainer"]["learning_rate"] == 0.5
    second.pause()
    wait_for(lambda: second.refresh()["status"] == "paused", timeout=120, what="the second job paused")
    second.resume()
    seen = []
    for listed in client.jobs(page_size=1):
        seen.append(listed.id)
        if {job.id, second.id} <= set(seen):
            break
    assert len(seen) == len(set(seen)) and seen.index(second.id) < seen.index(job.id), "newest first, no repeats"
    assert second.cancel()["status"] in ("cancelled", "queued", "running")
    assert second.wait(progress=False, timeout=120)["status"] == "cancelled"
    assert second.id in [j.id for j in client.jobs(status="cancelled")]

    # A 422 names the field at fault; a 404 and a 409 are the same one exception type.
    body = example("net1-default.json", budget={"examples": 600})
    body["network"]["layers"][2]["sx"] = 30  # a pool window larger than its 24x24 input
    with pytest.raises(ApiError) as caught:
        client.submit(body)
    assert caught.value.status == 422 and caught.value.title
    assert "network.layers[2].sx" in [e["path"] for e in caught.value.errors]
    with pytest.raises(ApiError) as caught:
        client.job("0123456789abcdef")
    assert caught.value.status == 404
    with pytest.raises(ApiError) as caught:
        job.cancel()
    assert caught.value.status == 409 and "succeeded" in caught.value.detail

    # A small sweep: wait for it, its jobs, its report.
    sweep = client.sweep({"name": "client-sweep", "base": example("net1-default.json", budget={"examples": 200}),
                          "grid": {"trainer.batch_size": [10, 20]}})
    assert sweep.record["jobs"] == 2
    assert sweep.wait(progress=True, timeout=300)["status"] == "succeeded"
    jobs = sweep.jobs()
    assert len(jobs) == 2 and all(j.status == "succeeded" for j in jobs)
    assert {j.refresh()["request"]["trainer"]["batch_size"] for j in jobs} == {10, 20}
    assert sweep.report("md").decode().lstrip().startswith("#")
    assert sweep.report("png")[:8] == b"\x89PNG\r\n\x1a\n"
    assert sweep.id in [s.id for s in client.sweeps()]
    assert [j.id for j in client.get_sweep(sweep.id).jobs()] == [j.id for j in jobs]

    # A long sweep, cancelled, then deleted with its jobs; a deleted job is gone too.
    long = client.sweep({"base": example("net1-default.json", budget={"examples": 1_000_000}),
                         "grid": {"trainer.batch_size": [10, 20]}})
    long.cancel()
    assert long.wait(progress=False, timeout=120)["status"] == "cancelled"
    long.delete()
    with pytest.raises(ApiError) as caught:
        client.get_sweep(long.id)
    assert caught.value.status == 404
    second.delete()
    with pytest.raises(ApiError) as caught:
        second.refresh()
    assert caught.value.status == 404


def test_a_dataset_of_your_own_through_the_client(http_api, tmp_path, digits):  # noqa: F811
    (x, y), (tx, ty) = digits
    archive = tmp_path / "digits.npz"
    archive.write_bytes(uploads.npz(x_train=x[:300], y_train=y[:300], x_test=tx[:100], y_test=ty[:100]))
    client = Client(http_api)

    # Upload: the record says what the service made of the file.
    dataset = client.upload_dataset(archive, "client-digits", title="Three digits", class_names=["3", "5", "8"])
    assert (dataset.shape, dataset.class_names, dataset.num_classes) == ((28, 28, 1), ["3", "5", "8"], 3)
    assert (dataset.train_size, dataset.test_size, dataset.builtin) == (300, 100, False)
    assert dataset.record["source"] == "npz" and dataset.record["title"] == "Three digits"

    # Listed after the built-in ones, and read by name.
    listed = client.datasets()
    names = [d.name for d in listed]
    assert "mnist" in names and "client-digits" in names
    assert [d.builtin for d in listed] == sorted((d.builtin for d in listed), reverse=True), "built-ins first"
    assert client.dataset("client-digits").sha256 == dataset.sha256

    # Train on it, pinned to its content; classify one of its test digits given as an array.
    job = client.submit(digits_job("client-digits", examples=600))
    final = job.wait(progress=False, timeout=240)
    assert final["status"] == "succeeded", final.get("error")
    assert final["request"]["data"]["upload"]["sha256"] == dataset.sha256
    prediction = job.predict(tx[0])
    assert len(prediction["probabilities"]) == 3 and abs(sum(prediction["probabilities"]) - 1) < 1e-4

    # Deleted: gone for the client; a name the service refuses is a 422 naming the field.
    dataset.delete()
    with pytest.raises(ApiError) as caught:
        client.dataset("client-digits")
    assert caught.value.status == 404
    with pytest.raises(ApiError) as caught:
        client.upload_dataset(archive, "Not A Name")
    assert caught.value.status == 422 and caught.value.errors[0]["path"] == "name"


def test_an_upload_over_the_size_limit_is_the_413_problem_not_a_broken_pipe(service, tmp_path):
    # The service answers before it has read the body; the client still reads that answer.
    big = tmp_path / "big.zip"
    big.write_bytes(bytes(8 << 20))
    env = {**service.env, "CONVTRAIN_DATASET_MAX_UPLOAD_BYTES": str(1 << 20)}
    with gunicorn(env, tmp_path / "gunicorn.log") as base, pytest.raises(ApiError) as caught:
        Client(base).upload_dataset(big, "big")
    assert caught.value.status == 413 and "limit" in caught.value.detail


def test_a_search_through_the_client(http_api, capsys):
    client = Client(http_api)
    body = small_search(trials=3, examples=1500, parallel=2, architectures=[{"name": "one conv", "patch": {}}],
                        space={"network.layers[1].filters": {"choice": [2, 4, 8]}}, name="client-search")
    search = client.search(body)
    assert search.status == "running" and search.record["trials_total"] == 3 and search.record["parallel"] == 2

    final = search.wait(progress=True, timeout=300)
    assert final["status"] == "succeeded", final
    assert f"search {search.id}" in capsys.readouterr().err
    trials = search.trials
    assert len(trials) == 3 and search.progress["trials_done"] == 3
    assert {t["status"] for t in trials} <= {"succeeded", "pruned"}
    best = search.best
    assert best["val_acc"] == max(t["final_val_acc"] for t in trials if t["status"] == "succeeded")
    assert best["network"]["layers"][0]["type"] == "input" and "net.makeLayers(layer_defs);" in best["javascript"]

    # Every trial's job, as the trial says, and the best one among them.
    jobs = search.jobs()
    assert [j.id for j in jobs] == [t["job"] for t in trials] and best["job"] in [j.id for j in jobs]
    assert [j.refresh()["status"] for j in jobs] == [t["status"] for t in trials]

    md = search.report("md").decode()
    assert md.startswith("## Search client-search") and f"job `{best['job']}`" in md
    assert search.id in [s.id for s in client.searches()]
    assert [t["job"] for t in client.get_search(search.id).trials] == [j.id for j in jobs]
    search.delete()
    with pytest.raises(ApiError) as caught:
        jobs[0].refresh()
    assert caught.value.status == 404, "its trials' jobs go with it"
