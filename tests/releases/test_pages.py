"""Every page: full page, htmx partial, forbidden actor; forms reject invalid input with a code and change nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from releases.models import QualitySummary, ReleaseCandidate, TestCase, TestRun, TestSuite

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def data(make_case, make_rc, record, suite):
    rc1, rc2 = make_rc("2026.1-rc1"), make_rc("2026.1-rc2")
    login = make_case(key="LOGIN-1", title="Login works", priority=1)
    cart = make_case(key="CART-1", title="Cart adds items", owner="bob@example.com", category="payment")
    record(login, rc1, "pass")
    record(cart, rc1, "fail")
    record(login, rc2, "fail", mantis_ids=[4711], notes="Broken <b>badly</b>")
    record(cart, rc2, "pass")
    return {"rc1": rc1, "rc2": rc2, "login": login, "cart": cart, "suite": suite}


def _pages(data):
    case, suite = data["login"], data["suite"]
    return [
        (reverse("releases:dashboard"), "dashboard-live", "Release gate"),
        (reverse("releases:case_list") + "?rc=2026.1-rc2", "case-table", "LOGIN-1"),
        (reverse("releases:case_detail", args=[case.pk]), "case-history", "#4711"),
        (reverse("releases:suite_list"), "suite-table", "Checkout"),
        (reverse("releases:suite_detail", args=[suite.pk]), "suite-summary", "CART-1"),
        (reverse("releases:rc_list"), "rc-table", "2026.1-rc1"),
        (reverse("releases:run_grid") + f"?suite={suite.pk}", "run-grid", "LOGIN-1"),
        (reverse("releases:rc_delta"), "delta-lists", "LOGIN-1"),
        (reverse("releases:flaky_cases"), "flaky-table", "No flaky cases"),
    ]


def test_it_renders_every_page_in_full_and_as_an_htmx_partial(viewer_client, data):
    for url, partial_id, text in _pages(data):
        full = viewer_client.get(url)
        assert full.status_code == 200, url
        body = full.content.decode()
        assert "<html" in body and f'id="{partial_id}"' in body and text in body, url
        partial = viewer_client.get(url, headers=HTMX)
        assert partial.status_code == 200, url
        fragment = partial.content.decode()
        assert "<html" not in fragment and text in fragment, url


def test_it_sends_anonymous_visitors_to_the_login_page(client, data):
    for url, _, _ in _pages(data):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def _snapshot():
    return (
        TestSuite.objects.count(),
        TestCase.objects.count(),
        TestRun.objects.count(),
        ReleaseCandidate.objects.count(),
        list(QualitySummary.objects.order_by("pk").values_list("pass_count", "fail_count", "pending_count")),
        list(TestCase.objects.order_by("pk").values_list("key", "title", "is_deleted")),
    )


def test_it_forbids_viewers_every_write_page_and_changes_nothing(viewer_client, data):
    case, rc = data["login"], data["rc2"]
    before = _snapshot()
    writes = [
        ("get", reverse("releases:case_create"), {}),
        ("post", reverse("releases:case_create"), {"suite": data["suite"].pk, "key": "X-1", "title": "t"}),
        ("get", reverse("releases:case_edit", args=[case.pk]), {}),
        ("post", reverse("releases:case_edit", args=[case.pk]), {"title": "changed"}),
        ("post", reverse("releases:case_delete", args=[case.pk]), {}),
        ("post", reverse("releases:case_restore", args=[case.pk]), {}),
        ("post", reverse("releases:run_record", args=[case.pk]), {"release_candidate": rc.pk, "status": "pass"}),
        ("get", reverse("releases:suite_create"), {}),
        ("post", reverse("releases:suite_create"), {"name": "New", "product": "P"}),
        ("post", reverse("releases:suite_edit", args=[data["suite"].pk]), {"name": "New", "product": "P"}),
        ("post", reverse("releases:rc_create"), {"name": "rc9", "state": "testing", "product": "Web Shop"}),
        ("post", reverse("releases:rc_edit", args=[rc.pk]), {"name": "x", "state": "released"}),
        ("post", reverse("releases:rc_move", args=[rc.pk]), {"direction": "up"}),
        ("post", reverse("releases:run_grid_set"), {"case": case.pk, "release_candidate": rc.pk, "status": "pass"}),
        ("post", reverse("releases:run_grid_bulk"), {"release_candidate": rc.pk, "status": "pass"}),
    ]
    for method, url, payload in writes:
        response = getattr(viewer_client, method)(url, payload)
        assert response.status_code == 403, url
        htmx = getattr(viewer_client, method)(url, payload, headers=HTMX)
        assert htmx.status_code == 403 and 'data-error-code="forbidden"' in htmx.content.decode(), url
    assert _snapshot() == before


def test_it_lets_only_admins_delete_and_restore_cases(reviewer_client, admin_user, data):
    from django.test import Client

    admin_client = Client()
    admin_client.force_login(admin_user)
    case = data["login"]
    assert reviewer_client.post(reverse("releases:case_delete", args=[case.pk])).status_code == 403
    assert TestCase.objects.get(pk=case.pk).is_deleted is False
    response = admin_client.post(reverse("releases:case_delete", args=[case.pk]))
    assert response.status_code == 302
    assert TestCase.objects.get(pk=case.pk).is_deleted is True
    assert "deleted" in admin_client.get(reverse("releases:case_detail", args=[case.pk])).content.decode()
    assert admin_client.post(reverse("releases:case_restore", args=[case.pk])).status_code == 302
    assert TestCase.objects.get(pk=case.pk).is_deleted is False
    actions = list(AuditEvent.objects.filter(resource=f"case:{case.pk}").values_list("action", "outcome"))
    assert ("case.delete", "denied") in actions and ("case.delete", "success") in actions
    assert ("case.restore", "success") in actions


def test_it_creates_and_edits_cases_and_suites_through_the_forms(reviewer_client, data):
    response = reviewer_client.post(
        reverse("releases:suite_create"), {"name": "Search", "product": "Web Shop", "description": "Finds things."}
    )
    suite = TestSuite.objects.get(name="Search")
    assert response.status_code == 302 and response["Location"] == reverse("releases:suite_detail", args=[suite.pk])
    response = reviewer_client.post(
        reverse("releases:case_create"),
        {
            "suite": suite.pk,
            "key": "SRCH-1",
            "title": "Finds shoes",
            "category": "query",
            "owner": "eve",
            "priority": 2,
            "tags": "smoke, ui",
        },
    )
    case = TestCase.objects.get(key="SRCH-1")
    assert response.status_code == 302 and case.tags == ["smoke", "ui"] and case.priority == 2
    response = reviewer_client.post(
        reverse("releases:case_edit", args=[case.pk]),
        {
            "suite": suite.pk,
            "key": "SRCH-1",
            "title": "Finds red shoes",
            "category": "query",
            "owner": "eve",
            "priority": 1,
            "tags": "",
        },
    )
    case.refresh_from_db()
    assert response.status_code == 302 and case.title == "Finds red shoes" and case.priority == 1
    response = reviewer_client.post(
        reverse("releases:suite_edit", args=[suite.pk]), {"name": "Search v2", "product": "Web Shop"}
    )
    assert response.status_code == 302 and TestSuite.objects.get(pk=suite.pk).name == "Search v2"
    assert (
        reviewer_client.get(reverse("releases:case_create"), headers=HTMX)
        .content.decode()
        .startswith('<div id="case-form">')
    )


INVALID_FORMS = [
    (
        "case_create",
        {"suite": "zzz", "key": "N-2", "title": "t", "category": "c", "owner": "o", "priority": 3},
        "validation_failed",
    ),
    (
        "case_create",
        {"suite": "0" * 24, "key": "N-3", "title": "t", "category": "c", "owner": "o", "priority": 3},
        "validation_failed",
    ),
    ("case_create", {"key": "", "title": "t", "category": "c", "owner": "o", "priority": 3}, "validation_failed"),
    ("case_create", {"key": "bad key", "title": "t", "category": "c", "owner": "o", "priority": 3}, "invalid_key"),
    ("case_create", {"key": "LOGIN-1", "title": "t", "category": "c", "owner": "o", "priority": 3}, "duplicate"),
    (
        "case_create",
        {"key": "N-1", "title": "t", "category": "c", "owner": "o", "priority": 9},
        "invalid_priority",
    ),
    (
        "case_edit",
        {"key": "LOGIN-1", "title": "", "category": "c", "owner": "o", "priority": 3},
        "validation_failed",
    ),
    ("case_edit", {"key": "CART-1", "title": "t", "category": "c", "owner": "o", "priority": 3}, "duplicate"),
    ("suite_create", {"name": "", "product": "Web Shop"}, "validation_failed"),
    ("suite_create", {"name": "Checkout", "product": "Web Shop"}, "duplicate"),
    ("suite_edit", {"name": "x" * 201, "product": "Web Shop"}, "too_long"),
]


def test_it_rejects_invalid_form_input_with_a_code_and_changes_nothing(reviewer_client, data):
    before = _snapshot()
    events = AuditEvent.objects.count()
    for form_name, payload, code in INVALID_FORMS:
        args = {"case_edit": [data["login"].pk], "suite_edit": [data["suite"].pk]}.get(form_name, [])
        if form_name.startswith("case"):
            payload = {"suite": data["suite"].pk, **payload}
        response = reviewer_client.post(reverse(f"releases:{form_name}", args=args), payload)
        assert response.status_code in (400, 409), (form_name, payload)
        assert f'data-error-code="{code}"' in response.content.decode(), (form_name, payload)
    assert _snapshot() == before
    assert AuditEvent.objects.count() == events


INVALID_ACTIONS = [
    ("run_record", {"release_candidate": "nope", "status": "pass"}, "validation_failed"),
    ("run_record", {"status": "maybe"}, "validation_failed"),
    ("run_record", {"status": "fail", "mantis_ids": "12, abc"}, "invalid_mantis_id"),
    ("run_grid_set", {"case": "not-an-id", "status": "pass"}, "not_found"),
    ("run_grid_set", {"status": "skipped"}, "validation_failed"),
    ("run_grid_bulk", {"status": "bogus"}, "validation_failed"),
    ("rc_create", {"name": "", "state": "testing", "product": "Web Shop"}, "validation_failed"),
    ("rc_create", {"name": "2026.1-rc1", "state": "testing", "product": "Web Shop"}, "duplicate"),
    ("rc_edit", {"name": "2026.1-rc2", "state": "shipped"}, "validation_failed"),
    ("rc_move", {"direction": "sideways"}, "invalid_direction"),
    ("rc_move", {"direction": "down"}, "cannot_move"),
]


def test_it_rejects_invalid_actions_with_a_code_and_changes_nothing(reviewer_client, data):
    rc, case = data["rc2"], data["login"]
    before = _snapshot()
    sequences = list(ReleaseCandidate.objects.order_by("pk").values_list("sequence", "name", "state"))
    for name, payload, code in INVALID_ACTIONS:
        payload = {**payload}
        if name in ("run_record", "run_grid_set", "run_grid_bulk"):
            payload.setdefault("release_candidate", rc.pk)
        if name == "run_grid_set":
            payload.setdefault("case", case.pk)
        args = {"run_record": [case.pk], "rc_edit": [rc.pk], "rc_move": [rc.pk]}.get(name, [])
        response = reviewer_client.post(reverse(f"releases:{name}", args=args), payload, headers=HTMX)
        assert 400 <= response.status_code < 500, (name, payload)
        assert f'data-error-code="{code}"' in response.content.decode(), (name, payload)
    assert _snapshot() == before
    assert list(ReleaseCandidate.objects.order_by("pk").values_list("sequence", "name", "state")) == sequences


def test_it_answers_unknown_ids_with_not_found(viewer_client, data):
    for url in (
        reverse("releases:case_detail", args=["zzz"]),
        reverse("releases:case_detail", args=["0" * 24]),
        reverse("releases:suite_detail", args=["123"]),
        reverse("releases:dashboard") + "?rc=no-such-rc",
        reverse("releases:case_list") + "?suite=bad",
    ):
        response = viewer_client.get(url)
        assert response.status_code == 404, url


def test_it_rejects_bad_list_parameters_with_codes(viewer_client, data):
    cases = [
        ("?sort=evil", "validation_failed"),
        ("?cursor=%%%", "invalid_cursor"),
        ("?status=fail", "status_needs_rc"),
        ("?rc=2026.1-rc1&status=weird", "validation_failed"),
        ("?limit=100000", "validation_failed"),
    ]
    for query, code in cases:
        response = viewer_client.get(reverse("releases:case_list") + query, headers=HTMX)
        assert response.status_code == 400, query
        assert f'data-error-code="{code}"' in response.content.decode(), query
    response = viewer_client.get(reverse("releases:flaky_cases") + "?window=1")
    assert response.status_code == 400 and b"invalid_window" in response.content


def test_it_records_a_run_from_the_case_page_and_returns_the_history(reviewer_client, data):
    case, rc = data["cart"], data["rc2"]
    response = reviewer_client.post(
        reverse("releases:run_record", args=[case.pk]),
        {"release_candidate": rc.pk, "status": "fail", "mantis_ids": "#1234, 99", "notes": "Totals wrong"},
        headers=HTMX,
    )
    body = response.content.decode()
    assert response.status_code == 200 and body.startswith('<div id="case-history">')
    assert "https://mantis.example.invalid/view.php?id=1234" in body and "task=triage_failure" in body
    latest = TestRun.objects.get(case=case, release_candidate=rc, is_latest=True)
    assert latest.status == "fail" and latest.mantis_ids == [1234, 99]


def test_it_sets_a_status_with_one_click_in_the_grid_and_bulk_sets_a_filtered_selection(reviewer_client, data):
    rc, cart, login = data["rc2"], data["cart"], data["login"]
    response = reviewer_client.post(
        reverse("releases:run_grid_set"),
        {"case": cart.pk, "release_candidate": rc.pk, "status": "pending"},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert response.content.decode().strip().startswith(f'<tr id="grid-row-{cart.pk}"')
    assert TestRun.objects.get(case=cart, release_candidate=rc, is_latest=True).status == "pending"
    response = reviewer_client.post(
        reverse("releases:run_grid_bulk") + "?owner=alice%40example.com",
        {"release_candidate": rc.pk, "status": "pass"},
        headers=HTMX,
    )
    assert response.status_code == 200 and 'id="run-grid"' in response.content.decode()
    assert TestRun.objects.get(case=login, release_candidate=rc, is_latest=True).status == "pass"
    assert TestRun.objects.get(case=cart, release_candidate=rc, is_latest=True).status == "pending"
    assert AuditEvent.objects.filter(action="run.bulk_record", metadata__count=1).count() == 1


def test_it_reorders_and_changes_the_state_of_rcs(reviewer_client, data):
    rc1, rc2 = data["rc1"], data["rc2"]
    response = reviewer_client.post(reverse("releases:rc_move", args=[rc2.pk]), {"direction": "up"}, headers=HTMX)
    assert response.status_code == 200 and 'id="rc-table"' in response.content.decode()
    assert list(ReleaseCandidate.objects.order_by("sequence").values_list("name", flat=True)) == [rc2.name, rc1.name]
    reviewer_client.post(reverse("releases:rc_edit", args=[rc1.pk]), {"name": rc1.name, "state": "released"})
    assert ReleaseCandidate.objects.get(pk=rc1.pk).state == "released"
    reviewer_client.post(
        reverse("releases:rc_create"), {"name": "2026.2-rc1", "state": "planned", "product": "Web Shop"}
    )
    assert ReleaseCandidate.objects.order_by("-sequence").first().name == "2026.2-rc1"


def test_it_links_the_ai_assistant_when_it_exists(viewer_client, data):
    from django.urls import NoReverseMatch

    try:
        ai_url = reverse("ai_assist:assist")
    except NoReverseMatch:
        ai_url = None
    case_page = viewer_client.get(reverse("releases:case_detail", args=[data["login"].pk])).content.decode()
    dashboard = viewer_client.get(reverse("releases:dashboard")).content.decode()
    failed_run = TestRun.objects.get(case=data["login"], release_candidate=data["rc2"])
    if ai_url:
        assert f"{ai_url}?task=draft_steps&case={data['login'].pk}" in case_page
        assert f"task=triage_failure&run={failed_run.pk}" in case_page
        assert f"task=draft_bug_report&run={failed_run.pk}" in case_page
        assert f"{ai_url}?task=summarise_rc&rc={data['rc2'].pk}" in dashboard
    else:
        assert "task=draft_steps" not in case_page and "task=summarise_rc" not in dashboard


def test_it_escapes_user_text_everywhere(viewer_client, data):
    body = viewer_client.get(reverse("releases:case_detail", args=[data["login"].pk])).content.decode()
    assert "Broken &lt;b&gt;badly&lt;/b&gt;" in body and "<b>badly" not in body
