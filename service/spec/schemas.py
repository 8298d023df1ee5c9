"""The job request: marshmallow schemas for its parts, and one function that checks a whole request.

A job request is ``{"network": {"layers": [...]}, "trainer": {...}, "data": {...},
"budget": {...}, "seed": int, "name": str, "device": "auto|cpu|gpu"}``, or the
same with ``"convnetjs": "<demo source>"`` in place of network and trainer.
"""

from __future__ import annotations

import difflib
import random
from typing import Any, Callable

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from service.config import Config
from service.spec import datasets, initial_weights, jsparse, netspec
from service.spec.netspec import InvalidSpec, SpecError

METHODS = ("sgd", "adam", "adagrad", "adadelta", "windowgrad", "nesterov")
DEVICES = ("auto", "cpu", "gpu")
# ConvNetJS versions disagree on eps: 0.3.0 (npm) defaults it to 1e-6 for every method and has no adam
# or nesterov; the later upstream trainer defaults it to 1e-8 for every method. A method 0.3.0 has follows
# 0.3.0 (adadelta's first steps are about sqrt(eps) long: 1e-8 learns visibly slower), the others upstream.
# The accepted request names the version it filled in under "defaults", so a user sees which one applied.
SMALL_EPS_METHODS = ("sgd", "adagrad", "adadelta", "windowgrad")
EPS_SOURCES = {
    1e-6: "convnetjs 0.3.0 (npm): 1e-6 for sgd, adagrad, adadelta, windowgrad",
    1e-8: "convnetjs upstream trainer (after 0.3.0, which has no adam or nesterov): 1e-8 for adam, nesterov",
}


def default_eps(method: str) -> float:
    """The eps a request without one gets for `method` (EPS_SOURCES says from which ConvNetJS version)."""
    return 1e-6 if method in SMALL_EPS_METHODS else 1e-8


MAX_SUGGESTIONS = 20  # unknown fields that get a 'did you mean' (the rest are named only)
TRAINER_LIVE_FIELDS = ("learning_rate", "momentum", "batch_size", "l1_decay", "l2_decay")


class StrictInt(fields.Integer):
    """An integer that refuses 5.5, "5" and true."""

    def __init__(self, **kw):
        super().__init__(strict=True, **kw)

    def _validated(self, value):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)


