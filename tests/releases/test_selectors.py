"""Selectors on constructed histories: delta, flakiness, gate, trend, case list keyset pages, case history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from releases import selectors, services
from releases.selectors import CaseFilters
from report_platform.errors import NotFound, ValidationFailed

pytestmark = pytest.mark.django_db


def _history(make_case, make_rc, record, table: dict[str, list[str | None]], *, priorities=None):
    """Build cases with a status per RC: {"A": ["pass", "fail", None]} (None = not run in that RC)."""
    width = len(next(iter(table.values())))
    rcs = [make_rc(f"rc{index + 1}") for index in range(width)]
    cases = {}
    for key, statuses in table.items():
        cases[key] = make_case(key=key, priority=(priorities or {}).get(key, 3))
        for rc, status in zip(rcs, statuses, strict=True):
            if status:
                record(cases[key], rc, status)
    return rcs, cases


def _keys(items):
    return [item["key"] for item in items]


def test_it_classifies_the_delta_between_two_rcs(make_case, make_rc, record):
    rcs, cases = _history(
        make_case,
        make_rc,
        record,
        {
            "NEWFAIL": ["pass", "fail"],
            "NEWFAIL-UNRUN": [None, "fail"],
            "NEWFAIL-PENDING": ["pending", "fail"],
            "FIXED": ["fail", "pass"],
            "STILL": ["fail", "fail"],
            "NOTRUN": ["pass", None],
            "NOTRUN-PENDING": ["fail", "pending"],
            "STABLE": ["pass", "pass"],
            "NEVER": [None, None],
        },
        priorities={"NEWFAIL": 1},
    )
    delta = selectors.rc_delta(release_candidate=rcs[1])
    assert delta["baseline"]["name"] == "rc1"
    assert _keys(delta["new_failures"]) == ["NEWFAIL", "NEWFAIL-PENDING", "NEWFAIL-UNRUN"]
    assert _keys(delta["fixed"]) == ["FIXED"]
    assert _keys(delta["still_failing"]) == ["STILL"]
    assert _keys(delta["newly_not_run"]) == ["NOTRUN", "NOTRUN-PENDING"]
    item = delta["new_failures"][0]
    assert item["case_id"] == str(cases["NEWFAIL"].pk) and item["statuses"] == {"baseline": "pass", "current": "fail"}
    assert {"suite", "owner", "category", "priority", "title"} <= set(item)
    assert delta["counts"] == {"new_failures": 3, "fixed": 1, "still_failing": 1, "newly_not_run": 2}
    # Any two RCs: against itself nothing is new, fixed or not run.
    same = selectors.rc_delta(release_candidate=rcs[1], baseline=rcs[1])
    assert same["new_failures"] == [] and same["fixed"] == [] and len(same["still_failing"]) == 4


def test_it_leaves_deleted_cases_out_of_the_delta_and_handles_the_first_rc(make_case, make_rc, record, admin_user):
    rcs, cases = _history(make_case, make_rc, record, {"A": ["pass", "fail"], "B": ["pass", "fail"]})
    services.case_delete(case=cases["B"], actor=admin_user)
    assert _keys(selectors.rc_delta(release_candidate=rcs[1])["new_failures"]) == ["A"]
    first = selectors.rc_delta(release_candidate=rcs[0])
    assert first["baseline"] is None and first["new_failures"] == []


def test_it_scores_flaky_cases_over_the_window(make_case, make_rc, record):
    rcs, _ = _history(
        make_case,
        make_rc,
        record,
        {
            "ALWAYS-FLIPS": ["pass", "fail", "pass", "fail", "pass", "fail"],
            "TWO-FLIPS": ["pass", "pass", "fail", "pending", "pass", "pass"],
            "ONE-REGRESSION": ["pass", "pass", "pass", "fail", "fail", "fail"],
            "STABLE": ["pass"] * 6,
            "OLD-FLAKE": ["pass", "fail", "pass", "pass", "pass", "pass"],
        },
    )
    flaky = selectors.flaky_cases(release_candidate=rcs[-1], window=5)
    assert [(item["key"], item["flips"], item["score"]) for item in flaky] == [
        ("ALWAYS-FLIPS", 4, 1.0),
        ("TWO-FLIPS", 2, 0.67),
    ]
    assert [step["status"] for step in flaky[1]["history"]] == ["pass", "fail", "pending", "pass", "pass"]
    assert [step["release_candidate"] for step in flaky[0]["history"]] == ["rc2", "rc3", "rc4", "rc5", "rc6"]
    wide = selectors.flaky_cases(release_candidate=rcs[-1], window=6)
    assert "OLD-FLAKE" in _keys(wide)
    # Up to an earlier RC, only the RCs before it count.
    assert _keys(selectors.flaky_cases(release_candidate=rcs[2], window=5)) == ["ALWAYS-FLIPS", "OLD-FLAKE"]


def test_it_says_go_or_no_go_against_the_thresholds(make_case, make_rc, record, settings):
    settings.RELEASES_GATE_MIN_PASS_RATE = 75.0
    rcs, cases = _history(
        make_case,
        make_rc,
        record,
        {"P1": ["pass", "pass"], "A": ["pass", "pass"], "B": ["pass", "pass"], "C": ["pass", "fail"]},
        priorities={"P1": 1},
    )
    gate = selectors.release_gate(release_candidate=rcs[1])
    assert gate["verdict"] == "GO" and gate["reasons"] == [] and gate["pass_rate"] == 75.0
    assert gate["thresholds"] == {"min_pass_rate": 75.0, "min_coverage": 90.0, "max_new_p1_failures": 0}
    assert gate["coverage"] == 100.0 and gate["not_run_p1"] == []
    record(cases["P1"], rcs[1], "fail")
    gate = selectors.release_gate(release_candidate=rcs[1])
    assert gate["verdict"] == "NO-GO" and gate["new_p1_failures"] == ["P1"]
    assert any("below the minimum" in reason for reason in gate["reasons"])
    assert any("priority-1" in reason for reason in gate["reasons"])
    empty = make_rc("rc-empty")
    assert selectors.release_gate(release_candidate=empty)["verdict"] == "NO-GO"


def test_it_summarises_by_owner_category_suite_and_trends_across_rcs(make_case, make_rc, record, reviewer):
    other = services.suite_create(name="Search", product="Web Shop", actor=reviewer)
    rc1, rc2 = make_rc("r1"), make_rc("r2")
    a = make_case(owner="ann", category="cart")
    b = make_case(owner="bob", category="cart")
    c = make_case(owner="bob", category="query", suite=other)
    record(a, rc1, "pass")
    record(b, rc1, "fail")
    record(a, rc2, "pass")
    record(b, rc2, "pass")
    record(c, rc2, "pending")
    summary = selectors.quality_summary(release_candidate=rc2)
    assert summary["totals"] == {
        "pass": 2,
        "fail": 0,
        "pending": 1,
        "total": 3,
        "pass_rate": 66.7,
        "in_scope": 3,
        "executed": 3,
        "not_run": 0,
        "coverage": 100.0,
    }
    assert [(row["name"], row["pass"], row["pending"]) for row in summary["by_owner"]] == [("ann", 1, 0), ("bob", 1, 1)]
    assert [(row["name"], row["total"]) for row in summary["by_category"]] == [("cart", 2), ("query", 1)]
    assert [(row["name"], row["pass_rate"]) for row in summary["by_suite"]] == [("Checkout", 100.0), ("Search", 0.0)]
    only_search = selectors.quality_summary(release_candidate=rc2, suite=other)
    assert only_search["totals"]["total"] == 1 and only_search["by_owner"][0]["name"] == "bob"
    trend = selectors.pass_rate_trend()
    assert [(row["release_candidate"], row["pass_rate"]) for row in trend] == [("r1", 50.0), ("r2", 66.7)]
    assert [row["release_candidate"] for row in selectors.pass_rate_trend(limit=1)] == ["r2"]


def test_it_pages_the_case_list_with_a_stable_keyset(make_case, make_rc, record):
    for number in range(7):
        make_case(key=f"K-{number}", priority=(number % 3) + 1)
    first = selectors.case_list(limit=3)
    assert [row["case"].key for row in first.rows] == ["K-0", "K-1", "K-2"]
    make_case(key="K-00")  # inserted before the cursor: does not shift the next page
    second = selectors.case_list(limit=3, cursor=first.next_cursor)
    assert [row["case"].key for row in second.rows] == ["K-3", "K-4", "K-5"]
    third = selectors.case_list(limit=3, cursor=second.next_cursor)
    assert [row["case"].key for row in third.rows] == ["K-6"] and third.next_cursor is None
    seen = []
    cursor = None
    while True:
        page = selectors.case_list(sort="-priority", limit=2, cursor=cursor)
        seen.extend((row["case"].priority, row["case"].key) for row in page.rows)
        cursor = page.next_cursor
        if cursor is None:
            break
    # Descending priority is most critical first: P1 (the highest priority) before P2, P3.
    assert len(seen) == 8 and [p for p, _ in seen] == sorted(p for p, _ in seen) and seen[0][0] == 1


def test_it_filters_the_case_list(make_case, make_rc, record, admin_user):
    rc = make_rc()
    a = make_case(key="LOGIN-1", title="Login with SSO", owner="ann", category="auth")
    b = make_case(key="CART-1", title="Add to cart", owner="bob", category="cart", task="TASK-77")
    c = make_case(key="CART-2", title="Remove", owner="bob", category="cart")
    record(a, rc, "fail")
    record(b, rc, "pass")
    services.case_delete(case=c, actor=admin_user)

    def keys(**filters):
        return sorted(row["case"].key for row in selectors.case_list(filters=CaseFilters(**filters)).rows)

    assert keys() == ["CART-1", "LOGIN-1"]
    assert keys(include_deleted=True) == ["CART-1", "CART-2", "LOGIN-1"]
    assert keys(owner="bob") == ["CART-1"]
    assert keys(category="auth") == ["LOGIN-1"]
    assert keys(search="sso") == ["LOGIN-1"]
    assert keys(search="task-77") == ["CART-1"]
    assert keys(search=".*") == []  # regex characters are literal
    assert keys(release_candidate=rc, status="fail") == ["LOGIN-1"]
    assert keys(release_candidate=rc, status="not_run") == []
    rows = selectors.case_list(filters=CaseFilters(release_candidate=rc)).rows
    assert {row["case"].key: row["run"].status for row in rows} == {"CART-1": "pass", "LOGIN-1": "fail"}
    with pytest.raises(ValidationFailed):
        selectors.case_list(filters=CaseFilters(status="fail"))
    with pytest.raises(ValidationFailed) as caught:
        selectors.case_list(cursor="bm90LWpzb24")
    assert caught.value.code == "invalid_cursor"
    assert selectors.case_list(limit=10_000).limit == 200


def test_it_lists_a_case_history_newest_rc_first(make_case, make_rc, record):
    case = make_case()
    rc1, rc2 = make_rc(), make_rc()
    now = timezone.now()
    record(case, rc1, "fail", executed_at=now - timedelta(hours=3))
    record(case, rc2, "fail", executed_at=now - timedelta(hours=2))
    record(case, rc2, "pass", executed_at=now - timedelta(hours=1))
    history = selectors.case_history(case=case)
    assert [(run.release_candidate.name, run.status, run.is_latest) for run in history] == [
        (rc2.name, "pass", True),
        (rc2.name, "fail", False),
        (rc1.name, "fail", True),
    ]


def test_it_raises_not_found_for_bad_ids(db):
    for call in (
        lambda: selectors.case_get(case_id="nope"),
        lambda: selectors.suite_get(suite_id="0" * 24),
        lambda: selectors.release_candidate_by_name_or_id(value="missing"),
        lambda: selectors.run_get(run_id="x"),
    ):
        with pytest.raises(NotFound):
            call()


def test_key_pages_read_in_windows_equal_one_ordered_query(suite, reviewer):
    import random

    from releases.models import TestCase

    other = services.suite_create(name="Other", product="Web Shop", actor=reviewer)
    rng = random.Random(7)
    alphabet = ["A", "B", "K", "Z", "a", "z", "0", "9", "-", "~", "é", "ü", "\U0001f600"]
    keys = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(25)}
    rows = [TestCase(suite=s, key=key, title=key, category="c", owner="o") for key in keys for s in (suite, other)]
    TestCase.objects.bulk_create(rows[: len(rows) // 2])
    selectors.key_floor()  # cached now; the cases added next include keys below it
    TestCase.objects.bulk_create(
        [*rows[len(rows) // 2 :], TestCase(suite=suite, key="!", title="x", category="c", owner="o")]
    )
    expected = [(case.key, case.pk) for case in TestCase.objects.all()]
    expected.sort(key=lambda item: (item[0].encode(), item[1].binary))
    for limit in (4, 50):
        seen, cursor = [], None
        while True:
            page = selectors.case_list(limit=limit, cursor=cursor)
            seen.extend((row["case"].key, row["case"].pk) for row in page.rows)
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected, limit
    filtered = selectors.case_list(filters=CaseFilters(suite=other), limit=200).rows
    assert [row["case"].key for row in filtered] == sorted(keys, key=str.encode)
