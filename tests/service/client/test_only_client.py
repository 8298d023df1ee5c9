"""The Python client is the only HTTP client code in service/ and worker/: the command line goes through it."""

from __future__ import annotations

from pathlib import Path

from tests.service.test_layering import imported_roots

ROOT = Path(__file__).resolve().parents[3]
CLIENT = ROOT / "service" / "client"
HTTP_CLIENTS = {"requests", "httpx", "urllib3", "aiohttp"}


def test_only_service_client_makes_http_requests():
    modules = [*(ROOT / "service").rglob("*.py"), *(ROOT / "worker").rglob("*.py")]
    offenders = {}
    for path in modules:
        source = path.read_text("utf-8")
        found = imported_roots(source) & HTTP_CLIENTS
        if "urllib.request" in source or "http.client" in source:
            found.add("urllib.request/http.client")
        if found and CLIENT not in path.parents:
            offenders[str(path.relative_to(ROOT))] = sorted(found)
    assert not offenders, f"HTTP requests outside service/client/: {offenders}"
    assert "requests" in imported_roots((CLIENT / "session.py").read_text("utf-8")), "the check sees the client"
