"""Reads of the releases app. Metric figures come from the summary documents (`qualitySummaries`), never from a
scan of all runs; per-case comparisons (deltas, flakiness) read only the latest runs of the RCs involved.

Rates are percentages rounded to one decimal, or None when nothing was run. Ids in returned dicts are 24-hex
strings.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from bson import ObjectId
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from releases import store
from releases.models import (
    Priority,
    ReleaseCandidate,
    RunStatus,
    SummaryDimension,
    TestCase,
    TestRun,
    TestSuite,
)
from report_platform.errors import NotFound, ValidationFailed

SUMMARIES = store.SUMMARIES
CASE_COUNTS = store.CASE_COUNTS
RUNS = store.RUNS
IDS_PER_QUERY = store.IDS_PER_QUERY
id_slices = store.id_slices
STATUS_FILTERS = (*RunStatus.values, "not_run")


def pass_rate(passed: int, total: int) -> float | None:
    """Pass rate in percent (one decimal) of the executed latest runs, None when there are none."""
    return round(100.0 * passed / total, 1) if total else None


def _counts(passed: int, failed: int, pending: int) -> dict[str, Any]:
    total = passed + failed + pending
    return {"pass": passed, "fail": failed, "pending": pending, "total": total, "pass_rate": pass_rate(passed, total)}


def _coverage_counts(passed: int, failed: int, pending: int, in_scope: int) -> dict[str, Any]:
    """`_counts` plus coverage: "in_scope" (live cases), "executed" (cases with a latest run: pass + fail +
    pending, the pass rate's base), "not_run" (in scope without a run) and "coverage" (executed / in scope, percent
    with one decimal, None when nothing is in scope). A run keeps the owner and category its case had when it was
    recorded, so a per-owner row may count more executed than in scope: "not_run" never goes below 0 nor
    "coverage" above 100."""
    counts = _counts(passed, failed, pending)
    executed = min(counts["total"], in_scope)
    return {
        **counts,
        "in_scope": in_scope,
        "executed": counts["total"],
        "not_run": in_scope - executed,
        "coverage": round(100.0 * executed / in_scope, 1) if in_scope else None,
    }


def object_id_or_404(value: Any, *, what: str = "object") -> ObjectId:
    """Parse a 24-hex id; anything else is a `NotFound` (never a 500)."""
    if isinstance(value, ObjectId):
        return value
    if not isinstance(value, str) or not ObjectId.is_valid(value):
        raise NotFound(f"No such {what}.")
    return ObjectId(value)


# --- simple lookups ----------------------------------------------------------------------------------------------


def suite_get(*, suite_id: Any) -> TestSuite:
    """The suite with this id, or `NotFound`."""
    suite = TestSuite.objects.filter(pk=object_id_or_404(suite_id, what="suite")).first()
    if suite is None:
        raise NotFound("No such suite.")
    return suite


def case_get(*, case_id: Any, include_deleted: bool = False) -> TestCase:
    """The case with this id (soft-deleted ones only with `include_deleted`), or `NotFound`. Its suite is loaded
    (a "(missing suite)" stand-in when an older version left the case without one)."""
    queryset = TestCase.objects.filter(pk=object_id_or_404(case_id, what="case"))
    if not include_deleted:
        queryset = queryset.filter(is_deleted=False)
    case = queryset.first()
    if case is None:
        raise NotFound("No such case.")
    suites_attach(cases=[case])
    return case


def release_candidate_find(*, release_candidate_id: Any) -> ReleaseCandidate | None:
    """The RC with this id, or None for an unknown or malformed id (a filter that names no RC)."""
    if not ObjectId.is_valid(str(release_candidate_id)):
        return None
    return ReleaseCandidate.objects.filter(pk=ObjectId(str(release_candidate_id))).first()


def release_candidate_get(*, release_candidate_id: Any) -> ReleaseCandidate:
    """The RC with this id, or `NotFound`."""
    rc = ReleaseCandidate.objects.filter(pk=object_id_or_404(release_candidate_id, what="RC")).first()
    if rc is None:
        raise NotFound("No such RC.")
    return rc


def release_candidate_by_name_or_id(*, value: str) -> ReleaseCandidate:
    """An RC given by 24-hex id or by name (API and URL filters accept both), or `NotFound`."""
    if ObjectId.is_valid(value):
        rc = ReleaseCandidate.objects.filter(pk=ObjectId(value)).first()
        if rc is not None:
            return rc
    rc = ReleaseCandidate.objects.filter(name=value).first()
    if rc is None:
        raise NotFound("No such RC.", code="unknown_release_candidate")
    return rc


def run_get(*, run_id: Any) -> TestRun:
    """The run with this id (case and RC loaded), or `NotFound`."""
    run = (
        TestRun.objects.select_related("case", "release_candidate")
        .filter(pk=object_id_or_404(run_id, what="run"))
        .first()
    )
    if run is None:
        raise NotFound("No such run.")
    return run


def suite_list(*, product: str | None = None) -> list[dict[str, Any]]:
    """Every suite (of `product`, when given) with its number of live cases (the case counts, no scan of the
    cases): [{"suite": TestSuite, "case_count": int}] by product, name."""
    suites = list(TestSuite.objects.filter(product=product) if product is not None else TestSuite.objects.all())
    counts = _case_counts(suite_ids=[suite.pk for suite in suites], dimensions=[SummaryDimension.ALL])
    return [{"suite": suite, "case_count": counts.get((SummaryDimension.ALL, str(suite.pk)), 0)} for suite in suites]


# --- products: every page, the API and the reports work within one ------------------------------------------------


def products_list() -> list[str]:
    """The products that have suites, sorted: the choices of the product chooser and of a new RC."""
    return sorted(value for value in connection.database["testSuites"].distinct("product") if value)


def product_suite_ids(*, product: str) -> list[ObjectId]:
    """Ids of the product's suites (one indexed query; suites are few)."""
    return [document["_id"] for document in connection.database["testSuites"].find({"product": product}, {"_id": 1})]


def scope_suite_ids(*, release_candidate: ReleaseCandidate, suite: TestSuite | None = None) -> list[ObjectId] | None:
    """The suites an RC's figures cover: `suite` alone when given, else every suite of the RC's product (None =
    every suite, only for an RC that has no product yet)."""
    if suite is not None:
        return [suite.pk]
    if release_candidate.product:
        return product_suite_ids(product=release_candidate.product)
    return None


def product_default() -> str:
    """The product to show when none was chosen: the product of the newest RC in testing (else of the newest RC;
    "" when that RC has no product yet), else the first product with suites, else ""."""
    current = release_candidate_current()
    if current is not None:
        return current.product
    products = products_list()
    return products[0] if products else ""


def release_candidate_list(*, product: str | None = None) -> list[ReleaseCandidate]:
    """The RCs (of `product`, when given) in release order (ascending `sequence`)."""
    queryset = ReleaseCandidate.objects.order_by("sequence")
    return list(queryset.filter(product=product) if product is not None else queryset)


def release_candidate_ids(*, product: str) -> list[ObjectId]:
    """Ids of the product's RCs (one indexed query; RCs are few next to runs)."""
    return [
        document["_id"]
        for document in connection.database[store.RELEASE_CANDIDATES].find({"product": product}, {"_id": 1})
    ]


def release_candidate_previous(*, release_candidate: ReleaseCandidate) -> ReleaseCandidate | None:
    """The RC of the same product just before this one in sequence order, or None for the product's first RC."""
    return (
        ReleaseCandidate.objects.filter(product=release_candidate.product, sequence__lt=release_candidate.sequence)
        .order_by("-sequence")
        .first()
    )


def release_candidate_current(*, product: str | None = None) -> ReleaseCandidate | None:
    """The RC a page opens on: the product's newest RC in testing, else its newest RC (`product` None: among all
    RCs)."""
    queryset = ReleaseCandidate.objects.all() if product is None else ReleaseCandidate.objects.filter(product=product)
    return (
        queryset.filter(state=ReleaseCandidate.State.TESTING).order_by("-sequence").first()
        or queryset.order_by("-sequence").first()
    )


def distinct_values(*, product: str | None = None) -> dict[str, list[str]]:
    """Owners and categories that have runs (in RCs of `product`, when given), for filter suggestions. Read from the
    summary documents (small), not from the cases, so it costs the same at any number of cases."""
    store.summaries_settle()
    collection = connection.database[SUMMARIES]
    scope: dict[str, Any] = {}
    if product is not None:
        scope = {"release_candidate_id": {"$in": release_candidate_ids(product=product)}}
    return {
        "owners": sorted(value for value in collection.distinct("key", {**scope, "dimension": "owner"}) if value),
        "categories": sorted(
            value for value in collection.distinct("key", {**scope, "dimension": "category"}) if value
        ),
    }


# --- metrics from the summary documents --------------------------------------------------------------------------


def _summary_rows(*, release_candidate_ids: list[ObjectId], suite_ids: list[ObjectId] | None, dimensions: list[str]):
    store.summaries_settle()
    query: dict[str, Any] = {"release_candidate_id": {"$in": release_candidate_ids}, "dimension": {"$in": dimensions}}
    if suite_ids is not None:
        query["suite_id"] = {"$in": suite_ids}
    return connection.database[SUMMARIES].find(
        query,
        {
            "_id": 0,
            "release_candidate_id": 1,
            "suite_id": 1,
            "dimension": 1,
            "key": 1,
            "pass_count": 1,
            "fail_count": 1,
            "pending_count": 1,
        },
    )


