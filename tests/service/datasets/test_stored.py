"""Converted datasets in the artifact store, by content hash."""

from __future__ import annotations

import numpy as np

from service.config import Config
from service.datasets import stored
from service.datasets.convert import Options, convert
from service.datasets.limits import UploadLimits
from service.storage import Artifacts
from tests.service.datasets import uploads

CONVERTED = convert(uploads.npz(x_train=np.zeros((10, 4, 4), np.uint8), y_train=np.arange(10) % 2), Options(),
                    UploadLimits.from_config(Config()))


def test_the_same_content_is_stored_once_under_its_hash(tmp_path):
    artifacts = Artifacts(str(tmp_path))
    sha, size = stored.store(artifacts, CONVERTED)
    assert sha == stored.content_hash(CONVERTED.files()) and size == sum(map(len, CONVERTED.files().values()))
    assert stored.read(artifacts, sha, "train-labels") == CONVERTED.files()["train-labels"]
    written = {f: (tmp_path / "datasets" / sha / f).stat().st_mtime_ns for f in stored.FILES}
    assert stored.store(artifacts, CONVERTED) == (sha, size)
    assert written == {f: (tmp_path / "datasets" / sha / f).stat().st_mtime_ns for f in stored.FILES}


def test_an_upload_of_the_same_content_at_the_same_moment_is_no_error(tmp_path, monkeypatch):
    artifacts = Artifacts(str(tmp_path))
    real_put = artifacts.put

    def raced(job_id, name, data):  # the other upload moves its file in first; ours finds its .part gone
        real_put(job_id, name, data)
        raise FileNotFoundError(name + ".part")

    monkeypatch.setattr(artifacts, "put", raced)
    sha, _ = stored.store(artifacts, CONVERTED)
    assert stored.read(artifacts, sha, "meta.json") == CONVERTED.files()["meta.json"]
