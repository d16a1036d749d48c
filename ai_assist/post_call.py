"""Post-call bookkeeping off the caller's path.

When a provider call ends, the gateway has one Redis round trip left: settle the quota reservation, record the
breaker result and queue the usage row (ai_assist/services.py `_finish`). The caller does not need its answer, so a
daemon thread per process sends it, in call order, while the caller already has its text: that round trip
(~0.2 ms on loopback, more across a network) is not part of the gateway's overhead.

What this costs and how it is contained:
- The row sits in process memory until the thread has sent it (well under a millisecond when Redis is healthy). A
  process killed in that window loses it, like a process killed during the provider call; the reservation then
  stays at the worst case until its period ends (never under-counted). Graceful exits wait for the queue (atexit).
- Read-your-writes inside a process: every reader of what the round trip writes waits for this process's queue
  first (`wait`): quota admission and usage, breaker state, the usage-log drain. Services that report work as done
  to other processes (AI batches, reports) wait before they do.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class _Worker:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.pending = 0
        self.pid = 0
        self.jobs: queue.SimpleQueue | None = None

    def submit(self, job: Callable[[], None]) -> None:
        with self.lock:
            if self.pid != os.getpid():
                # First use in this process (or a forked child: the parent's thread and queue did not come along).
                self.pid, self.pending, self.jobs = os.getpid(), 0, queue.SimpleQueue()
                threading.Thread(target=self._run, args=(self.jobs,), name="ai-post-call", daemon=True).start()
            self.pending += 1
            jobs = self.jobs
        jobs.put(job)

    def _run(self, jobs: queue.SimpleQueue) -> None:
        while True:
            job = jobs.get()
            try:
                job()
            except Exception:
                logger.exception("AI post-call bookkeeping failed")
            finally:
                with self.lock:
                    self.pending -= 1
                    if self.pending <= 0:
                        self.idle.notify_all()

    def wait(self, timeout: float = 10.0) -> bool:
        """Block until every job submitted by this process so far is done; False if `timeout` ran out first."""
        if threading.current_thread().name == "ai-post-call":
            return True  # a job waiting for its own queue would never wake
        with self.lock:
            if self.pid != os.getpid() or self.pending <= 0:
                return True
            return self.idle.wait_for(lambda: self.pending <= 0, timeout)


_worker = _Worker()
submit = _worker.submit
wait = _worker.wait
atexit.register(wait, 5.0)
