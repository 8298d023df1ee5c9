"""The one place the Celery app is built, with the same settings in every process (CELERY.md §1)."""

from __future__ import annotations

import ssl

from celery import Celery

from service.config import Config

TRAIN_TASK = "convtrain.train"
SEARCH_TASK = "convtrain.search.advance"  # one short step of a search: tell Optuna what ended, queue what is next
QUEUES = ("cpu", "gpu", "auto")


def queue_for(device: str) -> str:
    """A job's device picks its queue; `auto` is consumed by every worker, so whichever is free takes it."""
    return {"cpu": "cpu", "gpu": "gpu"}.get(device, "auto")


def make_celery(config: Config, redis_url: str) -> Celery:
    app = Celery("convtrain", set_as_current=False)
    app.conf.update(
        broker_url=redis_url,
        task_ignore_result=True,  # the job record in Redis is the result
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        # Identical in every process: kombu's restore sweep uses the sweeping process's own value.
        broker_transport_options={
            "visibility_timeout": config.visibility_timeout,
            "unacked_restore_interval": 30,
            "unacked_restore_throttle": 1,
            "socket_timeout": 30,
            "socket_connect_timeout": 10,
        },
        task_default_queue="auto",
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    if redis_url.startswith("rediss://") and "ssl_cert_reqs" not in redis_url:
        # TLS to Redis: verify the server's certificate unless the URL says otherwise.
        app.conf.broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    return app
