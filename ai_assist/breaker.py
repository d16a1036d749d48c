"""Circuit breaker per provider/model, its state in Redis so every web and worker process sees the same circuit.

closed -> open    after `failure_threshold` consecutive failures, when the p95 latency of the last calls exceeds
                  `latency_p95_seconds`, or when the cost spent in the current interval exceeds `cost_threshold_usd`
open -> half_open after `cooldown_seconds`: one probe call is let through, every other call fails fast
half_open -> closed when the probe succeeds; -> open again when it fails
Transitions are Lua scripts (atomic in Redis); the caller that trips the circuit gets "tripped" back, exactly once per
trip, and writes the audit event. Time comes from `timezone.now()` (moved by time_machine in tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from ai_assist import post_call, redis_store

STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}

# The admission step, a fragment of the one admission script of ai_assist/quotas.py (breaker, burst and quotas are
# decided in one round trip). KEYS[1] state hash; ARGV[1] now, ARGV[2] cooldown. Sets `verdict`:
# 'closed' (go), 'probe' (go, as the half-open probe) or 'open' (fail fast).
ADMIT_LUA = """
local verdict = 'closed'
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'closed' then
  local now = tonumber(ARGV[1])
  local cooldown = tonumber(ARGV[2])
  if state == 'open' then
    local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0')
    if now - opened >= cooldown then
      redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_at', ARGV[1])
      verdict = 'probe'
    else
      verdict = 'open'
    end
  else
    local probe = tonumber(redis.call('HGET', KEYS[1], 'probe_at') or '0')
    if probe == 0 or now - probe >= cooldown then
      redis.call('HSET', KEYS[1], 'probe_at', ARGV[1])
      verdict = 'probe'
    else
      verdict = 'open'
    end
  end
end
"""

# KEYS: state hash, latency list, cost bucket.
# ARGV: now, ok(1/0), latency, cost, failure_threshold, window, min_samples, p95_limit, cost_limit, interval, probe(1/0)
_RECORD = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local now = ARGV[1]
local function trip(reason)
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now, 'reason', reason, 'probe_at', '0', 'failures', '0')
  redis.call('HINCRBY', KEYS[1], 'trips', 1)
  redis.call('DEL', KEYS[2])
  return 'tripped:' .. reason
end
if ARGV[2] == '0' then
  local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  if state == 'half_open' and ARGV[11] == '1' then return trip('probe_failed') end
  if state == 'closed' and failures >= tonumber(ARGV[5]) then return trip('failures') end
  return state
end
redis.call('LPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
local spent = tonumber(redis.call('INCRBY', KEYS[3], ARGV[4]))
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[10]) * 2)
if spent > tonumber(ARGV[9]) and state ~= 'open' then return trip('cost') end
local samples = redis.call('LRANGE', KEYS[2], 0, -1)
if #samples >= tonumber(ARGV[7]) and state ~= 'open' then
  local values = {}
  for i, v in ipairs(samples) do values[i] = tonumber(v) end
  table.sort(values)
  local index = math.ceil(0.95 * #values)
  if values[index] > tonumber(ARGV[8]) then return trip('latency') end
end
if state == 'half_open' and ARGV[11] == '1' then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', '0', 'probe_at', '0')
  return 'closed'
end
redis.call('HSET', KEYS[1], 'failures', '0')
return state
"""


@dataclass
class BreakerState:
    provider: str
    model: str
    state: str
    reason: str
    opened_at: float
    failures: int
    trips: int

    @property
    def value(self) -> int:
        return STATE_VALUES.get(self.state, 0)


def _config() -> dict:
    return settings.AI_BREAKER


def state_key(provider: str, model: str) -> str:
    return redis_store.key(f"breaker:{provider}:{model}")


_scripts: dict[tuple[int, str], object] = {}


def script(source: str):
    """A registered Lua script (EVALSHA, loaded on first use); pass `client=pipeline` to queue it."""
    client = redis_store.client()
    cache_key = (id(client), source)
    found = _scripts.get(cache_key)
    if found is None:
        found = _scripts[cache_key] = client.register_script(source)
    return found


def release_probe_on(batch: redis_store.Batch, *, provider: str, model: str) -> None:
    """Queue on `batch`: a probe whose call says nothing about the provider (the reader left) frees the slot."""
    batch.command("hset", state_key(provider, model), "probe_at", "0")


def breaker_record(*, provider: str, model: str, ok: bool, latency_s: float, cost: float, probe: bool) -> str:
    """Record one call's result; returns the new state, or 'tripped:<reason>' when this call opened the circuit."""
    found, keys, args = record_command(
        provider=provider, model=model, ok=ok, latency_s=latency_s, cost=cost, probe=probe
    )
    return found(keys=keys, args=args)


def record_command(
    *,
    provider: str,
    model: str,
    ok: bool,
    latency_s: float,
    cost: float,
    probe: bool,
    at: datetime | None = None,
    config: dict | None = None,
):
    """The record script with its keys and arguments, for `redis_store.Batch.script` (the gateway sends it in one
    round trip with the quota settlement and the usage row, from its post-call thread: `at` is when the call ended
    and `config` the thresholds then; by default now and the current settings)."""
    config = config or _config()
    now = (at or timezone.now()).timestamp()
    interval = int(config["cost_interval_seconds"])
    bucket = redis_store.key(f"breaker:{provider}:{model}:cost:{math.floor(now / interval)}")
    return (
        script(_RECORD),
        [state_key(provider, model), redis_store.key(f"breaker:{provider}:{model}:latency"), bucket],
        [
            repr(now),
            "1" if ok else "0",
            repr(latency_s),
            # Integer nano-dollars: INCRBYFLOAT inside a script crashed the embedded redis-server 6.2.14 here.
            str(round(cost * 1e9)),
            config["failure_threshold"],
            config["latency_window"],
            config["latency_min_samples"],
            config["latency_p95_seconds"],
            str(round(float(config["cost_threshold_usd"]) * 1e9)),
            interval,
            "1" if probe else "0",
        ],
    )


def breaker_state(*, provider: str, model: str) -> BreakerState:
    post_call.wait()  # results of this process's finished calls are recorded first
    fields = ("state", "reason", "opened_at", "failures", "trips")
    values = redis_store.client().hmget(state_key(provider, model), fields)
    data = {name: value for name, value in zip(fields, values, strict=True) if value is not None}
    return BreakerState(
        provider=provider,
        model=model,
        state=data.get("state", "closed"),
        reason=data.get("reason", ""),
        opened_at=float(data.get("opened_at", 0) or 0),
        failures=int(data.get("failures", 0) or 0),
        trips=int(data.get("trips", 0) or 0),
    )


def breaker_known_pairs() -> list[tuple[str, str]]:
    """Every provider/model a circuit can exist for: the configured ones plus any with state in Redis."""
    pairs = {("offline", "offline"), (settings.AI_PROVIDER, settings.AI_MODEL)}
    pairs.update(("openai", model) for model in settings.AI_MODEL_PRICES if model != "offline")
    for name in redis_store.client().scan_iter(match=redis_store.key("breaker:*"), count=200):
        parts = name.split(":")
        if len(parts) == 5:  # rp:ai:breaker:<provider>:<model>
            pairs.add((parts[3], parts[4]))
    return sorted(pairs)


def breaker_states() -> list[BreakerState]:
    return [breaker_state(provider=provider, model=model) for provider, model in breaker_known_pairs()]
