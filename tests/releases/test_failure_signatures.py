"""Failure signatures: normalisation, grouping on the dashboard and the RC delta page ("N failures, M distinct
errors", new against the baseline), known-issue links, the optional gate rule, flaky runs in the flaky score."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from releases import failure_selectors, selectors, services
from releases.models import KnownIssue
from releases.signatures import failure_signature
from report_platform.errors import Conflict


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (
            {"message": "AssertionError: expected 3 == 4 at /tmp/a1/x.py:12"},
            {"message": "AssertionError: expected 9 == 1 at /srv/b/y.py:40"},
        ),
        (
            {"failure_type": "KeyError", "message": "'sku-8d3f9a1b'"},
            {"failure_type": "KeyError", "message": "'sku-00ff12ab'"},
        ),
        (
            {"message": "timeout for request 123e4567-e89b-12d3-a456-426614174000"},
            {"message": "timeout for request 9b2e4567-e89b-12d3-a456-426614174999"},
        ),
        ({"message": "object at 0x7f9259676bd0 closed"}, {"message": "object at 0x10aa closed"}),
        ({"message": 'user "alice" has no order 17'}, {"message": 'user "bob" has no order 4'}),
        (
            {"message": "Failed", "text": "=== RUN TestX\n  x_test.go:12: got 5"},
            {"message": "Failed", "text": "  y_test.go:99: got 7"},
        ),
    ],
)
def test_it_gives_the_same_signature_to_the_same_error(first, second):
    assert failure_signature(**first) == failure_signature(**second) != ""


def test_it_keeps_different_errors_apart():
    assert failure_signature(message="ValueError: bad input") != failure_signature(message="TypeError: bad input")
    assert failure_signature(message="cannot connect") != failure_signature(message="cannot parse")


def test_it_caps_long_signatures_with_a_digest():
    one = failure_signature(message="E " + "word " * 200 + "one")
    two = failure_signature(message="E " + "word " * 200 + "two")
    assert len(one) <= 300 and len(two) <= 300 and one != two


@pytest.fixture
def failing(reviewer, make_case, make_rc):
    """Two RCs: the baseline fails with error A; the current one with A (two cases) and a new error B."""
    baseline, current = make_rc(), make_rc()
    cases = [make_case() for _ in range(4)]

    def runs(rc, items):
        services.test_run_batch_record(release_candidate=rc, runs=items, actor=reviewer)

    runs(baseline, [{"case": str(cases[0].pk), "status": "fail", "failure_message": "AssertionError: total 3 != 4"}])
    runs(
        current,
        [
            {"case": str(cases[0].pk), "status": "fail", "failure_message": "AssertionError: total 5 != 6"},
            {"case": str(cases[1].pk), "status": "fail", "failure_message": "AssertionError: total 1 != 2"},
            {
                "case": str(cases[2].pk),
                "status": "fail",
                "failure_type": "TimeoutError",
                "failure_message": "after 30 s",
            },
            {"case": str(cases[3].pk), "status": "pass"},
        ],
    )
    return baseline, current, cases


@pytest.mark.django_db
def test_it_groups_failures_by_signature(failing):
    baseline, current, _cases = failing
    groups = failure_selectors.failure_groups(release_candidate=current, baseline=baseline)
    assert (groups["failures"], groups["distinct"], groups["new_count"]) == (3, 2, 1)
    first, second = groups["signatures"]
    assert (first["signature"], first["count"], first["new"]) == ("AssertionError: total <n> != <n>", 2, False)
    assert (second["signature"], second["count"], second["new"]) == ("TimeoutError: after <n> s", 1, True)


@pytest.mark.django_db
def test_the_dashboard_and_delta_page_show_the_signatures(reviewer_client, failing):
    baseline, current, _cases = failing
    for url in (
        reverse("releases:dashboard") + f"?rc={current.name}",
        reverse("releases:rc_delta") + f"?rc={current.name}&baseline={baseline.name}",
    ):
        page = reviewer_client.get(url).content.decode()
        assert "3</strong> failures, <strong>2</strong> distinct errors" in page
        assert "TimeoutError: after &lt;n&gt; s" in page and "signature-new" in page


@pytest.mark.django_db
def test_a_signature_links_to_a_mantis_issue_once(reviewer_client, reviewer, failing, make_case):
    baseline, current, _cases = failing
    response = reviewer_client.post(
        reverse("releases:known_issue_link"),
        {"product": current.product, "signature": "TimeoutError: after <n> s", "mantis_id": "4711", "next": "/x"},
    )
    assert response.status_code == 302
    assert KnownIssue.objects.get().mantis_id == 4711
    assert AuditEvent.objects.filter(action="known_issue.link").count() == 1
    with pytest.raises(Conflict):
        services.known_issue_link(
            product=current.product, signature="TimeoutError: after <n> s", mantis_id=1, actor=reviewer
        )
    groups = failure_selectors.failure_groups(release_candidate=current, baseline=baseline)
    assert [item["mantis_id"] for item in groups["signatures"]] == [None, 4711]
    # A later failure with that signature shows the link on its case page.
    case = make_case()
    services.test_run_batch_record(
        release_candidate=current,
        runs=[{"case": str(case.pk), "status": "fail", "failure_type": "TimeoutError", "failure_message": "after 9 s"}],
        actor=reviewer,
    )
    page = reviewer_client.get(reverse("releases:case_detail", args=[case.pk])).content.decode()
    assert "Mantis #4711" in page


@pytest.mark.django_db
def test_viewers_cannot_link(viewer_client, failing):
    _baseline, current, _cases = failing
    response = viewer_client.post(
        reverse("releases:known_issue_link"), {"product": current.product, "signature": "x", "mantis_id": "1"}
    )
    assert response.status_code == 403 and KnownIssue.objects.count() == 0


@pytest.mark.django_db
def test_the_gate_can_refuse_new_signatures(failing, settings):
    _baseline, current, _cases = failing
    assert selectors.release_gate(release_candidate=current)["new_signatures"] == []  # off by default
    settings.RELEASES_GATE_NO_NEW_SIGNATURE = True
    gate = selectors.release_gate(release_candidate=current)
    assert gate["verdict"] == "NO-GO" and gate["new_signatures"] == ["TimeoutError: after <n> s"]
    assert any("new error signature" in reason for reason in gate["reasons"])


@pytest.mark.django_db
def test_a_pass_on_rerun_counts_in_the_flaky_score(reviewer, make_case, make_rc):
    rc = make_rc()
    steady, flaky = make_case(), make_case()
    services.test_run_batch_record(
        release_candidate=rc,
        runs=[{"case": str(steady.pk), "status": "pass"}, {"case": str(flaky.pk), "status": "pass", "flaky": True}],
        actor=reviewer,
    )
    found = selectors.flaky_cases(release_candidate=rc)
    assert [item["key"] for item in found] == [flaky.key]
    assert found[0]["flips"] == 1 and found[0]["score"] == 1.0