def _case_counts(*, suite_ids: list[ObjectId] | None, dimensions: list[str]) -> dict[tuple[str, str], int]:
    """{(dimension, key): live cases} summed over the suites (None = all) from the case counts; the "all" rows are
    keyed by suite id (24-hex)."""
    store.summaries_settle()
    query: dict[str, Any] = {"dimension": {"$in": dimensions}}
    if suite_ids is not None:
        query["suite_id"] = {"$in": suite_ids}
    counts: dict[tuple[str, str], int] = {}
    for row in connection.database[CASE_COUNTS].find(query, {"_id": 0, "suite_id": 1, "dimension": 1, "key": 1,
                                                              "case_count": 1}):  # fmt: skip
        key = (row["dimension"], str(row["suite_id"]) if row["dimension"] == SummaryDimension.ALL else row["key"])
        counts[key] = counts.get(key, 0) + row.get("case_count", 0)
    return counts


def quality_summary(*, release_candidate: ReleaseCandidate, suite: TestSuite | None = None) -> dict[str, Any]:
    """Counts of the latest run statuses of an RC (optionally one suite) and its coverage, from the summary
    documents and the case counts (never a scan of runs or cases). The scope is the RC's product: its suites' live
    cases (`scope_suite_ids`).

    Returns {"release_candidate": {"id", "name", "state", "sequence", "product"}, "suite": {"id","name"} | None,
    "totals": {"pass", "fail", "pending", "total", "pass_rate", "in_scope", "executed", "not_run", "coverage"},
    "by_owner": [{"name", ...same counts...}, ...] (by name), "by_category": [...same...],
    "by_suite": [{"name", "id", ...same counts...}]}. Rows with nothing run and nothing in scope are left out.
    """
    scope = scope_suite_ids(release_candidate=release_candidate, suite=suite)
    in_scope = _case_counts(suite_ids=scope, dimensions=list(SummaryDimension.values))
    sums: dict[tuple[str, str], list[int]] = {key: [0, 0, 0] for key in in_scope}
    for row in _summary_rows(
        release_candidate_ids=[release_candidate.pk], suite_ids=scope, dimensions=list(SummaryDimension.values)
    ):
        key = (row["dimension"], str(row["suite_id"]) if row["dimension"] == SummaryDimension.ALL else row["key"])
        bucket = sums.setdefault(key, [0, 0, 0])
        bucket[0] += row.get("pass_count", 0)
        bucket[1] += row.get("fail_count", 0)
        bucket[2] += row.get("pending_count", 0)
    suites = {}
    suite_ids = [ObjectId(key) for (dimension, key) in sums if dimension == SummaryDimension.ALL]
    if suite_ids:
        suites = {str(s.pk): s.name for s in TestSuite.objects.filter(pk__in=suite_ids).only("name")}
    result: dict[str, Any] = {
        "release_candidate": {
            "id": str(release_candidate.pk),
            "name": release_candidate.name,
            "state": str(release_candidate.state),
            "sequence": release_candidate.sequence,
            "product": release_candidate.product,
        },
        "suite": {"id": str(suite.pk), "name": suite.name} if suite is not None else None,
        "by_owner": [],
        "by_category": [],
        "by_suite": [],
    }
    totals = [0, 0, 0, 0]
    for (dimension, key), (passed, failed, pending) in sorted(sums.items()):
        scoped = in_scope.get((dimension, key), 0)
        if passed + failed + pending == 0 and scoped == 0:
            continue
        row = {"name": key, **_coverage_counts(passed, failed, pending, scoped)}
        if dimension == SummaryDimension.ALL:
            totals = [totals[0] + passed, totals[1] + failed, totals[2] + pending, totals[3] + scoped]
            result["by_suite"].append({**row, "id": key, "name": suites.get(key, key)})
        elif dimension == SummaryDimension.OWNER:
            result["by_owner"].append(row)
        else:
            result["by_category"].append(row)
    result["by_suite"].sort(key=lambda row: row["name"])
    result["totals"] = _coverage_counts(*totals)
    return result


def pass_rate_trend(
    *, product: str | None = None, suite: TestSuite | None = None, limit: int = 10
) -> list[dict[str, Any]]:
    """Pass rate and coverage per RC for the newest `limit` RCs of one product (the suite's when a suite is given;
    None and no suite: every RC), oldest first, counting that product's suites only:
    [{"release_candidate": name, "id", "sequence", "pass", "fail", "pending", "total", "pass_rate", "in_scope",
    "executed", "not_run", "coverage"}]. Coverage is measured against the cases in scope today, as on the
    dashboard, so every point shares one denominator."""
    limit = max(1, min(int(limit), 100))
    if suite is not None:
        product = suite.product
    queryset = ReleaseCandidate.objects.all() if product is None else ReleaseCandidate.objects.filter(product=product)
    rcs = list(queryset.order_by("-sequence")[:limit])[::-1]
    sums = {rc.pk: [0, 0, 0] for rc in rcs}
    if suite is not None:
        suite_ids: list[ObjectId] | None = [suite.pk]
    else:
        suite_ids = product_suite_ids(product=product) if product else None
    for row in _summary_rows(
        release_candidate_ids=[rc.pk for rc in rcs], suite_ids=suite_ids, dimensions=[SummaryDimension.ALL]
    ):
        bucket = sums[row["release_candidate_id"]]
        bucket[0] += row.get("pass_count", 0)
        bucket[1] += row.get("fail_count", 0)
        bucket[2] += row.get("pending_count", 0)
    in_scope = sum(_case_counts(suite_ids=suite_ids, dimensions=[SummaryDimension.ALL]).values())
    return [
        {
            "release_candidate": rc.name,
            "id": str(rc.pk),
            "sequence": rc.sequence,
            **_coverage_counts(*sums[rc.pk], in_scope),
        }
        for rc in rcs
    ]


# --- per-case comparisons ----------------------------------------------------------------------------------------


def _latest_statuses(
    *, release_candidate_ids: list[ObjectId], suite_ids: list[ObjectId] | None
) -> dict[ObjectId, dict]:
    """{case_id: {rc_id: status}} from the latest runs of the given RCs (in these suites; None = all)."""
    query: dict[str, Any] = {"release_candidate_id": {"$in": release_candidate_ids}, "is_latest": True}
    if suite_ids is not None:
        query["suite_id"] = {"$in": suite_ids}
    statuses: dict[ObjectId, dict] = {}
    for run in connection.database[RUNS].find(query, {"_id": 0, "case_id": 1, "release_candidate_id": 1, "status": 1}):
        statuses.setdefault(run["case_id"], {})[run["release_candidate_id"]] = run["status"]
    return statuses


def _flaky_latest_runs(*, release_candidate_ids: list[ObjectId], suite_ids: list[ObjectId] | None) -> dict:
    """{case_id: how many of the given RCs' latest runs of the case passed on rerun (`flaky`)}."""
    query: dict[str, Any] = {"release_candidate_id": {"$in": release_candidate_ids}, "is_latest": True, "flaky": True}
    if suite_ids is not None:
        query["suite_id"] = {"$in": suite_ids}
    counts: dict[ObjectId, int] = {}
    for run in connection.database[RUNS].find(query, {"_id": 0, "case_id": 1}):
        counts[run["case_id"]] = counts.get(run["case_id"], 0) + 1
    return counts


def _case_items(case_ids: list[ObjectId]) -> dict[ObjectId, dict[str, Any]]:
    """Display fields of active cases by id (flat indexed queries, suites joined in Python)."""
    documents = []
    fields = {"key": 1, "title": 1, "suite_id": 1, "owner": 1, "category": 1, "priority": 1}
    for chunk in id_slices(case_ids):
        documents.extend(connection.database["testCases"].find({"_id": {"$in": chunk}, "is_deleted": False}, fields))
    suites = {
        suite.pk: suite.name
        for suite in TestSuite.objects.filter(pk__in={document["suite_id"] for document in documents}).only("name")
    }
    return {
        document["_id"]: {
            "case_id": str(document["_id"]),
            "key": document["key"],
            "title": document["title"],
            "suite": suites.get(document["suite_id"], ""),
            "suite_id": str(document["suite_id"]),
            "owner": document["owner"],
            "category": document["category"],
            "priority": document["priority"],
        }
        for document in documents
    }


def rc_delta(
    *, release_candidate: ReleaseCandidate, baseline: ReleaseCandidate | None = None, suite: TestSuite | None = None
) -> dict[str, Any]:
    """Compare the latest statuses of `release_candidate` with `baseline` (default: the previous RC).

    Returns {"release_candidate": {"id","name"}, "baseline": {"id","name"} | None,
    "new_failures": [...], "fixed": [...], "still_failing": [...], "newly_not_run": [...],
    "counts": {list name: int}}. Each item: {"case_id", "key", "title", "suite", "suite_id", "owner", "category",
    "priority", "statuses": {"baseline": status | None, "current": status | None}}, sorted by priority then key.
    new failures: fail now, not failing in the baseline (passed, pending or not run); fixed: fail -> pass;
    still failing: fail in both; newly not run: pass/fail in the baseline, pending or no run now.
    Soft-deleted cases are left out. Both RCs are of one product: a baseline of another product is refused
    (`ValidationFailed` code "baseline_other_product"); comparing an RC with itself adds a line to "warnings".
    """
    if baseline is None:
        baseline = release_candidate_previous(release_candidate=release_candidate)
    elif baseline.product != release_candidate.product:
        raise ValidationFailed(
            f"{baseline.name} is an RC of {baseline.product or 'no product'}; compare {release_candidate.name} with "
            f"an RC of {release_candidate.product or 'the same product'}.",
            code="baseline_other_product",
            fields={"baseline": [f"Choose an RC of {release_candidate.product or 'the same product'}."]},
        )
    warnings = []
    if baseline is not None and baseline.pk == release_candidate.pk:
        warnings.append(
            f"{release_candidate.name} is compared with itself: every list below is empty. Choose an earlier RC as "
            "the baseline."
        )
    result: dict[str, Any] = {
        "release_candidate": {"id": str(release_candidate.pk), "name": release_candidate.name},
        "baseline": {"id": str(baseline.pk), "name": baseline.name} if baseline is not None else None,
        "new_failures": [],
        "fixed": [],
        "still_failing": [],
        "newly_not_run": [],
    }
    rc_ids = [release_candidate.pk] + ([baseline.pk] if baseline is not None else [])
    statuses = _latest_statuses(
        release_candidate_ids=rc_ids, suite_ids=scope_suite_ids(release_candidate=release_candidate, suite=suite)
    )
    buckets: dict[str, list[tuple[ObjectId, str | None, str | None]]] = {
        name: [] for name in result if name not in ("release_candidate", "baseline")
    }
    for case_id, by_rc in statuses.items():
        current = by_rc.get(release_candidate.pk)
        before = by_rc.get(baseline.pk) if baseline is not None else None
        if current == RunStatus.FAIL:
            if before == RunStatus.FAIL:
                buckets["still_failing"].append((case_id, before, current))
            else:
                buckets["new_failures"].append((case_id, before, current))
        elif current == RunStatus.PASS and before == RunStatus.FAIL:
            buckets["fixed"].append((case_id, before, current))
        elif current in (None, RunStatus.PENDING) and before in (RunStatus.PASS, RunStatus.FAIL):
            buckets["newly_not_run"].append((case_id, before, current))
    items = _case_items([case_id for rows in buckets.values() for case_id, _, _ in rows])
    for name, rows in buckets.items():
        listed = [
            {**items[case_id], "statuses": {"baseline": before, "current": current}}
            for case_id, before, current in rows
            if case_id in items
        ]
        listed.sort(key=lambda item: (item["priority"], item["key"], item["case_id"]))
        result[name] = listed
    result["counts"] = {name: len(result[name]) for name in buckets}
    result["warnings"] = warnings
    return result


