"""Helpers for the imports tests: CSV builders, a database snapshot, and running a confirmed job in-process."""

from __future__ import annotations

import csv
import io

import pytest

COLLECTIONS = ("testSuites", "testCases", "testRuns", "releaseCandidates")
HEADER = ["product", "suite", "key", "title", "category", "task", "owner", "priority", "tags"]
RUN_HEADER = [*HEADER, "rc", "status", "mantis_ids", "notes", "executed_at", "executed_by"]


def csv_bytes(rows, *, header=RUN_HEADER, delimiter=",", line_ending="\r\n", bom=False) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=line_ending)
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
    data = buffer.getvalue().encode()
    return (b"\xef\xbb\xbf" + data) if bom else data


def case_row(n: int, *, rc: str = "RC-1", status: str | None = None, day: int = 1, **overrides) -> list[str]:
    values = {
        "product": "Shop",
        "suite": "Checkout",
        "key": f"CASE-{n:05d}",
        "title": f"Case number {n}",
        "category": "functional",
        "task": "",
        "owner": "alice",
        "priority": "2",
        "tags": "smoke|ui",
        "rc": rc,
        "status": status if status is not None else ("pass" if rc else ""),
        "mantis_ids": "",
        "notes": "",
        "executed_at": f"2026-11-{day:02d}T10:00:00Z" if rc else "",
        "executed_by": "",
    }
    values.update(overrides)
    return [values[name] for name in RUN_HEADER]


def valid_file(count: int = 3, **kwargs) -> bytes:
    return csv_bytes([case_row(n, **kwargs) for n in range(1, count + 1)])


def db_snapshot() -> dict[str, list]:
    from django.db import connection

    return {name: sorted(connection.database[name].find({}), key=lambda d: str(d["_id"])) for name in COLLECTIONS}


@pytest.fixture
def upload(reviewer):
    """`upload(data, dry_run=True)` -> the ImportJob, created through the service as the reviewer."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from imports.services import import_job_create

    def do(data: bytes, *, dry_run: bool = True, name: str = "cases.csv", user=None):
        return import_job_create(
            user=user or reviewer, upload=SimpleUploadedFile(name, data, "text/csv"), dry_run=dry_run
        )

    return do


@pytest.fixture
def run_job(reviewer, monkeypatch):
    """Confirm a previewed job without a broker and process it in this process, like the worker would."""
    from imports import services
    from imports.models import ImportJob

    def do(job: ImportJob, *, worker: str = "test-worker"):
        monkeypatch.setattr(services, "import_job_enqueue", lambda job_id: None)
        services.import_job_confirm(user=job.created_by, job_id=str(job.pk))
        outcome = services.import_job_process(job_id=str(job.pk), worker=worker)
        job.refresh_from_db()
        return job, outcome

    return do


# Real Celery workers on the test Redis and database. Short lease and visibility timeout so a killed worker's job
# is taken over within seconds.
WORKER_ENV = {
    "CSV_IMPORT_LEASE_SECONDS": "2",
    "CELERY_VISIBILITY_TIMEOUT": "3",
    "CELERY_UNACKED_RESTORE_INTERVAL": "1",
    "CELERY_UNACKED_MUTEX_EXPIRE": "2",  # a worker killed inside its restore (every second here) frees it soon
    "CSV_IMPORT_BATCH_ROWS": "250",
    "CSV_IMPORT_RETRY_DELAY_SECONDS": "1",
    "CSV_IMPORT_PACE_FRACTION": "0",
}


@pytest.fixture
def start_worker(transactional_db):
    """`start_worker(**env)` -> a running worker process (settings overridden by WORKER_ENV, then `env`)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import uuid

    from django.conf import settings
    from django.db import connection

    from report_platform.celery import app

    processes: list[subprocess.Popen] = []

    def start(**overrides: str) -> subprocess.Popen:
        name = f"imports-{uuid.uuid4().hex[:8]}@%h"
        env = {
            **os.environ,
            **WORKER_ENV,
            **overrides,
            "DJANGO_SETTINGS_MODULE": "report_platform.settings.test",
            "MONGODB_NAME": connection.settings_dict["NAME"],
        }
        command = [sys.executable, "-m", "celery", "-A", "report_platform", "worker", "-l", "warning", "-c", "1"]
        command += ["-P", "prefork", "--without-heartbeat", "--without-gossip", "--without-mingle", "-n", name]
        process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, start_new_session=True)
        processes.append(process)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=0.5) or []
            if any(name.split("@")[0] in next(iter(reply)) for reply in replies):
                return process
            if process.poll() is not None:
                raise RuntimeError(f"worker exited with {process.returncode}")
        raise RuntimeError("worker did not answer a ping within 30 s")

    yield start
    # The test is over: no warm shutdown (it would wait for retries still queued); the next test purges the queue.
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def purge_queue() -> None:
    from report_platform.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.client.delete("celery", "unacked", "unacked_index", "unacked_mutex")


def wait_for(predicate, *, timeout: float, step: float = 0.05):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out")
