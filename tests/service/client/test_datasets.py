"""What the client sends for a dataset upload (the multipart fields, repeated `file` fields for IDX files, the
body again after a 503, never again after a dropped connection), and how it lists, reads and deletes datasets,
against a scripted server."""

from __future__ import annotations

import pytest
from requests_toolbelt import MultipartDecoder

from service.client import ApiError, Client, Dataset, Unreachable
from service.client.datasets import CHUNK, upload_form
from tests.service.client.conftest import drop, reply

PROBLEM = "application/problem+json"
IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def record(name: str = "digits", **changes) -> dict:
    """An upload's record as POST /v1/datasets answers it."""
    return {"name": name, "title": name, "owner": "alice", "sha256": "ab" * 32, "source": "npz", "width": 28,
            "height": 28, "depth": 1, "class_names": ["3", "5", "8"], "num_classes": 3, "train_size": 600,
            "test_size": 150, "bytes": 12345, "created_at": 1.0, "present": True, "builtin": False, **changes}


MNIST = {"name": "mnist", "title": "MNIST digits", "width": 28, "height": 28, "depth": 1, "num_classes": 10,
         "class_names": [str(i) for i in range(10)], "train_size": 60000, "test_size": 10000, "present": True,
         "builtin": True}


def parts(seen) -> list[tuple[str, str | None, bytes]]:
    """(field name, file name or None, content) of each part of a multipart request the server saw."""
    out = []
    for part in MultipartDecoder(seen.body, seen.headers["Content-Type"]).parts:
        disposition = part.headers[b"Content-Disposition"].decode()
        fields = dict(item.strip().split("=", 1) for item in disposition.split(";")[1:])
        out.append((fields["name"].strip('"'), fields.get("filename", "").strip('"') or None, part.content))
    return out


def test_an_upload_sends_the_file_and_each_option_given_as_form_fields(server, tmp_path):
    archive = tmp_path / "digits.npz"
    archive.write_bytes(b"PK\x03\x04 an npz" * 1000)
    server.answers = [reply(201, record(), {"Location": "/v1/datasets/digits"})]
    dataset = Client(server.url).upload_dataset(archive, "digits", title="Three digits", width=24, height=24,
                                                depth=1, class_names=["3", "5", "8"])
    seen = server.seen[0]
    assert (seen.method, seen.path) == ("POST", "/v1/datasets") and "Idempotency-Key" not in seen.headers
    assert seen.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert int(seen.headers["Content-Length"]) == len(seen.body)
    assert parts(seen) == [("name", None, b"digits"), ("title", None, b"Three digits"), ("width", None, b"24"),
                           ("height", None, b"24"), ("depth", None, b"1"), ("class_names", None, b'["3", "5", "8"]'),
                           ("file", "digits.npz", archive.read_bytes())]
    assert isinstance(dataset, Dataset) and dataset.name == "digits" and not dataset.builtin
    assert (dataset.shape, dataset.class_names, dataset.num_classes) == ((28, 28, 1), ["3", "5", "8"], 3)
    assert (dataset.train_size, dataset.test_size, dataset.sha256, dataset.owner) == (600, 150, "ab" * 32, "alice")


def test_idx_files_go_as_repeated_file_fields_and_options_not_given_are_left_out(server, tmp_path):
    paths = []
    for i, name in enumerate(IDX):
        (tmp_path / name).write_bytes(bytes([i]) * (100 + i))
        paths.append(tmp_path / name)
    server.answers = [reply(201, record("mine", source="idx"))]
    Client(server.url).upload_dataset([str(p) for p in paths], "mine", class_names='["a", "b"]')
    assert parts(server.seen[0]) == [("name", None, b"mine"), ("class_names", None, b'["a", "b"]')] + [
        ("file", p.name, p.read_bytes()) for p in paths]


