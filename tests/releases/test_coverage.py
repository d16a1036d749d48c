"""Coverage: cases in scope (live cases of the RC's product), executed, not run, beside the pass rate; kept at write
time, equal to a raw count, and a gate rule."""

from __future__ import annotations

import pytest
from django.db import connection

from releases import selectors, services, store
from releases.models import CaseScopeCount

pytestmark = pytest.mark.django_db


def _raw(rc, *, product: str) -> dict:
    """The figures counted straight from the collections (what the case counts and summaries must equal)."""
    database = connection.database
    suites = {document["_id"] for document in database["testSuites"].find({"product": product})}
    live = {
        document["_id"]: document
        for document in database["testCases"].find({"is_deleted": False, "suite_id": {"$in": list(suites)}})
    }
    runs = [
        run
        for run in database["testRuns"].find({"release_candidate_id": rc.pk, "is_latest": True})
        if run["case_id"] in live
    ]
    by_owner: dict[str, list[int]] = {}
    for case in live.values():
        by_owner.setdefault(case["owner"], [0, 0])[0] += 1
    for run in runs:
        by_owner.setdefault(run["owner"], [0, 0])[1] += 1
    return {
        "in_scope": len(live),
        "executed": len(runs),
        "not_run": len(live) - len(runs),
        "pass": sum(run["status"] == "pass" for run in runs),
        "fail": sum(run["status"] == "fail" for run in runs),
        "pending": sum(run["status"] == "pending" for run in runs),
        "by_owner": {owner: tuple(counts) for owner, counts in by_owner.items()},
    }


def _figures(rc) -> dict:
    summary = selectors.quality_summary(release_candidate=rc)
    totals = summary["totals"]
    return {
        **{name: totals[name] for name in ("in_scope", "executed", "not_run", "pass", "fail", "pending")},
        "by_owner": {row["name"]: (row["in_scope"], row["executed"]) for row in summary["by_owner"]},
    }


@pytest.fixture
def scene(reviewer, suite, make_case, make_rc, record):
    """Web Shop (two suites, three owners) and a Mobile App suite whose cases must never count for a shop RC."""
    search = services.suite_create(name="Search", product="Web Shop", actor=reviewer)
    app = services.suite_create(name="Sync", product="Mobile App", actor=reviewer)
    rc = make_rc("shop-1")
    app_rc = make_rc("app-1", product="Mobile App")
    cases = [
        make_case(key=f"C-{n}", owner=owner, category=category, suite=target, priority=1 if n < 3 else 3)
        for n, (owner, category, target) in enumerate(
            [
                ("ann", "cart", suite),
                ("ann", "cart", suite),
                ("bob", "pay", suite),
                ("bob", "query", search),
                ("cy", "query", search),
                ("cy", "pay", suite),
            ]
        )
    ]
    app_cases = [make_case(key=f"A-{n}", owner="ann", suite=app) for n in range(4)]
    record(cases[0], rc, "pass")
    record(cases[2], rc, "fail")
    record(cases[3], rc, "pending")
    record(app_cases[0], app_rc, "pass")
    return {"rc": rc, "app_rc": app_rc, "cases": cases, "app_cases": app_cases, "search": search}


def test_coverage_equals_a_raw_count_per_rc_suite_and_owner(scene):
    rc = scene["rc"]
    assert _figures(rc) == _raw(rc, product="Web Shop")
    assert _figures(rc)["in_scope"] == 6 and _figures(rc)["not_run"] == 3
    totals = selectors.quality_summary(release_candidate=rc)["totals"]
    assert totals["coverage"] == 50.0 and totals["pass_rate"] == 33.3
    by_suite = {row["name"]: row for row in selectors.quality_summary(release_candidate=rc)["by_suite"]}
    assert (by_suite["Checkout"]["in_scope"], by_suite["Checkout"]["executed"]) == (4, 2)
    assert (by_suite["Search"]["in_scope"], by_suite["Search"]["not_run"]) == (2, 1)
    by_category = {row["name"]: row for row in selectors.quality_summary(release_candidate=rc)["by_category"]}
    assert (by_category["query"]["in_scope"], by_category["query"]["executed"]) == (2, 1)
    app = selectors.quality_summary(release_candidate=scene["app_rc"])["totals"]
    assert (app["in_scope"], app["executed"], app["coverage"]) == (4, 1, 25.0)
    one_suite = selectors.quality_summary(release_candidate=rc, suite=scene["search"])["totals"]
    assert (one_suite["in_scope"], one_suite["executed"]) == (2, 1)


