"""Per-process copies of the gateway's configuration data (the price table, the enabled budgets).

The call path must not wait on MongoDB (ai_assist/services.py), so each table is loaded once per process and then
served from memory. After AI_CONFIG_CACHE_SECONDS a caller still gets the copy it had, and wakes one background
thread per process that reloads every stale table: an edit in the admin reaches every process within about that
time, and no call ever pays for the reload. Only the first load in a process (or the first after `clear`, which the
admin calls on save so its own process sees the edit at once) is made on the caller's thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from django.conf import settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

_stale: set[ConfigCache] = set()  # the caches callers found stale, for the refresher thread
_stale_lock = threading.Lock()
_wake = threading.Event()
_thread_lock = threading.Lock()
_thread: dict[str, object] = {"thread": None, "pid": 0}


class ConfigCache(Generic[T]):
    """One table: `get()` returns the loaded value (loading it the first time), stale values are refreshed off the
    call path."""

    def __init__(self, name: str, loader: Callable[[], T]) -> None:
        self.name = name
        self.loader = loader
        self.lock = threading.Lock()
        self.value: T | None = None
        self.loaded = False
        self.loaded_at = 0.0
        self.generation = 0  # bumped by `clear`: a reload that started before it is thrown away

    def get(self) -> T:
        if not self.loaded:
            with self.lock:
                if not self.loaded:
                    self._reload_locked()
        elif time.monotonic() - self.loaded_at >= float(settings.AI_CONFIG_CACHE_SECONDS):
            _refresher_wake(self)
        return self.value  # type: ignore[return-value]

    def _reload_locked(self) -> None:
        self.value = self.loader()
        self.loaded_at = time.monotonic()
        self.loaded = True

    def refresh_if_stale(self) -> None:
        if self.loaded and time.monotonic() - self.loaded_at < float(settings.AI_CONFIG_CACHE_SECONDS):
            return
        generation = self.generation
        value = self.loader()  # outside the lock: callers keep the old value meanwhile
        with self.lock:
            if generation == self.generation and self.loaded:
                self.value, self.loaded_at = value, time.monotonic()

    def clear(self) -> None:
        """Forget the copy: the next `get` loads it again on the caller's thread."""
        with self.lock:
            self.value, self.loaded = None, False
            self.generation += 1


def _refresher_wake(cache: ConfigCache) -> None:
    with _stale_lock:
        _stale.add(cache)
    thread = _thread["thread"]
    if thread is None or _thread["pid"] != os.getpid() or not thread.is_alive():
        with _thread_lock:
            thread = _thread["thread"]
            if thread is None or _thread["pid"] != os.getpid() or not thread.is_alive():
                # A forked child (gunicorn, Celery prefork) starts its own: the parent's thread did not come along.
                thread = threading.Thread(target=_refresh_forever, name="ai-config-refresher", daemon=True)
                _thread.update(thread=thread, pid=os.getpid())
                thread.start()
    _wake.set()


def _refresh_forever() -> None:
    while True:
        _wake.wait()
        _wake.clear()
        with _stale_lock:
            caches = list(_stale)
            _stale.clear()
        for cache in caches:
            try:
                cache.refresh_if_stale()
            except Exception:
                # The old copy stays in use and is tried again a cache period later (no reload storm).
                cache.loaded_at = time.monotonic()
                logger.exception("AI configuration reload failed", extra={"table": cache.name})
        time.sleep(0.05)  # many callers finding the same stale copy wake it once
