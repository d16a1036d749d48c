"""Cross-cutting Prometheus metrics: multiprocess set-up, the `/metrics` registry, and the collectors computed at
scrape time (Celery queue depth, stale jobs).

Decision: prometheus_client's *multiprocess mode*. Every process (gunicorn workers, `runserver`, Celery worker
children) writes its counters and histograms to small mmap files in `PROMETHEUS_MULTIPROC_DIR`; the web process
merges them on every scrape. So a counter incremented inside a Celery task is visible at the web's `/metrics`
without a push gateway. The directory must be shared by the web and the worker (same host, or one shared volume in
Docker Compose) and cleaned when the processes start (`make run` and the containers' entry point do it).

Files are named by a process identifier `<hostname>-<pid>` rather than the bare pid, because processes in
different containers sharing one volume can have the same pid.

This module is imported by the settings (`setup_multiprocess`), so its top level imports nothing from Django.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"
_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"
# kombu's Redis transport keeps a queue's priority levels in separate lists: "<queue>", "<queue>\x06\x163", ...
_PRIORITY_SEPARATOR = "\x06\x16"
_DEFAULT_PRIORITY_STEPS = (0, 3, 6, 9)


def process_identifier() -> str:
    """`<hostname>-<pid>`: unique across the containers that share one metrics directory."""
    return f"{_HOST}-{os.getpid()}"


def setup_multiprocess(directory: str | Path) -> str:
    """Switch prometheus_client to multiprocess mode with files in `directory` (created if missing).

    Called from the settings, before any app defines a metric. The variable is exported so child processes (the
    Celery worker started by `make run` or the tests) use the same directory."""
    directory = str(directory)
    Path(directory).mkdir(parents=True, exist_ok=True)
    os.environ[ENV_VAR] = directory
    from prometheus_client import values

    values.ValueClass = values.MultiProcessValue(process_identifier)
    return directory


def clean_multiprocess_dir(directory: str | Path, *, this_host_only: bool = False) -> int:
    """Delete the metric files in `directory` (all of them, or only this host's: a restarted container's own
    leftovers). Run it before the processes that write there start. Returns the number of files removed."""
    removed = 0
    own = re.compile(rf"_{re.escape(_HOST)}-\d+\.db$")
    for path in Path(directory).glob("*.db"):
        if this_host_only and not own.search(path.name):
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed


_TEST_DIR_WORKER = "REPORT_PLATFORM_TEST_METRICS_WORKER"


def private_test_multiprocess_dir() -> str:
    """A metrics directory for one test run (its Celery worker subprocess inherits it), removed at exit.

    A run that inherited the variable from its parent keeps it and leaves it alone, except a pytest-xdist worker
    inheriting its controller's: each worker's tests read the metrics of their own processes only."""
    from report_platform.embedded import test_worker_name

    worker = test_worker_name()
    if os.environ.get(ENV_VAR) and os.environ.get(_TEST_DIR_WORKER, "") == worker:
        return os.environ[ENV_VAR]
    directory = tempfile.mkdtemp(prefix="rp-test-metrics-")
    os.environ[ENV_VAR] = directory
    os.environ[_TEST_DIR_WORKER] = worker
    owner = os.getpid()
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(directory, ignore_errors=True))
    return directory


def mark_process_dead(pid: int) -> None:
    """gunicorn's `child_exit` hook: drop the live-gauge files of a finished worker process."""
    from prometheus_client import multiprocess

    if os.environ.get(ENV_VAR):
        multiprocess.mark_process_dead(f"{_HOST}-{pid}")


# --- scrape-time collectors ------------------------------------------------------------------------------------


class CeleryQueueDepthCollector:
    """`rp_celery_queue_depth{queue}`: messages waiting in each Celery queue, read from the Redis broker at scrape
    time (LLEN of the queue's lists, every priority level summed). `rp_celery_broker_up` is 0 when Redis does not
    answer (then no depth is reported rather than a misleading 0)."""

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator:
        import redis
        from django.conf import settings
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("rp_celery_broker_up", "1 when the Celery broker (Redis) answered the scrape.")
        depth = GaugeMetricFamily(
            "rp_celery_queue_depth", "Messages waiting in a Celery queue (not yet taken by a worker).", labels=["queue"]
        )
        try:
            client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)
            with client.pipeline(transaction=False) as pipe:
                queues = celery_queue_names()
                for queue in queues:
                    for key in _queue_keys(queue):
                        pipe.llen(key)
                lengths = pipe.execute()
            client.close()
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        steps = len(_DEFAULT_PRIORITY_STEPS)
        for index, queue in enumerate(queues):
            depth.add_metric([queue], sum(lengths[index * steps : (index + 1) * steps]))
        yield up
        yield depth


