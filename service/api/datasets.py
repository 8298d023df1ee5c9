"""/v1/datasets: the built-in datasets and the caller's own uploads (list, upload, read, delete)."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from flask import Blueprint, request, url_for

from service.api.lookup import services
from service.api.security import principal
from service.datasets import stored
from service.datasets.convert import Options, convert, convert_idx_files
from service.datasets.limits import UploadLimits
from service.errors import (
    BadRequest,
    Conflict,
    FieldError,
    Invalid,
    UnsupportedMediaType,
)
from service.spec import datasets
from service.store import quotas
from service.store.record import now

bp = Blueprint("datasets", __name__, url_prefix="/v1/datasets")
FORM_OVERHEAD = 64 << 10  # multipart boundaries and the small fields, beyond the file itself
MAX_IDX_FILES = 4  # train and test images and labels
MAX_TITLE = 200


def uploads_of_caller():
    """The caller's uploads by name, as load_job_request takes them (a record, or None)."""
    s, who = services(), principal()
    return lambda name: s.datasets.find(who.name, name)


def _view(record: dict) -> dict:
    return {**record, "num_classes": len(record["class_names"]), "present": True, "builtin": False}


@bp.get("")
def listing():
    s = services()
    builtin = [{**entry, "builtin": True} for entry in datasets.describe(s.config.data_path)]
    return {"datasets": builtin + [_view(r) for r in s.datasets.list(principal().name)]}


@bp.get("/<name>")
def read(name: str):
    s = services()
    if name in datasets.DATASETS:
        return next({**e, "builtin": True} for e in datasets.describe(s.config.data_path) if e["name"] == name)
    return _view(s.datasets.get(principal().name, name))


@bp.delete("/<name>")
def delete(name: str):
    if name in datasets.DATASETS:
        raise Conflict(f"{name} is a built-in dataset; only uploads can be deleted")
    services().datasets.delete(principal().name, name)  # jobs pinned its hash: their files stay
    return "", 204


@bp.post("")
def upload():
    s, who = services(), principal()
    limits = UploadLimits.from_config(s.config)
    request.max_content_length = limits.upload_bytes + FORM_OVERHEAD  # this route's own bound (413 above it)
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType("send multipart/form-data: the file in a field 'file', the name in 'name'")
    name = request.form.get("name", "")
    if not datasets.UPLOAD_NAME.fullmatch(name):
        raise _field("name", "name must be 1 to 64 characters: lower-case letters, digits, '.', '_' or '-', "
                             "starting with a letter or digit")
    if name in datasets.DATASETS:
        raise _field("name", f"{name} is a built-in dataset; choose another name")
    files = request.files.getlist("file")
    if not files:
        raise BadRequest("send the dataset in a multipart field named 'file'", errors=[FieldError("file", "missing")])
    if len(files) > MAX_IDX_FILES:
        raise _field("file", f"{len(files)} files; send one archive, or at most {MAX_IDX_FILES} IDX files")
    title = request.form.get("title", "")
    if len(title) > MAX_TITLE:
        raise _field("title", f"title is {len(title):,} characters; at most {MAX_TITLE}")
    options = _options(limits)
    quota = None if who.admin else quotas.limits(s.config, who.quotas)

    def within_quota(size: int) -> None:  # OverQuota (429) on count or bytes; stores nothing
        s.datasets.save({"name": name, "owner": who.name, "bytes": size}, quota, check_only=True)

    within_quota(0)  # a tenant at its quota is refused before any conversion
    if len(files) == 1:
        converted = convert(files[0].read(limits.upload_bytes + 1), options, limits)  # UploadRefused (422)
    else:  # IDX files one by one, as MNIST ships them; their names say which is which
        named = [(PurePosixPath(f.filename or "").name, f.read(limits.upload_bytes + 1)) for f in files]
        converted = convert_idx_files(named, options, limits)
    sha, size = stored.store(s.artifacts, converted, check=lambda _sha, size: within_quota(size))  # then written
    record = {
        "name": name, "title": title or name, "owner": who.name, "sha256": sha,
        "source": converted.source, "width": converted.width, "height": converted.height, "depth": converted.depth,
        "class_names": converted.class_names, "train_size": len(converted.train), "test_size": len(converted.test),
        "bytes": size, "created_at": now(),
    }
    outcome = s.datasets.save(record, quota)  # atomic: two uploads at once may both have passed the checks
    status = 201 if outcome == "created" else 200
    return _view(record), status, {"Location": url_for("datasets.read", name=name)}


def _options(limits: UploadLimits) -> Options:
    """The stated width, height, depth and class names, each checked."""
    form = request.form
    values: dict = {}
    for key, low, high in (("width", 1, limits.image_pixels), ("height", 1, limits.image_pixels), ("depth", 1, 3)):
        raw = form.get(key)
        if raw is None or raw == "":
            continue
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not low <= int(raw) <= high or (key == "depth" and int(raw) == 2):
            raise _field(key, f"{key} must be a whole number {'1 or 3' if key == 'depth' else f'from {low}'}, "
                              f"got {raw[:20]!r}")
        values[key] = int(raw)
    if ("width" in values) != ("height" in values):
        raise _field("width" if "width" not in values else "height", "give width and height together, or neither")
    if "width" in values and values["width"] * values["height"] > limits.image_pixels:
        raise _field("width", f"{values['width']}x{values['height']} is more than {limits.image_pixels:,} pixels")
    if form.get("class_names"):
        try:
            names = json.loads(form["class_names"])
        except (ValueError, RecursionError):  # RecursionError: 100,000 nested brackets
            names = None
        if (not isinstance(names, list) or not 1 <= len(names) <= limits.classes
                or not all(isinstance(n, str) and 1 <= len(n) <= 100 for n in names)):
            raise _field("class_names", f"class_names must be a JSON array of 1 to {limits.classes} names, "
                                        "each 1 to 100 characters")
        values["class_names"] = names
    return Options(**values)


def _field(path: str, message: str) -> Invalid:
    return Invalid(message, title="Invalid dataset upload", errors=[FieldError(path, message)])
