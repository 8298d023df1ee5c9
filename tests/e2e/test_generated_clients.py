"""Clients generated from the served OpenAPI document work against the real service.

A module-scoped API (the `service` fixture's Redis and worker, `create_app` served over real
HTTP by werkzeug, every response checked against openapi.yaml by tests/openapi_check.py)
serves GET /openapi.yaml. From that document:

- `openapi-python-client` (the test extra pins it) generates a client into a temporary folder,
  with tests/contract/openapi-python-client.yaml; any line it prints besides "Generating ..."
  (a warning, a skipped schema, endpoint or body) fails the test. The user journey then runs
  through the generated package only: submit the default network, poll it to succeeded, page
  its metrics with the cursor, download models as bytes, look inside, predict an image, list
  jobs with the cursor, change and cancel a second job, read a 422's field errors, run a small
  sweep and read its report.
- `openapi-typescript` 7 (default options) generates TypeScript types, and `tsc --strict`
  type-checks every JSON response the journey received, and every JSON body it sent, against
  the operation's declared type. The npm packages are installed once into `.cache/openapi-typescript/`
  (git-ignored, like the convnetjs package of tests/convnetjs_node.py).

Where the generator, Node.js or npm is missing the tests are skipped, saying so; under CI
(CI=true) they fail instead.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import io
import json
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests import openapi_check
from tests.conftest import ROOT, example, wait_for

pytestmark = pytest.mark.e2e

CONTRACT = ROOT / "tests" / "contract"
GENERATOR_CONFIG = CONTRACT / "openapi-python-client.yaml"
PACKAGE = "convtrain_generated_client"  # the generated package's import name (temporary)
NODE_CACHE = ROOT / ".cache" / "openapi-typescript"
NPM_PACKAGES = {"openapi-typescript": "7.13.0", "typescript": "5.9.3"}
TERMINAL = ("succeeded", "failed", "cancelled")
# The steps of the journey, in order; the journey test passes when every one has.
STEPS = ("submit", "idempotent retry", "poll to succeeded", "metrics with the cursor", "metrics buckets", "the event stream",
         "download pt and onnx as bytes", "download convnetjs JSON", "model card", "layers and a layer picture",
         "test predictions", "predict a PNG", "predict multipart", "predict pixels", "submit a second job",
         "change its trainer", "list with the cursor", "cancel it", "a 422's field errors", "validate a network",
         "a 404 problem", "submit a sweep", "poll the sweep", "sweep report as bytes", "list sweeps",
         "datasets, health and whoami")


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the generated-client checks, but {reason}")
    pytest.skip(f"generated-client checks skipped: {reason}")


# --- the service, and the document it serves -------------------------------------------------------


@pytest.fixture(scope="module")
def api(service):
    """The API on a free port over real HTTP; every response it sends is checked against openapi.yaml."""
    from werkzeug.serving import make_server

    from service.api import create_app

    application = create_app(service.config, service.url)
    violations = openapi_check.install(application)
    server = make_server("127.0.0.1", 0, application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
    assert not violations, "responses that break openapi.yaml:\n" + "\n".join(violations)


@pytest.fixture(scope="module")
def document(api, tmp_path_factory) -> Path:
    """GET /openapi.yaml from the running API, saved to a file; it is the repository's openapi.yaml."""
    import httpx

    response = httpx.get(f"{api}/openapi.yaml", timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/yaml")
    assert yaml.safe_load(response.text) == openapi_check.spec()
    path = tmp_path_factory.mktemp("contract") / "openapi.yaml"
    path.write_text(response.text, "utf-8")
    return path


# --- the Python client ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(document):
    """The package openapi-python-client generates from the served document, imported."""
    try:
        import openapi_python_client  # noqa: F401
    except ImportError:
        _unavailable("openapi-python-client is not installed (pip install -e '.[test]')")
    folder = document.parent / "python"
    folder.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(document),
         "--output-path", str(folder / PACKAGE), "--meta", "none", "--config", str(GENERATOR_CONFIG),
         "--fail-on-warning"],
        check=False, capture_output=True, text=True, timeout=300, cwd=folder)
    printed = (done.stdout + done.stderr).strip()
    others = [line for line in printed.splitlines() if line.strip() and not line.startswith("Generating ")]
    assert done.returncode == 0 and not others, f"openapi-python-client did not generate cleanly:\n{printed}"
    sys.path.insert(0, str(folder))
    try:
        package = importlib.import_module(PACKAGE)
        # Every module imports (an endpoint module can be generated broken, e.g. a name it never imports).
        modules = [m.name for m in pkgutil.walk_packages(package.__path__, PACKAGE + ".")]
        for name in modules:
            importlib.import_module(name)
        operations = {op["operationId"] for item in openapi_check.spec()["paths"].values()
                      for method, op in item.items() if method != "parameters"}
        endpoints = {name.rsplit(".", 1)[1] for name in modules if ".api." in name and name.count(".") == 3}
        missing = {op for op in operations if re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower() not in endpoints}
        assert not missing, f"operations without a generated endpoint: {sorted(missing)}"
        yield package
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


