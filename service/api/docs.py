"""The OpenAPI description and a page that renders it, with no CDN."""

from __future__ import annotations

import functools
from importlib import resources

import yaml
from flask import Blueprint, Response, send_file

from service.errors import NotFound

bp = Blueprint("docs", __name__)


@functools.cache
def spec_text() -> str:
    return resources.files("service").joinpath("openapi.yaml").read_text("utf-8")


@functools.cache
def spec() -> dict:
    return yaml.safe_load(spec_text())


@bp.get("/openapi.yaml")
def openapi_yaml():
    return Response(spec_text(), mimetype="application/yaml")


@bp.get("/openapi.json")
def openapi_json():
    return spec()


@bp.get("/docs")
def docs():
    return send_file(resources.files("service").joinpath("static/docs.html"), mimetype="text/html")


# Fixed names only: nothing from the URL becomes a path.
ASSETS = {"docs.js": "text/javascript", "docs.css": "text/css"}


@bp.get("/docs/<asset>")
def docs_asset(asset: str):
    if asset not in ASSETS:
        raise NotFound(f"no asset {asset!r}")
    return send_file(resources.files("service").joinpath(f"static/{asset}"), mimetype=ASSETS[asset])
