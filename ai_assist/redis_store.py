"""The Redis connection for AI burst counters and circuit-breaker state (the cache Redis, shared by every process).

Keys start with `rp:ai:`; clearing the cache (tests do, between tests) resets them.
"""

from __future__ import annotations

import threading

import redis
from django.conf import settings

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


def client() -> redis.Redis:
    url = settings.CACHE_REDIS_URL
    found = _clients.get(url)
    if found is None:
        with _lock:
            # RESP2: the embedded redis-server 6.2.14 crashes answering HGETALL under RESP3 (redis-py 8's default).
            found = _clients.get(url) or redis.Redis.from_url(url, decode_responses=True, protocol=2)
            _clients[url] = found
    return found


def key(name: str) -> str:
    return f"rp:ai:{name}"
