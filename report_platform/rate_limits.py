"""The API gateway's rate limits: every `/api/v1` call is counted in the shared Redis (the cache Redis), so a limit
holds across every web process and host.

Where the check runs: a django-ninja throttle (`ApiRateThrottle`, set on the NinjaAPI for every operation) runs
after authentication and before the endpoint, so an authenticated call is counted against its user. A call whose
authentication failed never reaches the throttle; the operation decorator (`rate_limit_headers`) then counts it
against the caller's IP after the 401 was produced (and answers 429 instead once that IP is over its limit). The
decorator also puts the headers on every answer; the OpenAPI schema and docs views get the same through
`rate_limited_view` (NinjaAPI's `docs_decorator`).

Buckets (limits in `settings.API_RATE_LIMITS`, one entry per bucket, each with windows `per_second`, `per_minute`,
`per_hour`):
- `viewer` / `reviewer` / `admin`: authenticated calls (JWT or session), per user and by the user's role;
- `anonymous`: unauthenticated calls, per client IP (trusted-proxy aware: `report_platform.client_ip`, so a spoofed
  `X-Forwarded-For` from a client that is not one of our proxies is ignored);
- `heavy`: the routes listed in `settings.API_RATE_LIMIT_HEAVY_ROUTES` (imports, exports, report generation), per
  caller, counted there instead of the caller's ordinary bucket;
- a scope bucket (e.g. `ci`): an authentication class for long-lived tokens sets `request.rate_limit_scope` (a key of
  `API_RATE_LIMITS`) and `request.rate_limit_ident` (the token's id); its calls are then counted per token there.

Algorithm: fixed windows. A call is one Lua script (one round trip): it reads the counter of every window of the
bucket, refuses when any is at its limit (a refused call consumes nothing), otherwise INCRs each (and sets its
expiry on the first call of the window). The window number comes from `time.time()` (tests move it with
time-machine), so keys are `rp:api-rl:<bucket>:<ident>:<window seconds>:<window number>`. A fixed window can let
up to twice the limit through around a window boundary; the per-second window bounds that burst.

Headers (IETF draft-ietf-httpapi-ratelimit-headers): `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
(seconds) describe the window closest to exhaustion, `RateLimit-Policy` lists every window (`600;w=60, 20;w=1`);
a refusal adds `Retry-After` and the error envelope with code `rate_limited`. Refusals are counted in
`rp_api_rate_limited_total{route,role}`.

If Redis does not answer, the call is allowed (fail open: the API must not go down with the cache), a warning is
logged (at most every 30 s per process), `rp_api_rate_limit_errors_total` is counted and no RateLimit headers are
sent. `API_RATE_LIMITS_ENABLED = False` switches all of it off.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from ninja.throttling import BaseThrottle
from prometheus_client import Counter
from redis.backoff import NoBackoff
from redis.retry import Retry

from report_platform.client_ip import client_ip
from report_platform.errors import error_envelope
from report_platform.logging import get_logger

logger = get_logger(__name__)

RATE_LIMITED = Counter(
    "rp_api_rate_limited_total",
    "API calls refused with 429 by the gateway's rate limits, by route and role (or scope).",
    ["route", "role"],
)
RATE_LIMIT_ERRORS = Counter(
    "rp_api_rate_limit_errors_total",
    "API calls let through unchecked because Redis did not answer the rate-limit check (fail open).",
)

WINDOWS = {"per_second": 1, "per_minute": 60, "per_hour": 3600}
KEY_PREFIX = "rp:api-rl:"
REQUEST_ATTRIBUTE = "_rate_limit_decision"
WARNING_INTERVAL_SECONDS = 30.0

# KEYS: one counter per window. ARGV: the n limits, then the n expiries in ms.
# Returns {allowed (1/0), count_1, ..., count_n}: counts after this call if allowed, as found if refused.
_CHECK = """
local n = #KEYS
local counts = {}
local allowed = 1
for i = 1, n do
  counts[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
  if counts[i] >= tonumber(ARGV[i]) then allowed = 0 end
end
if allowed == 1 then
  for i = 1, n do
    counts[i] = redis.call('INCR', KEYS[i])
    if counts[i] == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[n + i]) end
  end
