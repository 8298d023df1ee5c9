"""Tests for job requests: defaults, the errors a student sees, and robustness against any input."""

import copy
import json
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from service.config import Config
from service.spec import schemas
from service.spec.netspec import InvalidSpec, Limits

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples"
NAMES = ["net1-default", "net2-3x3", "net3-stride2", "net4-16filters", "net5-third-conv", "net6-single-conv"]
CONFIG = Config()


def example(name="net1-default"):
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def errors_of(body, config=CONFIG):
    with pytest.raises(InvalidSpec) as info:
        schemas.load_job_request(body, config)
    return [(e.path, e.message) for e in info.value.errors]


@pytest.mark.parametrize("name", NAMES)
def test_examples_load_with_defaults(name):
    request, network = schemas.load_job_request(example(name), CONFIG)
    assert request["name"] == name
    assert request["trainer"] == {"method": "adadelta", "learning_rate": 0.01, "momentum": 0.9, "batch_size": 20,
                                  "l1_decay": 0.0, "l2_decay": 0.001, "ro": 0.95, "eps": 1e-6,
                                  "beta1": 0.9, "beta2": 0.999}
    assert request["budget"] == {"examples": 30000}
    assert request["data"] == {"dataset": "mnist", "validation_fraction": 0.1, "augment": {"crop": True, "flip": False},
                               "val_interval": 5000, "val_examples": 500, "test_crops": 0}
    assert isinstance(request["seed"], int) and request["device"] == "auto"
    assert "convnetjs" not in request
    assert network.output["type"] == "softmax" and network.input["out_sx"] == 24


def test_demo_paste_gives_the_same_request():
    paste = {"convnetjs": (EXAMPLES / "net1-default.js").read_text(), "budget": {"examples": 30000}, "seed": 1}
    from_js, network_js = schemas.load_job_request(paste, CONFIG)
    from_json, network_json = schemas.load_job_request({**example(), "seed": 1, "name": ""}, CONFIG)
    assert from_js == from_json
    assert network_js.layers == network_json.layers


NPM = "convnetjs 0.3.0 (npm): 1e-6 for sgd, adagrad, adadelta, windowgrad"
UPSTREAM = "convnetjs upstream trainer (after 0.3.0, which has no adam or nesterov): 1e-8 for adam, nesterov"


@pytest.mark.parametrize(("method", "eps", "source"), [
    ("sgd", 1e-6, NPM), ("adagrad", 1e-6, NPM), ("adadelta", 1e-6, NPM), ("windowgrad", 1e-6, NPM),
    ("adam", 1e-8, UPSTREAM), ("nesterov", 1e-8, UPSTREAM),
])
def test_eps_defaults_follow_convnetjs_on_npm_where_it_has_the_method(method, eps, source):
    request, _ = schemas.load_job_request({**example(), "trainer": {"method": method}}, CONFIG)
    assert (request["trainer"]["eps"], request["defaults"]) == (eps, {"trainer.eps": source})


def test_explicit_eps_and_seed_are_kept():
    body = {**example(), "trainer": {"method": "adadelta", "eps": 1e-8}, "seed": 7}
    request, _ = schemas.load_job_request(body, CONFIG)
    assert (request["trainer"]["eps"], request["seed"]) == (1e-8, 7)
    assert "defaults" not in request  # a user's own eps has no ConvNetJS version to name


def test_trainer_defaults_to_sgd():
    body = example()
    del body["trainer"]
    request = schemas.load_job_request(body, CONFIG)[0]
    trainer = request["trainer"]
    assert (trainer["method"], trainer["learning_rate"], trainer["batch_size"], trainer["eps"]) == ("sgd", 0.01, 1, 1e-6)
    assert request["defaults"] == {"trainer.eps": NPM}


def test_a_pasted_demo_names_its_eps_source_unless_it_sets_eps():
    pasted = {"convnetjs": DEMO, "budget": {"examples": 100}}
    assert schemas.load_job_request(pasted, CONFIG)[0]["defaults"] == {"trainer.eps": NPM}
    with_eps = DEMO.replace("l2_decay:0.001}", "l2_decay:0.001, eps:1e-8}")
    assert with_eps != DEMO
    request, _ = schemas.load_job_request({**pasted, "convnetjs": with_eps}, CONFIG)
    assert request["trainer"]["eps"] == 1e-8 and "defaults" not in request


