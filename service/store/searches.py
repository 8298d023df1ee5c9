"""Search records in Redis: what the API shows of a search, written by the advance step that holds its lock.

Keys (spelled in service/store/keys.py):
- ``search:{id}``         hash: id, name, owner, created_at, body (the request as sent), quota (JSON: the owner's
                          quotas when it was submitted, for the jobs its workers create), status, asked (trials
                          sampled so far), cancel_requested, advanced_at, advance_sent_at, finished_at
- ``search:{id}:trials``  hash: trial number -> {number, architecture, params, skipped, job, state, value,
                          errors}; `state` is convtrain's view of Optuna's: creating (asked, its job not yet
                          stored), running (its job exists; the job's record has its live status), complete,
                          pruned, failed, cancelled (told to Optuna), invalid (no job: not a valid job request)
- ``search:{id}:lock``    the advance step's lock: its token fences every write above, so a step that outlived
                          its lock (a stalled worker) changes nothing
- ``searches``, ``searches:running``  sorted sets: every search by creation time; running ones by last advance

The trials' live numbers (status, examples, each rung's val_acc) are in their jobs' records, fenced by the
jobs' leases; the API reads both.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

from service.errors import NotFound
from service.store import keys
from service.store.listing import newest_first
from service.store.record import now

RUNNING, SUCCEEDED, FAILED, CANCELLED = "running", "succeeded", "failed", "cancelled"
TOLD = ("complete", "pruned", "failed", "cancelled", "invalid")  # trial states whose end Optuna knows

# KEYS: lock, search, trials, running index. ARGV: token, search fields (n, k1, v1, ...), trial fields (k, v...),
# and whether the search has ended (then it leaves the running index).
_WRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[2])
for i = 3, 2 + 2 * n, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
local at = 3 + 2 * n
local m = tonumber(ARGV[at])
for i = at + 1, at + 2 * m, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
local ended = ARGV[at + 2 * m + 1]
if ended == '1' then redis.call('ZREM', KEYS[4], ARGV[at + 2 * m + 2])
else redis.call('ZADD', KEYS[4], ARGV[at + 2 * m + 3], ARGV[at + 2 * m + 2]) end
return 1
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class SearchNotFound(NotFound, KeyError):
    """No search with this id (or none this caller may see)."""

    def __init__(self, search_id: str):
        super().__init__(f"no search {search_id!r}")

    def __str__(self) -> str:
        return self.detail


@dataclass
class SearchRecord:
    id: str
    name: str
    owner: str
    created_at: float
    body: dict
    quota: dict | None = None
    uploads: dict = field(default_factory=dict)  # the owner's datasets its requests name: name -> upload record
    status: str = RUNNING
    asked: int = 0
    cancel_requested: bool = False
    advanced_at: float | None = None
    finished_at: float | None = None
    trials: list[dict] = field(default_factory=list)  # by number

    @property
    def job_ids(self) -> list[str]:
        return [t["job"] for t in self.trials if t.get("job")]


class SearchStore:
    """Search records in Redis; their trials' jobs are in the job store."""

    def __init__(self, client):
        self.r = client
        self._write = client.register_script(_WRITE)
        self._unlock = client.register_script(_UNLOCK)

    def create(self, record: SearchRecord) -> None:
        pipe = self.r.pipeline()
        pipe.hset(keys.search(record.id), mapping={
            "id": record.id, "name": record.name, "owner": record.owner, "created_at": record.created_at,
            "body": json.dumps(record.body), "quota": json.dumps(record.quota),
            "uploads": json.dumps(record.uploads), "status": RUNNING, "asked": 0,
            "cancel_requested": "0", "advanced_at": record.created_at})
        pipe.zadd(keys.SEARCHES, {record.id: record.created_at})
        pipe.zadd(keys.SEARCHES_RUNNING, {record.id: record.created_at})
        pipe.execute()

    def get(self, search_id: str) -> SearchRecord:
        pipe = self.r.pipeline()
        pipe.hgetall(keys.search(search_id))
        pipe.hgetall(keys.search_trials(search_id))
        raw, trials = pipe.execute()
        if not raw:
            raise SearchNotFound(search_id)
        return _record(raw, trials)

    def list(self, *, owner: str | None = None, cursor: float | None = None,
             limit: int = 50) -> tuple[list[SearchRecord], str | None]:
        """Newest first (without their trials), only `owner`'s when given; `cursor` continues below."""
        records, next_cursor = newest_first(self.r, keys.SEARCHES, keys.search,
                                            lambda raw: owner is None or raw.get("owner") == owner,
                                            cursor=cursor, limit=limit)
        return [_record(raw, {}) for raw in records], next_cursor

    def running(self, owner: str) -> int:
        """How many of `owner`'s searches are running."""
        ids = self.r.zrange(keys.SEARCHES_RUNNING, 0, -1)
        pipe = self.r.pipeline()
        for search_id in ids:
            pipe.hget(keys.search(search_id), "owner")
        return sum(1 for who in pipe.execute() if who == owner)

    def mark_cancelled(self, search_id: str) -> None:
        self.r.hset(keys.search(search_id), "cancel_requested", "1")

    def delete(self, search_id: str) -> None:
        """The record, its trials and Optuna's journal of it."""
        study = keys.search_study(search_id)
        pipe = self.r.pipeline()
        pipe.delete(keys.search(search_id), keys.search_trials(search_id), keys.search_lock(search_id))
        for key in self.r.scan_iter(match=f"{study}:*", count=500):
            pipe.delete(key)
        pipe.zrem(keys.SEARCHES, search_id)
        pipe.zrem(keys.SEARCHES_RUNNING, search_id)
        pipe.execute()

    # --- the advance step (worker/search.py) ---------------------------------------------

    def lock(self, search_id: str, seconds: float) -> str | None:
        """Take the search's lock for `seconds`; its token, or None when another step holds it."""
        token = secrets.token_hex(8)
        return token if self.r.set(keys.search_lock(search_id), token, nx=True, px=int(seconds * 1000)) else None

    def unlock(self, search_id: str, token: str) -> None:
        self._unlock(keys=[keys.search_lock(search_id)], args=[token])

    def write(self, search_id: str, token: str, *, fields: dict | None = None, trials: list[dict] = ()) -> bool:
        """Set search fields and trials in one step, only while `token` holds the lock. False: fenced out."""
        fields = {**(fields or {}), "advanced_at": now()}
        args: list = [token, len(fields)]
        for k, v in fields.items():
            args += [k, json.dumps(v) if isinstance(v, (dict, list)) else ("" if v is None else str(v))]
        args.append(len(trials))
        for trial in trials:
            args += [trial["number"], json.dumps(trial)]
        ended = fields.get("status", RUNNING) != RUNNING
        args += ["1" if ended else "0", search_id, fields["advanced_at"]]
        return bool(self._write(keys=[keys.search_lock(search_id), keys.search(search_id),
                                      keys.search_trials(search_id), keys.SEARCHES_RUNNING], args=args))

    # --- the reaper's side -------------------------------------------------------------

    def stalled(self, older_than: float, resend_after: float) -> list[str]:
        """Running searches not advanced for `older_than` seconds, unless the step sent to them last has not
        run yet and was sent less than `resend_after` seconds ago (all workers busy: it waits its turn)."""
        cutoff = now() - older_than
        ids = self.r.zrangebyscore(keys.SEARCHES_RUNNING, "-inf", cutoff)
        out = []
        for search_id in ids:
            sent, advanced = self.r.hmget(keys.search(search_id), "advance_sent_at", "advanced_at")
            if not sent or float(sent) <= float(advanced or 0) or float(sent) < now() - resend_after:
                out.append(search_id)
        return out

    def advance_sent(self, search_id: str) -> None:
        self.r.hset(keys.search(search_id), "advance_sent_at", now())


def _record(raw: dict, trials: dict) -> SearchRecord:
    listed = sorted((json.loads(t) for t in trials.values()), key=lambda t: t["number"])
    return SearchRecord(
        id=raw["id"], name=raw.get("name", ""), owner=raw.get("owner", ""), created_at=float(raw["created_at"]),
        body=json.loads(raw.get("body") or "{}"), quota=json.loads(raw.get("quota") or "null"),
        uploads=json.loads(raw.get("uploads") or "{}"),
        status=raw.get("status") or RUNNING, asked=int(raw.get("asked") or 0),
        cancel_requested=raw.get("cancel_requested") == "1",
        advanced_at=float(raw["advanced_at"]) if raw.get("advanced_at") else None,
        finished_at=float(raw["finished_at"]) if raw.get("finished_at") else None, trials=listed)