class Number(fields.Float):
    """A finite number that refuses strings and booleans."""

    def __init__(self, **kw):
        super().__init__(allow_nan=False, **kw)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        # float() of a huge whole number raises OverflowError, which marshmallow does not catch.
        if isinstance(value, int) and abs(value) > 1e300:
            raise self.make_error("too_large")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBool(fields.Boolean):
    """true or false only: refuses 1, 0, "true" and the like."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def _one_of(name, choices):
    """Validator for a closed set of names that suggests the nearest one."""
    def check(value):
        if value not in choices:
            raise ValidationError(_unknown(name, value, choices))
    return check


def _unknown(name, value, choices) -> str:
    """The sentence for a name outside `choices`, with the nearest one suggested."""
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown {name} {netspec.as_json_text(value)}; choose one of {', '.join(choices)}.{hint}"


def _range(name, lo=None, hi=None, lo_inclusive=True, hi_inclusive=True):
    if lo == 0 and lo_inclusive and hi is None:
        rule = "at least 0 (not negative)"
    elif lo is not None and hi is None:
        rule = f"at least {lo}" if lo_inclusive else f"greater than {lo}"
    elif lo is None:
        rule = f"at most {hi}"
    elif lo_inclusive and hi_inclusive:
        rule = f"between {lo} and {hi}"
    else:
        rule = (f"at least {lo}" if lo_inclusive else f"greater than {lo}") + \
               (f" and at most {hi}" if hi_inclusive else f" and less than {hi}")
    return validate.Range(min=lo, max=hi, min_inclusive=lo_inclusive, max_inclusive=hi_inclusive,
                          error=f"{name} must be {rule}, got {{input}}")


class Base(Schema):
    class Meta:
        unknown = RAISE


class TrainerSchema(Base):
    """ConvNetJS SGDTrainer options with its defaults."""

    method = fields.String(load_default="sgd", validate=_one_of("trainer method", METHODS))
    learning_rate = Number(load_default=0.01, validate=_range("learning_rate", 0))
    momentum = Number(load_default=0.9, validate=_range("momentum", 0, 1, hi_inclusive=False))
    batch_size = StrictInt(load_default=1, validate=_range("batch_size", 1))
    l1_decay = Number(load_default=0.0, validate=_range("l1_decay", 0))
    l2_decay = Number(load_default=0.0, validate=_range("l2_decay", 0))
    ro = Number(load_default=0.95, validate=_range("ro", 0, 1, lo_inclusive=False, hi_inclusive=False))
    eps = Number(load_default=None, allow_none=True, validate=_range("eps", 0, lo_inclusive=False))
    beta1 = Number(load_default=0.9, validate=_range("beta1", 0, 1, hi_inclusive=False))
    beta2 = Number(load_default=0.999, validate=_range("beta2", 0, 1, hi_inclusive=False))


class TrainerPatchSchema(Base):
    """The trainer fields a user may change while a job runs."""

    learning_rate = Number(validate=_range("learning_rate", 0))
    momentum = Number(validate=_range("momentum", 0, 1, hi_inclusive=False))
    batch_size = StrictInt(validate=_range("batch_size", 1))
    l1_decay = Number(validate=_range("l1_decay", 0))
    l2_decay = Number(validate=_range("l2_decay", 0))


class AugmentSchema(Base):
    crop = StrictBool(load_default=True)
    flip = StrictBool(load_default=False)
    # Random moves of up to this many pixels, zeros filled in (the CIFAR-10 demo uses 2); absent means 0.
    shift = StrictInt(validate=_range("shift", 0, 8))


class DataSchema(Base):
    """Which dataset, how it is split, augmented and evaluated."""

    # A built-in dataset or one of the caller's uploads: resolved in load_job_request, which knows the caller.
    dataset = fields.String(load_default="mnist", validate=validate.Length(
        min=1, max=64, error="dataset must be the name of a dataset, 1 to 64 characters"))
    validation_fraction = Number(load_default=0.1, validate=_range("validation_fraction", 0, 0.5))
    augment = fields.Nested(AugmentSchema, load_default=lambda: AugmentSchema().load({}))
    val_interval = StrictInt(load_default=5000, validate=_range("val_interval", 1, 10**9))
    val_examples = StrictInt(load_default=500, validate=_range("val_examples", 1, 10**6))
    test_crops = StrictInt(load_default=0, validate=_range("test_crops", 0, 64))


def _examples_range(n: int) -> None:
    """At least 1; 0 (evaluate the given weights) only with init, which load_job_request checks."""
    if n != 0:
        _range("examples", 1)(n)


class BudgetSchema(Base):
    """How long to train: exactly one of examples seen, epochs or seconds."""

    examples = StrictInt(validate=_examples_range)
    epochs = StrictInt(validate=_range("epochs", 1))
    seconds = Number(validate=_range("seconds", 0, lo_inclusive=False))

    @validates_schema
    def _exactly_one(self, data, **kwargs):
        if len(data) != 1:
            raise ValidationError("give exactly one of examples, epochs or seconds", "_schema")


class JobRequestSchema(Base):
    network = fields.Raw()
    # The paste parser is linear (about 40 ms for 64 kB, bench/jsparse_speed.py); the cap bounds that too.
    convnetjs = fields.String(validate=validate.Length(max=65536, error="the demo source is longer than {max} characters"))
    trainer = fields.Nested(TrainerSchema, load_default=None)
    data = fields.Nested(DataSchema, load_default=lambda: DataSchema().load({}))
    budget = fields.Nested(BudgetSchema, required=True, error_messages={"required": "a job needs a budget: examples, epochs or seconds"})
    seed = StrictInt(load_default=None, allow_none=True, validate=_range("seed", 0, 2**63 - 1))
    name = fields.String(load_default="", validate=validate.Length(max=200, error="name is longer than {max} characters"))
    device = fields.String(load_default="auto", validate=_one_of("device", DEVICES))
    init = fields.Raw()  # the weights to start from: checked by service/spec/initial_weights.py


def _flatten(messages, prefix="") -> list[SpecError]:
    """Turn marshmallow's nested message dict into path/message pairs."""
    out: list[SpecError] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            out.extend(_flatten(value, path))
    elif isinstance(messages, list):
        for m in messages:
            out.extend(_flatten(m, prefix) if isinstance(m, (dict, list)) else [SpecError(prefix, str(m))])
    else:
        out.append(SpecError(prefix, str(messages)))
    return out