def test_an_accepted_request_sent_back_is_told_to_leave_out_defaults():
    """The echoed request is a request again once "defaults" (which the service writes) is left out."""
    accepted, _ = schemas.load_job_request(example(), CONFIG)
    assert errors_of({**accepted, "budget": {}}) == [
        ("defaults", "defaults is written by the service (where a filled-in default came from); leave it out of a request"),
        ("budget", "give exactly one of examples, epochs or seconds")]
    again, _ = schemas.load_job_request({k: v for k, v in accepted.items() if k != "defaults"}, CONFIG)
    assert again == {k: v for k, v in accepted.items() if k != "defaults"}


def changed(*edits):
    """The default example with (dotted key, value) edits; value ... deletes the key."""
    body = example()
    for key, value in edits:
        *parents, last = key.split(".")
        target = body
        for part in parents:
            target = target.setdefault(part, {})
        if value is ...:
            target.pop(last, None)
        else:
            target[last] = value
    return body


DEMO = (EXAMPLES / "net1-default.js").read_text()

# One row per class of mistake in a job request: the request, the error's path and words its message holds.
ERRORS = [
    ("not an object", [1, 2], "", "a job request must be a JSON object, not a list"),
    ("null", None, "", "a job request must be a JSON object, not null"),
    ("no network", changed(("network", ...)), "network", "a job needs a network"),
    ("network null", changed(("network", None)), "network", "network must not be null"),
    ("network not an object", changed(("network", "conv")), "network", "a network must be an object"),
    ("layer error has the network path", changed(("network.layers", [{"type": "input", "out_depth": 1}, {"type": "soft"}])),
     "network.layers[1].type", "unknown layer type \"soft\". Did you mean 'softmax'?"),
    ("num_classes does not match", changed(("network.layers", example()["network"]["layers"][:-1] + [
        {"type": "softmax", "num_classes": 7}])), "network.layers[5].num_classes",
     "mnist has 10 classes, but the softmax layer has 7"),
    ("input larger than images", changed(("network.layers", [{"type": "input", "out_sx": 32, "out_sy": 28, "out_depth": 1},
                                                             {"type": "softmax", "num_classes": 10}])),
     "network.layers[0].out_sx", "an input of 32x28 is larger than mnist's 28x28 images; use at most 28x28"),
    ("input taller than images", changed(("network.layers", [{"type": "input", "out_sx": 24, "out_sy": 30, "out_depth": 1},
                                                             {"type": "softmax", "num_classes": 10}])),
     "network.layers[0].out_sy", "an input of 24x30 is larger"),
    ("input depth wrong", changed(("network.layers", [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 3},
                                                      {"type": "softmax", "num_classes": 10}])),
     "network.layers[0].out_depth", "mnist images have depth 1 (grey), but the input layer has depth 3"),
    ("colour dataset, grey input", changed(("data.dataset", "cifar10")), "network.layers[0].out_depth",
     "cifar10 images have depth 3 (colour), but the input layer has depth 1"),
    ("unknown dataset", changed(("data.dataset", "mnsit")), "data.dataset",
     "unknown dataset \"mnsit\"; choose one of mnist, fashion-mnist, cifar10. Did you mean 'mnist'?"),
    ("unknown method", changed(("trainer.method", "adamw")), "trainer.method",
     "unknown trainer method \"adamw\"; choose one of sgd, adam, adagrad, adadelta, windowgrad, nesterov. "
     "Did you mean 'adam'?"),
    ("method not a string", changed(("trainer.method", 3)), "trainer.method",
     "method must be a string (text in quotes), not a whole number (3)"),
    ("negative learning rate", changed(("trainer.learning_rate", -0.1)), "trainer.learning_rate",
     "learning_rate must be at least 0 (not negative), got -0.1"),
    ("negative l2 decay", changed(("trainer.l2_decay", -0.001)), "trainer.l2_decay",
     "l2_decay must be at least 0 (not negative), got -0.001"),
    ("negative l1 decay", changed(("trainer.l1_decay", -1)), "trainer.l1_decay", "l1_decay must be at least 0"),
    ("momentum of 1", changed(("trainer.momentum", 1)), "trainer.momentum",
     "momentum must be at least 0 and less than 1, got 1"),
    ("ro of 0", changed(("trainer.ro", 0)), "trainer.ro", "ro must be greater than 0 and less than 1, got 0"),
    ("batch_size zero", changed(("trainer.batch_size", 0)), "trainer.batch_size", "batch_size must be at least 1, got 0"),
    ("batch_size negative", changed(("trainer.batch_size", -5)), "trainer.batch_size", "at least 1, got -5"),
    ("batch_size a float", changed(("trainer.batch_size", 20.5)), "trainer.batch_size",
     "batch_size must be a whole number, not a decimal number (20.5)"),
    ("batch_size a string", changed(("trainer.batch_size", "20")), "trainer.batch_size",
     'batch_size must be a whole number, not a string ("20")'),
    ("batch_size a bool", changed(("trainer.batch_size", True)), "trainer.batch_size",
     "batch_size must be a whole number, not a boolean (true)"),
    ("batch_size over the limit", changed(("trainer.batch_size", 5000)), "trainer.batch_size",
     "batch_size 5000 is more than the limit of 4096"),
    ("learning rate a string", changed(("trainer.learning_rate", "fast")), "trainer.learning_rate",
     'learning_rate must be a number, not a string ("fast")'),
    ("learning rate huge", changed(("trainer.learning_rate", 10**400)), "trainer.learning_rate",
     "learning_rate is too large, got 1e400"),
    ("unknown trainer field", changed(("trainer.lerning_rate", 0.1)), "trainer.lerning_rate",
     "'lerning_rate' is not a field of trainer. Did you mean 'learning_rate'?"),
    ("trainer not an object", changed(("trainer", [1])), "trainer", "trainer must be an object, not a list"),
    ("unknown top-level field", changed(("devic", "cpu")), "devic", "'devic' is not a field of a job request. "
     "Did you mean 'device'?"),
    ("unknown device", changed(("device", "tpu")), "device", "unknown device \"tpu\"; choose one of auto, cpu, gpu"),
    ("crop not a boolean", changed(("data.augment.crop", 1)), "data.augment.crop",
     "crop must be true or false, not a whole number (1)"),
    ("validation fraction", changed(("data.validation_fraction", 0.9)), "data.validation_fraction",
     "validation_fraction must be between 0 and 0.5, got 0.9"),
    ("seed negative", changed(("seed", -1)), "seed", "seed must be between 0 and"),
    ("name too long", changed(("name", "x" * 201)), "name", "name is longer than 200 characters"),
    ("budget missing", changed(("budget", ...)), "budget", "a job needs a budget: examples, epochs or seconds"),
    ("budget empty", changed(("budget", {})), "budget", "give exactly one of examples, epochs or seconds"),
    ("budget with two units", changed(("budget.epochs", 2)), "budget", "give exactly one of examples, epochs or seconds"),
    ("budget null", changed(("budget", None)), "budget", "budget must not be null"),
    ("budget zero", changed(("budget.examples", 0)), "budget.examples", "examples must be at least 1, got 0"),
    ("budget zero seconds", changed(("budget", {"seconds": 0})), "budget.seconds", "seconds must be greater than 0"),
    ("budget unknown unit", changed(("budget", {"minutes": 5})), "budget.minutes",
     "'minutes' is not a field of budget. Known fields: examples, epochs, seconds."),
    ("budget over the limit", changed(("budget.examples", 20_000_000)), "budget.examples",
     "2e7 examples is more than the limit of 1e7"),
    ("epochs over the limit", changed(("budget", {"epochs": 5000})), "budget.epochs",
     "5000 epochs is more than the limit of 1000"),
    ("seconds over the limit", changed(("budget", {"seconds": 200_000})), "budget.seconds",
     "2e5 seconds is more than the limit of 86400"),
    ("huge budget", changed(("budget.examples", 10**400)), "budget.examples", "1e400 examples is more than the limit"),
    ("convnetjs and network", changed(("convnetjs", DEMO)), "convnetjs",
     "give either convnetjs (demo source) or network and trainer, not both"),
    ("convnetjs not text", {"convnetjs": 5, "budget": {"examples": 1}}, "convnetjs",
     "convnetjs must be a string (text in quotes), not a whole number (5)"),
    ("convnetjs with code", {"convnetjs": DEMO + "\nalert(1);", "budget": {"examples": 1}}, "convnetjs",
     "line 14: 'alert(1)' is not a layer_defs.push(...) or SGDTrainer statement"),
    ("convnetjs layer error points at its line", {"convnetjs": DEMO.replace("sx:5, filters:16", "sx:'5', filters:16"),
                                                  "budget": {"examples": 1}},
     "network.layers[3].sx", 'line 5: sx must be a whole number, not a string ("5")'),
    ("convnetjs trainer error", {"convnetjs": DEMO.replace("'adadelta'", "'adadeltaa'"), "budget": {"examples": 1}},
     "trainer.method", "Did you mean 'adadelta'?"),
]