def test_creating_deleting_restoring_and_moving_cases_moves_not_run(scene, make_case, admin_user, reviewer):
    rc = scene["rc"]
    before = _figures(rc)
    new = make_case(key="C-NEW", owner="dee")
    assert _figures(rc)["not_run"] == before["not_run"] + 1 and _figures(rc)["by_owner"]["dee"] == (1, 0)
    services.case_delete(case=new, actor=admin_user)
    assert _figures(rc)["not_run"] == before["not_run"] and "dee" not in _figures(rc)["by_owner"]
    executed = scene["cases"][0]  # a case with a run: deleting it removes it from both sides
    services.case_delete(case=executed, actor=admin_user)
    assert (_figures(rc)["in_scope"], _figures(rc)["executed"]) == (before["in_scope"] - 1, before["executed"] - 1)
    services.case_restore(case=executed, actor=admin_user)
    assert _figures(rc) == before
    services.case_update(case=scene["cases"][5], owner="ann", actor=reviewer)
    assert _figures(rc)["by_owner"]["ann"] == (3, 1) and _figures(rc)["by_owner"]["cy"] == (1, 0)
    services.case_update(case=scene["cases"][5], suite=scene["search"], actor=reviewer)
    by_suite = {row["name"]: row["in_scope"] for row in selectors.quality_summary(release_candidate=rc)["by_suite"]}
    assert by_suite == {"Checkout": 3, "Search": 3}
    assert _figures(rc) == _raw(rc, product="Web Shop")


def test_a_rebuild_gives_the_same_case_counts_as_the_writes(scene):
    store.summaries_settle()
    kept = sorted((row.suite_id, row.dimension, row.key, row.case_count) for row in CaseScopeCount.objects.all())
    connection.database[store.CASE_COUNTS].delete_many({})
    services.summaries_rebuild(release_candidate_ids=[])
    rebuilt = sorted((row.suite_id, row.dimension, row.key, row.case_count) for row in CaseScopeCount.objects.all())
    assert rebuilt == kept


def test_the_gate_requires_the_minimum_coverage_and_lists_not_run_p1_cases(scene, record, settings):
    settings.RELEASES_GATE_MIN_PASS_RATE = 0.0
    rc, cases = scene["rc"], scene["cases"]
    gate = selectors.release_gate(release_candidate=rc)
    assert gate["verdict"] == "NO-GO" and gate["coverage"] == 50.0
    assert gate["thresholds"]["min_coverage"] == 90.0
    assert gate["not_run_p1"] == ["C-1"]  # C-0 and C-2 ran
    reason = next(reason for reason in gate["reasons"] if reason.startswith("Coverage"))
    assert "3 of 6 cases not run" in reason and "C-1" in reason
    for case in cases[1:]:
        record(case, rc, "pass")
    gate = selectors.release_gate(release_candidate=rc)
    assert gate["coverage"] == 100.0 and gate["not_run_p1"] == [] and gate["verdict"] == "GO", gate["reasons"]
    settings.RELEASES_GATE_MIN_COVERAGE = 50.0
    assert not any(reason.startswith("Coverage") for reason in selectors.release_gate(release_candidate=rc)["reasons"])


def test_the_dashboard_shows_coverage_beside_the_pass_rate(scene, viewer_client):
    from django.urls import reverse

    body = viewer_client.get(reverse("releases:dashboard"), {"rc": "shop-1"}).content.decode()
    assert 'id="total-coverage">50.0%' in body and 'id="total-pass-rate">33.3%' in body
    assert 'id="total-not-run">3' in body and 'id="total-in-scope">6' in body