def _friendly(errors: list[SpecError], body: dict, schema: Schema) -> list[SpecError]:
    """Replace marshmallow's generic sentences with ones that name the field and suggest fixes."""
    wants = {
        "Not a valid integer.": "a whole number",
        "Not a valid number.": "a number",
        "Not a valid string.": "a string (text in quotes)",
        "Not a valid boolean.": "true or false",
        "Invalid input type.": "an object",
    }
    friendly = []
    for i, e in enumerate(errors):
        name = e.path.rsplit(".", 1)[-1]
        if e.message == "Unknown field." and i >= MAX_SUGGESTIONS:
            # A body of thousands of unknown fields: each still named, but a guess costs ~50 µs apiece.
            e = SpecError(e.path, f"'{name}' is not a field of {e.path.rsplit('.', 1)[0] if '.' in e.path else 'a job request'}")
        elif e.message == "Unknown field.":
            # A sub-schema (TrainerPatchSchema) is given paths under its section name ("trainer.x").
            parent = _schema_at(schema, e.path) or (_schema_at(schema, e.path.split(".", 1)[1]) if "." in e.path else None)
            known = list(parent.fields) if parent else []
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else (f" Known fields: {', '.join(known)}." if known else "")
            where = e.path.rsplit(".", 1)[0] if "." in e.path else "a job request"
            e = SpecError(e.path, f"'{name}' is not a field of {where}.{hint}")
        elif e.message in wants:
            e = SpecError(e.path, f"{name} must be {wants[e.message]}, not {netspec.describe(_value_at(body, e.path))}")
        elif e.message == "Field may not be null.":
            e = SpecError(e.path, f"{name} must not be null")
        elif e.message == "Number too large.":
            e = SpecError(e.path, f"{name} is too large, got {netspec.as_json_text(_value_at(body, e.path))}")
        elif e.message == "Special numeric values (nan or infinity) are not permitted.":
            e = SpecError(e.path, f"{name} must be a finite number")
        friendly.append(e)
    return friendly


def _schema_at(schema: Schema, path: str) -> Schema | None:
    for part in path.split(".")[:-1]:
        field = schema.fields.get(part)
        if not isinstance(field, fields.Nested):
            return None
        schema = field.schema
    return schema


def _value_at(body, path):
    for part in path.split("."):
        body = body.get(part) if isinstance(body, dict) else None
    return body


MAX_FIELDS = 100  # keys in one section of a request: far more than any section has, far fewer than a flood


def _refuse_crowds(body: dict) -> None:
    """Refuse a section with thousands of keys before marshmallow builds an error for each (1 s of CPU for
    60,000), naming the section and how many keys it has."""
    sections = {"": body}
    for name in ("trainer", "data", "budget"):
        if isinstance(body.get(name), dict):
            sections[name] = body[name]
    if isinstance(sections.get("data", {}).get("augment"), dict):
        sections["data.augment"] = sections["data"]["augment"]
    crowded = [SpecError(path, f"{'the request' if not path else path} has {len(section):,} fields; none has "
                               f"more than {MAX_FIELDS}") for path, section in sections.items() if len(section) > MAX_FIELDS]
    if crowded:
        raise InvalidSpec(crowded)


