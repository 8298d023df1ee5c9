"""The job store's Lua scripts: each state change is one script, so two workers, the reaper and the API
can never interleave halfway through a transition (../shared/CELERY.md §2).

KEYS are always the job's hash, its lease and the running index (or a prefix of that list), in that order;
each script's comment gives its ARGV. Statuses come from service/lifecycle.py as Lua locals.
"""

from __future__ import annotations

from service.lifecycle import lua_constants

# create(active, submits, jobs, owned, job hash x n) args: now, active_limit, submits_limit ('' for no limit),
# job key prefix, n, then per job: id, score, record (JSON object of the hash's fields).
# Quota checks and job creation in one step, so parallel submits cannot overshoot a quota; a job whose hash
# exists already (a retried idempotent submit) is not created again and the caller does not publish it.
_CREATE = """
local n = tonumber(ARGV[5])
for i = 1, n do
  if redis.call('EXISTS', KEYS[4 + i]) == 1 then return {'exists', ARGV[6 + (i - 1) * 3]} end
end
if ARGV[2] ~= '' then
  local active = 0
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    local status = redis.call('HGET', ARGV[4] .. id, 'status')
    if status and not TERMINAL[status] then active = active + 1 else redis.call('SREM', KEYS[1], id) end
  end
  if active + n > tonumber(ARGV[2]) then return {'active_jobs', tostring(active)} end
end
if ARGV[3] ~= '' then
  local submitted = tonumber(redis.call('GET', KEYS[2]) or '0')
  if submitted + n > tonumber(ARGV[3]) then return {'submits_per_minute', tostring(submitted)} end
  redis.call('INCRBY', KEYS[2], n)
  redis.call('EXPIRE', KEYS[2], 120)
end
for i = 1, n do
  local base = 6 + (i - 1) * 3
  local id, score, record = ARGV[base], ARGV[base + 1], cjson.decode(ARGV[base + 2])
  for field, value in pairs(record) do redis.call('HSET', KEYS[4 + i], field, tostring(value)) end
  redis.call('ZADD', KEYS[3], score, id)
  redis.call('ZADD', KEYS[4], score, id)
  redis.call('SADD', KEYS[1], id)
end
return {'created'}
"""


# start(job, lease, running) args: token, worker, lease_ms, now, max_attempts, id
_START = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'missing'} end
-- A retry of a start that did happen (its reply was lost): the same token holds the lease.
if status == RUNNING and redis.call('GET', KEYS[2]) == ARGV[1] then
  return {'started', redis.call('HGET', KEYS[1], 'starts')}
end
if TERMINAL[status] then return {'finished'} end
if status == PAUSED then return {PAUSED} end
if redis.call('HGET', KEYS[1], 'cancel_requested') == '1' then
  redis.call('HSET', KEYS[1], 'status', CANCELLED, 'finished_at', ARGV[4])
  redis.call('ZREM', KEYS[3], ARGV[6])
  return {CANCELLED}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[3]) == false then return {'busy'} end
local starts = redis.call('HINCRBY', KEYS[1], 'starts', 1)
local preemptions = tonumber(redis.call('HGET', KEYS[1], 'preemptions') or '0')
if starts - preemptions > tonumber(ARGV[5]) then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'status', FAILED, 'finished_at', ARGV[4], 'error',
    cjson.encode({type='worker_lost', message='the job lost its worker ' .. (starts - preemptions - 1) ..
      ' times (killed, out of memory or machine lost); giving up after ' .. ARGV[5] .. ' attempts'}))
  redis.call('ZREM', KEYS[3], ARGV[6])
  return {FAILED}
end
redis.call('HSET', KEYS[1], 'status', RUNNING, 'token', ARGV[1], 'worker', ARGV[2], 'heartbeat_at', ARGV[4])
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[6])
return {'started', tostring(starts)}
"""

# heartbeat(job, lease, running) args: token, lease_ms, now, id
_HEARTBEAT = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return {'lost'} end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[1], 'heartbeat_at', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return {'ok'}
"""

# update(job, lease) args: token, field, value, ...
_UPDATE = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# add_points(job, lease, stream) args: token ('' for the API's and reaper's own events), maxlen, n, data x n,
# field, value...: appends n metric points or events in one step (fenced), sets the fields, returns the last seq
_ADD_POINTS = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = tonumber(ARGV[3])
local seq = 0
for i = 4, 3 + n do
  seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'data', ARGV[i])
end
for i = 4 + n, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return seq
"""

# finish(job, lease, running, stream) args: token, status, now, id, event, maxlen, field, value...
# The job ends and its timeline gets the event in one step.
_FINISH = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'finished_at', ARGV[3])
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], seq .. '-0', 'data', ARGV[5])
return 1
"""

