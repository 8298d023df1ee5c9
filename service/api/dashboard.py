"""The dashboard page at GET /: plain HTML/JS served from service/static, no CDN.

The page, its style sheet and its ES modules are fixed files of the package, looked up in the
table below and never built from the request's path: the URL rule accepts only the table's
names, so anything else (`/dashboard/dashboard.js`, `/dashboard/../openapi.yaml`) is a 404. They
load nothing else: no inline script or style and no eval, so a content security policy of 'self'
alone covers them.

The entry module is /dashboard/app.js; it imports the others by relative URL (`./api.js`), so
each module's URL name is what the scripts import, and its file is dashboard-<name>.js, flat in
service/static because the package data is `static/*` (a subfolder would not ship).
"""

from __future__ import annotations

from importlib import resources

from flask import Blueprint, send_file

bp = Blueprint("dashboard", __name__)

JS = "text/javascript"
# URL name -> (file in service/static, media type)
ASSETS = {
    "app.js": ("dashboard.js", JS),
    "app.css": ("dashboard.css", "text/css"),
    **{f"{name}.js": (f"dashboard-{name}.js", JS) for name in (
        "api", "charts", "controls", "datasets", "dom", "editor", "format", "job", "jobs-list", "layers",
        "predictions", "searches", "spec-lines", "state")},
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