def flaky_cases(
    *, release_candidate: ReleaseCandidate, window: int = 5, suite: TestSuite | None = None, min_flips: int = 2
) -> list[dict[str, Any]]:
    """Cases whose latest status flips between pass and fail across the last `window` RCs of the product up to and
    including `release_candidate` (pending and not-run RCs are skipped).

    flips = number of pass<->fail changes between consecutive executed RCs, plus one per RC whose latest run passed
    on rerun (`flaky`, automated results); flakiness score = flips / (executed RCs - 1), at most 1 (1 = flips
    every RC). Only cases with at least `min_flips` flips, or a flaky run, are returned, highest score first:
    [{"case_id", "key", "title", "suite", "suite_id", "owner", "category", "priority", "flips", "score",
    "history": [{"release_candidate": name, "status": status | None}, ...oldest first]}].
    """
    window = max(2, min(int(window), 50))
    rcs = list(
        ReleaseCandidate.objects.filter(
            product=release_candidate.product, sequence__lte=release_candidate.sequence
        ).order_by("-sequence")[:window]
    )[::-1]
    statuses = _latest_statuses(
        release_candidate_ids=[rc.pk for rc in rcs],
        suite_ids=scope_suite_ids(release_candidate=release_candidate, suite=suite),
    )
    flaky_runs = _flaky_latest_runs(
        release_candidate_ids=[rc.pk for rc in rcs],
        suite_ids=scope_suite_ids(release_candidate=release_candidate, suite=suite),
    )
    found: list[tuple[ObjectId, int, float, list]] = []
    for case_id, by_rc in statuses.items():
        executed = [by_rc[rc.pk] for rc in rcs if by_rc.get(rc.pk) in (RunStatus.PASS, RunStatus.FAIL)]
        # A pass on rerun (an automated run marked flaky) is a fail->pass flip within its RC.
        flaky = flaky_runs.get(case_id, 0)
        flips = sum(1 for before, after in pairwise(executed) if before != after) + flaky
        if flips >= min_flips or flaky:
            history = [{"release_candidate": rc.name, "status": by_rc.get(rc.pk)} for rc in rcs]
            found.append((case_id, flips, round(min(flips / max(len(executed) - 1, 1), 1.0), 2), history))
    items = _case_items([case_id for case_id, _, _, _ in found])
    result = [
        {**items[case_id], "flips": flips, "score": score, "history": history}
        for case_id, flips, score, history in found
        if case_id in items
    ]
    result.sort(key=lambda item: (-item["score"], -item["flips"], item["priority"], item["key"]))
    return result


def new_failures_of_priority(
    *,
    release_candidate: ReleaseCandidate,
    baseline: ReleaseCandidate | None,
    priority: int,
    suite: TestSuite | None = None,
) -> list[str]:
    """Keys of active cases of `priority` failing in the RC but not in `baseline`, sorted. Reads only the RC's
    failing latest runs (index `(releaseCandidate, status)`), so it costs what the failures cost, not all runs."""
    query: dict[str, Any] = {"release_candidate_id": release_candidate.pk, "status": RunStatus.FAIL, "is_latest": True}
    scope = scope_suite_ids(release_candidate=release_candidate, suite=suite)
    if scope is not None:
        query["suite_id"] = {"$in": scope}
    failing = [run["case_id"] for run in connection.database[RUNS].find(query, {"_id": 0, "case_id": 1})]
    cases = {
        document["_id"]: document["key"]
        for ids in id_slices(failing)
        for document in connection.database["testCases"].find(
            {"_id": {"$in": ids}, "priority": priority, "is_deleted": False}, {"key": 1}
        )
    }
    if baseline is not None and cases:
        still = {
            run["case_id"]
            for ids in id_slices(list(cases))
            for run in connection.database[RUNS].find(
                {
                    "case_id": {"$in": ids},  # first: the (case, RC, is_latest) index, not all the baseline's runs
                    "release_candidate_id": baseline.pk,
                    "is_latest": True,
                    "status": RunStatus.FAIL,
                },
                {"_id": 0, "case_id": 1},
            )
        }
        cases = {pk: key for pk, key in cases.items() if pk not in still}
    return sorted(cases.values())


def cases_not_run_of_priority(
    *,
    release_candidate: ReleaseCandidate,
    priority: int,
    suite: TestSuite | None = None,
    limit: int = 20,
    scan_limit: int = 1000,
) -> list[str]:
    """Keys of live cases of `priority` in the RC's scope without a latest run in it (sorted), at most `limit`.

    Reads the scope's cases of that priority in the server's natural order (no sort: a sorted find makes the
    stand-in read every match before the first), a slice at a time, and asks the RC's latest runs of each slice
    (index (case, RC, is_latest)); it stops as soon as `limit` keys are found, or after `scan_limit` cases (the gate
    lists examples; its coverage figure comes from the counts), so its cost stays bounded whatever the size."""
    scope = scope_suite_ids(release_candidate=release_candidate, suite=suite)
    match: dict[str, Any] = {"priority": priority, "is_deleted": False}
    if scope is not None:
        match["suite_id"] = {"$in": scope}
    found: list[str] = []
    cursor = connection.database["testCases"].find(match, {"key": 1}).limit(scan_limit).batch_size(IDS_PER_QUERY)
    chunk: list[dict[str, Any]] = []

    def check(documents: list[dict[str, Any]]) -> None:
        run = {
            document["case_id"]
            for document in connection.database[RUNS].find(
                {
                    "case_id": {"$in": [case["_id"] for case in documents]},
                    "release_candidate_id": release_candidate.pk,
                    "is_latest": True,
                },
                {"_id": 0, "case_id": 1},
            )
        }
        found.extend(case["key"] for case in documents if case["_id"] not in run)

    for scanned, document in enumerate(cursor, start=1):
        chunk.append(document)
        if len(chunk) >= IDS_PER_QUERY:
            check(chunk)
            chunk = []
            if len(found) >= limit or scanned >= scan_limit:
                break
    if chunk and len(found) < limit:
        check(chunk)
    cursor.close()
    return sorted(found[:limit])


def release_gate(*, release_candidate: ReleaseCandidate, suite: TestSuite | None = None) -> dict[str, Any]:
    """GO / NO-GO for an RC against the thresholds in settings (RELEASES_GATE_MIN_PASS_RATE and
    RELEASES_GATE_MIN_COVERAGE, percent; RELEASES_GATE_MAX_NEW_P1_FAILURES, default 0).

    Returns {"verdict": "GO" | "NO-GO", "reasons": [str, ...] (empty for GO), "thresholds": {"min_pass_rate",
    "min_coverage", "max_new_p1_failures"}, "pass_rate": float | None, "coverage": float | None,
    "new_p1_failures": [case keys], "not_run_p1": [case keys, at most 20, listed when coverage is too low],
    "baseline": name | None}. An RC without any executed run is NO-GO.
    """
    min_pass_rate = float(getattr(settings, "RELEASES_GATE_MIN_PASS_RATE", 95.0))
    min_coverage = float(getattr(settings, "RELEASES_GATE_MIN_COVERAGE", 90.0))
    max_new_p1 = int(getattr(settings, "RELEASES_GATE_MAX_NEW_P1_FAILURES", 0))
    summary = quality_summary(release_candidate=release_candidate, suite=suite)
    baseline = release_candidate_previous(release_candidate=release_candidate)
    totals = summary["totals"]
    rate, coverage = totals["pass_rate"], totals["coverage"]
    new_p1 = new_failures_of_priority(
        release_candidate=release_candidate, baseline=baseline, priority=Priority.P1, suite=suite
    )
    reasons = []
    if rate is None:
        reasons.append("No runs recorded for this RC yet.")
    elif rate < min_pass_rate:
        reasons.append(f"Pass rate {rate:.1f}% is below the minimum of {min_pass_rate:.1f}%.")
    not_run_p1: list[str] = []
    if coverage is not None and coverage < min_coverage:
        not_run_p1 = cases_not_run_of_priority(release_candidate=release_candidate, priority=Priority.P1, suite=suite)
        reason = (
            f"Coverage {coverage:.1f}% is below the minimum of {min_coverage:.1f}%: {totals['not_run']} of "
            f"{totals['in_scope']} cases not run."
        )
        if not_run_p1:
            more = " and more" if len(not_run_p1) > 10 else ""
            reason += f" Priority-1 cases not run: {', '.join(not_run_p1[:10])}{more}."
        reasons.append(reason)
    if len(new_p1) > max_new_p1:
        reasons.append(f"{len(new_p1)} new failure(s) in priority-1 cases: {', '.join(new_p1[:10])}.")
    # Optional rule (RELEASES_GATE_NO_NEW_SIGNATURE, off by default): no failure signature the baseline did not have.
    no_new_signature = bool(getattr(settings, "RELEASES_GATE_NO_NEW_SIGNATURE", False))
    new_signatures = _new_signatures(release_candidate, baseline, suite) if no_new_signature else []
    if new_signatures:
        shown = "; ".join(new_signatures[:5]) + (" …" if len(new_signatures) > 5 else "")
        reasons.append(f"{len(new_signatures)} new error signature(s) against {baseline.name}: {shown}")
    return {
        "no_new_signature": no_new_signature,  # the optional rule is on
        "new_signatures": new_signatures,
        "verdict": "NO-GO" if reasons else "GO",
        "reasons": reasons,
        "thresholds": {
            "min_pass_rate": min_pass_rate,
            "min_coverage": min_coverage,
            "max_new_p1_failures": max_new_p1,
        },
        "pass_rate": rate,
        "coverage": coverage,
        "new_p1_failures": new_p1,
        "not_run_p1": not_run_p1,
        "baseline": baseline.name if baseline is not None else None,
    }


