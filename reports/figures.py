"""Every number of a report, computed from the data before any AI runs.

`figures_compute` composes the release metrics selectors (releases/selectors.py: quality summary, pass-rate trend,
RC-to-RC delta, flaky cases, release gate) into one JSON-safe `headline` dict stored on the report, and streams the
appendix (every case of the scope with its latest status for the RC) from two indexed queries with projections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection

from releases import selectors as release_selectors
from releases.models import ReleaseCandidate, TestSuite
from reports.content import CaseRow

TREND_LIMIT = 10
FLAKY_WINDOW = 5
_CASE_KEYS = ("key", "title", "suite", "owner", "category", "priority")


@dataclass
class Figures:
    headline: dict[str, Any]
    cases: list[CaseRow]


def _case_item(item: dict[str, Any]) -> dict[str, Any]:
    row = {key: item.get(key, "") for key in _CASE_KEYS}
    statuses = item.get("statuses") or {}
    row["status"] = statuses.get("current") or ""
    row["previous_status"] = statuses.get("baseline") or ""
    return row


def _flaky_item(item: dict[str, Any]) -> dict[str, Any]:
    row = {key: item.get(key, "") for key in _CASE_KEYS}
    row["flips"] = item.get("flips", 0)
    row["score"] = item.get("score", 0)
    row["history"] = " → ".join(
        f"{step.get('release_candidate')}: {step.get('status') or 'no run'}" for step in item.get("history", [])
    )
    return row


def _trend(*, release_candidate: ReleaseCandidate, suite: TestSuite | None) -> list[dict[str, Any]]:
    """Pass rate of the RCs up to and including this one (the newest TREND_LIMIT of them), oldest first."""
    points = release_selectors.pass_rate_trend(suite=suite, limit=100)
    points = [point for point in points if point["sequence"] <= release_candidate.sequence][-TREND_LIMIT:]
    return [{"name": p["release_candidate"], "pass_rate": p["pass_rate"], "total": p["total"]} for p in points]


def open_mantis_ids(*, release_candidate: ReleaseCandidate, suite: TestSuite | None = None) -> list[int]:
    """Mantis ids linked to the latest failing runs of the RC (the issues still open for this RC), ascending."""
    match: dict[str, Any] = {"release_candidate_id": release_candidate.pk, "is_latest": True, "status": "fail"}
    if suite is not None:
        match["suite_id"] = suite.pk
    ids: set[int] = set()
    for run in connection.database["testRuns"].find(match, {"_id": 0, "mantis_ids": 1}):
        ids.update(int(value) for value in run.get("mantis_ids") or ())
    return sorted(ids)


def appendix_rows(*, release_candidate: ReleaseCandidate, suite: TestSuite | None = None) -> list[CaseRow]:
    """Every active case of the scope with its latest status for the RC ("" = no run), by suite name and key.

    Two projected queries (latest runs of the RC, then the cases), streamed in batches: 10k cases cost two index
    scans and ~3 MB, not 10k ORM objects."""
    database = connection.database
    run_match: dict[str, Any] = {"release_candidate_id": release_candidate.pk, "is_latest": True}
    case_match: dict[str, Any] = {"is_deleted": False}
    if suite is not None:
        run_match["suite_id"] = suite.pk
        case_match["suite_id"] = suite.pk
    latest = {
        run["case_id"]: (run["status"], tuple(int(value) for value in run.get("mantis_ids") or ()))
        for run in database["testRuns"].find(run_match, {"_id": 0, "case_id": 1, "status": 1, "mantis_ids": 1})
    }
    suite_names = {
        row["_id"]: row.get("name", "")
        for row in database["testSuites"].find({"_id": suite.pk} if suite is not None else {}, {"name": 1})
    }
    projection = {"suite_id": 1, "key": 1, "title": 1, "category": 1, "owner": 1, "priority": 1}
    rows = []
    for case in database["testCases"].find(case_match, projection).batch_size(2000):
        status, mantis = latest.get(case["_id"], ("", ()))
        rows.append(
            CaseRow(
                suite=suite_names.get(case.get("suite_id"), ""),
                key=case.get("key", ""),
                title=case.get("title", ""),
                category=case.get("category", ""),
                owner=case.get("owner", ""),
                priority=int(case.get("priority") or 3),
                status=status,
                mantis_ids=mantis,
            )
        )
    rows.sort(key=lambda row: (row.suite, row.key))
    return rows


def figures_compute(
    *, release_candidate: ReleaseCandidate, suite: TestSuite | None = None, baseline: ReleaseCandidate | None = None
) -> Figures:
    """All figures of a report for an RC and a suite (None = all suites), compared with `baseline` (None = the
    previous RC). The headline is JSON-safe and stored on the report; `cases` feeds the appendix."""
    quality = release_selectors.quality_summary(release_candidate=release_candidate, suite=suite)
    delta = release_selectors.rc_delta(release_candidate=release_candidate, baseline=baseline, suite=suite)
    flaky = release_selectors.flaky_cases(release_candidate=release_candidate, window=FLAKY_WINDOW, suite=suite)
    gate = release_selectors.release_gate(release_candidate=release_candidate, suite=suite)
    delta_lists = ("new_failures", "fixed", "still_failing", "newly_not_run")
    headline = {
        "release_candidate": release_candidate.name,
        "suite": suite.name if suite is not None else None,
        "totals": quality["totals"],
        "by_category": quality["by_category"],
        "by_owner": quality["by_owner"],
        "by_suite": [{key: value for key, value in row.items() if key != "id"} for row in quality["by_suite"]],
        "trend": _trend(release_candidate=release_candidate, suite=suite),
        "delta": {
            "baseline": (delta.get("baseline") or {}).get("name") or "",
            **{name: [_case_item(item) for item in delta[name]] for name in delta_lists},
            "counts": {name: len(delta[name]) for name in delta_lists},
        },
        "flaky": [_flaky_item(item) for item in flaky],
        "gate": {
            "verdict": gate["verdict"],
            "reasons": list(gate["reasons"]),
            "thresholds": gate.get("thresholds", {}),
        },
        "mantis_open": open_mantis_ids(release_candidate=release_candidate, suite=suite),
    }
    return Figures(headline=headline, cases=appendix_rows(release_candidate=release_candidate, suite=suite))
