"""The Redis connection of the AI gateway (the cache Redis, shared by every process): circuit-breaker state, burst
and quota counters (ai_assist/quotas.py) and the usage-log buffer (ai_assist/usage_buffer.py).

Keys start with `rp:ai:`; clearing the cache (tests do, between tests) resets them.
"""

from __future__ import annotations

import os
import threading

import redis
from django.conf import settings
from redis.exceptions import NoScriptError

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()
_own = threading.local()


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


def _own_connection(pool) -> redis.Connection:
    """This thread's own connection to the pool's server, for `SentScript`: taken from no pool and kept between
    calls (a pool's get and release cost about as much CPU as the command itself). One is made per thread (and per
    process: a forked child makes its own); it closes when its thread ends. While a sent script waits for its reply
    the thread holds none, so a second script sent meanwhile gets a new one."""
    held = getattr(_own, "connection", None)
    _own.connection = None
    if held is not None and held[0] is pool and held[1] == os.getpid():
        return held[2]
    if held is not None and held[1] == os.getpid():
        held[2].disconnect()  # made for another client (the settings changed): not used again
    return pool.connection_class(**pool.connection_kwargs)


def _keep_connection(pool, connection: redis.Connection) -> None:
    if getattr(_own, "connection", None) is None:
        _own.connection = (pool, os.getpid(), connection)
    else:
        connection.disconnect()


class SentScript:
    """A Lua script sent now whose reply is read later (`reply()`): the caller does its own work meanwhile.

    The script goes by EVALSHA on the thread's own connection (`_own_connection`), held until the reply is read, so
    the round trip (and the server's wake-up) overlaps the caller's CPU work instead of following it. A script
    Redis no longer knows (it restarted) answers NOSCRIPT; it is then run through redis-py's `Script`, which loads
    it. A connection that fails (a dropped or stale one) gets the same second chance, through the client's own
    retry policy, as any other command; what still fails is raised by `reply()`.
    """

    def __init__(self, script, keys: list, args: list) -> None:
        self.script, self.keys, self.args = script, keys, args
        self.pool = script.registered_client.connection_pool
        self.connection = None
        self.error: Exception | None = None
        self.done = False
        try:
            self.connection = _own_connection(self.pool)
            self.connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except (redis.ConnectionError, redis.TimeoutError):
            self._drop()  # `reply()` runs the script the ordinary way
        except redis.RedisError as error:
            self._drop()
            self.error = error

    def _drop(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.disconnect()

    def reply(self):
        if self.error is not None:
            raise self.error
        if self.done:
            raise RuntimeError("The reply of a sent script is read once.")
        self.done = True
        connection, self.connection = self.connection, None
        if connection is None:  # sending failed on a dropped connection
            return self.script(keys=self.keys, args=self.args)
        try:
            result = connection.read_response()
        except NoScriptError:
            _keep_connection(self.pool, connection)
            return self.script(keys=self.keys, args=self.args)
        except redis.ResponseError:
            _keep_connection(self.pool, connection)  # an error reply: the connection is in step
            raise
        except (redis.ConnectionError, redis.TimeoutError):
            # The script may or may not have run: running it again can only reserve twice (counted until the
            # period ends, never under-counted), as redis-py's own retry of a command would.
            connection.disconnect()
            return self.script(keys=self.keys, args=self.args)
        except BaseException:
            connection.disconnect()  # a reply may still be on its way: never use this connection again
            raise
        _keep_connection(self.pool, connection)
        return result