def _new_signatures(release_candidate: ReleaseCandidate, baseline, suite) -> list[str]:
    from releases import failure_selectors

    return failure_selectors.new_signatures(release_candidate=release_candidate, baseline=baseline, suite=suite)


def case_history(*, case: TestCase) -> list[TestRun]:
    """Every run of a case, newest RC first and newest run first within an RC, with RC and executor loaded.
    One indexed query on the runs (case prefix of the (case, RC, is_latest) index)."""
    from accounts.models import User

    runs = [_instance(TestRun, document) for document in connection.database[RUNS].find({"case_id": case.pk})]
    rcs = {rc.pk: rc for rc in ReleaseCandidate.objects.filter(pk__in={run.release_candidate_id for run in runs})}
    users = {user.pk: user for user in User.objects.filter(pk__in={run.executed_by_id for run in runs} - {None})}
    for run in runs:
        run.release_candidate = rcs.get(run.release_candidate_id) or missing_release_candidate(run.release_candidate_id)
        run.executed_by = users.get(run.executed_by_id)
        run.case = case
    runs.sort(key=lambda run: (-run.release_candidate.sequence, -run.executed_at.timestamp(), str(run.pk)))
    return runs


def _instance(model, document: dict[str, Any]):
    """A model instance from a raw document (flat `find()` filters use the indexes on every server; the ORM's
    aggregation pipelines do not on the embedded stand-in)."""
    values = {}
    for model_field in model._meta.concrete_fields:
        value = document.get(model_field.column)
        if isinstance(value, datetime) and timezone.is_naive(value):
            value = timezone.make_aware(value, UTC)
        values[model_field.attname] = value
    instance = model(**values)
    instance._state.adding = False
    instance._state.db = "default"
    return instance


def latest_runs_for(*, case_ids: list[ObjectId], release_candidate: ReleaseCandidate) -> dict[ObjectId, TestRun]:
    """{case_id: latest run} for these cases in an RC (one query per slice of ids on the (RC, is_latest, case)
    index: an entry per case)."""
    documents = [
        document
        for ids in id_slices(list(case_ids))
        for document in connection.database[RUNS].find(
            {"release_candidate_id": release_candidate.pk, "is_latest": True, "case_id": {"$in": ids}}
        )
    ]
    return {document["case_id"]: _instance(TestRun, document) for document in documents}


# --- case list with keyset pagination ----------------------------------------------------------------------------

# sort name -> (model field, descending), each a (field, id) keyset over an index of that shape. The key order
# reads bounded key ranges (see `_pages_by_key_windows`). Priority 1 is the highest priority, so "-priority"
# (descending priority, what people mean by "most important first") is P1, P2, ... and "priority" is P4 first.
CASE_SORTS: dict[str, tuple[str, bool]] = {
    "key": ("key", False),
    "-key": ("key", True),
    "priority": ("priority", True),
    "-priority": ("priority", False),
    "updated": ("updated_at", False),
    "-updated": ("updated_at", True),
}
# What each sort is called on the pages.
CASE_SORT_LABELS: dict[str, str] = {
    "key": "Key A–Z",
    "-key": "Key Z–A",
    "-priority": "Most critical first (P1…)",
    "priority": "Least critical first (P4…)",
    "-updated": "Recently updated",
    "updated": "Least recently updated",
}
# The status filter's options in words.
STATUS_FILTER_LABELS: dict[str, str] = {"pass": "Pass", "fail": "Fail", "pending": "Pending", "not_run": "Not run"}
KEY_FLOOR_CACHE = "releases:case-key-floor"
KEY_FLOOR_SECONDS = 300
_MAX_CODE_POINT = 0x10FFFF
# A key window that held at most 1/KEY_WINDOW_WIDEN of the cases still wanted makes the next one a character wider
# (about an alphabet's times more keys); otherwise the next is as wide, so a window never holds many times more.
KEY_WINDOW_WIDEN = 10


@dataclass
class CaseFilters:
    """Filters of the case list, as they appear in the URL / API query."""

    suite: TestSuite | None = None
    category: str = ""
    owner: str = ""
    release_candidate: ReleaseCandidate | None = None
    status: str = ""
    search: str = ""
    include_deleted: bool = False
    # Cases of the product only (when no suite is chosen): the cases of other products' suites are left out
    # (cases whose suite is gone belong to no product and stay listed, for repair); "" = every product.
    product: str = ""

    def other_products_suite_ids(self) -> list[ObjectId]:
        """Ids of the suites of the other products (none when no product is set or a suite is chosen)."""
        if self.suite is not None or not self.product:
            return []
        return [
            document["_id"]
            for document in connection.database["testSuites"].find({"product": {"$ne": self.product}}, {"_id": 1})
        ]

    def as_query(self) -> dict[str, str]:
        query = {
            "product": self.product,
            "suite": str(self.suite.pk) if self.suite else "",
            "category": self.category,
            "owner": self.owner,
            "rc": self.release_candidate.name if self.release_candidate else "",
            "status": self.status,
            "q": self.search,
            "deleted": "1" if self.include_deleted else "",
        }
        return {name: value for name, value in query.items() if value}


@dataclass
class CasePage:
    """One page of cases: `rows` [{"case": TestCase, "run": latest TestRun | None}], `next_cursor` (None on the
    last page), the sort and page size used."""

    rows: list[dict[str, Any]]
    next_cursor: str | None
    sort: str
    limit: int
    filters: CaseFilters = field(default_factory=CaseFilters)
    # True when a status filter examined its budget of cases before filling the page: fewer rows, and the next
    # cursor carries on where the examination stopped.
    partial: bool = False