def test_the_body_streams_in_chunks_and_is_sent_whole_again_after_a_503(server, tmp_path):
    archive = tmp_path / "big.zip"
    archive.write_bytes(bytes(range(256)) * (3 * CHUNK // 256 + 7))
    form = upload_form(archive, "big")
    chunks = list(form)
    assert len(chunks) > 3 and max(map(len, chunks)) <= CHUNK and sum(map(len, chunks)) == len(form)
    assert list(form) == chunks  # read afresh from the file each time it is sent
    unavailable = {"type": "about:blank", "title": "Service Unavailable", "status": 503, "detail": "Redis restarts"}
    server.answers = [reply(503, unavailable, {"Retry-After": "0"}, PROBLEM), reply(201, record("big"))]
    assert Client(server.url).upload_dataset(archive, "big").name == "big"
    first, second = server.seen
    assert first.body == second.body and parts(second)[-1] == ("file", "big.zip", archive.read_bytes())


def test_an_upload_is_not_sent_again_after_a_dropped_connection(server, tmp_path):
    archive = tmp_path / "digits.npz"
    archive.write_bytes(b"npz")
    server.answers = [drop, reply(201, record())]
    with pytest.raises(Unreachable, match="cannot connect"):
        Client(server.url, backoff=0).upload_dataset(archive, "digits")
    assert len(server.seen) == 1  # the service may have stored it: sending it again is the caller's choice


def test_a_refused_upload_is_an_api_error_naming_the_field(server, tmp_path):
    archive = tmp_path / "digits.npz"
    archive.write_bytes(b"npz")
    message = "name must be 1 to 64 characters: lower-case letters, digits, '.', '_' or '-'"
    server.answers = [reply(422, {"type": "about:blank", "title": "Invalid dataset upload", "status": 422,
                                  "detail": message, "errors": [{"path": "name", "message": message}]}, media=PROBLEM),
                      reply(429, {"title": "Too Many Requests", "status": 429, "detail": "3 datasets at most",
                                  "limit": "datasets"}, media=PROBLEM)]
    with pytest.raises(ApiError) as caught:
        Client(server.url).upload_dataset(archive, "Bad Name")
    assert caught.value.status == 422 and caught.value.errors[0]["path"] == "name"
    assert parts(server.seen[0])[0] == ("name", None, b"Bad Name")
    with pytest.raises(ApiError) as caught:
        Client(server.url).upload_dataset(archive, "one-too-many")
    assert caught.value.status == 429 and caught.value.body["limit"] == "datasets"


def test_a_file_that_cannot_be_read_is_an_api_error_before_any_request(server, tmp_path):
    with pytest.raises(ApiError, match=r"cannot read .*missing\.zip") as caught:
        Client(server.url).upload_dataset(tmp_path / "missing.zip", "digits")
    assert caught.value.status is None and server.seen == []


def test_list_read_and_delete(server):
    server.answers = [reply(200, {"datasets": [MNIST, record()]}), reply(200, MNIST), reply(200, record("a b")),
                      reply(204, b""), reply(409, {"title": "Conflict", "status": 409,
                                                   "detail": "mnist is a built-in dataset"}, media=PROBLEM)]
    client = Client(server.url)
    builtin, mine = client.datasets()
    assert builtin.builtin and builtin.sha256 is None and builtin.owner is None and builtin.shape == (28, 28, 1)
    assert mine.name == "digits" and not mine.builtin
    assert "mnist 28x28x1 10 classes 60000+10000 builtin" in repr(builtin)
    assert client.dataset("mnist").record == MNIST
    spaced = client.dataset("a b")
    spaced.delete()
    with pytest.raises(ApiError) as caught:
        builtin.delete()
    assert caught.value.status == 409
    assert [(s.method, s.path) for s in server.seen] == [
        ("GET", "/v1/datasets"), ("GET", "/v1/datasets/mnist"), ("GET", "/v1/datasets/a%20b"),
        ("DELETE", "/v1/datasets/a%20b"), ("DELETE", "/v1/datasets/mnist")]