@pytest.mark.parametrize(("case", "body", "path", "message"), ERRORS, ids=[row[0] for row in ERRORS])
def test_errors(case, body, path, message):
    errors = errors_of(copy.deepcopy(body))
    assert any(p == path and message in m for p, m in errors), errors


def test_every_problem_is_reported_at_once():
    body = changed(("trainer.method", "adamw"), ("trainer.batch_size", 5000), ("budget.examples", 20_000_000),
                   ("network.layers", [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
                                       {"type": "conv", "sx": 0, "filters": 8}, {"type": "softmax", "num_classes": 10}]))
    assert [path for path, _ in errors_of(body)] == [
        "trainer.method", "network.layers[1].sx", "budget.examples"]


def test_limits_come_from_the_config():
    config = Config(limits=Limits(max_params=1000), max_examples=10_000, max_batch_size=16)
    errors = errors_of(example(), config)
    assert errors == [("network.layers", "5994 parameters is more than the limit of 1000"),
                      ("budget.examples", "30000 examples is more than the limit of 10000"),
                      ("trainer.batch_size", "batch_size 20 is more than the limit of 16")]


def test_a_colour_network_fits_cifar10():
    body = changed(("data.dataset", "cifar10"),
                   ("network.layers", [{"type": "input", "out_sx": 32, "out_sy": 32, "out_depth": 3},
                                       {"type": "conv", "sx": 5, "filters": 8, "activation": "relu"},
                                       {"type": "softmax", "num_classes": 10}]))
    request, network = schemas.load_job_request(body, CONFIG)
    assert request["data"]["dataset"] == "cifar10" and network.layers[1]["out_sx"] == 28


