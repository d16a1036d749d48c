"""The per-process copies of the price table and budgets: a stale copy is reloaded off the caller's thread."""

from __future__ import annotations

import threading
import time

from ai_assist.config_cache import ConfigCache


def test_it_serves_a_stale_copy_at_once_and_reloads_it_in_the_background(settings):
    settings.AI_CONFIG_CACHE_SECONDS = 0.05
    loads: list[str] = []
    release = threading.Event()

    def loader() -> int:
        loads.append(threading.current_thread().name)
        if len(loads) > 1:
            release.wait(5)  # a slow MongoDB: the caller must not be the one waiting
        return len(loads)

    cache = ConfigCache("test", loader)
    assert cache.get() == 1 and loads == ["MainThread"]  # the first load is the caller's
    time.sleep(0.1)
    started = time.perf_counter()
    assert cache.get() == 1  # stale: served as it is ...
    assert time.perf_counter() - started < 0.05
    deadline = time.monotonic() + 5
    while len(loads) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert loads[1] == "ai-config-refresher"  # ... and reloaded by the refresher thread
    release.set()
    while cache.get() != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.get() == 2


def test_it_loads_again_on_the_callers_thread_after_a_clear(settings):
    settings.AI_CONFIG_CACHE_SECONDS = 3600
    values = iter([1, 2])
    cache = ConfigCache("test", lambda: next(values))
    assert cache.get() == 1 and cache.get() == 1
    cache.clear()
    assert cache.get() == 2
