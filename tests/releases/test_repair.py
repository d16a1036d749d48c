"""Data older versions left behind (a case whose suite is gone, runs whose case or RC is gone): every page and API
that lists or shows cases answers 200 with "(missing suite)" / "(missing RC)", and `manage.py releases_repair`
finds them and, with --fix, repairs them and rebuilds the summaries."""

from __future__ import annotations

from io import StringIO

import pytest
from bson import ObjectId
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from releases import selectors
from releases.models import QualitySummary, TestCase, TestRun, TestSuite

pytestmark = pytest.mark.django_db

API = "/api/v1"


def _now():
    now = timezone.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _raw_case(*, suite_id: ObjectId, key: str, priority: int = 1) -> ObjectId:
    document = {
        "suite_id": suite_id,
        "key": key,
        "title": f"Legacy {key}",
        "category": "legacy",
        "task": "",
        "owner": "old-importer",
        "priority": priority,
        "tags": [],
        "is_deleted": False,
        "deleted_at": None,
        "created_by_id": None,
        "created_at": _now(),
        "updated_at": _now(),
        "write_version": 0,
    }
    return connection.database["testCases"].insert_one(document).inserted_id


def _raw_run(*, case_id: ObjectId, rc_id: ObjectId, suite_id: ObjectId, status: str = "fail") -> ObjectId:
    document = {
        "case_id": case_id,
        "release_candidate_id": rc_id,
        "status": status,
        "mantis_ids": [],
        "notes": "left by an older version",
        "executed_at": _now(),
        "executed_by_id": None,
        "suite_id": suite_id,
        "owner": "old-importer",
        "category": "legacy",
        "is_latest": True,
        "created_at": _now(),
    }
    return connection.database["testRuns"].insert_one(document).inserted_id


@pytest.fixture
def orphans(make_case, make_rc, record, suite):
    """Good data through the services, plus orphans written with raw pymongo like older versions left them."""
    rc, rc2 = make_rc("RC-1"), make_rc("RC-2")
    good = make_case(key="HK-0001", priority=2)
    record(good, rc, "pass")
    gone_suite = ObjectId()
    orphan_case = _raw_case(suite_id=gone_suite, key="HK-0129")
    return {
        "rc": rc,
        "rc2": rc2,
        "suite": suite,
        "good": good,
        "gone_suite": gone_suite,
        "orphan_case": orphan_case,
        "orphan_case_run": _raw_run(case_id=orphan_case, rc_id=rc.pk, suite_id=gone_suite),
        "run_without_case": _raw_run(case_id=ObjectId(), rc_id=rc.pk, suite_id=suite.pk),
        "run_without_rc": _raw_run(case_id=good.pk, rc_id=ObjectId(), suite_id=suite.pk),
        "run_without_suite": _raw_run(case_id=good.pk, rc_id=rc2.pk, suite_id=ObjectId(), status="pending"),
    }


def test_it_lists_searches_sorts_and_shows_cases_whose_suite_is_gone(viewer_client, orphans):
    case_list = reverse("releases:case_list")
    for query in ({"q": "HK-0129"}, {"sort": "-priority"}, {"sort": "priority"}, {"rc": "RC-1"}, {}):
        response = viewer_client.get(case_list, query)
        assert response.status_code == 200, query
        assert "HK-0129" in response.content.decode() and selectors.MISSING_SUITE_NAME in response.content.decode()
    htmx = viewer_client.get(case_list, {"sort": "-priority"}, headers={"HX-Request": "true"})
    assert htmx.status_code == 200 and "HK-0129" in htmx.content.decode()
    grid = viewer_client.get(reverse("releases:run_grid"), {"rc": "RC-1", "sort": "-priority"})
    assert grid.status_code == 200 and "HK-0129" in grid.content.decode()
    detail = viewer_client.get(reverse("releases:case_detail", args=[orphans["orphan_case"]]))
    assert detail.status_code == 200 and selectors.MISSING_SUITE_NAME in detail.content.decode()
    history = viewer_client.get(reverse("releases:case_detail", args=[orphans["good"].pk]))
    assert history.status_code == 200 and selectors.MISSING_RELEASE_CANDIDATE_NAME in history.content.decode()
    for page in ("releases:dashboard", "releases:rc_delta", "releases:flaky_cases", "releases:suite_list"):
        assert viewer_client.get(reverse(page)).status_code == 200, page


