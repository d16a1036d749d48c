"""The assistant's prompt context reads release data through the releases selectors: a soft-deleted case's runs are
not counted or listed, exactly as on the dashboard."""

from __future__ import annotations

import pytest

from ai_assist.selectors import assist_context_build
from releases import selectors, services
from report_platform.errors import NotFound

pytestmark = pytest.mark.django_db


@pytest.fixture
def rc_with_a_deleted_case(reviewer, admin_user):
    suite = services.suite_create(name="Login", product="Portal", actor=reviewer)
    rc = services.release_candidate_create(name="RC-1", actor=reviewer)
    live = services.case_create(suite=suite, key="LIVE-1", title="Live", category="auth", owner="ann", actor=reviewer)
    other = services.case_create(
        suite=suite, key="LIVE-2", title="Live 2", category="auth", owner="ann", actor=reviewer
    )
    gone = services.case_create(suite=suite, key="GONE-1", title="Gone", category="auth", owner="bob", actor=reviewer)
    runs = {
        case.key: services.test_run_record(case=case, release_candidate=rc, status=status, actor=reviewer)
        for case, status in ((live, "fail"), (other, "pass"), (gone, "fail"))
    }
    services.case_delete(case=gone, actor=admin_user)
    return {"rc": rc, "live": live, "gone": gone, "runs": runs}


def test_it_counts_an_rc_like_the_dashboard_without_soft_deleted_cases(rc_with_a_deleted_case):
    rc = rc_with_a_deleted_case["rc"]
    variables = assist_context_build(task="summarise_rc", rc_id=str(rc.pk))["variables"]
    assert variables["counts"] == {"pass": 1, "fail": 1, "pending": 0}
    dashboard = selectors.quality_summary(release_candidate=rc)["totals"]
    assert variables["counts"] == {name: dashboard[name] for name in ("pass", "fail", "pending")}
    assert [failure["case"] for failure in variables["failures"]] == ["LIVE-1"]


def test_it_leaves_soft_deleted_cases_out_of_related_failures_and_refuses_their_runs(rc_with_a_deleted_case):
    runs = rc_with_a_deleted_case["runs"]
    variables = assist_context_build(task="triage_failure", run_id=str(runs["LIVE-1"].pk))["variables"]
    assert variables["related"] == []  # GONE-1 failed in the same category, but it is deleted
    assert variables["suite"] == {"product": "Portal", "name": "Login"}
    assert [step["rc"] for step in variables["history"]] == ["RC-1"]
    with pytest.raises(NotFound):
        assist_context_build(task="triage_failure", run_id=str(runs["GONE-1"].pk))
    with pytest.raises(NotFound):
        assist_context_build(task="draft_steps", case_id=str(rc_with_a_deleted_case["gone"].pk))
