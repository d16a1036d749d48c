"""Report content built in memory, for renderer tests and benchmarks (no database)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from reports.content import CaseRow, ReportContent

HOSTILE_TITLE = "<b>Bold</b> & <script>alert(1)</script> Ünïcödé Ωμέγα Привет"
HOSTILE_OWNER = "Zoë <i>O'Brien</i>"


def sample_cases(count: int, *, suites: int = 2) -> list[CaseRow]:
    statuses = ("pass", "pass", "pass", "fail", "pending", "pass", "pass", "pass", "pass", "pass")
    rows = []
    for index in range(count):
        status = statuses[index % len(statuses)]
        rows.append(
            CaseRow(
                suite=f"Suite {index % suites}",
                key=f"CASE-{index:05d}",
                title=HOSTILE_TITLE if index == 3 else f"Checks behaviour number {index} of the checkout flow",
                category=("Payments", "Login", "Search", "Ünïcödé")[index % 4],
                owner=HOSTILE_OWNER if index % 7 == 0 else f"owner{index % 5}",
                priority=1 + index % 4,
                status=status,
                mantis_ids=(1000 + index,) if status == "fail" else (),
            )
        )
    return rows


def sample_figures(cases: list[CaseRow]) -> dict:
    def breakdown(attribute: str) -> list[dict]:
        groups: dict[str, dict] = {}
        for row in cases:
            group = groups.setdefault(
                getattr(row, attribute), {"name": getattr(row, attribute), "pass": 0, "fail": 0, "pending": 0}
            )
            group[row.status] += 1
        for group in groups.values():
            group["total"] = group["pass"] + group["fail"] + group["pending"]
            group["pass_rate"] = round(100 * group["pass"] / group["total"], 1)
            group.update(in_scope=group["total"], executed=group["total"], not_run=0, coverage=100.0)
        return sorted(groups.values(), key=lambda group: group["name"])

    totals = {status: sum(1 for row in cases if row.status == status) for status in ("pass", "fail", "pending")}
    totals["total"] = len(cases)
    totals["pass_rate"] = round(100 * totals["pass"] / len(cases), 1) if cases else None
    # Every sample case has a run: all in scope are executed.
    totals.update(in_scope=len(cases), executed=len(cases), not_run=0, coverage=100.0 if cases else None)
    failing = [row._asdict() for row in cases if row.status == "fail"]
    return {
        "totals": totals,
        "by_category": breakdown("category"),
        "by_owner": breakdown("owner"),
        "by_suite": breakdown("suite"),
        "trend": [
            {"name": "RC-1", "pass_rate": 61.5},
            {"name": "RC-2", "pass_rate": 66.0},
            {"name": "RC-3", "pass_rate": 70.0},
        ],
        "delta": {
            "baseline": "RC-2",
            "new_failures": [dict(failing[0], previous_status="pass")] if failing else [],
            "fixed": [
                {
                    "key": "CASE-FIXED",
                    "title": "Fixed case",
                    "suite": "Suite 0",
                    "owner": "x",
                    "status": "pass",
                    "previous_status": "fail",
                }
            ],
            "still_failing": [dict(row, previous_status="fail") for row in failing[1:3]],
            "newly_not_run": [],
        },
        "flaky": [{"key": "CASE-FLAKY", "title": "Flaky & <odd>", "suite": "Suite 1", "history": "pass, fail, pass"}],
        "gate": {"verdict": "NO-GO", "reasons": ["Pass rate 70.0 % is below 95 %", "3 P1 cases fail"]},
        "mantis_open": sorted({mid for row in cases for mid in row.mantis_ids})[:50],
    }


def sample_content(count: int = 40, *, source: str = "ai") -> ReportContent:
    cases = sample_cases(count)
    return ReportContent(
        release_candidate="RC-3 <beta>",
        scope="All suites",
        baseline="RC-2",
        generated_at=dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC),
        generated_by="reviewer@example.com",
        figures=sample_figures(cases),
        narrative={
            "summary": "The RC is not ready: the pass rate is 70.0 %.",
            "risks": ["Payments failures cluster in one owner."],
            "recommendation": "Hold the release until the new failures are fixed.",
        },
        summary_source=source,
        summary_note="" if source == "ai" else "AI quota exceeded",
        ai_model="offline-model-1" if source == "ai" else "",
        ai_cost=Decimal("0.0123") if source == "ai" else Decimal("0"),
        cases=cases,
    )


def seed_large_suite(count: int) -> str:
    """A suite with `count` cases and their runs in two RCs, written with pymongo (then the metric summaries are
    rebuilt by the releases service); returns the newer RC's name. For benchmarks and the worker-kill test."""
    from bson import ObjectId
    from django.db import connection

    from releases.services import summaries_rebuild

    database = connection.database
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    suite_id, rc1, rc2 = ObjectId(), ObjectId(), ObjectId()
    database["testSuites"].insert_one(
        {
            "_id": suite_id,
            "name": "Bench <suite> Ünïcödé",
            "product": "Bench",
            "description": "",
            "created_by_id": None,
            "created_at": now,
            "updated_at": now,
        }
    )
    database["releaseCandidates"].insert_many(
        [
            {"_id": rc1, "name": "BENCH-RC-1", "sequence": 900_001, "state": "released", "created_at": now},
            {"_id": rc2, "name": "BENCH-RC-2", "sequence": 900_002, "state": "testing", "created_at": now},
        ]
    )
    cases, runs = [], []

    def status_of(index: int, rc_index: int) -> str:
        # ~3 % fail, ~2 % pending; between the two RCs one case in 40 changes (a realistic RC-to-RC delta).
        index += 7 if rc_index == 0 and index % 40 == 0 else 0
        return "fail" if index % 33 == 0 else "pending" if index % 50 == 1 else "pass"

    for index in range(count):
        case_id = ObjectId()
        owner, category = f"owner{index % 40}", f"category{index % 25}"
        cases.append(
            {
                "_id": case_id,
                "suite_id": suite_id,
                "key": f"BENCH-{index:05d}",
                "title": f"Checks the behaviour number {index} of the <checkout> flow, Ünïcödé",
                "category": category,
                "task": "",
                "owner": owner,
                "priority": 1 + index % 4,
                "tags": [],
                "is_deleted": False,
                "deleted_at": None,
                "created_by_id": None,
                "created_at": now,
                "updated_at": now,
            }
        )
        for rc_index, rc in enumerate((rc1, rc2)):
            status = status_of(index, rc_index)
            runs.append(
                {
                    "case_id": case_id,
                    "release_candidate_id": rc,
                    "status": status,
                    "mantis_ids": [10_000 + index] if status == "fail" else [],
                    "notes": "",
                    "executed_at": now,
                    "executed_by_id": None,
                    "suite_id": suite_id,
                    "owner": owner,
                    "category": category,
                    "case_key": cases[-1]["key"],
                    "is_latest": True,
                    "created_at": now,
                }
            )
    database["testCases"].insert_many(cases)
    database["testRuns"].insert_many(runs)
    summaries_rebuild(release_candidate_ids=[rc1, rc2])
    return "BENCH-RC-2"