def test_the_case_api_pages_past_cases_whose_suite_is_gone(viewer, orphans):
    client = Client()
    client.force_login(viewer)
    for sort in ("key", "-priority", "priority", "-updated"):
        keys, cursor = [], ""
        for _ in range(5):
            response = client.get(f"{API}/tests", {"limit": 1, "sort": sort, "rc": "RC-1", "cursor": cursor})
            assert response.status_code == 200, (sort, response.content[:300])
            page = response.json()
            keys += [(item["key"], item["suite_name"]) for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(keys) == [("HK-0001", "Checkout"), ("HK-0129", selectors.MISSING_SUITE_NAME)], sort
    response = client.get(f"{API}/tests", {"search": "HK-0129"})
    assert response.status_code == 200 and [item["key"] for item in response.json()["items"]] == ["HK-0129"]
    detail = client.get(f"{API}/tests/{orphans['orphan_case']}")
    assert detail.status_code == 200 and detail.json()["suite_name"] == selectors.MISSING_SUITE_NAME


def test_the_reports_exports_and_ai_context_skip_or_label_orphans(orphans):
    from ai_assist.selectors import assist_context_build
    from imports.services import _cases_rows, _runs_rows
    from reports.figures import appendix_rows

    assert [row["key"] for row in _cases_rows()] == ["HK-0001"]
    assert {row["key"] for row in _runs_rows(orphans["rc"])} == {"HK-0001"}
    # A report covers the RC's product: a case whose suite is gone belongs to no product and is left out
    # (`releases_repair` lists it), never shown with another product's figures.
    suites = {row.key: row.suite for row in appendix_rows(release_candidate=orphans["rc"])}
    assert suites == {"HK-0001": "Checkout"}
    context = assist_context_build(task="draft_steps", case_id=str(orphans["orphan_case"]))
    assert context["variables"]["suite"]["name"] == selectors.MISSING_SUITE_NAME
    good = assist_context_build(task="draft_steps", case_id=str(orphans["good"].pk))
    assert {step["rc"] for step in good["variables"]["history"]} >= {"RC-1", selectors.MISSING_RELEASE_CANDIDATE_NAME}


def _command(*args: str) -> str:
    out = StringIO()
    call_command("releases_repair", *args, stdout=out)
    return out.getvalue()


def test_the_repair_command_reports_orphans_and_changes_nothing_without_fix(orphans):
    before = (TestCase.objects.count(), TestRun.objects.count(), TestSuite.objects.count())
    output = _command()
    assert "cases without suite: 1" in output
    assert "runs without case: 1" in output
    assert "runs without release candidate: 1" in output
    assert "runs without suite: 2" in output  # the stale suite copy, and the run of the case whose suite is gone
    assert "--fix" in output
    assert (TestCase.objects.count(), TestRun.objects.count(), TestSuite.objects.count()) == before


def test_the_repair_command_fixes_orphans_and_rebuilds_the_summaries(orphans):
    output = _command("--fix")
    assert "runs deleted: 2" in output and "cases reattached: 1" in output
    assert not TestRun.objects.filter(pk__in=[orphans["run_without_case"], orphans["run_without_rc"]]).exists()
    recovered = TestSuite.objects.get(product="(recovered)")
    assert recovered.name == f"Recovered {orphans['gone_suite']}"
    case = TestCase.objects.get(pk=orphans["orphan_case"])
    assert case.suite_id == recovered.pk
    assert TestRun.objects.get(pk=orphans["orphan_case_run"]).suite_id == recovered.pk
    assert TestRun.objects.get(pk=orphans["run_without_suite"]).suite_id == orphans["suite"].pk
    totals = {
        (summary.release_candidate_id, summary.suite_id): (
            summary.pass_count,
            summary.fail_count,
            summary.pending_count,
        )
        for summary in QualitySummary.objects.filter(dimension="all")
    }
    assert totals == {
        (orphans["rc"].pk, orphans["suite"].pk): (1, 0, 0),
        (orphans["rc"].pk, recovered.pk): (0, 1, 0),
        (orphans["rc2"].pk, orphans["suite"].pk): (0, 0, 1),
    }
    assert AuditEvent.objects.filter(action="releases.repair").count() == 1
    again = _command("--fix")
    assert "cases without suite: 0" in again and "runs without case: 0" in again and "runs deleted: 0" in again
    assert all(not ids for ids in selectors.orphans_find().values())
