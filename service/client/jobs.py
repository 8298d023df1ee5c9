"""A training job as a script sees it: its record, its progress, metrics, events, model files and predictions."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from service.client.errors import ApiError
from service.client.events import Event, follow
from service.client.progress import Bar
from service.client.resource import Resource, body_or_file
from service.config import Config
from service.lifecycle import TERMINAL
from service.spec.netspec import InvalidSpec
from service.spec.request_body import DEMO_EXAMPLES, read_body


def _is_path(spec: str | Path) -> bool:
    """A Path, or a one-line string naming a `.json`/`.js` file or an existing file (other strings are demo source)."""
    if isinstance(spec, Path):
        return True
    return "\n" not in spec and (spec.lower().endswith((".json", ".js")) or Path(spec).is_file())


def request_body(spec: dict | str | Path, overrides: dict) -> Any:
    """The POST /v1/jobs body for `spec`: a job request or a bare network ``{"layers": [...]}`` (a dict), a
    `.json` or demo `.js` file (read as `convtrain submit` reads it), or demo source as a string (the
    service parses it, with the demo's budget unless `budget` is given); each of `overrides` replaces that
    top-level member (`budget`, `trainer`, `name`, `seed`, ...)."""
    if isinstance(spec, dict):
        body: Any = dict(spec)
    elif _is_path(spec):
        try:
            body = read_body(str(spec), Config(), demo_budget=True)
        except InvalidSpec as exc:
            raise ApiError(exc.errors[0].message) from None
    elif isinstance(spec, str):
        body = {"convnetjs": spec, "budget": {"examples": DEMO_EXAMPLES}}
    else:
        raise TypeError(f"submit takes a dict, a path or demo source, not {type(spec).__name__}")
    if isinstance(body, dict) and "layers" in body:
        body = {"network": body}
    return {**body, **overrides} if isinstance(body, dict) else body  # not an object: the service says why


def _image_part(image: Any) -> dict:
    """`requests` arguments that send `image` as POST .../predict takes it: pixels as JSON, else a picture file."""
    if isinstance(image, (list, tuple)) or hasattr(image, "tolist"):  # rows of pixels, or an array
        return {"json": {"pixels": image.tolist() if hasattr(image, "tolist") else list(image)}}
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
    elif isinstance(image, (bytes, bytearray)):
        data = bytes(image)
    else:
        data = Path(image).read_bytes()
    return {"files": {"image": ("image", data)}}


class Job(Resource):
    """A job of the service (`client.submit(...)`, `client.job(id)`); `record` holds what was last fetched."""

    collection = "/v1/jobs"

    @property
    def result(self) -> dict | None:
        return self.record.get("result")

    @property
    def progress(self) -> dict | None:
        return self.record.get("progress")

    @property
    def error(self) -> dict | None:
        return self.record.get("error")

    def ended(self) -> bool:
        return self.status in TERMINAL

    def draw(self, bar: Bar) -> None:
        bar.job(self.record)

    def metrics(self, after: int = 0, page: int = 1000) -> Iterator[dict]:
        """Every point of the job's stream after seq `after` (metric values and events, in order; so far, for a
        job still training), fetched `page` at a time following the cursor."""
        while True:
            answer = self.session.json("GET", f"{self.path}/metrics", params={"after": after, "limit": page})
            if not answer["points"]:
                return
            yield from answer["points"]
            after = answer["next"]

    def metrics_records(self) -> list[dict]:
        """The metric values (no events) as flat dicts: `pandas.DataFrame(job.metrics_records())`."""
        return [point for point in self.metrics() if "event" not in point]

    def events(self, after: int | None = None) -> Iterator[Event]:
        """The job's Server-Sent Events after seq `after`, until `end` (whose data is the finished job);
        reconnects after a dropped connection from the last event received."""
        for event in follow(self.session, f"{self.path}/events", after):
            if event.event == "end":
                self.record = event.data
            yield event

    def download(self, format: str = "pt", path: str | Path | None = None) -> bytes | Path:
        """The trained model in `format` (pt, safetensors, torchscript, onnx, convnetjs): its bytes, or written
        to `path` (a folder: under the service's name for it) and that path."""
        response = self.session.request("GET", f"{self.path}/model", params={"format": format}, stream=True)
        with response:
            return body_or_file(response, path, f"model-{self.id}.{format}")

    def predict(self, image: Any) -> dict:
        """Classify `image` (a file's path, PNG/JPEG bytes, a PIL image, or rows of pixels / an array):
        ``{"probabilities": [...], "top": [{"class", "probability"}, ...]}``."""
        return self.session.json("POST", f"{self.path}/predict", **_image_part(image))

    def _control(self, method: str, action: str, **kwargs) -> dict:
        self.record = self.session.json(method, f"{self.path}/{action}", **kwargs)
        return self.record

    def cancel(self) -> dict:
        """Stop it (a running job within a fraction of a second); the record, maybe still `cancelling`."""
        return self._control("POST", "cancel")

    def pause(self) -> dict:
        """Checkpoint it and free its worker."""
        return self._control("POST", "pause")

    def resume(self) -> dict:
        """Queue a paused job again, to continue from its checkpoint."""
        return self._control("POST", "resume")

    def set_trainer(self, **changes) -> dict:
        """Change trainer options live (`learning_rate=0.5, batch_size=40`), from the next batch on."""
        return self._control("PATCH", "trainer", json=changes)

    def delete(self) -> None:
        """Delete a finished job and its files."""
        self.session.request("DELETE", self.path)
