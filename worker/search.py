"""A search's worker side: Optuna's study on the shared Redis, the advance step, and a trial's rungs.

There is no controller process. `advance` is one short step, run under the search's lock: it tells Optuna
how every trial whose job has ended came out (each once: only a trial Optuna still has running is told),
then asks for new trials while fewer than `parallel` are training and fewer than `trials` were asked, and
queues each valid one as an ordinary job (an invalid one is told FAIL and costs nothing). The worker that
ends a trial's job runs the step at once, in its own process; the API sends it as a task on submit and
cancel; the reaper sends it again for a search that has not advanced for a while, so a lost task, a step
that died halfway or a trial ended by someone else (a cancel while queued) never stalls a search.

Each step reads the search's own record for what it did before: a trial is written `creating` (with its
job id) before its job is stored, so a step that dies between the two is finished by the next one, and an
Optuna trial the record does not know (asked, then the step died) is told FAIL.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalRedisBackend
from optuna.trial import TrialState

from service.celery_app import queue_for
from service.errors import OverQuota
from service.ids import new_id
from service.lifecycle import CANCELLED, PRUNED, SUCCEEDED, TERMINAL, JobControl, publish
from service.spec import search as search_spec
from service.store import keys, quotas
from service.store.jobs import NewJob
from service.store.record import now
from service.store.searches import CANCELLED as SEARCH_CANCELLED
from service.store.searches import FAILED as SEARCH_FAILED
from service.store.searches import RUNNING as SEARCH_RUNNING
from service.store.searches import SUCCEEDED as SEARCH_SUCCEEDED
from service.store.searches import TOLD, SearchNotFound, SearchStore
from worker.runner import WorkerContext

log = logging.getLogger("convtrain.search")
optuna.logging.set_verbosity(optuna.logging.WARNING)  # the search's record and the job logs say what happened
# JournalRedisBackend is marked experimental since Optuna 3.1; it is the journal storage the design asks for.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
LOCK_SECONDS = 60.0  # far above one step (a few hundred ms): a step that outlives it is fenced out
WAIT_SECONDS = 20.0  # how long a step waits for another one to finish before leaving it to the reaper
ARCHITECTURE = "architecture"  # the Optuna parameter that picks the architecture
OUTCOME = {SUCCEEDED: "complete", PRUNED: "pruned", CANCELLED: "cancelled"}  # a job's status -> the trial's state


def study_storage(redis_url: str, search_id: str) -> JournalStorage:
    """Optuna's journal of the search, on the same Redis, under the search's keys: one study for every worker."""
    return JournalStorage(JournalRedisBackend(redis_url, use_cluster=False, prefix=keys.search_study(search_id)))


def sampler(spec: search_spec.SearchSpec, asked: int) -> optuna.samplers.BaseSampler:
    """The search's sampler, seeded by the search's seed and the trials asked so far: each step makes a new
    sampler, and a sampler seeded the same each time would ask for the same values each time."""
    seed = (spec.seed + asked) % 2**32
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, constant_liar=spec.parallel > 1)


def pruner(spec: search_spec.SearchSpec) -> optuna.pruners.BasePruner:
    kind, first, factor = spec.pruner["type"], spec.pruner["min_examples"], spec.pruner["reduction_factor"]
    if kind == "hyperband":
        budget = max(a.request["budget"]["examples"] for a in spec.architectures)
        return optuna.pruners.HyperbandPruner(min_resource=first, max_resource=budget, reduction_factor=factor)
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=factor)
    return optuna.pruners.NopPruner()


def open_study(redis_url: str, search_id: str, spec: search_spec.SearchSpec, asked: int = 0) -> optuna.Study:
    return optuna.create_study(study_name=search_id, storage=study_storage(redis_url, search_id),
                               sampler=sampler(spec, asked), pruner=pruner(spec), direction="maximize",
                               load_if_exists=True)


@dataclass
class Searches:
    """The search side of one worker process: its stores, its Celery app and the Redis URL Optuna uses."""

    ctx: WorkerContext
    celery: object  # the Celery app (send_task)
    redis_url: str

    def __post_init__(self):
        self.searches = SearchStore(self.ctx.store.r)

    # --- the advance step ------------------------------------------------------------------

    def advance(self, search_id: str) -> str:
        """One step of the search (see the module's docstring); what it did, for the log."""
        token = self._lock(search_id)
        if token is None:
            return "busy"
        try:
            return self._step(search_id, token)
        except SearchNotFound:
            return "deleted"
        finally:
            self.searches.unlock(search_id, token)

    def _lock(self, search_id: str) -> str | None:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            token = self.searches.lock(search_id, LOCK_SECONDS)
            if token or time.monotonic() > deadline:
                return token
            time.sleep(0.05)

    def _step(self, search_id: str, token: str) -> str:
        record = self.searches.get(search_id)
        if record.status != SEARCH_RUNNING:
            return record.status
        spec = search_spec.parse(record.body, self.ctx.config, record.uploads.get)
        study = open_study(self.redis_url, search_id, spec, record.asked)
        store = self.ctx.store
        trials = {t["number"]: t for t in record.trials}
        changed: list[dict] = []
        # What ended since the last step, told to Optuna once each.
        jobs = store.many([t["job"] for t in trials.values() if t["state"] == "running"])
        if record.cancel_requested:  # the cancel route stopped the jobs it saw; a step running then may have made more
            for trial in trials.values():
                job = jobs.get(trial["job"]) if trial["state"] == "running" else None
                if job is not None and job["status"] not in TERMINAL:
                    JobControl(store, self.celery).cancel_quietly(trial["job"])
        for trial in trials.values():
            if trial["state"] == "creating" and record.cancel_requested and not store.exists(trial["job"] or ""):
                study.tell(trial["number"], state=TrialState.FAIL, skip_if_finished=True)
                changed.append({**trial, "state": "cancelled", "job": None})
            elif trial["state"] == "creating":
                self._create(record, spec, study, trial, token)
            elif trial["state"] == "running":
                job = jobs.get(trial["job"])
                if job is None or job["status"] in TERMINAL:
                    changed.append(self._tell(study, trial, job))
        trials.update((t["number"], t) for t in changed)
        known = set(trials)
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen.number not in known:  # asked by a step that died before recording it
                study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)
        if changed and not self.searches.write(search_id, token, trials=changed):
            return "fenced out"
        # New trials while there is room.
        asked = record.asked
        active = sum(1 for t in trials.values() if t["state"] in ("creating", "running"))
        while not record.cancel_requested and asked < spec.trials and active < spec.parallel:
            study.sampler = sampler(spec, asked)
            trial = self._ask(study, spec)
            asked += 1
            if not self.searches.write(search_id, token, fields={"asked": asked}, trials=[trial]):
                return "fenced out"
            trials[trial["number"]] = trial
            if trial["state"] == "creating":
                if not self._create(record, spec, study, trial, token):
                    break  # over the owner's quota: the trial waits, created by a later step
                active += 1
        # Ended when nothing more will be asked and every trial has been told.
        fields: dict = {}
        done = record.cancel_requested or asked >= spec.trials
        if done and all(t["state"] in TOLD for t in trials.values()):
            scored = any(t.get("value") is not None for t in trials.values())
            fields = {"status": SEARCH_CANCELLED if record.cancel_requested else
                      SEARCH_SUCCEEDED if scored else SEARCH_FAILED, "finished_at": now()}
        self.searches.write(search_id, token, fields=fields)
        return fields.get("status", "advanced")

    def _ask(self, study: optuna.Study, spec: search_spec.SearchSpec) -> dict:
        """Ask Optuna for a trial and build its candidate: a trial entry, `creating` or `invalid`."""
        trial = study.ask()
        names = [a.name for a in spec.architectures]
        name = trial.suggest_categorical(ARCHITECTURE, names) if len(names) > 1 else names[0]
        params = {}
        for d in spec.architecture(name).dimensions:
            if d.kind == "choice":
                params[d.path] = trial.suggest_categorical(d.path, list(d.choices))
            elif d.kind == "int":
                params[d.path] = trial.suggest_int(d.path, int(d.low), int(d.high), log=d.log)
            else:
                params[d.path] = trial.suggest_float(d.path, float(d.low), float(d.high), log=d.log)
        candidate = search_spec.candidate(spec, name, params, trial.number, self.ctx.config)
        entry = {"number": trial.number, "architecture": name, "params": params, "skipped": list(candidate.skipped),
                 "job": None, "state": "creating", "value": None, "errors": candidate.errors}
        if candidate.request is None:
            study.tell(trial, state=TrialState.FAIL)
            entry["state"] = "invalid"
        return entry

    def _create(self, record, spec: search_spec.SearchSpec, study: optuna.Study, trial: dict, token: str) -> bool:
        """Store and publish a `creating` trial's job (its id is in the record already, so a step that died
        here makes no second job); False while the owner is over quota."""
        candidate = search_spec.candidate(spec, trial["architecture"], trial["params"], trial["number"],
                                          self.ctx.config)
        job_id = trial["job"] or new_id()
        if not trial["job"]:
            trial["job"] = job_id
            if not self.searches.write(record.id, token, trials=[trial]):
                return False
        request = candidate.request
        new = NewJob(job_id, request, candidate.summary, queue_for(request["device"]),
                     extra={"search": record.id, "trial": trial["number"]})
        quota = record.quota
        try:
            if quota is None:
                self.ctx.store.create_many([new], owner=record.owner)
            else:
                quotas.check_sizes(quota, [(request, candidate.params)])
                self.ctx.store.create_many([new], owner=record.owner, active_limit=quota["active_jobs"],
                                           submits_limit=quota["submits_per_minute"])
        except OverQuota as over:
            if over.limit in ("active_jobs", "submits_per_minute"):
                return False
            # Too big for the owner's quotas: invalid, as any other combination that cannot run.
            study.tell(trial["number"], state=TrialState.FAIL, skip_if_finished=True)
            trial.update(state="invalid", job=None, errors=[{"path": over.limit, "message": over.message}])
            self.searches.write(record.id, token, trials=[trial])
            return True
        trial["state"] = "running"
        if not self.searches.write(record.id, token, trials=[trial]):
            return False
        publish(self.celery, job_id, request["device"])
        return True

    def _tell(self, study: optuna.Study, trial: dict, job: dict | None) -> dict:
        """Tell Optuna how the trial's job ended, unless it knows already; the trial entry, updated."""
        status = job["status"] if job else "deleted"
        result = (job or {}).get("result") or {}
        value = result.get("val_acc")
        every = study.get_trials(deepcopy=False)  # in number order
        frozen = every[trial["number"]] if trial["number"] < len(every) else None
        if status == SUCCEEDED and value is not None:
            state, told = "complete", TrialState.COMPLETE
        elif status == PRUNED:
            state, told, value = "pruned", TrialState.PRUNED, None
        else:
            state, told, value = OUTCOME.get(status, "failed"), TrialState.FAIL, None
        if frozen is not None and not frozen.state.is_finished():
            study.tell(trial["number"], value if told == TrialState.COMPLETE else None, state=told,
                       skip_if_finished=True)
        if state == "pruned":
            reports = list(frozen.intermediate_values.values()) if frozen is not None else []
            value = reports[-1] if reports else None
        return {**trial, "state": state, "value": value}

    # --- the hooks a trial's job trains with -------------------------------------------------

    def after_job(self, job_id: str) -> None:
        """The worker that ended a trial's job advances its search at once (in this process: nothing to lose)."""
        search_id = self.ctx.store.field_of([job_id], "search")[0]
        if not search_id:
            return
        try:
            log.info("search %s: %s", search_id, self.advance(search_id))
        except Exception:  # the reaper sends the step again
            log.exception("search %s: advance after job %s failed", search_id, job_id)

    def trial_hooks(self, record: dict, job_id: str, token: str, timeline) -> dict:
        """Hooks fields for a trial's job: its rungs, and at each the fixed slice's val_acc written to the job's
        timeline (fenced) and reported to Optuna, which says whether to prune. {} for a job of no search."""
        search_id = record.get("search")
        if not search_id:
            return {}
        try:
            search = self.searches.get(search_id)
        except SearchNotFound:
            return {}
        spec = search_spec.parse(search.body, self.ctx.config, search.uploads.get)
        budget = json.loads(record["request"])["budget"]["examples"]
        rungs = search_spec.rungs(spec.pruner, int(budget))
        number = int(record["trial"])
        reports = [tuple(r) for r in _json_list(record.get("rungs"))]
        state: dict = {}

        def on_rung(examples: int, val_acc: float | None) -> bool:
            if val_acc is None:
                return False
            reports[:] = [r for r in reports if r[0] != examples] + [(examples, val_acc)]
            landed = timeline.event({"event": "rung", "examples": examples, "val_acc": val_acc},
                                    rungs=[list(r) for r in reports])
            if not landed:  # fenced out (another attempt owns the job) or Redis down: Optuna hears nothing
                return False
            try:
                if "trial" not in state:
                    study = open_study(self.redis_url, search_id, spec)
                    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
                    state["trial"] = optuna.trial.Trial(study, trial_id)
                trial = state["trial"]
                trial.report(val_acc, examples)
                return spec.pruner["type"] != "none" and trial.should_prune()
            except Exception:  # the trial trains on to its budget: a report lost, never the job
                log.exception("search %s trial %d: report at %d examples failed", search_id, number, examples)
                return False

        return {"rungs": tuple(rungs), "on_rung": on_rung, "val_slice": spec.val_slice}


def _json_list(raw: str | None) -> list:
    return json.loads(raw) if raw else []
