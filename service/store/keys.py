"""Every Redis key convtrain uses, spelled here and nowhere else.

All keys live under one prefix, so a Redis shared with other programs keeps them apart.

Jobs
- ``job:{id}``              hash: the job's record (fields in service/store/record.py)
- ``job:{id}:metrics``      stream: metric points and timeline events, entry ids ``{seq}-0``
- ``job:{id}:lease``        string with a TTL: the fencing token of the attempt that trains the job
- ``job:{id}:snapshots``    list: layer statistics of each snapshot, in order (snapshot N is item N-1)
- ``jobs``                  sorted set: every job by creation time (listing, pagination)
- ``jobs:owner:{owner}``    sorted set: one tenant's jobs by creation time (its listing reads only these)
- ``jobs:running``          sorted set: running jobs by last heartbeat (the reaper's view)
- ``idem:{key}``            string: an Idempotency-Key's job id and body hash, for 24 hours

Sweeps
- ``sweep:{id}``            hash: the sweep's record (service/store/sweeps.py)
- ``sweeps``                sorted set: every sweep by creation time

Searches
- ``search:{id}``           hash: the search's record (service/store/searches.py)
- ``search:{id}:trials``    hash: trial number -> the trial's JSON (architecture, params, job id, outcome)
- ``search:{id}:lock``      string with a TTL: the one advance step running for the search
- ``search:{id}:study``     prefix of Optuna's journal (``:log_number``, ``:log:{n}``, ``:snapshot``), written
                            only by workers (worker/search.py); the API reads convtrain's records, never this
- ``searches``              sorted set: every search by creation time
- ``searches:running``      sorted set: running searches by the time they were last advanced (the reaper's view)

Datasets
- ``datasets:{owner}``      hash: one tenant's uploaded datasets, name -> JSON record (service/store/datasets.py)

Quotas
- ``active:{owner}``        set: the owner's jobs that may not have ended yet
- ``submits:{owner}:{minute}``  counter: jobs submitted in that minute, expires after two

Workers and their helpers
- ``workers``               sorted set: worker names by the time their liveness expires
- ``worker:{name}``         string with a TTL: a worker's liveness info (device, examples/s)
- ``reaper:lock``           string with a TTL: the one reaper sweeping now
- ``predict``               list: prediction requests waiting for a worker
- ``predict:reply:{token}`` list: the answer to one prediction request

API observability
- ``http:series``           set: the members of the request-latency histograms
- ``http:{member}``         hash: one histogram's bucket counters
"""

from __future__ import annotations

PREFIX = "convtrain:"


def job(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def metrics(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}:metrics"


def lease(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}:lease"


def snapshots(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}:snapshots"


JOBS = f"{PREFIX}jobs"
RUNNING = f"{PREFIX}jobs:running"


def owned(owner: str) -> str:
    return f"{PREFIX}jobs:owner:{owner}"


def idempotency(key: str) -> str:
    return f"{PREFIX}idem:{key}"


def sweep(sweep_id: str) -> str:
    return f"{PREFIX}sweep:{sweep_id}"


SWEEPS = f"{PREFIX}sweeps"


def search(search_id: str) -> str:
    return f"{PREFIX}search:{search_id}"


def search_trials(search_id: str) -> str:
    return f"{PREFIX}search:{search_id}:trials"


def search_lock(search_id: str) -> str:
    return f"{PREFIX}search:{search_id}:lock"


def search_study(search_id: str) -> str:
    return f"{PREFIX}search:{search_id}:study"


SEARCHES = f"{PREFIX}searches"
SEARCHES_RUNNING = f"{PREFIX}searches:running"


def datasets(owner: str) -> str:
    return f"{PREFIX}datasets:{owner}"


def active(owner: str) -> str:
    return f"{PREFIX}active:{owner}"


def submits(owner: str, minute: int) -> str:
    return f"{PREFIX}submits:{owner}:{minute}"


WORKERS = f"{PREFIX}workers"


def worker(name: str) -> str:
    return f"{PREFIX}worker:{name}"


REAPER_LOCK = f"{PREFIX}reaper:lock"
PREDICT = f"{PREFIX}predict"


def predict_reply(token: str) -> str:
    return f"{PREFIX}predict:reply:{token}"


HTTP_SERIES = f"{PREFIX}http:series"


def http(member: str) -> str:
    return f"{PREFIX}http:{member}"
