"""The Redis connection of the AI gateway (the cache Redis, shared by every process): circuit-breaker state, burst
and quota counters (ai_assist/quotas.py) and the usage-log buffer (ai_assist/usage_buffer.py).

Keys start with `rp:ai:`; clearing the cache (tests do, between tests) resets them.
"""

from __future__ import annotations

import threading

import redis
from django.conf import settings
from redis.exceptions import NoScriptError

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


class Batch:
    """Commands and Lua scripts sent in ONE round trip (a non-transactional pipeline).

    Scripts go by EVALSHA directly: redis-py's pipeline would first ask `SCRIPT EXISTS` on every execute (a second
    round trip). A script Redis no longer knows (it restarted) answers NOSCRIPT; that one script is then run on its
    own, which loads it. Results come back in queue order; the first error is raised.
    """

    def __init__(self) -> None:
        self.pipe = client().pipeline(transaction=False)
        self.scripts: dict[int, tuple] = {}
        self.size = 0

    def script(self, script, keys: list, args: list) -> int:
        self.scripts[self.size] = (script, keys, args)
        self.pipe.evalsha(script.sha, len(keys), *keys, *args)
        return self._queued()

    def command(self, name: str, *args, **options) -> int:
        getattr(self.pipe, name)(*args, **options)
        return self._queued()

    def _queued(self) -> int:
        self.size += 1
        return self.size - 1

    def execute(self) -> list:
        results = self.pipe.execute(raise_on_error=False)
        for index, (script, keys, args) in self.scripts.items():
            if isinstance(results[index], NoScriptError):
                results[index] = script(keys=keys, args=args)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results