def test_smaller_inputs_than_the_images_are_fine():
    body = changed(("network.layers", [{"type": "input", "out_sx": 28, "out_sy": 20, "out_depth": 1},
                                       {"type": "softmax", "num_classes": 10}]))
    schemas.load_job_request(body, CONFIG)


def test_trainer_patch():
    schema = schemas.TrainerPatchSchema()
    assert schema.load({"learning_rate": 0.5}) == {"learning_rate": 0.5}
    assert set(schema.fields) == set(schemas.TRAINER_LIVE_FIELDS)
    with pytest.raises(ValidationError) as info:
        schema.load({"method": "adam", "batch_size": 0, "lerning_rate": 1})
    errors = schemas._friendly(schemas._flatten(info.value.messages, "trainer"), {"trainer": {}}, schema)
    assert sorted((e.path, e.message) for e in errors) == [
        ("trainer.batch_size", "batch_size must be at least 1, got 0"),
        ("trainer.lerning_rate", "'lerning_rate' is not a field of trainer. Did you mean 'learning_rate'?"),
        ("trainer.method", "'method' is not a field of trainer. "
                           "Known fields: learning_rate, momentum, batch_size, l1_decay, l2_decay.")]


def test_methods():
    assert schemas.METHODS == ("sgd", "adam", "adagrad", "adadelta", "windowgrad", "nesterov")
    assert schemas.TrainerSchema().load({})["method"] == "sgd"