class Recorder:
    """Every request body sent and response received, with the documented operation that served it."""

    def __init__(self, spec: dict):
        self.routes = []
        for path in spec["paths"]:
            pattern = "[^/]+".join(re.escape(part) for part in re.split(r"\{[^}]+\}", path))
            self.routes.append((re.compile(f"^{pattern}$"), path))
        self.responses: list[dict] = []
        self.requests: list[dict] = []

    def operation(self, url_path: str) -> str:
        matches = [path for regex, path in self.routes if regex.match(url_path)]
        assert len(matches) == 1, f"{url_path} matches {matches} in openapi.yaml"
        return matches[0]

    @staticmethod
    def _media_type(headers) -> str:
        return headers.get("content-type", "").split(";")[0].strip().lower()

    def on_request(self, request) -> None:
        media = self._media_type(request.headers)
        if media == "application/json":
            self.requests.append({"path": self.operation(request.url.path), "method": request.method.lower(),
                                  "media": media, "body": json.loads(request.content)})

    def on_response(self, response) -> None:
        response.read()
        media = self._media_type(response.headers)
        record = {"path": self.operation(response.request.url.path), "method": response.request.method.lower(),
                  "status": response.status_code, "media": media, "bytes": len(response.content)}
        if media == "application/json" or media.endswith("+json"):
            record["body"] = json.loads(response.content)
        self.responses.append(record)


