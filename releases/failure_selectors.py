"""Reads of failure signatures (releases/signatures.py): an RC's failing runs grouped by signature, which groups
are new against the baseline RC, and the known issues (Mantis links) of the signatures.

Only the RC's failing latest runs are read (index `(releaseCandidate, status)`), so the cost is what the
failures cost, not all runs.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from bson import ObjectId
from django.db import connection

from releases.models import KnownIssue, ReleaseCandidate, RunStatus, TestSuite
from releases.store import RUNS, id_slices

CASES_SHOWN_PER_SIGNATURE = 20


def _failing(release_candidate: ReleaseCandidate, suite: TestSuite | None) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"release_candidate_id": release_candidate.pk, "status": RunStatus.FAIL, "is_latest": True}
    if suite is not None:
        query["suite_id"] = suite.pk
    projection = {"_id": 0, "case_id": 1, "failure_signature": 1}
    return list(connection.database[RUNS].find(query, projection))


def signatures_of(*, release_candidate: ReleaseCandidate, suite: TestSuite | None = None) -> set[str]:
    """The distinct (non-empty) failure signatures of the RC's failing latest runs."""
    return {run.get("failure_signature") or "" for run in _failing(release_candidate, suite)} - {""}


def new_signatures(
    *, release_candidate: ReleaseCandidate, baseline: ReleaseCandidate | None, suite: TestSuite | None = None
) -> list[str]:
    """Signatures failing in the RC that no failing run of `baseline` had, sorted ([] without a baseline)."""
    if baseline is None:
        return []
    current = signatures_of(release_candidate=release_candidate, suite=suite)
    return sorted(current - signatures_of(release_candidate=baseline, suite=suite))


def _cases(case_ids: list[ObjectId]) -> dict[ObjectId, dict[str, Any]]:
    found: dict[ObjectId, dict[str, Any]] = {}
    for chunk in id_slices(case_ids):
        for document in connection.database["testCases"].find(
            {"_id": {"$in": chunk}, "is_deleted": False}, {"key": 1, "title": 1}
        ):
            found[document["_id"]] = {
                "case_id": str(document["_id"]),
                "key": document["key"],
                "title": document["title"],
            }
    return found


def failure_groups(
    *, release_candidate: ReleaseCandidate, baseline: ReleaseCandidate | None = None, suite: TestSuite | None = None
) -> dict[str, Any]:
    """The RC's failures grouped by signature, biggest group first:

    {"failures": N failing cases, "distinct": M distinct signatures (runs without a message not counted),
     "without_signature": failing runs without any message, "new_count": signatures new against `baseline`,
     "baseline": name | None, "signatures": [{"signature", "count", "new", "mantis_id" (known issue) | None,
     "cases": [{"case_id", "key", "title"}] (at most CASES_SHOWN_PER_SIGNATURE), "more": cases not listed}]}
    """
    runs = _failing(release_candidate, suite)
    groups: dict[str, list[ObjectId]] = defaultdict(list)
    for run in runs:
        groups[run.get("failure_signature") or ""].append(run["case_id"])
    without = len(groups.pop("", []))
    baseline_signatures = signatures_of(release_candidate=baseline, suite=suite) if baseline is not None else None
    known = {
        issue.signature: issue.mantis_id
        for issue in KnownIssue.objects.filter(product=release_candidate.product, signature__in=list(groups))
    }
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    shown = [case_id for _, case_ids in ordered for case_id in case_ids[:CASES_SHOWN_PER_SIGNATURE]]
    cases = _cases(shown)
    signatures = []
    for signature, case_ids in ordered:
        listed = [cases[case_id] for case_id in case_ids[:CASES_SHOWN_PER_SIGNATURE] if case_id in cases]
        signatures.append(
            {
                "signature": signature,
                "count": len(case_ids),
                "new": baseline_signatures is not None and signature not in baseline_signatures,
                "mantis_id": known.get(signature),
                "cases": listed,
                "more": max(len(case_ids) - CASES_SHOWN_PER_SIGNATURE, 0),
            }
        )
    return {
        "failures": len(runs),
        "distinct": len(signatures),
        "without_signature": without,
        "new_count": sum(1 for item in signatures if item["new"]),
        "baseline": baseline.name if baseline is not None else None,
        "signatures": signatures,
    }


def known_issue_for(*, product: str, signature: str) -> KnownIssue | None:
    """The Mantis link of a product's signature, if any."""
    if not signature:
        return None
    return KnownIssue.objects.filter(product=product, signature=signature).first()


def known_issues_attach(*, runs: list, product: str) -> None:
    """Set `known_issue_mantis_id` on each run whose failure signature is linked to a Mantis issue (case page)."""
    signatures = {run.failure_signature for run in runs if getattr(run, "failure_signature", "")}
    known = {}
    if signatures:
        known = {
            issue.signature: issue.mantis_id
            for issue in KnownIssue.objects.filter(product=product, signature__in=list(signatures))
        }
    for run in runs:
        run.known_issue_mantis_id = known.get(getattr(run, "failure_signature", ""))
