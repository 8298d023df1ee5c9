"""The contract at the top of the repository is the document the API serves: one source."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def test_the_served_document_is_the_top_level_openapi_yaml(stored):
    client, _ = stored
    top = (ROOT / "openapi.yaml").read_text("utf-8")
    assert client.get("/openapi.yaml").get_data(as_text=True) == top
    assert client.get("/openapi.json").get_json() == yaml.safe_load(top)