# release(job, lease, running, stream) args: token, new_status (queued|paused), id, preempted, now, event, maxlen
# The job goes back (or ends cancelled, when a cancel won the race) and its timeline gets the event in one step.
_RELEASE = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[3])
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[1], 'preemptions', 1) end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], seq .. '-0', 'data', ARGV[6])
if redis.call('HGET', KEYS[1], 'cancel_requested') == '1' then
  redis.call('HSET', KEYS[1], 'status', CANCELLED, 'finished_at', ARGV[5])
  return 2
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'worker', '')
return 1
"""

# add_snapshot(job, lease, snapshots) args: token, stats: returns the snapshot's number (fenced)
_ADD_SNAPSHOT = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
return redis.call('RPUSH', KEYS[3], ARGV[2])
"""

# take_patch(job, lease) args: token: the pending live trainer changes, cleared (fenced)
_TAKE_PATCH = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return false end
local patch = redis.call('HGET', KEYS[1], 'trainer_patch')
if not patch or patch == '' then return false end
redis.call('HSET', KEYS[1], 'trainer_patch', '')
return patch
"""

# reap(job, lease, running) args: id, now: a running job whose lease expired goes back to the queue
_REAP = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('ZREM', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[1], 'status') ~= RUNNING then return 0 end
if redis.call('HGET', KEYS[1], 'cancel_requested') == '1' then
  redis.call('HSET', KEYS[1], 'status', CANCELLED, 'finished_at', ARGV[2])
  return 2
end
redis.call('HSET', KEYS[1], 'status', QUEUED, 'worker', '', 'requeued_at', ARGV[2])
return 1
"""

# cancel(job, lease, running) args: now, id
_CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if TERMINAL[status] then return 'already ' .. status end
redis.call('HSET', KEYS[1], 'cancel_requested', '1')
if status == RUNNING and redis.call('EXISTS', KEYS[2]) == 1 then return 'cancelling' end
redis.call('HSET', KEYS[1], 'status', CANCELLED, 'finished_at', ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[2])
return CANCELLED
"""

# pause(job, lease) args: none. A queued job pauses at once; a running one at its next poll.
_PAUSE = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status == QUEUED then redis.call('HSET', KEYS[1], 'status', PAUSED); return PAUSED end
if status == RUNNING then redis.call('HSET', KEYS[1], 'pause_requested', '1'); return 'pausing' end
return status
"""

# resume(job) args: now
_RESUME = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if status == PAUSED then
  redis.call('HSET', KEYS[1], 'status', QUEUED, 'pause_requested', '0', 'requeued_at', ARGV[1])
  return 'resumed'
end
if status == RUNNING then redis.call('HSET', KEYS[1], 'pause_requested', '0') end
return status
"""


# count_statuses(job hashes...): status, count, status, count... (a vanished record is not counted)
_COUNT_STATUSES = """
local counts, order = {}, {}
for i = 1, #KEYS do
  local status = redis.call('HGET', KEYS[i], 'status')
  if status then
    if not counts[status] then counts[status] = 0; order[#order + 1] = status end
    counts[status] = counts[status] + 1
  end
end
local out = {}
for _, status in ipairs(order) do out[#out + 1] = status; out[#out + 1] = counts[status] end
return out
"""


# save_dataset(datasets) args: name, record (JSON with a 'bytes' member), count_limit, bytes_limit ('' for no
# limit), check_only ('1': say whether it fits, store nothing): one tenant's dataset stored or replaced, within its
# quotas on count and total bytes, in one step.
_SAVE_DATASET = """
local others, total = 0, 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] then
    others = others + 1
    total = total + cjson.decode(all[i + 1])['bytes']
  end
end
if ARGV[3] ~= '' and others + 1 > tonumber(ARGV[3]) then return {'datasets', tostring(others)} end
local size = cjson.decode(ARGV[2])['bytes']
if ARGV[4] ~= '' and total + size > tonumber(ARGV[4]) then return {'dataset_bytes', tostring(total)} end
if ARGV[5] == '1' then return {'fits'} end
local replaced = redis.call('HEXISTS', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if replaced == 1 then return {'replaced'} end
return {'created'}
"""


SOURCES = {
    "create": _CREATE,
    "start": _START,
    "heartbeat": _HEARTBEAT,
    "update": _UPDATE,
    "add_points": _ADD_POINTS,
    "finish": _FINISH,
    "release": _RELEASE,
    "add_snapshot": _ADD_SNAPSHOT,
    "take_patch": _TAKE_PATCH,
    "reap": _REAP,
    "cancel": _CANCEL,
    "pause": _PAUSE,
    "resume": _RESUME,
    "count_statuses": _COUNT_STATUSES,
    "save_dataset": _SAVE_DATASET,
}


def register(client) -> dict:
    """Every script, registered on `client` (redis-py loads each by its SHA on first use)."""
    prelude = lua_constants()
    return {name: client.register_script(prelude + source) for name, source in SOURCES.items()}