def load_job_request(body: Any, config: Config, uploads: Callable[[str], dict | None] | None = None
                     ) -> tuple[dict, netspec.Network]:
    """Check a whole job request; return it with every default filled in, and its network. Raise InvalidSpec.

    `uploads` finds one of the caller's uploaded datasets by name (a record, or None); a request naming one
    gets its content hash pinned as data.upload, so the job trains on these images whatever happens later.
    """
    if not isinstance(body, dict):
        raise InvalidSpec([SpecError("", f"a job request must be a JSON object, not {netspec.type_name(body)}")])
    _refuse_crowds(body)
    schema = JobRequestSchema()
    errors: list[SpecError] = []
    if "defaults" in body:  # a job's accepted request sent back: the service writes this field, never a user
        errors.append(SpecError("defaults", "defaults is written by the service (where a filled-in default came "
                                            "from); leave it out of a request"))
        body = {k: v for k, v in body.items() if k != "defaults"}
    try:
        request = schema.load(body)
    except ValidationError as exc:
        errors += _friendly(_flatten(exc.messages), body, schema)
        # Keep the sections that loaded cleanly, so their own checks still run and
        # every problem is reported at once; marshmallow's valid_data also holds
        # half-loaded sections, which would be checked against the wrong values.
        valid = exc.valid_data if isinstance(exc.valid_data, dict) else {}
        request = {k: v for k, v in valid.items() if k not in exc.messages}

    # Starting weights (service/spec/initial_weights.py): a snapshot may supply the network.
    init_spec = init_network = None
    init_errors = []
    if "init" in request:
        init_errors, init_spec, init_network = initial_weights.parse(request["init"], config)
        errors += init_errors
    lines = None
    if "convnetjs" in request:
        if "network" in body or body.get("trainer") is not None:
            errors.append(SpecError("convnetjs", "give either convnetjs (demo source) or network and trainer, not both"))
        else:
            try:
                paste = jsparse.parse(request["convnetjs"])
                request["network"] = {"layers": paste.layers}
                lines = paste.lines
                try:
                    request["trainer"] = TrainerSchema().load(paste.trainer or {})
                except ValidationError as exc:
                    errors += _friendly(_flatten(exc.messages, "trainer"), {"trainer": paste.trainer}, schema)
            except InvalidSpec as exc:
                errors += exc.errors
    elif "network" not in body and init_spec is not None:
        request["network"] = init_spec
    elif "network" not in body and "convnetjs" not in body and not init_errors:
        errors.append(SpecError("network", "a job needs a network: {\"layers\": [...]}, or demo source under convnetjs"))

    network = None
    if "network" in request:
        try:
            network = netspec.analyze(request["network"], config.limits)
        except InvalidSpec as exc:
            errors += _with_lines(exc.errors, lines)
    info = None
    if "data" in request:
        info, dataset_errors = _resolve_dataset(request["data"], uploads)
        errors += dataset_errors
    if network is not None and info is not None:
        errors += _check_fits_dataset(network, info)
    if network is not None and init_network is not None:  # init: the snapshot must fit the network
        errors += initial_weights.snapshot_difference(network, init_network)
    if "budget" in request:
        errors += _check_budget(request["budget"], request.get("trainer"), config)
        if request["budget"].get("examples") == 0 and "init" not in request:
            errors.append(SpecError("budget.examples", "examples must be at least 1, got 0"))
    if errors:
        raise InvalidSpec(errors)

    if request.get("trainer") is None:
        request["trainer"] = TrainerSchema().load({})
    trainer = request["trainer"]
    if trainer["eps"] is None:
        trainer["eps"] = default_eps(trainer["method"])
        # Beside the trainer, not in it: the worker passes the trainer's fields to the optimizer as they are.
        request["defaults"] = {"trainer.eps": EPS_SOURCES[trainer["eps"]]}
    if request["seed"] is None:
        request["seed"] = random.SystemRandom().randrange(2**31)
    request.pop("convnetjs", None)
    return request, network


