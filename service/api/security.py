"""Who may do what: bearer tokens (or the dashboard's session cookie), tenants, quotas, security headers."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, g, request

from service.api.body import json_body
from service.auth import LOCAL, Principal, TokenFile
from service.errors import FieldError, Invalid, Unauthorized

bp = Blueprint("security", __name__, url_prefix="/v1")
COOKIE = "convtrain_token"
# Reachable without a token: probes, the API description, and the dashboard's static page.
PUBLIC = {"health.healthz", "health.readyz", "docs.openapi_yaml", "docs.openapi_json", "docs.docs",
          "docs.docs_asset", "dashboard.index", "dashboard.asset", "security.login", "security.logout"}
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
                               "form-action 'self'",
}


def principal() -> Principal:
    """The principal of the current request."""
    return g.get("principal", LOCAL)


def owns(owner: str | None) -> bool:
    """May the current principal see a job or sweep of `owner`? (Admins see everything.)"""
    who = principal()
    return who.admin or owner == who.name


def init_app(app: Flask) -> None:
    tokens = current_tokens(app)

    @app.before_request
    def _authenticate():
        if tokens is None:
            g.principal = LOCAL
            return None
        token = _presented_token()
        who = tokens.authenticate(token) if token else None
        if who is not None:
            g.principal = who
            return None
        if request.endpoint in PUBLIC:
            return None
        raise Unauthorized("send a valid token as 'Authorization: Bearer <token>'"
                      if token is None else "the token is not valid",
                      headers={"WWW-Authenticate": 'Bearer realm="convtrain"'
                               + ("" if token is None else ', error="invalid_token"')})

    @app.after_request
    def _headers(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def current_tokens(app: Flask) -> TokenFile | None:
    path = app.extensions["convtrain"].config.tokens_file
    return TokenFile(path) if path else None


def _presented_token() -> str | None:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else ""
    return request.cookies.get(COOKIE)


@bp.post("/session")
def login():
    """Exchange a token for an HttpOnly cookie, so the dashboard's images and event streams carry it."""
    body = json_body()
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise Invalid("send {\"token\": \"<your token>\"}", errors=[FieldError("token", "a token string is required")])
    tokens = current_tokens(current_app)
    if tokens is not None and tokens.authenticate(token) is None:
        raise Unauthorized("the token is not valid",
                      headers={"WWW-Authenticate": 'Bearer realm="convtrain", error="invalid_token"'})
    response = Response(status=204)
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=request.is_secure,
                        max_age=30 * 24 * 3600)
    return response


@bp.delete("/session")
def logout():
    response = Response(status=204)
    response.delete_cookie(COOKIE, samesite="Strict")
    return response


@bp.get("/whoami")
def whoami():
    who = principal()
    return {"principal": who.name, "role": who.role, "tokens_required": current_tokens(current_app) is not None}
