"""The job store in Redis: the source of truth for every job, whatever the broker does.

Its keys are spelled in service/store/keys.py, its transitions are the Lua scripts of
service/store/scripts.py, and what each transition means is service/lifecycle.py.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

import redis

from service.errors import NotFound, OverQuota
from service.ids import new_id
from service.lifecycle import QUEUED, TERMINAL
from service.store import keys, scripts
from service.store.listing import newest_first
from service.store.record import encode, now, present

MAXLEN = 100_000  # entries a job's stream keeps (approximately: Redis trims whole nodes)


class JobNotFound(NotFound, KeyError):
    """No job with this id (or none this caller may see)."""

    def __init__(self, job_id: str):
        super().__init__(f"no job {job_id!r}")
        self.job_id = job_id

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True)
class Start:
    """The outcome of a worker's attempt to start a job."""

    outcome: str  # started, busy, finished, paused, cancelled, failed, missing
    token: str | None = None
    attempt: int = 0


@dataclass(frozen=True)
class NewJob:
    """A job about to be stored: its id, accepted request, network summary and queue."""

    id: str
    request: dict
    summary: dict
    queue: str
    extra: dict | None = None  # more fields of its record (a search's trial: its search and trial number)

    def record(self, owner: str, created: float) -> dict[str, str]:
        """The hash a queued job starts with (service/store/record.py lists every field)."""
        total = self.request["budget"].get("examples")
        fields = {
            "id": self.id, "name": self.request.get("name", ""), "status": QUEUED, "owner": owner,
            "created_at": created, "queue": self.queue, "device": self.request.get("device", "auto"),
            "request": self.request, "summary": self.summary,
            "examples_seen": 0, "examples_total": total, "starts": 0, "preemptions": 0, "seq": 0,
            **(self.extra or {}),
        }
        return {k: encode(v) for k, v in fields.items()}


def _over_quota(limit: str, count: int, asked: int, active_limit, submits_limit) -> OverQuota:
    if limit == "active_jobs":
        return OverQuota(limit, f"you have {count} jobs queued, running or paused; your quota is {active_limit}: "
                                "wait for some to finish or cancel them", 30)
    return OverQuota(limit, f"more than {submits_limit} submits in a minute", 60 - int(time.time() % 60))


def _fields(args: list, fields: dict) -> list:
    for k, v in fields.items():
        args += [k, encode(v)]
    return args


