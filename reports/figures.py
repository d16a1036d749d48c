"""Every number of a report, computed from the data before any AI runs.

`figures_compute` composes the release metrics selectors (releases/selectors.py: quality summary, pass-rate trend,
RC-to-RC delta, flaky cases, release gate, open Mantis ids) into one JSON-safe `headline` dict stored on the report;
the appendix (every case of the scope with its latest status for the RC) comes from
`case_statuses_for_release_candidate`. Release data is read only through those selectors, never from the
collections directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    """Pass rate of the product's RCs up to and including this one (the newest TREND_LIMIT of them), oldest
    first."""
    points = release_selectors.pass_rate_trend(product=release_candidate.product, suite=suite, limit=100)
    points = [point for point in points if point["sequence"] <= release_candidate.sequence][-TREND_LIMIT:]
    return [{"name": p["release_candidate"], "pass_rate": p["pass_rate"], "total": p["total"]} for p in points]


def appendix_rows(*, release_candidate: ReleaseCandidate, suite: TestSuite | None = None) -> list[CaseRow]:
    """Every active case of the scope with its latest status for the RC ("" = no run), by suite name and key."""
    return [
        CaseRow(
            suite=row["suite"],
            key=row["key"],
            title=row["title"],
            category=row["category"],
            owner=row["owner"],
            priority=row["priority"],
            status=row["status"],
            mantis_ids=row["mantis_ids"],
        )
        for row in release_selectors.case_statuses_for_release_candidate(
            release_candidate=release_candidate, suite=suite
        )
    ]


def figures_compute(
    *, release_candidate: ReleaseCandidate, suite: TestSuite | None = None, baseline: ReleaseCandidate | None = None
) -> Figures:
    """All figures of a report for an RC and a suite (None = all suites of the RC's product), compared with
    `baseline` (None = the product's previous RC). The headline is JSON-safe and stored on the report; `cases`
    feeds the appendix: every live case of the same scope, so its row count is the headline's "in_scope"."""
    quality = release_selectors.quality_summary(release_candidate=release_candidate, suite=suite)
    delta = release_selectors.rc_delta(release_candidate=release_candidate, baseline=baseline, suite=suite)
    flaky = release_selectors.flaky_cases(release_candidate=release_candidate, window=FLAKY_WINDOW, suite=suite)
    gate = release_selectors.release_gate(release_candidate=release_candidate, suite=suite)
    delta_lists = ("new_failures", "fixed", "still_failing", "newly_not_run")
    headline = {
        "release_candidate": release_candidate.name,
        "product": release_candidate.product,
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
            "coverage": gate.get("coverage"),
            "new_p1_failures": list(gate.get("new_p1_failures", [])),
            "not_run_p1": list(gate.get("not_run_p1", [])),
        },
        "mantis_open": release_selectors.open_mantis_ids(release_candidate=release_candidate, suite=suite),
    }
    return Figures(headline=headline, cases=appendix_rows(release_candidate=release_candidate, suite=suite))