# Property: whatever a client sends as a job request, the answer is a request or InvalidSpec.

SCALARS = (st.none() | st.booleans() | st.floats() | st.text(max_size=8) | st.integers(-5, 50) | st.integers()
           | st.sampled_from([10**30, -(10**30), 10**400, 2**63, 0.5, -0.1, 1e-300]))
GARBAGE = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
LAYER = st.one_of(
    st.just({"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1}),
    st.just({"type": "conv", "sx": 5, "filters": 8, "pad": 2, "activation": "relu"}),
    st.just({"type": "pool", "sx": 2, "stride": 2}),
    st.just({"type": "softmax", "num_classes": 10}),
    st.dictionaries(st.sampled_from(["type", "sx", "filters", "num_classes", "out_depth", "pad", "stride", "x"]),
                    st.sampled_from(["conv", "pool", "fc", "softmax", "input", "relu"]) | SCALARS, max_size=4),
    GARBAGE,
)
NETWORK = st.fixed_dictionaries({"layers": st.lists(LAYER, max_size=6)}) | GARBAGE


def section(fields):
    return st.dictionaries(st.sampled_from(fields) | st.text(max_size=5), SCALARS | st.sampled_from(list(schemas.METHODS)),
                           max_size=4) | GARBAGE


PATHS = ["name", "seed", "device", "budget", "budget.examples", "budget.seconds", "trainer", "trainer.method",
         "trainer.batch_size", "trainer.learning_rate", "trainer.eps", "data", "data.dataset", "data.augment.crop",
         "network", "network.layers", "convnetjs", "network.extra"]


@st.composite
def mutated_examples(draw):
    """One of the examples with a few fields replaced, removed or added: mostly near-misses."""
    edits = draw(st.lists(st.tuples(st.sampled_from(PATHS), GARBAGE | st.just(...)), max_size=2))
    body = example()
    for key, value in edits:
        *parents, last = key.split(".")
        target = body
        for part in parents:
            target = target.get(part) if isinstance(target, dict) else None
        if isinstance(target, dict) and value is ...:
            target.pop(last, None)
        elif isinstance(target, dict):
            target[last] = value
    return body


REQUESTS = st.one_of(
    mutated_examples(),
    st.fixed_dictionaries({}, optional={
        "network": NETWORK,
        "convnetjs": st.just(DEMO) | st.text(max_size=40) | GARBAGE,
        "trainer": section(list(schemas.TrainerSchema().fields)),
        "data": section(["dataset", "validation_fraction", "augment", "val_interval", "test_crops"]),
        "budget": section(["examples", "epochs", "seconds"]),
        "seed": SCALARS, "name": SCALARS, "device": SCALARS | st.sampled_from(["cpu", "gpu"]),
        "extra": GARBAGE,
    }),
    GARBAGE,
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REQUESTS)
def test_any_request_loads_or_raises_invalid_spec(body):
    try:
        request, network = schemas.load_job_request(body, CONFIG)
    except InvalidSpec as exc:
        assert exc.errors
        for error in exc.errors:
            assert isinstance(error.path, str) and isinstance(error.message, str) and error.message
        return
    assert set(request) >= {"network", "trainer", "data", "budget", "seed", "name", "device"}
    assert request["trainer"]["eps"] > 0 and network.layers
    json.dumps(request)


@pytest.mark.parametrize("where", ["", "trainer", "data", "data.augment", "budget"])
def test_a_section_with_thousands_of_fields_is_refused_before_they_are_checked(where):
    body = json.loads((EXAMPLES / "net1-default.json").read_text())
    body["budget"] = {"examples": 100}
    body.setdefault("data", {}).setdefault("augment", {})
    flood = {f"k{i}": 1 for i in range(60_000)}
    target = body
    for part in filter(None, where.split(".")):
        target = target.setdefault(part, {})
    target.update(flood)
    with pytest.raises(InvalidSpec) as caught:
        schemas.load_job_request(body, Config())
    (error,) = caught.value.errors
    assert error.path == where and "fields; none has more than 100" in error.message