class JobStore:
    """Job records, metrics and leases in Redis."""

    def __init__(self, client: redis.Redis):
        self.r = client
        self._scripts = scripts.register(client)

    @classmethod
    def from_url(cls, url: str, **kwargs) -> "JobStore":
        # socket_timeout above the longest blocking read (the predict queue's BRPOP).
        return cls(redis.Redis.from_url(url, decode_responses=True, health_check_interval=10,
                                        socket_connect_timeout=5, socket_timeout=30, **kwargs))

    @staticmethod
    def _keys(job_id: str) -> list[str]:
        return [keys.job(job_id), keys.lease(job_id), keys.RUNNING]

    # --- create, read, list, delete --------------------------------------------

    def create(self, request: dict, summary: dict, *, queue: str, owner: str = "",
               job_id: str | None = None) -> dict:
        """Store one new queued job with no quota (the caller publishes its task afterwards)."""
        job_id = job_id or new_id()
        self.create_many([NewJob(job_id, request, summary, queue)], owner=owner)
        return self.get(job_id)

    def create_many(self, jobs: list["NewJob"], *, owner: str, active_limit: int | None = None,
                    submits_limit: int | None = None) -> str:
        """Store new queued jobs in one step, checking the owner's active-jobs and submits-per-minute quotas
        in the same step (None: no limit). Returns `created`, or `exists` when a job's id is taken already
        (a retried idempotent submit: nothing is written and nothing must be published); raises OverQuota."""
        created, score = now(), time.time()
        keys_ = [keys.active(owner), keys.submits(owner, int(score // 60)), keys.JOBS, keys.owned(owner)]
        args = [created, "" if active_limit is None else active_limit, "" if submits_limit is None else submits_limit,
                keys.job(""), len(jobs)]
        for i, job in enumerate(jobs):
            keys_.append(keys.job(job.id))
            # Unrounded and distinct, so that jobs created in one millisecond (a sweep) keep their cursor order.
            args += [job.id, repr(score + i * 1e-6), json.dumps(job.record(owner, created))]
        outcome = self._scripts["create"](keys=keys_, args=args)
        if outcome[0] in ("created", "exists"):
            return outcome[0]
        raise _over_quota(outcome[0], int(outcome[1]), len(jobs), active_limit, submits_limit)

    def exists(self, job_id: str) -> bool:
        return bool(self.r.exists(keys.job(job_id)))

    def raw(self, job_id: str) -> dict:
        record = self.r.hgetall(keys.job(job_id))
        if not record:
            raise JobNotFound(job_id)
        return record

    def get(self, job_id: str) -> dict:
        """The job as the API shows it."""
        return present(self.raw(job_id))

    def many(self, job_ids: list[str]) -> dict[str, dict | None]:
        """Each job as the API shows it, None for one that does not exist."""
        pipe = self.r.pipeline()
        for job_id in job_ids:
            pipe.hgetall(keys.job(job_id))
        return {job_id: (present(raw) if raw else None) for job_id, raw in zip(job_ids, pipe.execute())}

    def field_of(self, job_ids: list[str], name: str) -> list[str | None]:
        """One record field of each job (None where the job or the field does not exist)."""
        pipe = self.r.pipeline()
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), name)
        return pipe.execute()

    def statuses(self, job_ids: list[str]) -> list[str | None]:
        pipe = self.r.pipeline()
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), "status")
        return pipe.execute()

    def status(self, job_id: str) -> str | None:
        return self.r.hget(keys.job(job_id), "status")

    def device(self, job_id: str) -> str:
        return self.r.hget(keys.job(job_id), "device") or "auto"

    def examples_seen(self, job_id: str) -> int:
        return int(float(self.r.hget(keys.job(job_id), "examples_seen") or 0))

    def predictions_file(self, job_id: str) -> str:
        """The artifact holding a succeeded job's test predictions (older records: the fixed name)."""
        return self.r.hget(keys.job(job_id), "predictions") or "predictions.json"

    def model_info(self, job_id: str) -> dict | None:
        """The trained model's record (file, format, bytes, sha256, exports), None before the job succeeded."""
        raw = self.r.hget(keys.job(job_id), "model")
        return json.loads(raw) if raw else None

    def request(self, job_id: str) -> dict:
        return json.loads(self.raw(job_id)["request"])

    def list(self, *, status: str | None = None, owner: str | None = None, cursor: float | None = None,
             limit: int = 50) -> tuple[list[dict], str | None]:
        """Newest first; `cursor` is the created_at score to continue below."""
        index = keys.JOBS if owner is None else keys.owned(owner)

        def keep(record: dict) -> bool:
            return not (status and record.get("status") != status) and not (owner and record.get("owner") != owner)

        records, next_cursor = newest_first(self.r, index, keys.job, keep, cursor=cursor, limit=limit)
        return [present(record) for record in records], next_cursor

    def delete(self, job_id: str) -> None:
        owner = self.r.hget(keys.job(job_id), "owner") or ""
        pipe = self.r.pipeline()
        pipe.zrem(keys.owned(owner), job_id)
        pipe.delete(keys.job(job_id), keys.metrics(job_id), keys.lease(job_id), keys.snapshots(job_id))
        pipe.zrem(keys.JOBS, job_id)
        pipe.zrem(keys.RUNNING, job_id)
        pipe.execute()

    # --- idempotency -------------------------------------------------------------

    def claim_idempotency(self, key: str, body_hash: str, job_id: str, ttl: int = 24 * 3600) -> tuple[str, str] | None:
        """Bind `key` to (job_id, body_hash) unless bound already; return the existing binding."""
        name = keys.idempotency(key)
        if self.r.set(name, json.dumps([job_id, body_hash]), nx=True, ex=ttl):
            return None
        existing = self.r.get(name)
        return tuple(json.loads(existing)) if existing else None

    def release_idempotency(self, key: str) -> None:
        self.r.delete(keys.idempotency(key))

    # --- the worker's side ------------------------------------------------------

    def start(self, job_id: str, worker: str, lease_seconds: float, max_attempts: int,
              token: str | None = None) -> Start:
        """Take the job's lease; pass a `token` made once per attempt so that a retried start is recognised."""
        token = token or secrets.token_hex(8)
        result = self._scripts["start"](keys=self._keys(job_id), args=[
            token, worker, int(lease_seconds * 1000), now(), max_attempts, job_id])
        if result[0] == "started":
            return Start("started", token, int(result[1]))
        return Start(result[0])

    def heartbeat(self, job_id: str, token: str, lease_seconds: float) -> bool:
        """Renew the lease; False means another attempt owns the job now."""
        result = self._scripts["heartbeat"](keys=self._keys(job_id), args=[token, int(lease_seconds * 1000), now(), job_id])
        return result[0] == "ok"

    def update(self, job_id: str, token: str, **fields) -> bool:
        """Fenced write of record fields: only the lease holder's writes land."""
        return bool(self._scripts["update"](keys=self._keys(job_id)[:2], args=_fields([token], fields)))

    def add_point(self, job_id: str, token: str, point: dict, **fields) -> int:
        """Append a metric point or event to the job's stream (fenced); return its sequence number (0: refused)."""
        return self.add_points(job_id, token, [point], **fields)

    def add_points(self, job_id: str, token: str, points: list[dict], **fields) -> int:
        """Append points in order in one round trip (fenced) and set `fields`; return the last one's sequence
        number (0: refused)."""
        t = now()
        data = [json.dumps({**point, "t": point.get("t", t)}) for point in points]
        args = _fields([token, MAXLEN, len(data), *data], fields)
        return int(self._scripts["add_points"](keys=self._keys(job_id)[:2] + [keys.metrics(job_id)], args=args))

    def add_snapshot(self, job_id: str, token: str, stats: list[dict], examples: int) -> int:
        """Record a snapshot's layer statistics (fenced); return its number, counting from 1."""
        return int(self._scripts["add_snapshot"](keys=self._keys(job_id)[:2] + [keys.snapshots(job_id)], args=[
            token, json.dumps({"examples": examples, "layers": stats})]))

    def snapshot_count(self, job_id: str) -> int:
        return int(self.r.llen(keys.snapshots(job_id)))

    def snapshot(self, job_id: str, number: int) -> dict | None:
        """Snapshot `number` (1-based) as {"examples", "layers"}, or None."""
        raw = self.r.lindex(keys.snapshots(job_id), number - 1) if number >= 1 else None
        return json.loads(raw) if raw else None

    def checkpoint_name(self, job_id: str) -> str | None:
        return self.r.hget(keys.job(job_id), "checkpoint")

    def add_event(self, job_id: str, event: str, **data) -> int:
        """An event from outside a training attempt (a cancel while queued, a requeue by the reaper)."""
        return self.add_point(job_id, "", {"event": event, **data})

    def finish(self, job_id: str, token: str, status: str, event: dict, **fields) -> bool:
        """End the attempt's job with `status` and `fields`, and append `event` to its timeline (fenced)."""
        args = _fields([token, status, now(), job_id, json.dumps({**event, "t": now()}), MAXLEN], fields)
        return bool(self._scripts["finish"](keys=self._keys(job_id) + [keys.metrics(job_id)], args=args))

    def release(self, job_id: str, token: str, status: str, event: dict, *, preempted: bool) -> int:
        """Give the job back (queued for another worker, or paused) with `event` on its timeline (fenced);
        2 means a cancel won the race and the job ended cancelled."""
        return int(self._scripts["release"](keys=self._keys(job_id) + [keys.metrics(job_id)], args=[
            token, status, job_id, int(preempted), now(), json.dumps({**event, "t": now()}), MAXLEN]))

    def flags(self, job_id: str) -> dict:
        """The requests a running job must act on: cancel, pause, trainer changes."""
        cancel, pause, patch = self.r.hmget(keys.job(job_id), "cancel_requested", "pause_requested", "trainer_patch")
        return {"cancel": cancel == "1", "pause": pause == "1", "trainer_patch": patch}

    def take_trainer_patch(self, job_id: str, token: str) -> dict | None:
        """Read and clear pending trainer changes (they are in the stored request already)."""
        raw = self._scripts["take_patch"](keys=self._keys(job_id)[:2], args=[token])
        return json.loads(raw) if raw else None

    def patch_trainer(self, job_id: str, changes: dict) -> str:
        """Record live trainer changes: merged into the request now, picked up by a running worker; return the status."""
        key = keys.job(job_id)
        with self.r.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    status, request, pending = pipe.hmget(key, "status", "request", "trainer_patch")
                    if status is None:
                        return "missing"
                    if status in TERMINAL:
                        return status
                    request = json.loads(request)
                    request["trainer"].update(changes)
                    pending = {**(json.loads(pending) if pending else {}), **changes}
                    pipe.multi()
                    pipe.hset(key, mapping={"request": json.dumps(request), "trainer_patch": json.dumps(pending)})
                    pipe.execute()
                    return status
                except redis.WatchError:
                    continue

    # --- the API's side ------------------------------------------------------------

    def cancel(self, job_id: str) -> str:
        """cancelled, cancelling (a running job stops at its next poll), or 'already <status>'."""
        return self._scripts["cancel"](keys=self._keys(job_id), args=[now(), job_id])

    def pause(self, job_id: str) -> str:
        return self._scripts["pause"](keys=self._keys(job_id)[:2], args=[])

    def resume(self, job_id: str) -> str:
        """resumed (paused -> queued), or the status it has: a running job merely forgets a pending pause."""
        return self._scripts["resume"](keys=[keys.job(job_id)], args=[now()])

    def points(self, job_id: str, after: int = 0, limit: int | None = 1000) -> list[dict]:
        """Metric points and events with sequence numbers above `after`."""
        entries = self.r.xrange(keys.metrics(job_id), min=f"({after}-0" if after else "-", max="+", count=limit)
        return [_entry(entry_id, fields) for entry_id, fields in entries]

    def follow(self, job_id: str, after: int, block_ms: int | None) -> list[dict]:
        """Stream entries after `after`, waiting up to `block_ms` for the first (None: do not wait)."""
        entries = self.r.xread({keys.metrics(job_id): f"{after}-0"}, count=500, block=block_ms)
        return [_entry(entry_id, fields) for _, items in entries or [] for entry_id, fields in items]

    # --- the reaper's side ------------------------------------------------------------

    def stale(self, older_than: float) -> list[str]:
        """Running jobs whose last heartbeat is older than `older_than` seconds."""
        return self.r.zrangebyscore(keys.RUNNING, "-inf", now() - older_than)

    def reap(self, job_id: str) -> int:
        """Requeue a running job whose lease expired: 1 requeued, 2 cancelled, 0 nothing to do."""
        return int(self._scripts["reap"](keys=self._keys(job_id), args=[job_id, now()]))

    def queued_since(self, older_than: float) -> list[str]:
        """Queued jobs that no worker has started for `older_than` seconds (a lost publish)."""
        cutoff = now() - older_than
        ids = self.r.zrangebyscore(keys.JOBS, "-inf", cutoff)
        out = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            pipe = self.r.pipeline(transaction=False)
            for job_id in chunk:
                pipe.hmget(keys.job(job_id), "status", "requeued_at")
            for job_id, (status, requeued) in zip(chunk, pipe.execute()):
                if status == QUEUED and (not requeued or float(requeued) < cutoff):
                    out.append(job_id)
        return out

    def touch_requeued(self, job_id: str) -> None:
        self.r.hset(keys.job(job_id), "requeued_at", now())

    def lock_reaper(self, holder: str, seconds: float) -> bool:
        """Take the reaper's lock for `seconds` unless another reaper holds it."""
        return bool(self.r.set(keys.REAPER_LOCK, holder, nx=True, px=int(seconds * 1000)))

    # --- read-only views for /metrics ---------------------------------------------------

    def count_by_status(self, statuses: tuple[str, ...], page: int = 1000) -> dict[str, int]:
        """How many jobs are in each status: every one of `statuses` (zeros included), plus any unknown one.

        Cost: one pass over the ``jobs`` index, ``page`` jobs at a time: a ZRANGE, then one script that
        reads those jobs' status fields inside Redis and returns the counts, so N jobs take 2N/page round
        trips and N HGETs in Redis (about 0.1 s for 50,000 jobs on loopback), and Redis is never
        blocked for more than one page (about 1 ms). Jobs created or deleted during the pass may be
        counted or missed once, as with any gauge read while it changes.
        """
        counts = dict.fromkeys(statuses, 0)
        start = 0
        while True:
            ids = self.r.zrange(keys.JOBS, start, start + page - 1)
            if not ids:
                break
            flat = self._scripts["count_statuses"](keys=[keys.job(job_id) for job_id in ids])
            for status, n in zip(flat[::2], flat[1::2]):
                counts[status] = counts.get(status, 0) + int(n)
            if len(ids) < page:
                break
            start += page
        return counts


def _entry(entry_id: str, fields: dict) -> dict:
    return {"seq": int(entry_id.split("-")[0]), **json.loads(fields["data"])}
