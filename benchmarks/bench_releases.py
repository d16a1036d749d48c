"""Release tracking at scale: the dashboard's metrics query and the case list page, at a small and a large data
set, measured in the same run (small, large, small again: the baseline is the lower of the two small runs, so a
shared machine's load drift cannot flatter the ratio) (targets from QUALITY.md / issue 3):

- dashboard metrics query (quality summary by RC/owner/category/suite + pass-rate trend, read from the summary
  documents): p95 at LARGE runs <= 1.2 x p95 at SMALL runs;
- case list page (GET /cases/ as a viewer, full page, first page and pages at random depths through keyset
  cursors): p95 at LARGE cases <= 1.5 x p95 at SMALL cases.

Sizes: BENCH_RELEASES_SMALL (default 10,000) and BENCH_RELEASES_LARGE (default 1,000,000) runs and cases;
BENCH_RELEASES_SAMPLES (default 30) timed samples per measurement. Data is generated with pymongo `insert_many`
(on the stand-in, with its indexes, 1M cases + 1M runs took ~30 min here and clearing them ~18 min: the whole
module runs ~50 min at the default sizes; set BENCH_RELEASES_LARGE lower for a quick look) and the summaries are
built by `summaries_rebuild`, the same code the importer and `manage.py rebuild_summaries` use. For reference, the
cost of computing the same figures with a raw `$group` over all runs is measured once at each size (informational).
"""

from __future__ import annotations

import os
import random
import time
from datetime import timedelta

from benchmarks.table import BenchRow

SMALL = int(os.environ.get("BENCH_RELEASES_SMALL", "10000"))
LARGE = int(os.environ.get("BENCH_RELEASES_LARGE", "1000000"))
SAMPLES = int(os.environ.get("BENCH_RELEASES_SAMPLES", "30"))
RCS = 10
SUITES = ["Checkout", "Accounts", "Search", "Sync", "Notify"]
PREFIXES = ["CHK", "ACC", "SRCH", "SYNC", "NOTE"]
OWNERS = [f"owner{n:02d}@example.com" for n in range(20)]
CATEGORIES = [f"category-{n}" for n in range(10)]
BATCH = 10_000


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]