class Journey:
    """The user journey through the generated client; `passed` lists the steps done, `error` the first failure."""

    def __init__(self, package, base_url: str, recorder: Recorder):
        import httpx

        self.p = package
        self.rec = recorder
        self.client = package.Client(base_url=base_url, raise_on_unexpected_status=True, timeout=httpx.Timeout(60),
                                     httpx_args={"event_hooks": {"request": [recorder.on_request],
                                                                 "response": [recorder.on_response]}})
        self.passed: list[str] = []
        self.error: Exception | None = None
        self.ids: dict[str, str] = {}

    def api(self, name: str):
        """A generated endpoint module, e.g. api('jobs.submit_job')."""
        return importlib.import_module(f"{self.p.__name__}.api.{name}")

    @property
    def m(self):
        return importlib.import_module(f"{self.p.__name__}.models")

    @property
    def types(self):
        return importlib.import_module(f"{self.p.__name__}.types")

    def run(self) -> None:
        methods = [getattr(self, "step_" + re.sub(r"\W+", "_", name.lower()).strip("_")) for name in STEPS]
        for name, method in zip(STEPS, methods):
            try:
                method()
            except Exception as exc:  # noqa: BLE001 -- kept, and raised again by the journey test
                self.error = exc
                exc.add_note(f"journey step {name!r} failed (passed: {', '.join(self.passed) or 'none'})")
                return
            self.passed.append(name)

    # --- helpers

    def call(self, endpoint: str, *args, expect: int = 200, **kwargs):
        """sync_detailed of a generated endpoint; the status must be `expect`; the parsed body."""
        response = self.api(endpoint).sync_detailed(*args, client=self.client, **kwargs)
        assert response.status_code == expect, (endpoint, response.status_code, response.content[:500])
        return response.parsed

    def job(self, job_id: str):
        job = self.call("jobs.get_job", job_id)
        assert isinstance(job, self.m.Job) and job.id == job_id
        return job

    def wait(self, job_id: str, statuses, timeout: float = 240):
        def arrived():  # in a tuple: a generated model with no additional properties has len() 0, so is false
            job = self.job(job_id)
            return (job,) if job.status.value in statuses else None
        (job,) = wait_for(arrived, timeout, f"job {job_id} in {statuses}", every=0.2)
        return job

    def request_body(self, **changes):
        return self.m.JobRequest.from_dict(example("net1-default.json", **changes))

    # --- the steps

    def step_submit(self):
        self.key = f"contract-{os.getpid()}-{time.time_ns()}"
        body = self.request_body(name="contract-journey", budget={"examples": 600})
        job = self.call("jobs.submit_job", body=body, idempotency_key=self.key, expect=202)
        assert isinstance(job, self.m.Job) and job.name == "contract-journey"
        assert job.status.value in ("queued", "running")
        request = job.request
        assert isinstance(request, self.m.AcceptedRequest)
        assert isinstance(request.trainer, self.m.AcceptedTrainer) and request.trainer.eps == 1e-6  # adadelta
        assert isinstance(request.defaults, self.m.DefaultSources)
        assert request.defaults.trainer_eps.startswith("convnetjs 0.3.0 (npm): 1e-6")
        assert request.trainer.method.value == "adadelta" and request.trainer.batch_size == 20
        assert isinstance(request.data, self.m.AcceptedData) and request.data.dataset == "mnist"
        assert request.budget.examples == 600 and isinstance(request.seed, int)
        assert request.network.layers[0].type_.value == "input"
        assert isinstance(job.network, self.m.NetworkSummary) and job.network.params > 0
        self.ids["first"] = job.id

    def step_idempotent_retry(self):
        body = self.request_body(name="contract-journey", budget={"examples": 600})
        job = self.call("jobs.submit_job", body=body, idempotency_key=self.key, expect=200)
        assert job.id == self.ids["first"]

    def step_poll_to_succeeded(self):
        job = self.wait(self.ids["first"], TERMINAL)
        assert job.status.value == "succeeded", job.error
        assert isinstance(job.result, self.m.Result) and 0 <= job.result.test_acc <= 1
        assert job.progress.fraction == 1.0 and job.result.examples_seen == 600
        assert isinstance(job.model, self.m.ModelFile)
        self.first = job

    def step_metrics_with_the_cursor(self):
        points, after, pages = [], 0, 0
        while True:
            page = self.call("jobs.get_job_metrics", self.ids["first"], after=after, limit=5)
            assert isinstance(page, self.m.MetricsPage) and len(page.points) <= 5
            pages += 1
            if not page.points:
                assert page.next_ == after
                break
            assert page.next_ == page.points[-1].seq
            points += page.points
            after = page.next_
        assert [p.seq for p in points] == list(range(1, len(points) + 1)) and pages > 2
        events = [p for p in points if isinstance(p, self.m.EventPoint)]
        samples = [p for p in points if isinstance(p, self.m.MetricSample)]
        assert len(events) + len(samples) == len(points) and samples
        assert events[0].event.value == "started" and events[-1].event.value == "finished"
        assert isinstance(events[-1].result, self.m.Result)
        assert all(s.examples <= 600 and s.batch_size == 20 for s in samples)

    def step_metrics_buckets(self):
        buckets = self.call("jobs.get_job_metrics", self.ids["first"], points=10)
        assert isinstance(buckets, self.m.MetricsBuckets) and 1 <= len(buckets.buckets) <= 10
        assert "class_loss" in buckets.buckets[-1].last.additional_properties

    def step_the_event_stream(self):
        # A generated client reads the whole body: for a finished job, every frame up to `end`.
        text = self.call("jobs.stream_job_events", self.ids["first"])
        assert isinstance(text, str), type(text)
        frames = [frame for frame in text.split("\n\n") if frame.strip()]
        assert frames[0].startswith("retry: ") and "event: end\ndata: " in frames[-1]
        events = [line.split(": ", 1)[1] for frame in frames for line in frame.splitlines() if line.startswith("event: ")]
        assert events[0] == "status" and events[-1] == "end" and "metrics" in events
        job = self.m.Job.from_dict(json.loads(frames[-1].split("data: ", 1)[1]))
        assert job.id == self.ids["first"] and job.status.value == "succeeded"

    def _download(self, fmt: str) -> bytes:
        enum = self.api("jobs.get_job_model").GetJobModelFormat
        file = self.call("jobs.get_job_model", self.ids["first"], format_=enum(fmt))
        assert isinstance(file, self.types.File)
        data = file.payload.read()
        assert isinstance(data, bytes)
        export = self.first.model.exports[fmt]
        assert isinstance(export, self.m.ExportFile), export
        assert hashlib.sha256(data).hexdigest() == export.sha256 and len(data) == export.bytes_
        return data

    def step_download_pt_and_onnx_as_bytes(self):
        assert self._download("pt")[:2] == b"PK"  # torch.save writes a zip archive
        assert len(self._download("onnx")) > 1000

    def step_download_convnetjs_json(self):
        net = self.m.ConvNetJSNet.from_dict(json.loads(self._download("convnetjs")))
        assert net.layers[0].layer_type.value == "input" and net.layers[-1].layer_type.value == "softmax"

    def step_model_card(self):
        card = self.call("jobs.get_job_model_card", self.ids["first"])
        assert isinstance(card, self.m.ModelCard) and card.job == self.ids["first"]
        assert isinstance(card.trainer, self.m.AcceptedTrainer) and card.init is None
        assert isinstance(card.formats.pt, self.m.ModelCardFile) and card.formats.pt.url.endswith("format=pt")

    def step_layers_and_a_layer_picture(self):
        layers = self.call("look_inside.get_job_layers", self.ids["first"])
        assert isinstance(layers, self.m.Layers) and layers.layers[0].index == 0
        kind = self.api("look_inside.get_layer_picture").GetLayerPictureKind
        picture = self.call("look_inside.get_layer_picture", self.ids["first"], 1, kind("filters"))
        assert picture.payload.read()[:8] == b"\x89PNG\r\n\x1a\n"

    def step_test_predictions(self):
        predictions = self.call("look_inside.get_job_predictions", self.ids["first"], limit=3)
        assert isinstance(predictions, self.m.Predictions) and len(predictions.predictions) == 3
        self.png = base64.b64decode(predictions.predictions[0].image.split(",", 1)[1])
        assert self.png[:8] == b"\x89PNG\r\n\x1a\n"

    def _prediction(self, body):
        prediction = self.call("look_inside.predict", self.ids["first"], body=body)
        assert isinstance(prediction, self.m.Prediction) and len(prediction.probabilities) == 10
        assert abs(sum(prediction.probabilities) - 1) < 1e-4
        assert len(prediction.top) == 3 and prediction.top[0].probability == max(prediction.probabilities)
        return prediction

    def step_predict_a_png(self):
        self._prediction(self.types.File(payload=io.BytesIO(self.png), file_name="digit.png", mime_type="image/png"))

    def step_predict_multipart(self):
        image = self.types.File(payload=io.BytesIO(self.png), file_name="digit.png", mime_type="image/png")
        self._prediction(self.m.PredictFilesBody(image=image))

    def step_predict_pixels(self):
        from PIL import Image

        grey = Image.open(io.BytesIO(self.png)).convert("L").resize((28, 28))
        rows = [[grey.getpixel((x, y)) for x in range(28)] for y in range(28)]
        self._prediction(self.m.PixelsRequest(pixels=rows))

    def step_submit_a_second_job(self):
        body = self.request_body(name="contract-journey-cancelled", budget={"examples": 1_000_000})
        job = self.call("jobs.submit_job", body=body, expect=202)
        self.ids["second"] = job.id

    def step_change_its_trainer(self):
        job = self.call("jobs.change_trainer", self.ids["second"], body=self.m.TrainerPatch(learning_rate=0.5))
        assert isinstance(job, self.m.Job) and job.request.trainer.learning_rate == 0.5

    def step_list_with_the_cursor(self):
        seen, cursor = [], self.types.UNSET
        for _ in range(1000):
            page = self.call("jobs.list_jobs", limit=1, cursor=cursor)
            assert isinstance(page, self.m.JobList) and len(page.jobs) <= 1
            seen += [job.id for job in page.jobs]
            if {self.ids["first"], self.ids["second"]} <= set(seen) or page.next_ is None:
                break
            cursor = page.next_
        assert len(seen) == len(set(seen)) >= 2, seen
        assert seen.index(self.ids["second"]) < seen.index(self.ids["first"]), "newest first"
        assert all(isinstance(j, self.m.JobSummary) for j in page.jobs)

    def step_cancel_it(self):
        job = self.call("jobs.cancel_job", self.ids["second"], expect=202)
        detail = None if isinstance(job.status_detail, self.types.Unset) else job.status_detail.value
        assert job.status.value == "cancelled" or detail == "cancelling", (job.status, detail)
        assert self.wait(self.ids["second"], TERMINAL, timeout=60).status.value == "cancelled"

    def step_a_422_s_field_errors(self):
        body = example("net1-default.json", budget={"examples": 600})
        body["network"]["layers"][2]["sx"] = 30  # a pool window larger than its 24x24 input
        response = self.api("jobs.submit_job").sync_detailed(client=self.client,
                                                            body=self.m.JobRequest.from_dict(body))
        problem = response.parsed
        assert response.status_code == 422 and isinstance(problem, self.m.ValidationProblem), response.content
        assert problem.status.value == 422 and problem.title
        assert "network.layers[2].sx" in [error.path for error in problem.errors]
        assert all(isinstance(error, self.m.FieldError) and error.message for error in problem.errors)

    def step_validate_a_network(self):
        network = self.m.NetworkSpec.from_dict(example("net2-3x3.json")["network"])
        summary = self.call("networks.validate_network", body=network)
        assert isinstance(summary, self.m.NetworkSummary) and summary.params > 0
        bad = self.m.NetworkSpec.from_dict({"layers": [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
                                                       {"type": "pool", "sx": 30},
                                                       {"type": "softmax", "num_classes": 10}]})
        problem = self.call("networks.validate_network", body=bad, expect=422)
        assert isinstance(problem, self.m.ValidationProblem) and problem.errors

    def step_a_404_problem(self):
        problem = self.call("jobs.get_job", "0123456789abcdef", expect=404)
        assert isinstance(problem, self.m.Problem) and problem.status == 404 and problem.instance

    def step_submit_a_sweep(self):
        body = self.m.SweepRequest.from_dict({
            "name": "contract-sweep",
            "base": example("net1-default.json", budget={"examples": 200}),
            "grid": {"trainer.batch_size": [10, 20]},
        })
        sweep = self.call("sweeps.submit_sweep", body=body, expect=202)
        assert isinstance(sweep, self.m.Sweep) and sweep.jobs == 2 and len(sweep.variants) == 2
        self.ids["sweep"] = sweep.id

    def step_poll_the_sweep(self):
        def finished():  # in a tuple, as in wait()
            sweep = self.call("sweeps.get_sweep", self.ids["sweep"])
            return (sweep,) if sweep.status.value != "running" else None
        (sweep,) = wait_for(finished, 300, "the sweep finished", every=0.5)
        assert sweep.status.value == "succeeded", sweep.to_dict()
        assert [row.succeeded for row in sweep.table] == [1, 1]
        assert all(0 <= row.test_acc_mean <= 1 for row in sweep.table)
        assert all(v.patch is None and v.grid.additional_properties for v in sweep.variants)

    def step_sweep_report_as_bytes(self):
        enum = self.api("sweeps.get_sweep_report").GetSweepReportFormat
        markdown = self.call("sweeps.get_sweep_report", self.ids["sweep"], format_=enum("md")).payload.read()
        assert markdown.decode().lstrip().startswith("#")
        figure = self.call("sweeps.get_sweep_report", self.ids["sweep"], format_=enum("png")).payload.read()
        assert figure[:8] == b"\x89PNG\r\n\x1a\n"

    def step_list_sweeps(self):
        page = self.call("sweeps.list_sweeps", limit=500)
        assert isinstance(page, self.m.SweepList) and self.ids["sweep"] in [s.id for s in page.sweeps]

    def step_datasets_health_and_whoami(self):
        datasets = self.call("datasets.list_datasets")
        assert "mnist" in [d.name for d in datasets.datasets]
        assert self.call("health.health").status == "ok"
        assert self.call("health.ready").status == "ready"
        assert self.call("security.whoami").principal


