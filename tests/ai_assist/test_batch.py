"""AI batching: one template over every failed run of an RC, within the quotas, with progress, idempotent."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from ai_assist.models import AiBatchItem, AiBatchJob, AiUsageLog
from ai_assist.services import ai_batch_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_enqueue(monkeypatch):
    """Batches created here are run by the test itself (the worker test below uses a real worker)."""
    from ai_assist import tasks

    monkeypatch.setattr(tasks.ai_batch_run_task, "delay", lambda batch_id: None)


def test_it_triages_every_failure_once_even_when_run_twice(
    viewer_client, viewer, release_data, fake_openai, no_enqueue
):
    response = viewer_client.post(
        "/api/v1/ai/batches",
        {"task": "triage_failure", "rc": str(release_data["rc2"].pk)},
        content_type="application/json",
    )
    assert response.status_code == 202
    batch_id = response.json()["id"]
    again = viewer_client.post(
        "/api/v1/ai/batches",
        {"task": "triage_failure", "rc": str(release_data["rc2"].pk)},
        content_type="application/json",
    )
    assert again.json()["id"] == batch_id  # still queued: the same batch, not a second one
    first = ai_batch_run(batch_id=batch_id)
    second = ai_batch_run(batch_id=batch_id)
    assert (first.status, first.total, first.done, first.failed) == ("succeeded", 2, 2, 0)
    assert second.done == 2 and fake_openai.request_count == 2
    assert AiUsageLog.objects.filter(batch_id=batch_id, outcome="success").count() == 2
    detail = viewer_client.get(f"/api/v1/ai/batches/{batch_id}").json()
    assert (detail["status"], detail["progress_percent"]) == ("succeeded", 100)
    assert all(item.text.startswith("Likely cause") for item in AiBatchItem.objects.filter(batch_id=batch_id))


def test_it_stops_a_batch_at_the_quota_and_skips_the_rest(viewer, release_data, fake_openai, settings, no_enqueue):
    from ai_assist.services import ai_batch_create

    job = ai_batch_create(user=viewer, task="triage_failure", release_candidate_id=str(release_data["rc2"].pk))
    settings.AI_QUOTAS = {
        "viewer": {"daily_tokens": 100_000, "cost_ceiling_usd": 10, "cost_period": "day", "burst_per_minute": 1}
    }
    # The burst limit counts in calendar minutes: two calls either side of a minute's end are both allowed, so
    # the batch starts well inside one (it failed once at 17:59:59).
    while timezone.now().second >= 50:
        time.sleep(0.5)
    finished = ai_batch_run(batch_id=str(job.pk))
    assert (finished.status, finished.done, finished.failed) == ("partial", 1, 1)
    assert "at most 1 a minute" in finished.error
    assert fake_openai.request_count == 1
    assert sorted(AiBatchItem.objects.filter(batch=job).values_list("status", flat=True)) == ["done", "skipped"]


def test_it_hides_other_users_batches(client, make_user, release_data, no_enqueue):
    from ai_assist.services import ai_batch_create

    owner, outsider = make_user("viewer"), make_user("viewer")
    job = ai_batch_create(user=owner, task="triage_failure", release_candidate_id=str(release_data["rc2"].pk))
    client.force_login(outsider)
    assert client.get(f"/api/v1/ai/batches/{job.pk}").status_code == 404
    assert client.get(f"/ai/batches/{job.pk}/").status_code == 404
    client.force_login(owner)
    page = client.get(f"/ai/batches/{job.pk}/")
    assert page.status_code == 200 and "hx-trigger" in page.content.decode()
    partial = client.get(f"/ai/batches/{job.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<section id="ai-batch-status"') and "<html" not in partial


@pytest.mark.django_db(transaction=True)
def test_it_runs_a_batch_on_a_real_celery_worker(celery_worker_process, make_user, release_data):
    # The worker process has the default settings: the offline provider.
    viewer = make_user("viewer")
    from ai_assist.services import ai_batch_create

    job = ai_batch_create(user=viewer, task="draft_bug_report", release_candidate_id=str(release_data["rc2"].pk))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status not in ("queued", "running"):
            break
        time.sleep(0.2)
    assert (job.status, job.done) == ("succeeded", 2)
    texts = list(AiBatchItem.objects.filter(batch=job).values_list("text", flat=True))
    assert all("Summary: [auth]" in text for text in texts)
    assert AiBatchJob.objects.count() == 1


def test_it_resumes_a_batch_whose_worker_died_mid_item(viewer, release_data, fake_openai, no_enqueue):
    from datetime import timedelta

    from django.utils import timezone

    from ai_assist.services import ai_batch_create

    job = ai_batch_create(user=viewer, task="triage_failure", release_candidate_id=str(release_data["rc2"].pk))
    first, second = AiBatchItem.objects.filter(batch=job).order_by("pk")
    AiBatchJob.objects.filter(pk=job.pk).update(status="running")
    # The dead worker claimed the first item an hour ago; the second one was claimed just now by a live worker.
    AiBatchItem.objects.filter(pk=first.pk).update(status="running", updated_at=timezone.now() - timedelta(hours=1))
    AiBatchItem.objects.filter(pk=second.pk).update(status="running", updated_at=timezone.now())
    resumed = ai_batch_run(batch_id=str(job.pk))
    assert fake_openai.request_count == 1  # only the stale item is taken over
    assert AiBatchItem.objects.get(pk=first.pk).status == "done"
    assert AiBatchItem.objects.get(pk=second.pk).status == "running"
    assert resumed.done == 1


def test_it_offers_a_batch_from_the_assist_page_and_redirects_to_its_progress(
    viewer_client, release_data, no_enqueue, settings
):
    settings.AI_PROVIDER = "offline"
    page = viewer_client.get(f"/ai/assist/?task=summarise_rc&rc={release_data['rc2'].pk}").content.decode()
    assert "Triage every failure of RC-2026.11.2 (batch)" in page
    response = viewer_client.post("/ai/batches/", {"task": "triage_failure", "rc": str(release_data["rc2"].pk)})
    job = AiBatchJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/ai/batches/{job.pk}/"
    assert (job.total, job.status) == (2, "queued")


def test_it_fails_a_batch_at_once_when_the_queue_is_unreachable(viewer_client, release_data, monkeypatch):
    from kombu.exceptions import OperationalError

    from ai_assist import tasks

    def broker_down(batch_id):
        raise OperationalError("connection refused")

    monkeypatch.setattr(tasks.ai_batch_run_task, "delay", broker_down)
    response = viewer_client.post(
        "/api/v1/ai/batches",
        {"task": "triage_failure", "rc": str(release_data["rc2"].pk)},
        content_type="application/json",
    )
    assert response.status_code == 503 and response.json()["error"]["code"] == "service_unavailable"
    job = AiBatchJob.objects.get()
    assert (job.status, job.error) == ("failed", "The job queue is unreachable.")