class Data:
    """Cases and runs generated straight into the collections, grown from one size to the next."""

    def __init__(self) -> None:
        from django.utils import timezone

        from accounts.models import User
        from releases.models import ReleaseCandidate, TestSuite

        self.rng = random.Random(20261125)
        self.now = timezone.now().replace(microsecond=0)
        self.suites = [TestSuite.objects.create(name=name, product="Bench") for name in SUITES]
        self.rcs = [ReleaseCandidate.objects.create(name=f"bench-rc{n + 1}", sequence=(n + 1) * 10) for n in range(RCS)]
        self.cases = 0
        self.runs = 0
        self.case_ids: list = []  # ids of the cases that have runs (one run per RC each)
        self.user = User.objects.create_user(email="bench-releases@example.com", password="bench-pass-1234567")

    def reset(self) -> None:
        """Back to no cases and no runs (the RCs, suites and user stay)."""
        from django.db import connection

        for name in ("testCases", "testRuns", "qualitySummaries"):
            connection.database[name].delete_many({})
        self.cases = 0
        self.runs = 0
        self.case_ids = []

    def case_key(self, number: int) -> str:
        return f"{PREFIXES[number % len(PREFIXES)]}-{number:08d}"

    def grow_cases(self, total: int) -> None:
        from django.db import connection

        collection = connection.database["testCases"]
        while self.cases < total:
            batch = []
            for number in range(self.cases, min(total, self.cases + BATCH)):
                batch.append(
                    {
                        "suite_id": self.suites[number % len(self.suites)].pk,
                        "key": self.case_key(number),
                        "title": f"Bench case {number} checks something specific",
                        "category": CATEGORIES[number % len(CATEGORIES)],
                        "task": f"TASK-{number % 997}",
                        "owner": OWNERS[(number // 7) % len(OWNERS)],
                        "priority": 1 + number % 4,
                        "tags": [],
                        "is_deleted": False,
                        "deleted_at": None,
                        "created_by_id": None,
                        "created_at": self.now,
                        "updated_at": self.now,
                    }
                )
            result = collection.insert_many(batch, ordered=False)
            self.case_ids.extend(result.inserted_ids)
            self.cases += len(batch)

    def grow_runs(self, total: int) -> None:
        """Runs for the first total/RCS cases, one per RC, all latest; about 90 % pass, 6 % fail, 4 % pending."""
        from django.db import connection

        from releases.services import summaries_rebuild

        collection = connection.database["testRuns"]
        per_rc = total // RCS
        done_per_rc = self.runs // RCS
        while done_per_rc < per_rc:
            upper = min(per_rc, done_per_rc + BATCH // RCS)
            batch = []
            for index in range(done_per_rc, upper):
                case_id = self.case_ids[index]
                for rc_index, rc in enumerate(self.rcs):
                    roll = self.rng.random()
                    status = "pass" if roll < 0.9 else ("fail" if roll < 0.96 else "pending")
                    batch.append(
                        {
                            "case_id": case_id,
                            "release_candidate_id": rc.pk,
                            "status": status,
                            "mantis_ids": [],
                            "notes": "",
                            "executed_at": self.now - timedelta(days=RCS - rc_index),
                            "executed_by_id": None,
                            "suite_id": self.suites[index % len(self.suites)].pk,
                            "owner": OWNERS[(index // 7) % len(OWNERS)],
                            "category": CATEGORIES[index % len(CATEGORIES)],
                            "is_latest": True,
                            "created_at": self.now,
                        }
                    )
            collection.insert_many(batch, ordered=False)
            self.runs += len(batch)
            done_per_rc = upper
        summaries_rebuild()


def _time(function, samples: int) -> list[float]:
    function()  # warm-up (connections, template loading, cached key floor)
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return timings


def _metrics_query(data: Data):
    from releases import selectors

    rc = data.rcs[-1]

    def query():
        summary = selectors.quality_summary(release_candidate=rc)
        trend = selectors.pass_rate_trend(limit=RCS)
        assert summary["totals"]["total"] == data.runs // RCS
        assert len(trend) == RCS

    return query


def _raw_group(data: Data) -> float:
    from django.db import connection

    started = time.perf_counter()
    list(
        connection.database["testRuns"].aggregate(
            [
                {"$match": {"is_latest": True}},
                {"$group": {"_id": {"r": "$release_candidate_id", "o": "$owner", "s": "$status"}, "n": {"$sum": 1}}},
            ],
            allowDiskUse=True,
        )
    )
    return time.perf_counter() - started


def _case_list_page(data: Data):
    from django.test import Client

    from releases.selectors import encode_cursor

    client = Client()
    client.force_login(data.user)
    rng = random.Random(7)
    state = {"n": 0}

    def page():
        state["n"] += 1
        if state["n"] % 3 == 1:
            url = "/cases/"
        else:
            # A page at a random depth, as reached by following next-page links.
            from bson import ObjectId

            key = data.case_key(rng.randrange(data.cases))
            url = f"/cases/?sort=key&cursor={encode_cursor(key, ObjectId('0' * 24))}"
        response = client.get(url)
        assert response.status_code == 200, response.status_code
        assert response.content.count(b"<tr>") >= 50

    return page


def run() -> list[BenchRow]:
    from releases import selectors

    data = Data()
    measured: dict[str, dict[str, float]] = {"metrics": {}, "cases": {}, "raw": {}}
    # small, large, then small again: the load on a shared machine drifts, so the small-size baseline is the better
    # (lower, i.e. stricter) of a measurement before and one after the large one.
    for label, size in (("small-before", SMALL), ("large", LARGE), ("small-after", SMALL)):
        started = time.perf_counter()
        if size < data.cases:
            data.reset()
        data.grow_cases(size)
        data.grow_runs(size)
        print(f"  releases: {data.cases} cases, {data.runs} runs ready in {time.perf_counter() - started:.0f}s")
        selectors.key_floor()
        measured["metrics"][label] = _p95(_time(_metrics_query(data), SAMPLES))
        measured["cases"][label] = _p95(_time(_case_list_page(data), SAMPLES))
        if label != "small-after":
            measured["raw"][label] = _raw_group(data)
        print(
            f"  releases {label} ({size}): metrics p95 {measured['metrics'][label] * 1000:.1f} ms, "
            f"case page p95 {measured['cases'][label] * 1000:.1f} ms",
            flush=True,
        )
    for kind in ("metrics", "cases"):
        measured[kind]["small"] = min(measured[kind]["small-before"], measured[kind]["small-after"])
    measured["raw"]["small"] = measured["raw"]["small-before"]
    metrics_ratio = measured["metrics"]["large"] / measured["metrics"]["small"]
    cases_ratio = measured["cases"]["large"] / measured["cases"]["small"]
    raw_ratio = measured["raw"]["large"] / measured["raw"]["small"]
    label_small, label_large = f"{SMALL:,}", f"{LARGE:,}"
    return [
        BenchRow(
            area="releases",
            metric=f"dashboard metrics p95 ratio {label_large}/{label_small} runs",
            value=metrics_ratio,
            target="<= 1.2",
            ok=metrics_ratio <= 1.2,
            detail=(
                f"p95 {measured['metrics']['small-before'] * 1000:.0f}/{measured['metrics']['small-after'] * 1000:.0f}"
                f" ms (small before/after) -> {measured['metrics']['large'] * 1000:.0f} ms ({SAMPLES} samples each)"
            ),
        ),
        BenchRow(
            area="releases",
            metric=f"case list page p95 ratio {label_large}/{label_small} cases",
            value=cases_ratio,
            target="<= 1.5",
            ok=cases_ratio <= 1.5,
            detail=(
                f"p95 {measured['cases']['small-before'] * 1000:.0f}/{measured['cases']['small-after'] * 1000:.0f}"
                f" ms (small before/after) -> {measured['cases']['large'] * 1000:.0f} ms (full page, 50 rows)"
            ),
        ),
        BenchRow(
            area="releases",
            metric=f"reference: raw $group over all runs ratio {label_large}/{label_small}",
            value=raw_ratio,
            target="info",
            ok=True,
            detail=f"{measured['raw']['small']:.2f} s -> {measured['raw']['large']:.2f} s (what summaries avoid)",
        ),
    ]
