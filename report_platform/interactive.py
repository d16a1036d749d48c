"""Is anybody waiting? A shared mark of recent interactive requests, read by background work that should yield.

The embedded MongoDB stand-in serves one request at a time, and a busy real server also shares its disks and
cores: a big import that writes flat out makes every page wait behind its batches. Web processes set one Redis key
with the time of their latest request (at most every `_MARK_EVERY_SECONDS` per process, so it costs nothing on the
hot path); a background job asks `recently()` between batches and paces itself only while people are using the
product, and runs at full speed when nobody is.
"""

from __future__ import annotations

import logging
import threading
import time

from django.core.cache import cache

logger = logging.getLogger(__name__)

KEY = "interactive:last-request"
_MARK_EVERY_SECONDS = 0.5
_last_mark = 0.0
_lock = threading.Lock()


def mark() -> None:
    """Record that an interactive request is being served (throttled per process; never raises)."""
    global _last_mark
    now = time.time()
    if now - _last_mark < _MARK_EVERY_SECONDS:
        return
    with _lock:
        if now - _last_mark < _MARK_EVERY_SECONDS:
            return
        _last_mark = now
    try:
        cache.set(KEY, now, timeout=60)
    except Exception as error:  # a missing mark only means background work does not yield: never fail a request
        logger.debug("could not mark interactive load: %s", error)


def recently(window_seconds: float) -> bool:
    """Whether any web process served a request within the last `window_seconds`."""
    try:
        last = cache.get(KEY)
    except Exception as error:  # unknown: assume people are waiting, so background work yields
        logger.debug("could not read interactive load: %s", error)
        return True
    return last is not None and time.time() - float(last) < window_seconds


class InteractiveLoadMiddleware:
    """Marks every request except static files, metrics scrapes and health checks."""

    _SKIP = ("/static/", "/metrics", "/healthz")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(self._SKIP):
            mark()
        response = self.get_response(request)
        return response
