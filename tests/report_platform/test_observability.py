"""Metrics (multiprocess mode, queue depth, stale jobs, HTTP latency/errors) and JSON log lines per request and task."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from report_platform import observability
from report_platform.logging import JsonFormatter, bind_context, clear_context


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_settings_switch_prometheus_client_to_multiprocess_mode():
    from prometheus_client import values

    directory = os.environ[observability.ENV_VAR]
    assert directory == settings.PROMETHEUS_MULTIPROC_DIR
    assert os.path.isdir(directory)
    assert values.ValueClass.__name__ == "MmapedValue"
    assert observability.process_identifier().endswith(f"-{os.getpid()}")


def test_clean_multiprocess_dir_removes_only_what_it_is_asked_to(tmp_path):
    mine = tmp_path / f"counter_{observability.process_identifier()}.db"
    other = tmp_path / "counter_otherhost-12.db"
    mine.write_bytes(b"")
    other.write_bytes(b"")
    (tmp_path / "keep.txt").write_text("x")
    assert observability.clean_multiprocess_dir(tmp_path, this_host_only=True) == 1
    assert not mine.exists() and other.exists()
    assert observability.clean_multiprocess_dir(tmp_path) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep.txt"]


@pytest.mark.django_db
def test_http_latency_and_error_rate_are_exported(client):
    client.get("/no-such-page/")
    samples = scrape(client)
    assert any(name == "django_http_requests_latency_seconds_by_view_method_count" for name, _ in samples)
    not_found = [
        value
        for (name, labels), value in samples.items()
        if name == "django_http_responses_total_by_status_total" and ("status", "404") in labels
    ]
    assert not_found and not_found[0] >= 1


@pytest.mark.django_db
def test_scrape_time_collectors_of_other_apps_are_exported_in_multiprocess_mode(client):
    from prometheus_client import REGISTRY
    from prometheus_client.core import GaugeMetricFamily

    class Probe:
        def collect(self):
            yield GaugeMetricFamily("rp_test_probe", "A collector registered by some app.", value=7)

        def describe(self):
            return [GaugeMetricFamily("rp_test_probe", "A collector registered by some app.")]

    probe = Probe()
    REGISTRY.register(probe)
    try:
        assert scrape(client)[("rp_test_probe", ())] == 7
    finally:
        REGISTRY.unregister(probe)
    assert ("rp_test_probe", ()) not in scrape(client)


@pytest.mark.django_db
def test_queue_depth_is_read_from_the_broker_at_scrape_time(client):
    from report_platform.celery import app
    from report_platform.tasks import health_ping

    app.control.purge()
    try:
        for _ in range(3):
            health_ping.apply_async(args=["queued"], priority=0)
        health_ping.apply_async(args=["urgent"], priority=9)
        samples = scrape(client)
        assert samples[("rp_celery_broker_up", ())] == 1
        assert samples[("rp_celery_queue_depth", (("queue", "celery"),))] == 4
    finally:
        app.control.purge()
    assert scrape(client)[("rp_celery_queue_depth", (("queue", "celery"),))] == 0


@pytest.mark.django_db
def test_a_broker_outage_is_reported_not_raised(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"
    samples = scrape(client)
    assert samples[("rp_celery_broker_up", ())] == 0
    assert not any(name == "rp_celery_queue_depth" for name, _ in samples)


@pytest.mark.django_db
def test_stale_jobs_are_counted_per_kind(client, settings):
    from django.db import connection

    now = timezone.now()
    old, fresh = now - timedelta(hours=2), now - timedelta(seconds=30)
    database = connection.database
    database["importJobs"].insert_many(
        [
            {"status": "running", "updated_at": old, "queued_at": old},
            {"status": "running", "updated_at": fresh, "queued_at": old},
            {"status": "queued", "updated_at": old, "queued_at": old},
            {"status": "succeeded", "updated_at": old, "queued_at": old},
        ]
    )
    database["reports"].insert_many(
        [{"status": "running", "updated_at": old, "created_at": old}, {"status": "ready", "updated_at": old}]
    )
    database["aiBatchJobs"].insert_one({"status": "queued", "created_at": fresh})
    samples = scrape(client)
    assert samples[("rp_jobs_stale_up", ())] == 1
    assert samples[("rp_jobs_stale", (("kind", "import"),))] == 2
    assert samples[("rp_jobs_stale", (("kind", "report"),))] == 1
    assert samples[("rp_jobs_stale", (("kind", "ai_batch"),))] == 0
    settings.METRICS_QUEUED_JOB_SECONDS = 10
    assert scrape(client)[("rp_jobs_stale", (("kind", "ai_batch"),))] == 1


@pytest.mark.django_db
def test_request_log_lines_are_json_with_request_id_user_and_duration(client, admin_user, caplog_json):
    client.force_login(admin_user)
    response = client.get("/", headers={"X-Request-ID": "req-log-test-1"})
    lines = [line for line in caplog_json() if line.get("event") == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == response["X-Request-ID"] == "req-log-test-1"
    assert line["user_id"] == str(admin_user.pk)
    assert line["status"] == 200 and line["method"] == "GET" and line["path"] == "/"
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "info" and line["timestamp"].endswith("Z")


@pytest.mark.django_db
def test_task_log_line_carries_the_publishing_request_id_and_the_outcome(caplog_json):
    from report_platform.tasks import health_ping

    bind_context(request_id="req-task-test-1", user_id="u1")
    try:
        health_ping.apply(args=["x"], headers={"rp_request_id": "req-task-test-1", "rp_user_id": "u1"})
    finally:
        clear_context()
    [line] = [line for line in caplog_json() if line.get("event") == "task"]
    assert line["task"] == "report_platform.health_ping"
    assert line["outcome"] == "success" and line["state"] == "SUCCESS"
    assert line["request_id"] == "req-task-test-1" and line["user_id"] == "u1"
    assert len(line["task_id"]) == 36 and isinstance(line["duration_ms"], float)


def test_a_failing_task_logs_the_failure_with_the_error_type_only(caplog_json):
    from report_platform.celery import app

    @app.task(name="tests.observability.explode", bind=True)
    def explode(self):
        raise ValueError("secret-user-data")

    explode.apply()
    [line] = [line for line in caplog_json() if line.get("event") == "task"]
    assert (line["outcome"], line["error"], line["level"]) == ("failure", "ValueError", "error")
    assert "secret-user-data" not in json.dumps(line)


def test_the_publisher_puts_the_bound_request_id_into_the_message_headers():
    from report_platform.task_logging import add_request_headers

    headers: dict = {}
    bind_context(request_id="req-publish-1", user_id="u9")
    try:
        add_request_headers(headers=headers)
    finally:
        clear_context()
    assert headers == {"rp_request_id": "req-publish-1", "rp_user_id": "u9"}


@pytest.fixture
def caplog_json():
    """JSON lines written through the project's formatter while the test runs."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in records]
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_counter_incremented_in_a_real_worker_reaches_the_web_metrics_and_logs(client, tmp_path):
    """A real `celery worker` process (its stdout captured): the task's JSON line carries the request id that the
    publisher bound, and its counter shows up at this process's /metrics (multiprocess files)."""
    from django.db import connection

    from report_platform.celery import app
    from report_platform.tasks import health_ping

    key = ("rp_celery_tasks_total", (("outcome", "success"), ("task", "report_platform.health_ping")))
    before = scrape(client).get(key, 0)
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "report_platform.settings.test",
        "MONGODB_NAME": connection.settings_dict["NAME"],
    }
    name = f"obs-{uuid.uuid4().hex[:8]}@%h"
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "report_platform", "worker", "-l", "info", "-c", "1",
             "--without-heartbeat", "--without-gossip", "--without-mingle", "-n", name],
            cwd=settings.BASE_DIR, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        request_id = f"req-{uuid.uuid4().hex[:12]}"
        bind_context(request_id=request_id)
        try:
            result = health_ping.delay("from-the-web")
        finally:
            clear_context()
        assert result.get(timeout=60) == {"token": "from-the-web", "database": "ok"}
        # The result is stored before task_postrun runs: poll briefly for the line and the counter.
        deadline = time.monotonic() + 10
        task_lines: list[dict] = []
        while time.monotonic() < deadline and not task_lines:
            lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
            task_lines = [line for line in lines if line.get("event") == "task"]
            time.sleep(0.05)
        assert scrape(client)[key] == before + 1
        assert len(task_lines) == 1, log_path.read_text()
        line = task_lines[0]
        assert (line["task"], line["task_id"], line["outcome"]) == ("report_platform.health_ping", result.id, "success")
        assert line["request_id"] == request_id
        # Celery's own log lines are JSON too (it keeps Django's logging); only its start-up banner is plain text.
        assert any(line.get("logger") == "celery.apps.worker" and "ready" in line["event"] for line in lines)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        app.control.purge()


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/accounts/password/reset/key/3-abc123secret/", "/accounts/password/reset/key/[redacted]/"),
        ("/accounts/confirm-email/MTpzZWNyZXQ/", "/accounts/confirm-email/[redacted]/"),
        ("/accounts/login/", "/accounts/login/"),
        ("/api/v1/tests", "/api/v1/tests"),
    ],
)
def test_one_time_keys_in_paths_are_masked_in_the_access_log(path, logged):
    from report_platform.middleware import loggable_path

    assert loggable_path(path) == logged