def encode_cursor(value: Any, pk: ObjectId) -> str:
    if hasattr(value, "isoformat"):
        value = {"t": value.isoformat()}
    raw = json.dumps([value, str(pk)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, field_name: str) -> tuple[Any, ObjectId]:
    """Parse a cursor made by `encode_cursor` into (value, id); anything else is `ValidationFailed` (code
    "invalid_cursor")."""
    from bson.errors import InvalidId

    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        if not isinstance(parts, list) or len(parts) != 2:
            raise ValueError("a cursor is a list of 2 items")
        value, pk = parts[0], ObjectId(parts[1])
        if isinstance(value, dict):
            value = datetime.fromisoformat(value["t"])
        if field_name == "priority" and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError("priority cursor must be an integer")
        elif field_name in ("key", "title") and not isinstance(value, str):
            raise ValueError("text cursor must be a string")
        elif field_name == "updated_at" and not isinstance(value, datetime):
            raise ValueError("time cursor must be a time")
        return value, pk
    except (
        ValueError,
        TypeError,
        KeyError,
        InvalidId,
        binascii.Error,
        UnicodeDecodeError,
        json.JSONDecodeError,
    ) as error:
        raise ValidationFailed(
            "The page cursor is not valid.", code="invalid_cursor", fields={"cursor": [str(error)[:80]]}
        )


def _successor_prefix(text: str) -> str | None:
    """The smallest string above every string that starts with `text` (None when there is none)."""
    while text:
        code = ord(text[-1]) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates are not valid in UTF-8 strings
            code = 0xE000
        if code <= _MAX_CODE_POINT:
            return text[:-1] + chr(code)
        text = text[:-1]
    return None


def _next_key_bound(low: str, width: int) -> tuple[str | None, int]:
    """(the upper end of the key window that starts at `low`, the width it was built for): above every key that
    starts with `low[:width]` ("K0123", 4 -> "K013"); at width 0, a first character twice as far above `low`'s, up
    to no bound (None) past the last code point. Each bound is above `low`, so the windows tile the keys."""
    if width > 0:
        bound = _successor_prefix(low[:width])
        if bound is not None:
            return bound, width
    first = ord(low[0]) if low else 0
    code = 2 * first + 1
    if code > _MAX_CODE_POINT:
        return None, 0
    return (chr(0xE000) if 0xD800 <= code <= 0xDFFF else chr(code)), 0


def key_floor() -> str:
    """A key at or below every case's key (cached for KEY_FLOOR_SECONDS). A stale value stays correct: first pages
    also read the keys below it, which are only the few added since."""
    floor = cache.get(KEY_FLOOR_CACHE)
    if floor is None:
        # One query per is_deleted value, so each is answered from the (is_deleted, key, id) index.
        firsts = [
            TestCase.objects.filter(is_deleted=flag).order_by("key").values_list("key", flat=True).first()
            for flag in (False, True)
        ]
        floor = min((key for key in firsts if key is not None), default="")
        cache.set(KEY_FLOOR_CACHE, floor, KEY_FLOOR_SECONDS)
    return floor


def case_match(*, filters: CaseFilters) -> dict[str, Any]:
    """The MongoDB filter of `case_filter_queryset` (same semantics), for flat `find()` queries."""
    match: dict[str, Any] = {}
    if not filters.include_deleted:
        match["is_deleted"] = False
    if filters.suite is not None:
        match["suite_id"] = filters.suite.pk
    elif other_suites := filters.other_products_suite_ids():
        match["suite_id"] = {"$nin": other_suites}
    if filters.category:
        match["category"] = filters.category
    if filters.owner:
        match["owner"] = filters.owner
    if filters.search:
        pattern = {"$regex": re.escape(filters.search.strip()[:100]), "$options": "i"}
        match["$or"] = [{"key": pattern}, {"title": pattern}, {"task": pattern}]
    if filters.status:
        _check_status_filter(filters)
        runs = {"release_candidate_id": filters.release_candidate.pk, "is_latest": True}
        if filters.status != "not_run":
            runs["status"] = filters.status
        case_ids = [run["case_id"] for run in connection.database[RUNS].find(runs, {"_id": 0, "case_id": 1})]
        match["_id"] = {"$nin": case_ids} if filters.status == "not_run" else {"$in": case_ids}
    return match


# "Status in RC" without a scan. A status with few latest runs in the RC (at most STATUS_IN_MAX, as the summary
# documents count them) is read from the runs' (RC, status, latest, suite) index as a list of case ids, whose cases
# are read by id and ordered here (`_cases_among`). A dense one (or "not run") reads the cases in the page's sort
# order (key order through the key windows), STATUS_SCAN_CHUNK at a time, and keeps those whose latest run matches
# (one read of the runs' (RC, latest, case) index per slice of cases), so a page costs about page size / density
# cases, never all of them. A page examines at most STATUS_SCAN_BUDGET cases (then it is `partial` and its cursor
# resumes the examination). STATUS_IN_MAX is that budget: a sparse page reads no more cases than a dense one may.
STATUS_IN_MAX = 500
STATUS_SCAN_CHUNK = 250
STATUS_SCAN_BUDGET = 500


@dataclass(frozen=True)
class CaseCount:
    """A capped count: `count` cases found, `complete` False when the examination stopped before the end."""

    count: int
    complete: bool = True


def _status_sparse_ids(filters: CaseFilters) -> list[ObjectId] | None:
    """The ids of the cases whose latest run in the RC has the filter's status, when there are at most
    STATUS_IN_MAX of them (None when more, and always for "not run", which no index lists)."""
    if filters.status == "not_run":
        return None
    # The summary documents say how many latest runs have the status (cheap, any size): only a few are read.
    counted = quality_summary(release_candidate=filters.release_candidate, suite=filters.suite)["totals"]
    if counted.get(filters.status, 0) > STATUS_IN_MAX:
        return None
    query: dict[str, Any] = {
        "release_candidate_id": filters.release_candidate.pk,
        "status": filters.status,
        "is_latest": True,
    }
    if filters.suite is not None:
        query["suite_id"] = filters.suite.pk
    ids = [
        run["case_id"]
        for run in connection.database[RUNS].find(query, {"_id": 0, "case_id": 1}).limit(STATUS_IN_MAX + 1)
    ]
    return ids if len(ids) <= STATUS_IN_MAX else None


def _status_keep(filters: CaseFilters, cases: list) -> list:
    """The cases (in their order; TestCase instances or raw documents) whose latest status in the RC is the
    filter's (no latest run: "not run")."""
    keys = [case["_id"] if isinstance(case, dict) else case.pk for case in cases]
    statuses = {
        run["case_id"]: run["status"]
        for ids in store.id_slices(keys)
        for run in connection.database[RUNS].find(
            {"release_candidate_id": filters.release_candidate.pk, "is_latest": True, "case_id": {"$in": ids}},
            {"_id": 0, "case_id": 1, "status": 1},
        )
    }
    if filters.status == "not_run":
        return [case for case, key in zip(cases, keys, strict=True) if key not in statuses]
    return [case for case, key in zip(cases, keys, strict=True) if statuses.get(key) == filters.status]


def _cases_with_status(
    filters: CaseFilters,
    *,
    sort: str = "key",
    after: tuple[Any, ObjectId] | None,
    want: int,
    budget: int | None,
) -> tuple[list[TestCase], tuple[Any, ObjectId] | None]:
    """The first `want` cases in `sort` order after the keyset position `after` matching the filters, status
    included, and where to resume when `budget` cases were examined first (None when the page is complete or the
    cases ran out)."""
    _check_status_filter(filters)
    unfiltered = replace(filters, status="")
    field_name, descending = CASE_SORTS[sort]
    ids = _status_sparse_ids(filters)
    if ids is not None:
        if field_name == "priority":
            return _cases_among_by_priority(ids, unfiltered, descending=descending, after=after, want=want), None
        return _cases_among(ids, unfiltered, sort=sort, after=after, want=want), None
    if sort == "key" and filters.status != "not_run" and _status_walk_applies(unfiltered):
        return _cases_by_latest_runs_in_key_order(filters, after=after, want=want, budget=budget)

    def fetch(position: tuple[Any, ObjectId] | None, count: int) -> list[dict[str, Any]] | list[TestCase]:
        if sort == "key":  # raw documents: only the cases kept become model instances
            return _pages_by_key_windows(case_match(filters=unfiltered), after=position, want=count, raw=True)
        queryset = case_filter_queryset(filters=unfiltered)
        return list(_keyset_after(queryset, field_name, descending, position)[:count])

    def cases(items: list) -> list[TestCase]:
        return [_instance(TestCase, item) if isinstance(item, dict) else item for item in items]

    found: list = []
    examined = 0
    position = after
    while len(found) < want:
        if budget is not None and examined >= budget:
            return cases(found), position
        chunk = fetch(position, STATUS_SCAN_CHUNK)
        if not chunk:
            break
        examined += len(chunk)
        found.extend(_status_keep(filters, chunk))
        last = chunk[-1]
        position = (last[field_name], last["_id"]) if isinstance(last, dict) else (getattr(last, field_name), last.pk)
        if len(chunk) < STATUS_SCAN_CHUNK:
            break
    return cases(found[:want]), None


def _status_walk_applies(filters: CaseFilters) -> bool:
    """Whether a dense status page in key order reads the latest runs with that status (`case_key` order) rather
    than examining the cases: when the only other filters are the product or deleted cases. (With a suite, owner or
    category the pinned case windows read that filter's own cases, and check their statuses, instead: the runs'
    copies of those fields are as they were when each run was recorded.)"""
    return filters.suite is None and not (filters.owner or filters.category or filters.search)


def _cases_by_latest_runs_in_key_order(
    filters: CaseFilters, *, after: tuple[str, ObjectId] | None, want: int, budget: int | None
) -> tuple[list[TestCase], tuple[str, ObjectId] | None]:
    """`_cases_with_status` for a status other than "not run" in key order: the RC's latest runs with the status,
    read in (case key, case) order from the (RC, status, latest, key, case) index a key window at a time, then
    their cases by id, kept when they match the filters (a deleted case, another product's suite). A page reads
    about as many runs and cases as it shows, at any density; at most `budget` runs (then where to resume)."""
    runs = connection.database[RUNS]
    cases = connection.database["testCases"]
    equalities = {"release_candidate_id": filters.release_candidate.pk, "status": filters.status, "is_latest": True}
    keep = _document_check(case_match(filters=replace(filters, status="")))
    order = [("case_key", 1), ("case_id", 1)]
    read = {"runs": 0, "position": after}

    def exhausted() -> bool:
        return budget is not None and read["runs"] >= budget

    def kept(case_ids: list[ObjectId]) -> list[dict[str, Any]]:
        documents = {
            document["_id"]: document
            for chunk in id_slices(case_ids)
            for document in cases.find({"_id": {"$in": chunk}})
        }
        return [documents[pk] for pk in case_ids if pk in documents and keep(documents[pk])]

    def fetch(condition: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        # What is left of the window: (key condition, case id condition) pieces, read in order.
        pieces = [(condition["key"], condition.get("_id"))]
        while pieces and len(found) < limit and not exhausted():
            key_condition, id_condition = pieces.pop(0)
            query = {**equalities, "case_key": key_condition}
            if id_condition is not None:
                query["case_id"] = id_condition
            room = limit - len(found)
            if budget is not None:
                room = min(room, budget - read["runs"])
            latest = list(runs.find(query, {"_id": 0, "case_id": 1, "case_key": 1}).sort(order).limit(room))
            read["runs"] += len(latest)
            found.extend(kept([run["case_id"] for run in latest]))
            if not latest:
                continue
            last_key, last_id = latest[-1]["case_key"], latest[-1]["case_id"]
            read["position"] = (last_key, last_id)
            if len(latest) == room:  # the piece may hold more: its rest, the same key first
                rest = [(last_key, {"$gt": last_id})]
                if isinstance(key_condition, dict):  # a range: then its keys after the last one read
                    upper = {"$lt": key_condition["$lt"]} if "$lt" in key_condition else {}
                    rest.append(({**upper, "$gt": last_key}, None))
                pieces[:0] = rest
        return found

    found = _key_windows_read(fetch, after=after, want=want, stop=exhausted)
    page = [_instance(TestCase, document) for document in found]
    return page, (read["position"] if exhausted() and len(page) < want else None)


def _sortable(value: Any) -> tuple[bool, Any]:
    """A sort key for one stored value in MongoDB's order for the case fields (missing first; strings by code
    point, which is their UTF-8 byte order; times in UTC)."""
    if isinstance(value, datetime) and not timezone.is_naive(value):
        value = value.astimezone(UTC).replace(tzinfo=None)
    return (value is not None, value)


def _cases_among(
    ids: list[ObjectId], filters: CaseFilters, *, sort: str, after: tuple[Any, ObjectId] | None, want: int
) -> list[TestCase]:
    """The first `want` of these cases in `sort` order after the keyset position `after` that match the filters:
    read by id, a slice at a time (point lookups on any server), and ordered here, so the cost follows the number
    of ids, not of cases; the same cases and order as one sorted query of `_id $in ids`."""
    field_name, descending = CASE_SORTS[sort]
    match = case_match(filters=filters)
    collection = connection.database["testCases"]
    # The sort field of each (less to send and decode); the whole documents of the page's cases only.
    documents = [
        document
        for chunk in id_slices(list(ids))
        for document in collection.find({"_id": {"$in": chunk}, **match}, {"_id": 1, field_name: 1})
    ]

    def position(document: dict[str, Any]) -> tuple[tuple[bool, Any], ObjectId]:
        return _sortable(document.get(field_name)), document["_id"]

    documents.sort(key=position, reverse=descending)
    if after is not None:
        start = (_sortable(after[0]), after[1])
        documents = [
            document
            for document in documents
            if (position(document) < start if descending else position(document) > start)
        ]
    chosen = [document["_id"] for document in documents[:want]]
    whole = {
        document["_id"]: document
        for chunk in id_slices(chosen)
        for document in collection.find({"_id": {"$in": chunk}})
    }
    return [_instance(TestCase, whole[pk]) for pk in chosen if pk in whole]


def _cases_among_by_priority(
    ids: list[ObjectId], filters: CaseFilters, *, descending: bool, after: tuple[Any, ObjectId] | None, want: int
) -> list[TestCase]:
    """`_cases_among` in priority order, read one priority at a time from the live cases' (is_deleted, priority, id)
    index, a slice of ids at a time in the page's order: the stand-in fetches only the documents of that priority
    (a point lookup of an id it holds costs about ten times a range read), and reading stops at the slice that
    fills the page, so a page reads about as many cases as it shows, not all the ids. The same cases
    and order as `_cases_among` for the priorities of `Priority` (the only ones the forms, the API and the importer
    accept); a search falls back to it."""
    match = case_match(filters=filters)
    rest = {name: value for name, value in match.items() if name != "is_deleted"}
    keep = _document_check(rest)
    if keep is None:
        return _cases_among(ids, filters, sort="priority" if descending else "-priority", after=after, want=want)
    flags = (False, True) if filters.include_deleted else (False,)
    collection = connection.database["testCases"]
    ordered = sorted(ids, reverse=descending)  # the ids in the page's order: slices read in turn, until it is full
    found: list[dict[str, Any]] = []
    for priority in sorted(Priority.values, reverse=descending):
        if after is not None and (priority > after[0] if descending else priority < after[0]):
            continue
        candidates = ordered
        if after is not None and priority == after[0]:
            candidates = [pk for pk in ordered if (pk < after[1] if descending else pk > after[1])]
        for chunk in id_slices(candidates):
            documents = [
                document
                for flag in flags
                for document in collection.find({"is_deleted": flag, "priority": priority, "_id": {"$in": chunk}})
                if keep(document)
            ]
            found.extend(sorted(documents, key=lambda document: document["_id"], reverse=descending))
            if len(found) >= want:
                return [_instance(TestCase, document) for document in found[:want]]
    return [_instance(TestCase, document) for document in found]


def _keyset_after(queryset: QuerySet[TestCase], field_name: str, descending: bool, after) -> QuerySet[TestCase]:
    """`queryset` in (field, id) order (descending or not) after the keyset position `after`."""
    if after is not None:
        value, pk = after
        if descending:
            queryset = queryset.filter(Q(**{f"{field_name}__lt": value}) | Q(**{field_name: value, "pk__lt": pk}))
        else:
            queryset = queryset.filter(Q(**{f"{field_name}__gt": value}) | Q(**{field_name: value, "pk__gt": pk}))
    return queryset.order_by(*([f"-{field_name}", "-pk"] if descending else [field_name, "pk"]))


def cases_matching(*, filters: CaseFilters, cap: int) -> list[TestCase]:
    """The first `cap` cases matching the filters (status in RC included) in key order: the selection of a capped
    bulk action, read without a scan of all runs."""
    if filters.status:
        return _cases_with_status(filters, after=None, want=cap, budget=None)[0]
    return _pages_by_key_windows(case_match(filters=filters), after=None, want=cap)


def case_count(*, filters: CaseFilters, cap: int) -> CaseCount:
    """How many cases match the filters, counting no further than `cap` (what a capped bulk action needs). With a
    dense status filter at most STATUS_SCAN_BUDGET cases are examined (`complete` False past that)."""
    cap = max(1, int(cap))
    if filters.status:
        found, resume = _cases_with_status(filters, after=None, want=cap, budget=STATUS_SCAN_BUDGET)
        return CaseCount(count=len(found), complete=resume is None)
    counted = _case_count_from_counts(filters)
    if counted is not None:
        return CaseCount(count=min(counted, cap))
    return CaseCount(count=connection.database["testCases"].count_documents(case_match(filters=filters), limit=cap))


def _case_count_from_counts(filters: CaseFilters) -> int | None:
    """The live cases of a suite, a product or everything, optionally of one owner or one category, from the case
    counts kept at write time (`caseScopeCounts`). None for what they do not hold (a search, deleted cases, owner
    and category together): the stand-in counts a filter by reading every match, even with a limit (20,000 live
    cases: 0.5 s), so the run grid's bulk count would grow with the data. Cases whose suite is gone belong to no
    product and are not counted (`manage.py releases_repair` removes them)."""
    if filters.search or filters.include_deleted or (filters.owner and filters.category):
        return None
    if filters.suite is not None:
        suite_ids: list[ObjectId] | None = [filters.suite.pk]
    elif filters.product:
        suite_ids = product_suite_ids(product=filters.product)
    else:
        suite_ids = None  # every suite
    if filters.owner or filters.category:
        dimension = SummaryDimension.OWNER if filters.owner else SummaryDimension.CATEGORY
        key = filters.owner or filters.category
        return _case_counts(suite_ids=suite_ids, dimensions=[dimension]).get((dimension, key), 0)
    return sum(_case_counts(suite_ids=suite_ids, dimensions=[SummaryDimension.ALL]).values())


def _pages_by_key_windows(
    match: dict[str, Any], *, after: tuple[str, ObjectId] | None, want: int, raw: bool = False
) -> list[Any]:
    """The first `want` cases matching `match` in (key, id) order after the cursor `after`, read through bounded
    key ranges (TestCase instances, or the raw documents when `raw`).

    Same result as one sorted query after the cursor, but each query covers a window of keys next to the previous
    one, so a page reads about as many index entries as it returns, whatever the number of cases. (An open-ended
    range with a sort and a limit costs a scan of the whole range on some servers, the embedded stand-in among
    them; on MongoDB these are a few cheap index range scans.) A filter on the suite, owner or category reads the
    windows of an index that starts with those fields (`CASE_KEY_PINS`), so its windows hold its own cases only.
    """
    collection = connection.database["testCases"]
    order = [("key", 1), ("_id", 1)]
    pinned = _key_order_pin(match)

    def fetch(condition: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        if pinned is None:
            query = {"$and": [match, condition]} if set(match) & set(condition) else {**match, **condition}
            return list(collection.find(query).sort(order).limit(limit))
        # Pinned: the query names only the index's equalities and the key (a same-key tie is read by its key and
        # cut by id here), the other conditions are checked on each document, and reading stops at `limit`.
        equalities, keep, rest = pinned
        after_id = condition["_id"]["$gt"] if "_id" in condition else None
        query = collection.find({**equalities, "key": condition["key"]}).sort(order)
        if not rest and after_id is None:
            query = query.limit(limit)  # every document read is kept
        found = []
        for document in query:
            if (after_id is None or document["_id"] > after_id) and keep(document):
                found.append(document)
                if len(found) == limit:
                    break
        return found

    found = _key_windows_read(fetch, after=after, want=want)
    return found if raw else [_instance(TestCase, document) for document in found]


def _key_windows_read(fetch, *, after: tuple[str, Any] | None, want: int, stop=lambda: False) -> list[Any]:
    """The first `want` items after the (key, id) position `after` (from the start when None), in (key, id) order,
    read by `fetch(condition, limit)` one bounded key window at a time. `condition` is {"key": an equality or a
    range} and, for the rest of the key of `after`, {"_id": {"$gt": id}}; `fetch` returns at most `limit` items of
    that window, fewer only when the window holds no more. Reading ends early when `stop()` says so."""
    found: list[Any] = []
    if after is None:
        start = key_floor()
        if start:
            found = fetch({"key": {"$lt": start}}, want)
        if not stop():
            found.extend(fetch({"key": start}, want - len(found)))
    else:
        start, pk = after
        found = fetch({"key": start, "_id": {"$gt": pk}}, want)
    # Windows: (start, b1), [b1, b2), [b2, b3), ... up to an open end, each the keys that start with a prefix of
    # the window's low end (see `_next_key_bound`). A window that held few of the items still wanted widens the next
    # one by a character; one that held more keeps the width, so no window holds many more items than are wanted.
    low_operator = "$gt"
    low = start
    width = len(start)
    while len(found) < want and not stop():
        bound, width = _next_key_bound(low, width)
        condition: dict[str, Any] = {low_operator: low}
        if bound is not None:
            condition["$lt"] = bound
        wanted = want - len(found)
        window = fetch({"key": condition}, wanted)
        found.extend(window)
        if bound is None:
            break
        if width > 0 and len(window) * KEY_WINDOW_WIDEN <= wanted:
            width -= 1
        low, low_operator = bound, "$gte"
    return found[:want]


# Equality filters of the case list with an index of (fields..., key, id) (the (suite, key) constraint and
# TestCase.Meta.indexes), most fields first: a key-ordered page pins the first whose fields its filter all sets, so
# each key window reads the entries of the filter's own cases. The stand-in narrows a find along an index only when
# the filter names exactly the index's leading equalities and one range (a further condition, `is_deleted`
# included, makes it fall back to one field's index: every case of the suite or of the owner, for each window), so
# the other conditions are checked on the documents read; a real MongoDB reads the same index ranges.
# Last, the live cases' (is_deleted, key, id) index, so that a product's list (the other products' suites left out
# by `$nin`, checked here) reads its key windows from that index too.
CASE_KEY_PINS: tuple[tuple[str, ...], ...] = (
    ("suite_id", "owner"),
    ("suite_id", "category"),
    ("owner", "category"),
    ("suite_id",),
    ("owner",),
    ("category",),
    ("is_deleted",),
)


def _key_order_pin(match: dict[str, Any]) -> tuple[dict[str, Any], Any, dict[str, Any]] | None:
    """(the equalities of `match` a key-ordered read pins, a check of the rest of `match` on a raw document, that
    rest), or None when no pin applies or the rest is not plain conditions (a search)."""
    equal = {name: match[name] for name in ("suite_id", "owner", "category", "is_deleted") if name in match}
    equal = {name: value for name, value in equal.items() if not isinstance(value, dict)}
    for fields in CASE_KEY_PINS:
        if all(name in equal for name in fields):
            pinned = {name: equal[name] for name in fields}
            rest = {name: value for name, value in match.items() if name not in pinned}
            keep = _document_check(rest)
            return (pinned, keep, rest) if keep is not None else None
    return None


def _same_value(value: Any, wanted: Any) -> bool:
    """MongoDB equality of a stored scalar (None: missing) and a wanted one: a boolean equals only a boolean, None
    (null) matches a missing field."""
    if isinstance(value, bool) or isinstance(wanted, bool):
        return isinstance(value, bool) and isinstance(wanted, bool) and value == wanted
    return value == wanted


def _document_check(conditions: dict[str, Any]):
    """A function telling whether a raw document meets `conditions` (equality, `$in`, `$nin` on scalar fields, as
    MongoDB matches them), or None for any other condition."""
    checks = []
    for name, wanted in conditions.items():
        if name.startswith("$"):
            return None
        if not isinstance(wanted, dict):
            checks.append(lambda document, name=name, wanted=wanted: _same_value(document.get(name), wanted))
        elif set(wanted) in ({"$in"}, {"$nin"}) and isinstance(wanted.get("$in", wanted.get("$nin")), list):
            values, inside = wanted.get("$in", wanted.get("$nin")), "$in" in wanted
            checks.append(
                lambda document, name=name, values=values, inside=inside: (
                    any(_same_value(document.get(name), value) for value in values) == inside
                )
            )
        else:
            return None
    return lambda document: all(check(document) for check in checks)


def _check_status_filter(filters: CaseFilters) -> None:
    if filters.status not in STATUS_FILTERS:
        raise ValidationFailed(code="invalid_status", fields={"status": [f"Use one of: {', '.join(STATUS_FILTERS)}."]})
    if filters.release_candidate is None:
        raise ValidationFailed(
            "Filtering by status needs an RC.", code="status_needs_rc", fields={"rc": ["Choose an RC."]}
        )


def case_filter_queryset(*, filters: CaseFilters) -> QuerySet[TestCase]:
    """Cases matching the filters (unordered). Status filters need an RC: the case's latest status in it."""
    queryset = TestCase.objects.all()
    if not filters.include_deleted:
        queryset = queryset.filter(is_deleted=False)
    if filters.suite is not None:
        queryset = queryset.filter(suite=filters.suite)
    elif other_suites := filters.other_products_suite_ids():
        queryset = queryset.exclude(suite_id__in=other_suites)
    if filters.category:
        queryset = queryset.filter(category=filters.category)
    if filters.owner:
        queryset = queryset.filter(owner=filters.owner)
    if filters.search:
        pattern = re.escape(filters.search.strip()[:100])
        queryset = queryset.filter(Q(key__iregex=pattern) | Q(title__iregex=pattern) | Q(task__iregex=pattern))
    if filters.status:
        # The ids from one flat indexed read of the runs (an ORM subquery here becomes a $lookup pipeline that
        # the stand-in answers in minutes); pages use `_cases_with_status`, which reads no more runs than a page.
        ids = case_match(filters=filters)["_id"]
        queryset = queryset.exclude(pk__in=ids["$nin"]) if "$nin" in ids else queryset.filter(pk__in=ids["$in"])
    return queryset


def case_list(
    *, filters: CaseFilters | None = None, sort: str = "key", cursor: str | None = None, limit: int | None = None
) -> CasePage:
    """One page of cases, keyset-paginated so pages stay stable while cases are added.

    `sort` is one of CASE_SORTS ("key", "-key", "priority", "-priority", "updated", "-updated"; `ValidationFailed`
    code "invalid_sort" otherwise); `limit` is capped at API_PAGE_SIZE_MAX; `cursor` is the `next_cursor` of the
    previous page. When the filters name an RC, each row carries the case's latest run in it. In key order the
    cost of a page does not grow with the number of cases.
    """
    filters = filters or CaseFilters()
    if sort not in CASE_SORTS:
        raise ValidationFailed(code="invalid_sort", fields={"sort": [f"Use one of: {', '.join(CASE_SORTS)}."]})
    limit = max(1, min(int(limit or settings.API_PAGE_SIZE_DEFAULT), settings.API_PAGE_SIZE_MAX))
    field_name, descending = CASE_SORTS[sort]
    after = decode_cursor(cursor, field_name=field_name) if cursor else None
    resume = None
    if filters.status:
        cases, resume = _cases_with_status(filters, sort=sort, after=after, want=limit + 1, budget=STATUS_SCAN_BUDGET)
    elif sort == "key":
        cases = _pages_by_key_windows(case_match(filters=filters), after=after, want=limit + 1)
    else:
        queryset = case_filter_queryset(filters=filters)
        cases = list(_keyset_after(queryset, field_name, descending, after)[: limit + 1])
    next_cursor = None
    if len(cases) > limit:
        cases = cases[:limit]
        last = cases[-1]
        next_cursor = encode_cursor(getattr(last, field_name), last.pk)
    elif resume is not None:
        next_cursor = encode_cursor(*resume)
    suites_attach(cases=cases)
    runs = {}
    if filters.release_candidate is not None and cases:
        runs = latest_runs_for(case_ids=[case.pk for case in cases], release_candidate=filters.release_candidate)
    rows = [{"case": case, "run": runs.get(case.pk)} for case in cases]
    return CasePage(
        rows=rows, next_cursor=next_cursor, sort=sort, limit=limit, filters=filters, partial=resume is not None
    )


# --- data left behind by older versions ----------------------------------------------------------------------------

MISSING_SUITE_NAME = "(missing suite)"
MISSING_RELEASE_CANDIDATE_NAME = "(missing RC)"


def missing_suite(suite_id: ObjectId | None) -> TestSuite:
    """A stand-in (never saved) for a suite an older version deleted from under its cases, so pages and the API
    show "(missing suite)" instead of failing. `manage.py releases_repair` finds and repairs such cases."""
    suite = TestSuite(pk=suite_id, name=MISSING_SUITE_NAME, product="(missing)")
    suite._state.adding = False
    return suite


def missing_release_candidate(release_candidate_id: ObjectId | None) -> ReleaseCandidate:
    """A stand-in (never saved, sorted before every RC) for an RC an older version deleted from under its runs."""
    release_candidate = ReleaseCandidate(pk=release_candidate_id, name=MISSING_RELEASE_CANDIDATE_NAME, sequence=-1)
    release_candidate._state.adding = False
    return release_candidate


def suites_attach(*, cases: list[TestCase]) -> None:
    """Set `case.suite` on each case from one query; a suite that is gone becomes a `missing_suite` stand-in."""
    suites = {suite.pk: suite for suite in TestSuite.objects.filter(pk__in={case.suite_id for case in cases})}
    for case in cases:
        case.suite = suites.get(case.suite_id) or missing_suite(case.suite_id)


def orphans_find() -> dict[str, list[ObjectId]]:
    """Ids of releases data whose parent is gone (left by older versions that deleted suites, cases or RCs
    directly): {"cases_without_suite", "runs_without_case", "runs_without_release_candidate",
    "runs_without_suite"}. A run in several lists is listed in each; "runs_without_suite" counts runs whose case
    and RC exist but whose copied suite id points at nothing.

    Suites and RCs are few, so their ids are read whole; the runs' case ids are checked in chunks of distinct ids,
    so memory stays bounded by the number of distinct cases with runs, never by the number of runs."""
    database = connection.database
    suite_ids = [document["_id"] for document in database["testSuites"].find({}, {"_id": 1})]
    rc_ids = [document["_id"] for document in database["releaseCandidates"].find({}, {"_id": 1})]
    cases_without_suite = [
        document["_id"] for document in database["testCases"].find({"suite_id": {"$nin": suite_ids}}, {"_id": 1})
    ]
    runs = database[RUNS]
    runs_without_rc = [
        document["_id"] for document in runs.find({"release_candidate_id": {"$nin": rc_ids}}, {"_id": 1})
    ]
    gone_case_ids: list[ObjectId] = []
    chunk: list[ObjectId] = []

    def check(case_ids: list[ObjectId]) -> None:
        present = {document["_id"] for document in database["testCases"].find({"_id": {"$in": case_ids}}, {"_id": 1})}
        gone_case_ids.extend(case_id for case_id in case_ids if case_id not in present)

    for group in runs.aggregate([{"$group": {"_id": "$case_id"}}], allowDiskUse=True):
        chunk.append(group["_id"])
        if len(chunk) >= 5000:
            check(chunk)
            chunk = []
    if chunk:
        check(chunk)
    runs_without_case = [document["_id"] for document in runs.find({"case_id": {"$in": gone_case_ids}}, {"_id": 1})]
    broken = set(runs_without_case) | set(runs_without_rc)
    runs_without_suite = [
        document["_id"]
        for document in runs.find({"suite_id": {"$nin": suite_ids}}, {"_id": 1})
        if document["_id"] not in broken
    ]
    return {
        "cases_without_suite": cases_without_suite,
        "runs_without_case": runs_without_case,
        "runs_without_release_candidate": runs_without_rc,
        "runs_without_suite": runs_without_suite,
    }


# --- reads for other apps: reports, the AI assistant, CSV exports ----------------------------------------------------


def _live_case_ids(case_ids: list[ObjectId]) -> set[ObjectId]:
    """The ids among `case_ids` of cases that exist and are not soft-deleted (chunked `$in` on the primary key)."""
    live: set[ObjectId] = set()
    for chunk in id_slices(case_ids):
        live.update(
            document["_id"]
            for document in connection.database["testCases"].find(
                {"_id": {"$in": chunk}, "is_deleted": False}, {"_id": 1}
            )
        )
    return live


def open_mantis_ids(*, release_candidate: ReleaseCandidate, suite: TestSuite | None = None) -> list[int]:
    """Mantis ids linked to the latest failing runs of the RC (the issues still open for it), ascending. Runs of
    soft-deleted cases are left out, as in the dashboard's counts."""
    match: dict[str, Any] = {"release_candidate_id": release_candidate.pk, "is_latest": True, "status": RunStatus.FAIL}
    scope = scope_suite_ids(release_candidate=release_candidate, suite=suite)
    if scope is not None:
        match["suite_id"] = {"$in": scope}
    runs = list(connection.database[RUNS].find(match, {"_id": 0, "case_id": 1, "mantis_ids": 1}))
    live = _live_case_ids(list({run["case_id"] for run in runs}))
    ids: set[int] = set()
    for run in runs:
        if run["case_id"] in live:
            ids.update(int(value) for value in run.get("mantis_ids") or ())
    return sorted(ids)


def case_statuses_for_release_candidate(
    *, release_candidate: ReleaseCandidate, suite: TestSuite | None = None
) -> list[dict[str, Any]]:
    """Every active case of the scope (the suite, else the RC's product: `scope_suite_ids`) with its latest status
    for the RC ("" = no run) and that run's Mantis ids:
    [{"suite", "suite_id", "key", "title", "category", "owner", "priority", "status", "mantis_ids": tuple}], by
    suite name then key. A case whose suite is gone shows "(missing suite)".

    Two projected queries (the RC's latest runs, then the cases), streamed in batches: 10k cases cost two index
    scans and a few MB, not 10k ORM objects."""
    database = connection.database
    run_match: dict[str, Any] = {"release_candidate_id": release_candidate.pk, "is_latest": True}
    case_match: dict[str, Any] = {"is_deleted": False}
    scope = scope_suite_ids(release_candidate=release_candidate, suite=suite)
    if scope is not None:
        run_match["suite_id"] = {"$in": scope}
        case_match["suite_id"] = {"$in": scope}
    latest = {
        run["case_id"]: (run["status"], tuple(int(value) for value in run.get("mantis_ids") or ()))
        for run in database[RUNS].find(run_match, {"_id": 0, "case_id": 1, "status": 1, "mantis_ids": 1})
    }
    suite_names = {
        document["_id"]: document.get("name", "")
        for document in database["testSuites"].find({"_id": {"$in": scope}} if scope is not None else {}, {"name": 1})
    }
    projection = {"suite_id": 1, "key": 1, "title": 1, "category": 1, "owner": 1, "priority": 1}
    rows = []
    for case in database["testCases"].find(case_match, projection).batch_size(2000):
        status, mantis = latest.get(case["_id"], ("", ()))
        rows.append(
            {
                "suite": suite_names.get(case.get("suite_id"), MISSING_SUITE_NAME),
                "suite_id": str(case.get("suite_id")),
                "key": case.get("key", ""),
                "title": case.get("title", ""),
                "category": case.get("category", ""),
                "owner": case.get("owner", ""),
                "priority": int(case.get("priority") or Priority.P3),
                "status": status,
                "mantis_ids": mantis,
            }
        )
    rows.sort(key=lambda row: (row["suite"], row["key"]))
    return rows


def release_candidate_counts(*, release_candidate: ReleaseCandidate) -> dict[str, int]:
    """{"pass", "fail", "pending"} latest-run counts of the RC: the dashboard's figures (summary documents, runs
    of soft-deleted cases not counted)."""
    totals = quality_summary(release_candidate=release_candidate)["totals"]
    return {"pass": totals["pass"], "fail": totals["fail"], "pending": totals["pending"]}


def case_latest_runs(*, case: TestCase, limit: int = 8) -> list[TestRun]:
    """The case's latest run on each RC, newest RC first (at most `limit`), with `release_candidate` loaded (a
    "(missing RC)" stand-in for an RC that is gone)."""
    runs = [
        _instance(TestRun, document)
        for document in connection.database[RUNS].find({"case_id": case.pk, "is_latest": True})
    ]
    rcs = {rc.pk: rc for rc in ReleaseCandidate.objects.filter(pk__in={run.release_candidate_id for run in runs})}
    for run in runs:
        run.release_candidate = rcs.get(run.release_candidate_id) or missing_release_candidate(run.release_candidate_id)
        run.case = case
    runs.sort(key=lambda run: (-run.release_candidate.sequence, -run.executed_at.timestamp()))
    return runs[: max(0, int(limit))]


def release_candidate_failing_runs(
    *,
    release_candidate: ReleaseCandidate,
    limit: int,
    category: str | None = None,
    exclude_run_id: ObjectId | None = None,
) -> list[TestRun]:
    """The RC's latest failing runs (optionally of one category, without `exclude_run_id`) of cases that exist and
    are not soft-deleted, by category then case key, at most `limit`; each with `case` and `release_candidate`
    loaded."""
    match: dict[str, Any] = {"release_candidate_id": release_candidate.pk, "status": RunStatus.FAIL, "is_latest": True}
    if category is not None:
        match["category"] = category
    if exclude_run_id is not None:
        match["_id"] = {"$ne": exclude_run_id}
    runs = [_instance(TestRun, document) for document in connection.database[RUNS].find(match)]
    cases = {case.pk: case for case in TestCase.objects.filter(pk__in={run.case_id for run in runs}, is_deleted=False)}
    listed = [run for run in runs if run.case_id in cases]
    for run in listed:
        run.case = cases[run.case_id]
        run.release_candidate = release_candidate
    listed.sort(key=lambda run: (run.category, run.case.key, str(run.pk)))
    return listed[: max(0, int(limit))]


def _export_case(case: dict[str, Any], suite: dict[str, Any]) -> dict[str, Any]:
    return {
        "product": suite["product"],
        "suite": suite["name"],
        "key": case["key"],
        "title": case.get("title", ""),
        "category": case.get("category", ""),
        "task": case.get("task", ""),
        "owner": case.get("owner", ""),
        "priority": case.get("priority", Priority.P3),
        "tags": case.get("tags") or [],
    }


def _export_suites() -> dict[ObjectId, dict[str, Any]]:
    return {suite["_id"]: suite for suite in connection.database["testSuites"].find({}, {"product": 1, "name": 1})}


def cases_for_export() -> Iterator[dict[str, Any]]:
    """Every case that is not soft-deleted, by suite id then key, as flat dicts {"product", "suite", "key",
    "title", "category", "task", "owner", "priority", "tags"} (the CSV import format's case columns). Streamed in
    batches; cases whose suite is gone are skipped (`manage.py releases_repair` finds them)."""
    suites = _export_suites()
    cursor = connection.database["testCases"].find({"is_deleted": {"$ne": True}}).sort([("suite_id", 1), ("key", 1)])
    for case in cursor.batch_size(1000):
        suite = suites.get(case["suite_id"])
        if suite is not None:
            yield _export_case(case, suite)


def runs_for_export(*, release_candidate: ReleaseCandidate) -> Iterator[dict[str, Any]]:
    """Every run of the RC (history included), by case then execution time, as the case's export dict plus
    {"rc", "status", "mantis_ids", "notes", "executed_at" (aware, UTC), "executed_by_id"}. Streamed in batches of
    1,000 runs with their cases read per batch; runs whose case or suite is gone are skipped."""
    database = connection.database
    suites = _export_suites()
    cursor = (
        database[RUNS].find({"release_candidate_id": release_candidate.pk}).sort([("case_id", 1), ("executed_at", 1)])
    )
    cases: dict[ObjectId, dict[str, Any]] = {}

    def rows(runs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        missing = list({run["case_id"] for run in runs} - cases.keys())
        for case in database["testCases"].find({"_id": {"$in": missing}}):
            cases[case["_id"]] = case
        for run in runs:
            case = cases.get(run["case_id"])
            suite = suites.get(case["suite_id"]) if case else None
            if case is None or suite is None:
                continue
            executed_at = run["executed_at"]
            yield {
                **_export_case(case, suite),
                "rc": release_candidate.name,
                "status": run["status"],
                "mantis_ids": run.get("mantis_ids") or [],
                "notes": run.get("notes", ""),
                "executed_at": executed_at if executed_at.tzinfo else executed_at.replace(tzinfo=UTC),
                "executed_by_id": run.get("executed_by_id"),
            }
        if len(cases) > 20_000:
            cases.clear()

    pending: list[dict[str, Any]] = []
    for run in cursor.batch_size(1000):
        pending.append(run)
        if len(pending) >= 1000:
            yield from rows(pending)
            pending = []
    if pending:
        yield from rows(pending)


def release_candidate_has_runs(*, release_candidate: ReleaseCandidate, suite: TestSuite | None = None) -> bool:
    """Whether any run was recorded for the RC (in one suite, when given): one indexed lookup."""
    query: dict[str, Any] = {"release_candidate_id": release_candidate.pk}
    if suite is not None:
        query["suite_id"] = suite.pk
    return connection.database[RUNS].find_one(query, {"_id": 1}) is not None