def load_trainer_patch(body: Any, config: Config) -> dict:
    """Check live trainer changes (PATCH /v1/jobs/{id}/trainer); raise InvalidSpec."""
    if not isinstance(body, dict) or not body:
        raise InvalidSpec([SpecError("trainer", "send an object with any of " + ", ".join(TRAINER_LIVE_FIELDS))])
    schema = TrainerPatchSchema()
    try:
        changes = schema.load(body)
    except ValidationError as exc:
        raise InvalidSpec(_friendly(_flatten(exc.messages, "trainer"), {"trainer": body}, schema)) from None
    if changes.get("batch_size", 0) > config.max_batch_size:
        raise InvalidSpec([SpecError("trainer.batch_size", f"batch_size {changes['batch_size']} is more than "
                                     f"the limit of {config.max_batch_size}")])
    return changes


def _with_lines(errors: list[SpecError], lines: list[int] | None) -> list[SpecError]:
    """Point errors in pasted layers at their source lines."""
    if not lines:
        return errors
    out = []
    for e in errors:
        if e.path.startswith("network.layers["):
            index = int(e.path[len("network.layers["):].split("]")[0])
            if index < len(lines):
                e = SpecError(e.path, f"line {lines[index]}: {e.message}", lines[index])
        out.append(e)
    return out


def _resolve_dataset(data: dict, uploads: Callable[[str], dict | None] | None
                     ) -> tuple[datasets.DatasetInfo | None, list[SpecError]]:
    """The dataset data.dataset names (built-in first, then the caller's uploads), its upload pinned in `data`."""
    name = data["dataset"]
    if name in datasets.DATASETS:
        return datasets.DATASETS[name], []
    record = uploads(name) if uploads is not None and datasets.UPLOAD_NAME.fullmatch(name) else None
    if record is None:
        return None, [SpecError("data.dataset", _unknown("dataset", name, tuple(datasets.DATASETS)))]
    data["upload"] = {"sha256": record["sha256"], "train_size": record["train_size"]}
    return datasets.uploaded(record), []


def _check_fits_dataset(network: netspec.Network, info: datasets.DatasetInfo) -> list[SpecError]:
    """The input must fit the dataset's images and the loss layer must match its classes."""
    errors = []
    first, last = network.input, network.output
    if first["out_sx"] > info.width or first["out_sy"] > info.height:
        field = "out_sx" if first["out_sx"] > info.width else "out_sy"
        errors.append(SpecError(f"network.layers[0].{field}", f"an input of {first['out_sx']}x{first['out_sy']} is larger than "
                                f"{info.name}'s {info.width}x{info.height} images; use at most {info.width}x{info.height} "
                                "(smaller inputs train on random crops)"))
    if first["out_depth"] != info.depth:
        errors.append(SpecError("network.layers[0].out_depth", f"{info.name} images have depth {info.depth} "
                                f"({'grey' if info.depth == 1 else 'colour'}), but the input layer has depth {first['out_depth']}"))
    classes = last.get("num_classes", last.get("num_neurons"))
    if classes != info.num_classes:
        field = "num_classes" if "num_classes" in last else "num_neurons"
        errors.append(SpecError(f"network.layers[{last['source']}].{field}",
                                f"{info.name} has {info.num_classes} classes, but the {last['type']} layer has {classes}"))
    return errors


def _check_budget(budget: dict, trainer: dict | None, config: Config) -> list[SpecError]:
    limits = {"examples": config.max_examples, "epochs": config.max_epochs, "seconds": config.max_seconds}
    errors = []
    for key, value in budget.items():
        if value > limits[key]:
            errors.append(SpecError(f"budget.{key}", f"{netspec.sci(value)} {key} is more than the limit of {netspec.sci(limits[key])}"))
    if trainer and trainer["batch_size"] > config.max_batch_size:
        errors.append(SpecError("trainer.batch_size", f"batch_size {trainer['batch_size']} is more than the limit of {config.max_batch_size}"))
    return errors
