"""Services: validation with coded errors and nothing written, roles with audit events, is_latest upkeep."""

from __future__ import annotations

from datetime import timedelta

import pytest
from bson import ObjectId
from django.utils import timezone

from audit.models import AuditEvent
from releases import selectors, services
from releases.models import QualitySummary, ReleaseCandidate, TestCase, TestRun
from report_platform.errors import Conflict, Forbidden, NotAuthenticated, ValidationFailed

pytestmark = pytest.mark.django_db


def _latest(case, rc) -> list[TestRun]:
    return list(TestRun.objects.filter(case=case, release_candidate=rc, is_latest=True))


def test_it_records_runs_and_keeps_exactly_one_latest_per_case_and_rc(make_case, make_rc, record, reviewer):
    case, rc = make_case(), make_rc()
    first = record(case, rc, "fail", mantis_ids=["#12", 12, "34"], notes="broken")
    assert first.is_latest and first.mantis_ids == [12, 34] and first.executed_by == reviewer
    second = record(case, rc, "pass")
    assert [run.pk for run in _latest(case, rc)] == [second.pk]
    assert TestRun.objects.get(pk=first.pk).is_latest is False
    # A back-dated run is history only: the newer run stays the case's status.
    old = record(case, rc, "fail", executed_at=timezone.now() - timedelta(days=3))
    assert old.is_latest is False and [run.pk for run in _latest(case, rc)] == [second.pk]
    assert selectors.quality_summary(release_candidate=rc)["totals"] == {
        "pass": 1,
        "fail": 0,
        "pending": 0,
        "total": 1,
        "pass_rate": 100.0,
        "in_scope": 1,
        "executed": 1,
        "not_run": 0,
        "coverage": 100.0,
    }
    event = AuditEvent.objects.filter(action="run.record").order_by("-sequence").first()
    assert event.resource == f"run:{old.pk}" and event.metadata["status"] == "fail"


def test_it_copies_owner_category_and_suite_onto_the_run(make_case, make_rc, record):
    case, rc = make_case(owner="dana", category="tax"), make_rc()
    run = record(case, rc, "pass")
    assert (run.owner, run.category, run.suite_id) == ("dana", "tax", case.suite_id)
    stored = TestRun.objects.get(pk=run.pk)
    assert (stored.owner, stored.category, stored.suite_id, stored.case_key) == ("dana", "tax", case.suite_id, case.key)


def test_a_key_edit_rewrites_the_key_on_the_cases_runs_and_a_migration_copies_it_onto_older_runs(
    make_case, make_rc, record, reviewer
):
    import importlib
    from types import SimpleNamespace

    from django.db import connection

    case, other, rc = make_case(key="OLD-1"), make_case(key="KEEP-1"), make_rc()
    record(case, rc, "fail")
    record(case, rc, "pass")
    record(other, rc, "pass")
    services.case_update(case=case, actor=reviewer, key="NEW-1")
    assert sorted(TestRun.objects.values_list("case_key", flat=True)) == ["KEEP-1", "NEW-1", "NEW-1"]
    # Runs written before the field existed: the migration copies each case's key, "" where the case is gone.
    runs = connection.database["testRuns"]
    runs.update_many({}, {"$unset": {"case_key": ""}})
    orphan = runs.insert_one({"case_id": ObjectId(), "release_candidate_id": rc.pk, "status": "pass"}).inserted_id
    migration = importlib.import_module("releases.migrations.0011_run_case_key")
    migration.copy_case_keys(None, SimpleNamespace(connection=connection))
    keys = {document["_id"]: document["case_key"] for document in runs.find({}, {"case_key": 1})}
    assert keys.pop(orphan) == "" and sorted(keys.values()) == ["KEEP-1", "NEW-1", "NEW-1"]


def _bad_runs():
    return [
        ({"status": "skipped"}, "invalid_status"),
        ({"status": "pass", "mantis_ids": ["abc"]}, "invalid_mantis_id"),
        ({"status": "pass", "mantis_ids": [0]}, "invalid_mantis_id"),
        ({"status": "pass", "mantis_ids": [True]}, "invalid_mantis_id"),
        ({"status": "pass", "mantis_ids": list(range(1, 30))}, "invalid_mantis_id"),
        ({"status": "pass", "notes": "x" * 10_001}, "notes_too_long"),
        ({"status": "pass", "executed_at": timezone.now() + timedelta(days=1)}, "invalid_executed_at"),
    ]


def test_it_rejects_bad_runs_with_a_code_and_writes_nothing(make_case, make_rc, reviewer):
    case, rc = make_case(), make_rc()
    events = AuditEvent.objects.count()
    for extra, code in _bad_runs():
        with pytest.raises(ValidationFailed) as caught:
            services.test_run_record(case=case, release_candidate=rc, actor=reviewer, **extra)
        assert caught.value.code == code, extra
    assert TestRun.objects.count() == 0 and QualitySummary.objects.count() == 0
    assert AuditEvent.objects.count() == events


def test_it_refuses_runs_from_viewers_and_anonymous_and_audits_the_denial(make_case, make_rc, viewer):
    case, rc = make_case(), make_rc()
    with pytest.raises(Forbidden):
        services.test_run_record(case=case, release_candidate=rc, status="pass", actor=viewer)
    with pytest.raises(NotAuthenticated):
        services.test_run_record(case=case, release_candidate=rc, status="pass", actor=None)
    assert TestRun.objects.count() == 0
    denied = AuditEvent.objects.get(action="run.record", outcome="denied")
    assert denied.actor_id == str(viewer.pk)


