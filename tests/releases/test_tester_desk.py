"""The tester's desk (issue 15): errors next to their field and gone once fixed, the grid's inline fail form, the
bulk dialog and result, what read-only roles see, sorting by priority, status words, and the one navigation."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from releases.models import TestRun

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def desk(make_case, make_rc, record):
    rc = make_rc("2026.5-rc1")
    cases = [make_case(key=f"DESK-{n}", priority=priority) for n, priority in ((1, 4), (2, 1), (3, 2), (4, 3))]
    record(cases[0], rc, "pass")
    return {"rc": rc, "cases": cases}


def test_it_records_a_fail_with_mantis_ids_and_a_note_from_the_grid(reviewer_client, desk):
    case, rc = desk["cases"][1], desk["rc"]
    response = reviewer_client.post(
        reverse("releases:run_grid_set"),
        {"case": case.pk, "release_candidate": rc.pk, "status": "fail", "mantis_ids": "4711; 4712", "notes": "Boom"},
        headers=HTMX,
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert f'id="grid-row-{case.pk}"' in body and "#4711" in body and "#4712" in body and "Boom" in body
    run = TestRun.objects.get(case=case, release_candidate=rc, is_latest=True)
    assert (run.status, list(run.mantis_ids), run.notes) == ("fail", [4711, 4712], "Boom")


def test_it_keeps_the_grid_fail_form_open_with_the_error_beside_it_and_writes_nothing(reviewer_client, desk):
    case, rc = desk["cases"][1], desk["rc"]
    response = reviewer_client.post(
        reverse("releases:run_grid_set"),
        {"case": case.pk, "release_candidate": rc.pk, "status": "fail", "mantis_ids": "abc", "notes": "kept"},
        headers=HTMX,
    )
    assert response.status_code == 400
    assert "HX-Retarget" not in response  # the row is the error area of this request
    body = response.content.decode()
    assert f'id="grid-row-{case.pk}"' in body and '<details class="grid-fail" open>' in body
    assert "Mantis ids:" in body and "mantis_ids:" not in body and 'value="abc"' in body and 'value="kept"' in body
    assert not TestRun.objects.filter(case=case, release_candidate=rc).exists()


def test_it_shows_the_case_page_run_errors_next_to_the_field_and_clears_them_after_a_valid_save(reviewer_client, desk):
    case, rc = desk["cases"][2], desk["rc"]
    url = reverse("releases:run_record", args=[case.pk])
    bad = reviewer_client.post(url, {"release_candidate": rc.pk, "status": "fail", "mantis_ids": "abc"}, headers=HTMX)
    assert bad.status_code == 400
    assert (bad["HX-Retarget"], bad["HX-Reswap"]) == ("#run-form", "outerHTML")
    body = bad.content.decode()
    assert body.startswith('<div id="run-form"') and "is not a Mantis issue id" in body
    assert 'class="errorlist' in body  # Django's per-field error list, inside the form next to the field
    good = reviewer_client.post(url, {"release_candidate": rc.pk, "status": "fail", "mantis_ids": "12"}, headers=HTMX)
    assert good.status_code == 200
    body = good.content.decode()
    assert 'id="case-history"' in body and "#12" in body
    assert '<div id="run-form" hx-swap-oob="true">' in body and "is not a Mantis issue id" not in body
    # Without htmx, the page comes back with the error in the form.
    page = reviewer_client.post(url, {"release_candidate": rc.pk, "status": "fail", "mantis_ids": "x"})
    assert (
        page.status_code == 400
        and "<html" in page.content.decode()
        and "is not a Mantis issue id" in page.content.decode()
    )


def test_it_names_the_status_and_count_in_the_bulk_dialog_and_reports_the_result(reviewer_client, desk):
    rc = desk["rc"]
    grid = reviewer_client.get(reverse("releases:run_grid"), {"rc": rc.name}).content.decode()
    assert 'data-bulk-count="4"' in grid and "Apply to 4 cases" in grid and f'data-rc-name="{rc.name}"' in grid
    response = reviewer_client.post(
        reverse("releases:run_grid_bulk") + "?q=DESK-3", {"release_candidate": rc.pk, "status": "pending"}, headers=HTMX
    )
    assert response.status_code == 200
    assert "Recorded Pending for 1 case in 2026.5-rc1." in response.content.decode()
    assert TestRun.objects.get(case=desk["cases"][2], release_candidate=rc).status == "pending"
    # Without htmx: a redirect back to the grid, and the result as a message there.
    plain = reviewer_client.post(
        reverse("releases:run_grid_bulk") + "?q=DESK-4", {"release_candidate": rc.pk, "status": "pass"}, follow=True
    )
    assert plain.status_code == 200 and "Recorded Pass for 1 case in 2026.5-rc1." in plain.content.decode()


def test_it_hides_the_bulk_bar_when_nothing_matches(reviewer_client, desk):
    grid = reviewer_client.get(reverse("releases:run_grid"), {"rc": desk["rc"].name, "q": "NO-SUCH-CASE"})
    body = grid.content.decode()
    assert grid.status_code == 200 and "No cases match these filters." in body and 'class="bulk"' not in body


def test_it_shows_viewers_neither_the_keyboard_hint_nor_record_runs(make_user, desk):
    rc = desk["rc"]
    viewer_client, reviewer_client = _client_for(make_user("viewer")), _client_for(make_user("reviewer"))
    viewer_grid = viewer_client.get(reverse("releases:run_grid"), {"rc": rc.name}).content.decode()
    assert "Keyboard:" not in viewer_grid and 'class="bulk"' not in viewer_grid and "grid-fail" not in viewer_grid
    reviewer_grid = reviewer_client.get(reverse("releases:run_grid"), {"rc": rc.name}).content.decode()
    assert "Keyboard:" in reviewer_grid and "grid-fail" in reviewer_grid
    viewer_dashboard = viewer_client.get(reverse("releases:dashboard"), {"rc": rc.name}).content.decode()
    reviewer_dashboard = reviewer_client.get(reverse("releases:dashboard"), {"rc": rc.name}).content.decode()
    assert "Record runs" not in viewer_dashboard and "Record runs" in reviewer_dashboard


def test_it_sorts_descending_priority_most_critical_first_and_names_sorts_in_words(viewer_client, desk):
    page = viewer_client.get(reverse("releases:case_list"), {"sort": "-priority"}).content.decode()
    positions = [page.index(f"DESK-{n}<") for n in (2, 3, 4, 1)]  # P1, P2, P3, P4
    assert positions == sorted(positions)
    assert "Most critical first (P1…)" in page and ">-priority<" not in page
    ascending = viewer_client.get(reverse("releases:case_list"), {"sort": "priority"}).content.decode()
    assert ascending.index("DESK-1<") < ascending.index("DESK-2<")


def test_it_offers_the_status_filter_in_words(viewer_client, desk):
    page = viewer_client.get(reverse("releases:case_list")).content.decode()
    assert '<option value="not_run">Not run</option>' in page and ">not_run<" not in page


def test_it_words_filter_errors_with_labels_in_one_removable_notice(viewer_client, desk):
    response = viewer_client.get(reverse("releases:case_list"), {"status": "fail"}, headers=HTMX)
    assert response.status_code == 400 and response["HX-Retarget"] == "#messages"
    body = response.content.decode()
    # One element holds the message and the field errors, so clearing it leaves nothing stale behind.
    assert body.startswith('<div class="notice error"') and body.rstrip().endswith("</div>")
    assert "<strong>RC</strong>: Choose an RC." in body and "<code>rc</code>" not in body


def test_it_puts_every_page_one_click_away_in_the_header(make_user, desk):
    header_links = [
        "releases:dashboard",
        "releases:case_list",
        "releases:suite_list",
        "releases:run_grid",
        "releases:rc_list",
        "releases:rc_delta",
        "releases:flaky_cases",
        "reports:report_list",
        "ai_assist:assist",
    ]
    for role, extra, absent in (
        ("viewer", [], ["imports:import_list", "audit:event_list"]),
        ("reviewer", ["imports:import_list"], ["audit:event_list"]),
        ("admin", ["imports:import_list", "audit:event_list"], []),
    ):
        page = _client_for(make_user(role)).get(reverse("releases:case_list")).content.decode()
        header = page[page.index("<header>") : page.index("</header>")]
        for name in header_links + extra:
            assert f'href="{reverse(name)}"' in header, name
        for name in absent:
            assert f'href="{reverse(name)}"' not in header, name
        assert 'class="subnav"' not in page


@pytest.fixture
def statuses(make_case, make_rc, record):
    """Twelve cases in rc: CASE keys S-00..S-11, fail every third, pass the others but S-10 and S-11 (not run)."""
    rc = make_rc("2026.6-rc1")
    cases = [make_case(key=f"S-{n:02d}") for n in range(12)]
    for n, case in enumerate(cases[:10]):
        record(case, rc, "fail" if n % 3 == 0 else "pass")
    return {"rc": rc, "cases": cases}


def _all_keys(filters, **kwargs) -> tuple[list[str], int]:
    from releases import selectors

    keys, cursor, pages = [], None, 0
    while True:
        page = selectors.case_list(filters=filters, cursor=cursor, **kwargs)
        keys += [row["case"].key for row in page.rows]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            return keys, pages


@pytest.mark.parametrize("dense", [False, True])
def test_it_pages_status_in_rc_in_key_order_through_sparse_ids_or_a_dense_scan(statuses, monkeypatch, dense):
    from releases import selectors

    if dense:  # every status counts as dense, read in chunks of 2 cases
        monkeypatch.setattr(selectors, "STATUS_IN_MAX", 0)
        monkeypatch.setattr(selectors, "STATUS_SCAN_CHUNK", 2)
    rc = statuses["rc"]
    expected = {
        "fail": ["S-00", "S-03", "S-06", "S-09"],
        "pass": ["S-01", "S-02", "S-04", "S-05", "S-07", "S-08"],
        "not_run": ["S-10", "S-11"],
    }
    for status, keys in expected.items():
        filters = selectors.CaseFilters(release_candidate=rc, status=status)
        assert _all_keys(filters, limit=2)[0] == keys, status
        assert selectors.case_count(filters=filters, cap=100) == selectors.CaseCount(count=len(keys))
        assert [case.key for case in selectors.cases_matching(filters=filters, cap=3)] == keys[:3]
        by_priority, _ = _all_keys(filters, limit=2, sort="-priority")  # every case is P3: then by id
        assert sorted(by_priority) == keys and len(by_priority) == len(keys)


def test_it_bounds_a_dense_status_page_and_resumes_where_it_stopped(statuses, monkeypatch):
    from releases import selectors

    monkeypatch.setattr(selectors, "STATUS_IN_MAX", 0)
    monkeypatch.setattr(selectors, "STATUS_SCAN_CHUNK", 2)
    monkeypatch.setattr(selectors, "STATUS_SCAN_BUDGET", 4)
    filters = selectors.CaseFilters(release_candidate=statuses["rc"], status="not_run")
    first = selectors.case_list(filters=filters, limit=5)
    assert first.rows == [] and first.partial and first.next_cursor is not None  # S-00..S-03 examined
    keys, pages = _all_keys(filters, limit=5)
    # 4 cases examined a page; the last page finds the end of the cases.
    assert keys == ["S-10", "S-11"] and pages == 4
    count = selectors.case_count(filters=filters, cap=100)
    assert count == selectors.CaseCount(count=0, complete=False)


def test_the_grid_bulk_count_comes_from_the_case_counts_and_equals_a_raw_count(
    make_case, suite, reviewer, admin_user, monkeypatch
):
    """The bulk count of the run grid is read from the counts kept at write time (the stand-in counts a filter
    by reading every match), and it equals a raw count for each filter it answers; a case created, edited or
    deleted moves it."""
    from django.db import connection
    from pymongo.collection import Collection

    from releases import selectors, services

    other = services.suite_create(name="Other", product="Web Shop", actor=reviewer)
    cases = [make_case(owner=f"o{n % 3}@example.com", category=f"c{n % 2}") for n in range(7)]
    cases += [make_case(suite=other, owner="o0@example.com", category="c1") for _ in range(3)]
    services.case_delete(case=cases[0], actor=admin_user)
    services.case_update(case=cases[1], actor=reviewer, owner="o2@example.com")
    counted: list[dict] = []
    original = Collection.count_documents

    def count_documents(self, query, *args, **kwargs):
        counted.append(query)
        return original(self, query, *args, **kwargs)

    monkeypatch.setattr(Collection, "count_documents", count_documents)
    scopes = [
        {"suite": suite},
        {"suite": other},
        {"product": "Web Shop"},
        {"product": "Web Shop", "owner": "o2@example.com"},
        {"suite": suite, "category": "c1"},
        {"product": "Web Shop", "owner": "nobody@example.com"},
        {},
        {"category": "c0"},
    ]
    for scope in scopes:
        filters = selectors.CaseFilters(**scope)
        raw = original(connection.database["testCases"], selectors.case_match(filters=filters))
        assert selectors.case_count(filters=filters, cap=100) == selectors.CaseCount(count=raw), scope
        assert selectors.case_count(filters=filters, cap=2).count == min(raw, 2)
    assert counted == []  # none of them counted the cases themselves
    # What the counts do not hold is still counted exactly.
    both = selectors.CaseFilters(product="Web Shop", owner="o0@example.com", category="c1")
    assert selectors.case_count(filters=both, cap=100).count == 3 + sum(
        1 for n in range(1, 7) if n % 3 == 0 and n % 2 == 1
    )
    assert len(counted) == 1