@pytest.fixture(scope="module")
def journey(generated, api) -> Journey:
    run = Journey(generated, api, Recorder(openapi_check.spec()))
    run.run()
    return run


def test_generated_python_client_runs_the_user_journey(journey):
    if journey.error is not None:
        raise journey.error
    assert journey.passed == list(STEPS)


# --- the TypeScript types --------------------------------------------------------------------------------


def _npm_packages() -> Path:
    """node_modules with the pinned openapi-typescript and typescript; skip (fail under CI) without Node.js or npm."""
    if shutil.which("node") is None:
        _unavailable("Node.js (node) is not installed")
    modules = NODE_CACHE / "node_modules"

    def installed() -> bool:
        for name, version in NPM_PACKAGES.items():
            manifest = modules / name / "package.json"
            if not manifest.exists() or json.loads(manifest.read_text())["version"] != version:
                return False
        return True

    if not installed():
        npm = shutil.which("npm")
        if npm is None:
            _unavailable("npm is not installed")
        NODE_CACHE.mkdir(parents=True, exist_ok=True)
        specs = [f"{name}@{version}" for name, version in NPM_PACKAGES.items()]
        done = subprocess.run([npm, "install", "--prefix", str(NODE_CACHE), "--no-audit", "--no-fund",
                               "--save-exact", *specs], check=False, capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not installed():
            _unavailable(f"npm install {' '.join(specs)} failed: {done.stderr.strip()[-500:]}")
    return modules


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _typescript_file(journey: Journey) -> str:
    """A module that assigns each recorded JSON body to its operation's declared type."""
    lines = ['import type { components, paths } from "./schema";', ""]

    def declare(kind: str, record: dict, type_expression: str, n: int) -> None:
        where = f"{record['method'].upper()} {record['path']}" + (f" -> {record['status']}" if "status" in record else "")
        lines.append(f"// {kind}: {where} ({record['media']})")
        lines.append(f"export const {kind}{n}: {type_expression} = {json.dumps(record['body'])};")

    # At most the first two and the last two of each operation and status: jobs in every state, small and large pages.
    groups: dict[tuple, list[dict]] = {}
    for record in journey.rec.responses:
        if "body" in record:
            groups.setdefault((record["path"], record["method"], record["status"], record["media"]), []).append(record)
    chosen = [r for group in groups.values() for r in (group if len(group) <= 4 else group[:2] + group[-2:])]
    for n, record in enumerate(chosen):
        operation = f"paths[{json.dumps(record['path'])}][{json.dumps(record['method'])}]"
        declare("response", record, f"{operation}[\"responses\"][{record['status']}][\"content\"]"
                                    f"[{json.dumps(record['media'])}]", n)
    for n, record in enumerate(journey.rec.requests):
        operation = f"paths[{json.dumps(record['path'])}][{json.dumps(record['method'])}]"
        declare("request", record, f"NonNullable<{operation}[\"requestBody\"]>[\"content\"][{json.dumps(record['media'])}]", n)
    # Every example job request is a valid request body as it is: no optional field is required.
    for n, path in enumerate(sorted((ROOT / "examples").glob("net*.json"))):
        lines.append(f"// examples/{path.name}")
        lines.append(f"export const example{n}: components[\"schemas\"][\"JobRequest\"] = {path.read_text()};")
    lines += [
        "",
        "// The check bites: a status the document does not list, and a job without its required fields.",
        "// @ts-expect-error",
        'export const wrongStatus: components["schemas"]["JobStatus"] = "lost";',
        "// @ts-expect-error",
        'export const partialJob: components["schemas"]["Job"] = { id: "0123abcd" };',
        "",
    ]
    return "\n".join(lines)


def test_recorded_responses_type_check_with_openapi_typescript(journey, document):
    """openapi-typescript (default options) generates types from the served document without a warning,
    and `tsc --strict` accepts every JSON body the journey sent and received, each as its operation's type."""
    modules = _npm_packages()
    # How many polls the journey made depends on the machine's speed; which operations it reached does not.
    reached = {(r["path"], r["method"]) for r in journey.rec.responses}
    assert len(reached) >= 20, f"the journey reached too few operations to check: {sorted(reached)}"
    folder = document.parent / "typescript"
    folder.mkdir(exist_ok=True)
    env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}
    done = subprocess.run(["node", str(modules / "openapi-typescript" / "bin" / "cli.js"), str(document),
                           "-o", str(folder / "schema.d.ts")],
                          check=False, capture_output=True, text=True, timeout=300, cwd=folder, env=env)
    printed = ANSI.sub("", done.stdout + done.stderr).strip()
    others = [line for line in printed.splitlines()
              if line.strip() and not re.match(r"^\W*(openapi-typescript \d|\S+ → \S+ \[)", line.strip())]
    assert done.returncode == 0 and not others, f"openapi-typescript did not generate cleanly:\n{printed}"

    (folder / "bodies.ts").write_text(_typescript_file(journey), "utf-8")
    (folder / "tsconfig.json").write_text(json.dumps({
        "compilerOptions": {"strict": True, "noEmit": True, "target": "ES2022", "module": "ESNext",
                            "moduleResolution": "Bundler", "types": [], "skipLibCheck": False},
        "files": ["bodies.ts", "schema.d.ts"],
    }, indent=2))
    done = subprocess.run(["node", str(modules / "typescript" / "bin" / "tsc"), "-p", str(folder / "tsconfig.json")],
                          check=False, capture_output=True, text=True, timeout=600, cwd=folder, env=env)
    assert done.returncode == 0, "tsc --strict rejects recorded bodies:\n" + (done.stdout + done.stderr)[-20000:]