def celery_queue_names() -> list[str]:
    """The default queue plus every queue named in the Celery configuration."""
    from django.conf import settings

    names = {getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")}
    for queue in getattr(settings, "CELERY_TASK_QUEUES", None) or ():
        names.add(getattr(queue, "name", queue))
    for route in (getattr(settings, "CELERY_TASK_ROUTES", None) or {}).values():
        if isinstance(route, dict) and route.get("queue"):
            names.add(route["queue"])
    return sorted(names)


def _queue_keys(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{_PRIORITY_SEPARATOR}{step}" for step in _DEFAULT_PRIORITY_STEPS]


class StaleJobsCollector:
    """`rp_jobs_stale{kind}`: job records that stopped moving. A job is stale when its status is one of the
    source's `running` statuses and its timestamp field is older than `METRICS_STALE_JOB_SECONDS`, or it is still
    queued longer than `METRICS_QUEUED_JOB_SECONDS`. Sources are listed in `METRICS_STALE_JOB_SOURCES`."""

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator:
        from prometheus_client.core import GaugeMetricFamily

        stale = GaugeMetricFamily(
            "rp_jobs_stale", "Jobs running without progress, or queued, for too long.", labels=["kind"]
        )
        up = GaugeMetricFamily("rp_jobs_stale_up", "1 when the database answered the stale-jobs query.")
        try:
            counts = stale_job_counts()
        except Exception as exc:  # a scrape must not fail because the database is down
            from report_platform.logging import get_logger

            get_logger(__name__).warning("stale_jobs_query_failed", error=type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        for kind, count in sorted(counts.items()):
            stale.add_metric([kind], count)
        up.add_metric([], 1)
        yield up
        yield stale


def stale_job_counts() -> dict[str, int]:
    """Stale jobs per kind (see `StaleJobsCollector`)."""
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    now = timezone.now()
    running_cutoff = now - timedelta(seconds=settings.METRICS_STALE_JOB_SECONDS)
    queued_cutoff = now - timedelta(seconds=settings.METRICS_QUEUED_JOB_SECONDS)
    database = connection.database
    counts: dict[str, int] = {}
    for kind, source in settings.METRICS_STALE_JOB_SOURCES.items():
        query = {
            "$or": [
                {"status": {"$in": source["running"]}, source["running_since"]: {"$lt": running_cutoff}},
                {"status": {"$in": source["queued"]}, source["queued_since"]: {"$lt": queued_cutoff}},
            ]
        }
        counts[kind] = database[source["collection"]].count_documents(query)
    return counts


_SCRAPE_COLLECTORS = (CeleryQueueDepthCollector(), StaleJobsCollector())
# Called before every scrape: apps that update metrics off the request thread (the AI gateway's post-call
# bookkeeping) register a function that waits for this process's pending updates.
BEFORE_SCRAPE: list = []


def metrics_registry():
    """The registry `/metrics` exposes: every process's files merged (multiprocess mode) plus the scrape-time
    collectors; without multiprocess mode, this process's default registry plus the same collectors."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    if os.environ.get(ENV_VAR):
        multiprocess.MultiProcessCollector(registry)
        for collector in _custom_collectors(REGISTRY):
            registry.register(collector)
    else:
        registry.register(_DefaultRegistryView(REGISTRY))
    for collector in _SCRAPE_COLLECTORS:
        registry.register(collector)
    return registry


def _custom_collectors(default_registry) -> list:
    """Scrape-time collectors other apps registered on the default registry (e.g. the AI breaker state, read from
    Redis). Metric objects (their values are in the multiprocess files) and the per-process collectors are left
    out. prometheus_client has no public listing of a registry's collectors, hence the private attribute."""
    from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
    from prometheus_client.metrics import MetricWrapperBase

    per_process = (MetricWrapperBase, ProcessCollector, PlatformCollector, GCCollector)
    return [
        collector
        for collector in list(getattr(default_registry, "_collector_to_names", {}))
        if not isinstance(collector, per_process)
    ]


class _DefaultRegistryView:
    def __init__(self, registry) -> None:
        self._registry = registry

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator:
        yield from self._registry.collect()


def metrics_response():
    """The Prometheus text exposition as a Django response (the `/metrics` view calls it after its access gate)."""
    from django.http import HttpResponse
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    for hook in BEFORE_SCRAPE:
        hook()
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
