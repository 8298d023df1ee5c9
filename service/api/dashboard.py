"""The dashboard page at GET /: plain HTML/JS served from service/static, no CDN.

The page and its two assets are fixed files of the package, looked up in a table and never
built from the request's path. They load nothing else: no inline script or style and no
eval, so a content security policy of 'self' alone covers them.
"""

from __future__ import annotations

from importlib import resources

from flask import Blueprint, send_file

bp = Blueprint("dashboard", __name__)

# URL name -> (file in service/static, media type)
ASSETS = {
    "app.js": ("dashboard.js", "text/javascript"),
    "app.css": ("dashboard.css", "text/css"),
}


def _static(filename: str, mimetype: str):
    # no-cache: the browser revalidates with the ETag, so a new release is picked up at once.
    response = send_file(resources.files("service").joinpath("static", filename), mimetype=mimetype,
                         conditional=True, etag=True, max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/")
def index():
    return _static("dashboard.html", "text/html")


@bp.get("/dashboard/<any(" + ", ".join(repr(name) for name in ASSETS) + "):asset>")
def asset(asset: str):
    filename, mimetype = ASSETS[asset]
    return _static(filename, mimetype)
