"""The worker's side of the `predict` queue: a thread that answers predictions with cached models."""

from __future__ import annotations

import base64
import io
import logging
import threading
from collections import OrderedDict

import torch

from service.spec.datasets import DatasetInfo
from service.store.predictions import answer, take
from worker import data, imaging
from worker.data import center_crop, to_input
from worker.exports import load_net
from worker.model import Net

log = logging.getLogger("convtrain.predict")
CACHED_MODELS = 8


class Predictor(threading.Thread):
    """Pops prediction requests and answers them; keeps the last few models loaded."""

    def __init__(self, ctx, poll_seconds: float = 1.0):
        super().__init__(daemon=True, name="predictor")
        self.ctx, self.poll_seconds = ctx, poll_seconds
        self.stopped = threading.Event()
        self.models: OrderedDict[tuple[str, str], tuple[Net, DatasetInfo]] = OrderedDict()

    def run(self) -> None:
        r = self.ctx.store.r
        while not self.stopped.is_set():
            try:
                request = take(r, self.poll_seconds)
            except Exception as exc:  # Redis restarting
                log.warning("predict queue unavailable: %s", exc)
                self.stopped.wait(1.0)
                continue
            if request is None:
                continue
            try:
                result = self.handle(request)
            except ValueError as exc:
                result = {"error": {"status": 422, "title": "Invalid image", "message": str(exc)}}
            except Exception as exc:
                log.exception("prediction for job %s failed", request["job"], extra={"job_id": request["job"]})
                result = {"error": {"status": 500, "title": "Prediction failed", "message": type(exc).__name__}}
            try:
                answer(r, request, result)
            except Exception as exc:
                log.warning("could not answer a prediction: %s", exc)

    def model(self, job_id: str) -> tuple[Net, DatasetInfo]:
        """The job's trained model and what it was trained on, loaded once and kept while among the recently used."""
        info = self.ctx.store.model_info(job_id)
        if info is None:
            raise ValueError("the job has no trained model")
        key = (job_id, info["sha256"])
        if key not in self.models:
            saved = torch.load(io.BytesIO(self.ctx.artifacts.get(job_id, info["file"])), map_location="cpu",
                               weights_only=True)
            trained_on = self.ctx.store.get(job_id)["request"]["data"]
            self.models[key] = load_net(saved), data.info_of(trained_on, self.ctx.artifacts)
            while len(self.models) > CACHED_MODELS:
                self.models.popitem(last=False)
        self.models.move_to_end(key)
        return self.models[key]

    @torch.no_grad()
    def handle(self, request: dict) -> dict:
        net, info = self.model(request["job"])
        first = net.spec[0]
        depth = first["out_depth"]
        cfg = self.ctx.config
        if request["kind"] == "image":
            image = imaging.decode(base64.b64decode(request["payload"]), max_bytes=cfg.max_upload_bytes,
                                   max_pixels=cfg.max_upload_pixels)
            if info.name in ("mnist", "fashion-mnist"):  # fitted as MNIST's digits were made
                pixels = imaging.fit_like_mnist(image, depth, info.width)
            else:  # the dataset's own images were only resized, so a user's picture is too
                pixels = imaging.resize(image, depth, info.width, info.height)
        else:
            pixels = imaging.from_pixels(request["payload"], depth, info.width, info.height)
        x = torch.from_numpy(pixels)[None]
        x = center_crop(x, first["out_sy"], first["out_sx"])
        probabilities = torch.softmax(net(to_input(x)), 1)[0].tolist()
        order = sorted(range(len(probabilities)), key=lambda i: -probabilities[i])[:3]
        return {"probabilities": probabilities,
                "top": [{"class": i, "probability": probabilities[i]} for i in order]}
