"""The usage-log write path: rows go to a Redis list on the call path and reach `aiUsageLogs` in batches.

Why: a synchronous MongoDB insert (plus the quota writes it used to sit beside) cost the gateway several
milliseconds per call; the target is a 1 ms p50 overhead over the bare SDK call. A row is pushed to Redis in the same
round trip that settles the quota and records the breaker result (ai_assist/services.py), so the call path never
waits on MongoDB.

Guarantees:
- Durable once pushed: the list lives in the shared Redis (AOF in docker-compose), not in a process. A web or
  worker process that dies leaves its rows for any other process to move.
- Moved exactly once: one drainer at a time holds `LOCK`; it reads a batch with LRANGE, inserts it (rows carry their
  own `_id`, so re-inserting a batch after a crash between insert and trim skips the duplicates), and trims the list
  only while it still holds the lock (a Lua compare-and-trim), so two drainers can never trim each other's batch.
- Read-your-writes: `AiUsageLog.objects` drains the list before building any queryset (models.UsageLogManager), so
  pages, the API, the admin, quota seeding and exports always see every call made so far.
- If Redis cannot take a row, the caller writes it directly to MongoDB (`insert_direct`): no row is lost.
Who drains: a daemon thread in every process that pushed (every AI_USAGE_FLUSH_SECONDS), any reader, and a
Celery beat task (`ai_assist.usage_flush`) for rows whose process died before its thread ran.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
import uuid

import bson
from bson.errors import InvalidBSON
from django.conf import settings
from django.db import connection
from pymongo.errors import BulkWriteError, PyMongoError
from redis.exceptions import RedisError

from ai_assist import post_call, redis_store

logger = logging.getLogger(__name__)

COLLECTION = "aiUsageLogs"
BUFFER = "usage:buffer"
DEAD = "usage:dead"  # entries that could not be decoded: kept for a person to look at, never dropped silently
LOCK = "usage:drain-lock"
BATCH = 500
LOCK_MS = 30_000
DUPLICATE_KEY = 11000

# KEYS: lock, buffer. ARGV: token, count. Trim the drained batch only while this drainer still holds the lock.
_TRIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('LTRIM', KEYS[2], tonumber(ARGV[2]), -1)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
  return 1
end
return 0
"""
# KEYS: lock. ARGV: token.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def encode(document: dict) -> str:
    """BSON (C-encoded, keeps ObjectIds and datetimes exactly) in base64, as the text client stores strings."""
    return base64.b64encode(bson.encode(document)).decode("ascii")


def decode(entry: str) -> dict:
    return bson.decode(base64.b64decode(entry))


def push(batch: redis_store.Batch, document: dict) -> None:
    """Queue the row on a Redis batch the caller executes (one round trip with its other commands)."""
    batch.command("rpush", redis_store.key(BUFFER), encode(document))
    flusher_ensure()


def insert_direct(document: dict) -> None:
    """The fallback when Redis is unreachable: the row goes straight to MongoDB. An upsert that only ever inserts:
    Redis may have taken the row after all (the error came later in the round trip) and a drain stored it first."""
    fields = {name: value for name, value in document.items() if name != "_id"}
    connection.database[COLLECTION].update_one({"_id": document["_id"]}, {"$setOnInsert": fields}, upsert=True)


def _insert(documents: list[dict]) -> None:
    if not documents:
        return
    try:
        connection.database[COLLECTION].insert_many(documents, ordered=False)
    except BulkWriteError as error:
        # A batch is re-inserted when its drainer died between insert and trim: those rows are already stored.
        others = [e for e in error.details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
        if others or error.details.get("writeConcernErrors"):
            raise


def _decode_batch(client, entries: list[str]) -> list[dict]:
    documents = []
    for entry in entries:
        try:
            documents.append(decode(entry))
        except (ValueError, InvalidBSON):
            client.rpush(redis_store.key(DEAD), entry)
            logger.error("undecodable AI usage row moved to the dead-letter list", extra={"list": DEAD})
    return documents


def flush(*, wait_seconds: float = 5.0) -> int:
    """Move every queued row to MongoDB; returns how many were moved by this call.

    When another process is draining, wait (up to `wait_seconds`) for it to finish, then drain what is left: on
    return, every row pushed before the call is in MongoDB (unless Redis or MongoDB failed, which raises).
    """
    post_call.wait()  # rows of this process's finished calls are in the list first
    client = redis_store.client()
    lock, buffer = redis_store.key(LOCK), redis_store.key(BUFFER)
    if not client.llen(buffer):
        return 0  # rows leave the list only after their insert, so an empty list means everything is stored
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait_seconds
    while not client.set(lock, token, nx=True, px=LOCK_MS):
        if not client.exists(lock):
            continue
        if time.monotonic() >= deadline:
            return 0  # the other drainer moves the rows; readers then see them a moment later
        time.sleep(0.005)
    moved = 0
    try:
        while True:
            entries = client.lrange(buffer, 0, BATCH - 1)
            if not entries:
                return moved
            _insert(_decode_batch(client, entries))
            if not client.eval(_TRIM, 2, lock, buffer, token, len(entries), LOCK_MS):
                logger.warning("AI usage drain lost its lock; the next drainer re-reads the batch")
                return moved
            moved += len(entries)
    finally:
        client.eval(_UNLOCK, 1, lock, token)


def flush_quietly() -> int:
    """`flush` for readers: a broken Redis must not take the usage pages down with it (rows stay queued)."""
    try:
        return flush()
    except RedisError:
        logger.warning("AI usage rows could not be drained: Redis is unreachable")
        return 0


def pending() -> int:
    return int(redis_store.client().llen(redis_store.key(BUFFER)))


class _Flusher:
    """One daemon thread per process that pushed rows; drains the shared list every AI_USAGE_FLUSH_SECONDS."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.pid = 0

    def ensure(self) -> None:
        interval = float(settings.AI_USAGE_FLUSH_SECONDS)
        if interval <= 0:
            return
        if self.thread is not None and self.pid == os.getpid() and self.thread.is_alive():
            return
        with self.lock:
            if self.thread is None or self.pid != os.getpid() or not self.thread.is_alive():
                # A forked child (Celery prefork, gunicorn) starts its own thread; the parent's did not survive.
                self.pid = os.getpid()
                self.thread = threading.Thread(target=self._run, name="ai-usage-flusher", daemon=True)
                self.thread.start()

    def _run(self) -> None:
        while True:
            interval = float(settings.AI_USAGE_FLUSH_SECONDS)
            time.sleep(interval if interval > 0 else 1.0)
            if float(settings.AI_USAGE_FLUSH_SECONDS) <= 0:
                continue  # switched off after the thread started (tests and the benchmark do)
            try:
                flush(wait_seconds=0)
            except (RedisError, PyMongoError):
                # The rows stay queued; the next tick (or a reader, or the beat task) retries.
                logger.exception("AI usage flush failed")


_flusher = _Flusher()
flusher_ensure = _flusher.ensure
