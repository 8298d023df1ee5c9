"""Configuration: one frozen object read from CONVTRAIN_* environment variables."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from service.spec.netspec import Limits


@dataclass(frozen=True)
class Config:
    """Everything a convtrain process can be told; every field has a sane default."""

    home: Path = field(default_factory=lambda: Path.home() / ".convtrain")
    redis_url: str | None = None  # None: `convtrain serve` starts an embedded redis-server
    data_dir: Path | None = None  # None: <home>/data
    artifacts: str | None = None  # an fsspec URL; None: <home>/artifacts
    max_body_bytes: int = 1 << 20
    max_upload_bytes: int = 8 << 20  # an image to classify
    max_upload_pixels: int = 40_000_000  # checked before decoding: no decompression bombs
    predict_timeout_seconds: float = 10.0
    max_json_depth: int = 32
    limits: Limits = field(default_factory=Limits)
    max_examples: int = 10_000_000
    max_epochs: int = 1_000
    max_seconds: int = 24 * 3600
    max_batch_size: int = 4096
    # Security: without a tokens file the service has one local user (only for 127.0.0.1).
    tokens_file: Path | None = None
    quota_active_jobs: int = 20
    quota_examples_per_job: int = 2_000_000
    quota_params_per_network: int = 5_000_000
    quota_submits_per_minute: int = 120
    torch_threads: int = 1
    # Reliability: a worker renews its lease every `heartbeat_seconds`; a lease
    # unrenewed for `lease_seconds` is dead and the reaper requeues its job.
    lease_seconds: float = 10.0
    heartbeat_seconds: float = 2.0
    reaper_seconds: float = 2.0
    republish_seconds: float = 600.0  # a job queued this long without a start gets its task sent again
    checkpoint_seconds: float = 5.0
    snapshot_seconds: float = 5.0  # layer pictures of the probe image
    max_attempts: int = 3
    metrics_interval_seconds: float = 1.0  # metric points wait at most this long to be written, in one batch
    # Sweeps (POST /v1/sweeps): counted before anything is expanded or validated (service/spec/sweep.py).
    sweep_max_grid_paths: int = 20
    sweep_max_grid_values: int = 100  # values at one grid path
    sweep_max_variants: int = 100  # listed variants
    sweep_max_repeats: int = 100
    sweep_max_jobs: int = 500  # variants x grid combinations x repeats
    sweep_max_check_bytes: int = 1 << 20  # JSON of the distinct job requests that planning validates, added up
    # Searches (POST /v1/searches): counted before any architecture is validated (service/spec/search.py).
    search_max_architectures: int = 20
    search_max_space_paths: int = 20
    search_max_choices: int = 100  # values of one choice path
    search_max_trials: int = 500
    search_max_parallel: int = 16  # trials queued or training at once
    search_advance_seconds: float = 30.0  # a running search not advanced this long gets its advance task again
    # Dataset uploads (POST /v1/datasets): every size is checked from zip directories and image headers
    # before anything is decompressed or decoded (service/datasets/).
    dataset_max_upload_bytes: int = 64 << 20
    dataset_max_unpacked_bytes: int = 256 << 20  # zip members' declared sizes, added up
    dataset_max_files: int = 100_000  # zip members
    dataset_max_images: int = 100_000
    dataset_max_image_pixels: int = 1_000_000  # one image, width x height
    dataset_max_total_pixels: int = 200_000_000  # the converted dataset: images x width x height x depth
    dataset_max_classes: int = 256  # labels are stored as bytes
    dataset_max_ratio: int = 200  # a zip member's uncompressed size over its compressed size: more is a bomb
    quota_datasets: int = 20  # datasets per tenant
    quota_dataset_bytes: int = 1 << 30  # converted bytes of a tenant's datasets, added up
    quota_searches: int = 5  # a tenant's searches running at once (their trials count as jobs besides)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir) if self.data_dir else self.home / "data"

    @property
    def artifacts_url(self) -> str:
        return self.artifacts or str(self.home / "artifacts")

    @property
    def visibility_timeout(self) -> int:
        """Twice the longest allowed job, so the broker never redelivers a healthy job (CELERY.md §1.2)."""
        return int(2 * self.max_seconds) + 3600

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, env=None, **overrides) -> "Config":
        """Read CONVTRAIN_* variables; keyword overrides win."""
        env = os.environ if env is None else env
        values: dict = {}
        limit_values: dict = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"CONVTRAIN_{f.name.upper()}")
            if raw is None or raw == "" or f.name == "limits":
                continue
            values[f.name] = _convert(f.type, raw, f.name)
        for f in dataclasses.fields(Limits):
            raw = env.get(f"CONVTRAIN_{f.name.upper()}")
            if raw:
                limit_values[f.name] = _convert("int", raw, f.name)
        if limit_values:
            values["limits"] = Limits(**limit_values)
        values.update(overrides)
        for key in ("home", "data_dir", "tokens_file"):
            if values.get(key) is not None:
                values[key] = Path(values[key]).expanduser()
        return cls(**values)


def _convert(kind: str, raw: str, name: str):
    try:
        if kind.startswith("int"):
            return int(float(raw))
        if kind.startswith("float"):
            return float(raw)
    except ValueError:
        raise ValueError(f"CONVTRAIN_{name.upper()}={raw!r} is not a number") from None
    return raw