end
local result = {allowed}
for i = 1, n do result[i + 1] = counts[i] end
return result
"""


@dataclass(frozen=True)
class WindowState:
    seconds: int
    limit: int
    count: int
    reset: int  # whole seconds until this window ends (>= 1)

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)


@dataclass
class Decision:
    allowed: bool
    bucket: str
    role: str
    route: str
    windows: list[WindowState] = field(default_factory=list)
    checked: bool = True  # False: Redis did not answer, the call went through unchecked

    @property
    def reported(self) -> WindowState | None:
        """The window closest to exhaustion (fewest calls left; of equals, the longest)."""
        if not self.windows:
            return None
        return min(self.windows, key=lambda window: (window.remaining, -window.seconds))

    @property
    def retry_after(self) -> int:
        exhausted = [window.reset for window in self.windows if window.count >= window.limit]
        return max(exhausted, default=1)


# --- Redis ------------------------------------------------------------------------------------------------------

_clients: dict[str, tuple[redis.Redis, object]] = {}
_clients_lock = threading.Lock()
_last_warning = [0.0]


def _script():
    url = settings.CACHE_REDIS_URL
    found = _clients.get(url)
    if found is None:
        with _clients_lock:
            found = _clients.get(url)
            if found is None:
                timeout = settings.API_RATE_LIMIT_REDIS_TIMEOUT_SECONDS
                # RESP2 like the AI gateway's client: the embedded redis-server 6.2 and RESP3 do not always agree.
                # No retries: a check that cannot be made in one short try lets the call through (fail open).
                client = redis.Redis.from_url(
                    url,
                    protocol=2,
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                    retry=Retry(NoBackoff(), 0),
                )
                found = _clients[url] = (client, client.register_script(_CHECK))
    return found[1]


# --- who is calling, and which bucket ------------------------------------------------------------------------


def route_label(request: HttpRequest) -> str:
    """`GET /api/v1/tests/<case_id>`: the route pattern, not the concrete path (bounded metric labels)."""
    match = getattr(request, "resolver_match", None)
    route = f"/{match.route}" if match is not None and match.route else request.path
    return f"{request.method} {route}"


def _user(request: HttpRequest):
    user = getattr(request, "auth", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return user
    # Public operations and the docs views: a browser session still counts as that user.
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return user
    return None


def caller(request: HttpRequest, route: str) -> tuple[str, str, str]:
    """(bucket, identity, role label) of this call."""
    limits = settings.API_RATE_LIMITS
    scope = getattr(request, "rate_limit_scope", "")
    user = _user(request)
    if scope and scope in limits and getattr(request, "rate_limit_ident", ""):
        identity, role = f"t{request.rate_limit_ident}", scope
    elif user is not None:
        role = getattr(user, "role", "") or "viewer"
        identity = f"u{user.pk}"
        scope = role if role in limits else "viewer"
    else:
        identity, role, scope = f"ip{client_ip(request) or 'unknown'}", "anonymous", "anonymous"
    bucket = "heavy" if route in settings.API_RATE_LIMIT_HEAVY_ROUTES else scope
    return bucket, identity, role


def _windows(bucket: str) -> list[tuple[int, int]]:
    config = settings.API_RATE_LIMITS[bucket]
    return [(WINDOWS[name], int(limit)) for name, limit in config.items() if name in WINDOWS and limit]


# --- the check ---------------------------------------------------------------------------------------------------


def check(request: HttpRequest) -> Decision:
    """Count this call in its bucket (one Redis round trip) and decide; the decision is kept on the request."""
    route = route_label(request)
    bucket, identity, role = caller(request, route)
    windows = _windows(bucket)
    now = time.time()
    keys = [f"{KEY_PREFIX}{bucket}:{identity}:{seconds}:{int(now // seconds)}" for seconds, _ in windows]
    limits = [limit for _, limit in windows]
    expiries = [seconds * 1000 + 1000 for seconds, _ in windows]
    try:
        result = _script()(keys=keys, args=[*limits, *expiries]) if windows else [1]
    except redis.RedisError as error:
        RATE_LIMIT_ERRORS.inc()
        if time.monotonic() - _last_warning[0] > WARNING_INTERVAL_SECONDS:
            _last_warning[0] = time.monotonic()
            logger.warning("api_rate_limit_unchecked", error=type(error).__name__, detail=str(error)[:200])
        decision = Decision(allowed=True, bucket=bucket, role=role, route=route, checked=False)
        setattr(request, REQUEST_ATTRIBUTE, decision)
        return decision
    states = [
        WindowState(seconds=seconds, limit=limit, count=int(count), reset=max(1, math.ceil(seconds - now % seconds)))
        for (seconds, limit), count in zip(windows, result[1:], strict=True)
    ]
    decision = Decision(allowed=bool(int(result[0])), bucket=bucket, role=role, route=route, windows=states)
    if not decision.allowed:
        RATE_LIMITED.labels(route=route, role=role).inc()
    setattr(request, REQUEST_ATTRIBUTE, decision)
    return decision


def refused_response(request: HttpRequest, decision: Decision) -> HttpResponse:
    """429 in the error envelope; the headers are added by `apply_headers`."""
    window = decision.reported
    per = {1: "second", 60: "minute", 3600: "hour"}.get(window.seconds, f"{window.seconds} s") if window else ""
    message = (
        f"Too many requests: at most {window.limit} per {per} here. Retry after {decision.retry_after} s."
        if window
        else "Too many requests. Try again later."
    )
    body = error_envelope(
        code="rate_limited", message=message, extra={"retry_after": decision.retry_after, "bucket": decision.bucket}
    )
    return JsonResponse(body, status=429)


def apply_headers(response: HttpResponseBase, decision: Decision | None) -> HttpResponseBase:
    window = decision.reported if decision is not None else None
    if window is None or not isinstance(response, HttpResponseBase):
        return response
    response["RateLimit-Limit"] = str(window.limit)
    response["RateLimit-Remaining"] = str(window.remaining)
    response["RateLimit-Reset"] = str(window.reset)
    response["RateLimit-Policy"] = ", ".join(f"{state.limit};w={state.seconds}" for state in decision.windows)
    if not decision.allowed:
        response["Retry-After"] = str(decision.retry_after)
    return response


def decision_for(request: HttpRequest) -> Decision | None:
    return getattr(request, REQUEST_ATTRIBUTE, None)


# --- django-ninja glue -------------------------------------------------------------------------------------------


class ApiRateThrottle(BaseThrottle):
    """ninja's throttle hook (after authentication, before the endpoint). Stateless: the decision lives on the
    request (one instance serves every thread), so `wait()` says nothing and the 429 handler sets Retry-After."""

    def allow_request(self, request: HttpRequest) -> bool:
        if not settings.API_RATE_LIMITS_ENABLED:
            return True
        return check(request).allowed

    def wait(self) -> float | None:
        return None


def rate_limit_headers(run):
    """Decorator of every operation's `run` (`api.add_decorator(..., mode="view")`): the RateLimit headers on every
    answer, and the count of calls the throttle never saw (authentication failed first) against the caller's IP."""

    @functools.wraps(run)
    def wrapper(request: HttpRequest, *args, **kwargs):
        response = run(request, *args, **kwargs)
        if not settings.API_RATE_LIMITS_ENABLED:
            return response
        decision = decision_for(request)
        if decision is None:
            decision = check(request)
            if not decision.allowed:
                response = refused_response(request, decision)
        return apply_headers(response, decision)

    return wrapper


def rate_limited_view(view):
    """The same limits for plain views under /api/v1 (the OpenAPI schema and the docs page)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not settings.API_RATE_LIMITS_ENABLED:
            return view(request, *args, **kwargs)
        decision = check(request)
        response = view(request, *args, **kwargs) if decision.allowed else refused_response(request, decision)
        return apply_headers(response, decision)

    return wrapper