def test_it_refuses_runs_for_deleted_cases(make_case, make_rc, admin_user, reviewer):
    case, rc = make_case(), make_rc()
    services.case_delete(case=case, actor=admin_user)
    with pytest.raises(Conflict) as caught:
        services.test_run_record(
            case=TestCase.objects.get(pk=case.pk), release_candidate=rc, status="pass", actor=reviewer
        )
    assert caught.value.code == "case_deleted" and TestRun.objects.count() == 0


def test_it_creates_cases_with_validation_and_one_audit_event(suite, reviewer):
    case = services.case_create(
        suite=suite,
        key="PAY-1",
        title=" Pays ",
        category="payment",
        owner="bob",
        tags=["a", "a", " b "],
        actor=reviewer,
    )
    assert case.title == "Pays" and case.tags == ["a", "b"] and case.created_by == reviewer
    assert AuditEvent.objects.filter(action="case.create", resource=f"case:{case.pk}").count() == 1
    with pytest.raises(Conflict) as duplicate:
        services.case_create(suite=suite, key="PAY-1", title="x", category="c", owner="o", actor=reviewer)
    assert duplicate.value.code == "duplicate"
    with pytest.raises(ValidationFailed) as bad_priority:
        services.case_create(suite=suite, key="PAY-2", title="x", category="c", owner="o", priority=7, actor=reviewer)
    assert "priority" in bad_priority.value.fields
    with pytest.raises(ValidationFailed) as bad_key:
        services.case_create(suite=suite, key="$where", title="x", category="c", owner="o", actor=reviewer)
    assert bad_key.value.code == "invalid_key"
    assert TestCase.objects.count() == 1


def test_it_updates_only_editable_fields(make_case, reviewer):
    case = make_case()
    with pytest.raises(ValidationFailed) as caught:
        services.case_update(case=case, actor=reviewer, is_deleted=True, created_by=None)
    assert caught.value.code == "unknown_field" and set(caught.value.fields) == {"is_deleted", "created_by"}
    updated = services.case_update(case=case, actor=reviewer, title="New title", priority=1)
    assert (updated.title, updated.priority) == ("New title", 1)
    event = AuditEvent.objects.get(action="case.update")
    assert sorted(event.metadata["changed"]) == ["priority", "title"]


def test_it_soft_deletes_and_restores_cases_for_admins_only(make_case, make_rc, record, reviewer, admin_user):
    case, rc = make_case(), make_rc()
    record(case, rc, "fail")
    with pytest.raises(Forbidden):
        services.case_delete(case=case, actor=reviewer)
    deleted = services.case_delete(case=case, actor=admin_user)
    assert deleted.is_deleted and deleted.deleted_at is not None
    assert selectors.quality_summary(release_candidate=rc)["totals"]["total"] == 0
    with pytest.raises(Conflict):
        services.case_delete(case=deleted, actor=admin_user)
    restored = services.case_restore(case=deleted, actor=admin_user)
    assert not restored.is_deleted
    assert selectors.quality_summary(release_candidate=rc)["totals"]["fail"] == 1
    assert TestRun.objects.filter(case=case).count() == 1


def test_it_orders_release_candidates_and_moves_them(reviewer, make_rc):
    first, second, third = make_rc("a"), make_rc("b"), make_rc("c")
    assert [rc.sequence for rc in (first, second, third)] == [10, 20, 30]
    services.release_candidate_move(release_candidate=third, direction="up", actor=reviewer)
    assert [rc.name for rc in selectors.release_candidate_list()] == ["a", "c", "b"]
    assert selectors.release_candidate_previous(release_candidate=ReleaseCandidate.objects.get(name="b")).name == "c"
    with pytest.raises(Conflict):
        services.release_candidate_move(release_candidate=first, direction="up", actor=reviewer)
    with pytest.raises(Conflict) as duplicate:
        services.release_candidate_create(name="a", actor=reviewer)
    assert duplicate.value.code == "duplicate"
    with pytest.raises(Conflict) as same_place:
        services.release_candidate_create(name="d", sequence=10, actor=reviewer)
    assert same_place.value.code == "duplicate_sequence"
    updated = services.release_candidate_update(release_candidate=first, state="released", actor=reviewer)
    assert updated.state == "released"
    with pytest.raises(ValidationFailed):
        services.release_candidate_update(release_candidate=first, state="gone", actor=reviewer)


def test_it_bulk_records_one_status_for_many_cases(make_case, make_rc, reviewer, monkeypatch):
    rc = make_rc()
    cases = [make_case() for _ in range(3)]
    assert services.test_run_bulk_record(cases=cases, release_candidate=rc, status="pass", actor=reviewer) == 3
    assert selectors.quality_summary(release_candidate=rc)["totals"]["pass"] == 3
    monkeypatch.setattr(services, "BULK_RECORD_MAX", 2)
    with pytest.raises(ValidationFailed) as caught:
        services.test_run_bulk_record(cases=cases, release_candidate=rc, status="fail", actor=reviewer)
    assert caught.value.code == "bulk_too_large"
    assert TestRun.objects.filter(status="fail").count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_of_one_case_leave_exactly_one_latest(make_case, make_rc, reviewer):
    import threading

    from django.db import connections

    case, rc = make_case(), make_rc()
    statuses = ["pass", "fail", "pending", "fail", "pass", "fail"]
    errors: list[Exception] = []
    barrier = threading.Barrier(len(statuses))

    def record(status: str) -> None:
        try:
            barrier.wait()
            services.test_run_record(case=case, release_candidate=rc, status=status, actor=reviewer)
        except Exception as error:  # no outcome but success is allowed: every run is stored
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=record, args=(status,)) for status in statuses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    latest = _latest(case, rc)
    assert len(latest) == 1
    assert TestRun.objects.filter(case=case).count() == len(statuses)
    totals = selectors.quality_summary(release_candidate=rc)["totals"]
    assert totals["total"] == 1 and totals[latest[0].status] == 1
