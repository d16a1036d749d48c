"""An import yields to people: it paces its batches only while web requests are being served."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from imports import services
from imports.models import ImportJob
from report_platform import interactive
from tests.imports.conftest import case_row, csv_bytes

pytestmark = pytest.mark.django_db


def test_a_web_request_marks_interactive_load_and_the_mark_fades(viewer_client):
    assert not interactive.recently(3.0)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        interactive._last_mark = 0.0
        assert viewer_client.get(reverse("releases:dashboard")).status_code == 200
        assert interactive.recently(3.0)
        traveller.shift(timedelta(seconds=5))
        assert not interactive.recently(3.0)


def test_static_files_metrics_and_health_checks_do_not_count(client):
    interactive._last_mark = 0.0
    client.get("/healthz")
    client.get("/static/favicon.svg")
    assert cache.get(interactive.KEY) is None


def _paced_sleeps(upload, run_job, monkeypatch, settings) -> tuple[list[float], list[int]]:
    settings.CSV_IMPORT_BATCH_ROWS = 5
    settings.CSV_IMPORT_BATCH_ROWS_INTERACTIVE = 2
    settings.CSV_IMPORT_PACE_FRACTION = 1.0
    sleeps: list[float] = []
    sizes: list[int] = []
    monkeypatch.setattr(services, "_pace", sleeps.append)
    original = services._batch_write

    def sized(batch, **kwargs):
        sizes.append(len(batch))
        return original(batch, **kwargs)

    monkeypatch.setattr(services, "_batch_write", sized)
    job = upload(csv_bytes([case_row(n) for n in range(1, 21)]))
    run_job(job)
    assert ImportJob.objects.get(pk=job.pk).status == ImportJob.Status.SUCCEEDED
    assert ImportJob.objects.get(pk=job.pk).result["cases_created"] == 20
    return sleeps, sizes


def test_an_import_runs_flat_out_when_nobody_is_using_the_product(upload, run_job, monkeypatch, settings):
    sleeps, sizes = _paced_sleeps(upload, run_job, monkeypatch, settings)
    assert sleeps == []
    assert sizes == [5, 5, 5, 5]


def test_an_import_paces_every_batch_while_people_are_using_the_product(upload, run_job, monkeypatch, settings):
    interactive._last_mark = 0.0
    interactive.mark()
    sleeps, sizes = _paced_sleeps(upload, run_job, monkeypatch, settings)
    # The first batch is full size; once people are seen, batches shrink and each is followed by a pause.
    assert sizes == [5, *([2] * 7), 1]
    assert len(sleeps) == len(sizes)
    assert all(0 <= seconds <= settings.CSV_IMPORT_PACE_MAX_SECONDS for seconds in sleeps)
