"""The Flask application factory."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask

from service.celery_app import make_celery
from service.config import Config
from service.lifecycle import JobControl
from service.storage import Artifacts
from service.store.datasets import DatasetStore
from service.store.jobs import JobStore
from service.store.searches import SearchStore
from service.store.sweeps import SweepStore
from service.store.workers import Workers


@dataclass
class Services:
    """What every request handler needs, built once per app."""

    config: Config
    store: JobStore
    celery: object
    artifacts: Artifacts
    control: JobControl
    sweeps: SweepStore
    workers: Workers
    datasets: DatasetStore
    searches: SearchStore

    @classmethod
    def build(cls, config: Config, url: str) -> "Services":
        store, celery = JobStore.from_url(url), make_celery(config, url)
        return cls(config, store, celery, Artifacts(config.artifacts_url), JobControl(store, celery),
                   SweepStore(store.r), Workers(store.r), DatasetStore(store.r), SearchStore(store.r))


def create_app(config: Config | None = None, redis_url: str | None = None) -> Flask:
    """Build the API for `config`; `redis_url` overrides config.redis_url (the embedded server's URL)."""
    from service.api import (
        dashboard,
        datasets,
        docs,
        events,
        health,
        jobs,
        layers,
        models,
        networks,
        observability,
        predict,
        problems,
        searches,
        security,
        sweeps,
    )

    config = config or Config.from_env()
    url = redis_url or config.redis_url
    if not url:
        raise ValueError("no Redis URL: set CONVTRAIN_REDIS_URL, or run `convtrain serve` for the embedded one")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.sort_keys = False
    app.extensions["convtrain"] = Services.build(config, url)
    problems.register(app)
    for module in (jobs, events, layers, predict, models, networks, health, docs, dashboard, observability,
                   security, sweeps, datasets, searches):
        app.register_blueprint(module.bp)
    security.init_app(app)
    observability.init_app(app)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return app
