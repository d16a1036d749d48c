"""Release tracking at scale: the dashboard's metrics query and the case list page, at a small and a large data
set, measured in the same run (small, large, small again: the baseline is the lower of the two small runs, so a
shared machine's load drift cannot flatter the ratio) (targets from QUALITY.md / issue 3):

- dashboard metrics query (quality summary by RC/owner/category/suite + pass-rate trend, read from the summary
  documents): p95 at LARGE runs <= 1.2 x p95 at SMALL runs;
- case list page (GET /cases/ as a viewer, full page, first page and pages at random depths through keyset
  cursors): p95 at LARGE cases <= 1.5 x p95 at SMALL cases;
- writes (issue 18), each p95 at LARGE <= 1.3 x p95 at SMALL: recording a run (POST /api/v1/tests/{id}/runs with a
  reviewer's JWT, a random case that already has runs), editing a case (PATCH its `task`), a bulk of 1,000 runs
  (`test_run_bulk_record`, the path of the grid's bulk-set and the bulk API), an audit append and sealing it
  (`audit_record` then `audit_seal_batch`, with LARGE audit events in the trail), and an API login. The audit
  trail is filled raw at each size like the runs.

Sizes: BENCH_RELEASES_SMALL (default 10,000) and BENCH_RELEASES_LARGE (default 1,000,000) runs and audit events,
with BENCH_RELEASES_CASES_PER_RUN (default 0.1: 100k cases at 1M runs, as issue 18 sizes it) cases;
BENCH_RELEASES_SAMPLES (default 30) timed samples per measurement. Data is generated with pymongo `insert_many`
(on the stand-in, with its indexes, 100k cases + 1M runs + 1M audit events took 34 min here and dropping them a
moment: the module ran 50 min at the default sizes with BENCH_RELEASES_DESK=0; set BENCH_RELEASES_LARGE lower for a
quick look) and the summaries are built by `summaries_rebuild`, the same code the importer and `manage.py
rebuild_summaries` use. For reference, the cost of computing the same figures with a raw `$group` over all runs is
measured once at each size (informational: 43 s at 1M runs on the stand-in).
"""

from __future__ import annotations

import os
import random
import time
from datetime import timedelta

from bson import Int64

from benchmarks.table import BenchRow

SMALL = int(os.environ.get("BENCH_RELEASES_SMALL", "10000"))
LARGE = int(os.environ.get("BENCH_RELEASES_LARGE", "1000000"))
SAMPLES = int(os.environ.get("BENCH_RELEASES_SAMPLES", "30"))
# Cases per run (issue 18: 1M runs over 100k cases, each case run in every one of the RCS release candidates).
CASES_PER_RUN = float(os.environ.get("BENCH_RELEASES_CASES_PER_RUN", "0.1"))
RCS = 10
SUITES = ["Checkout", "Accounts", "Search", "Sync", "Notify"]
PREFIXES = ["CHK", "ACC", "SRCH", "SYNC", "NOTE"]
OWNERS = [f"owner{n:02d}@example.com" for n in range(20)]
CATEGORIES = [f"category-{n}" for n in range(10)]
BATCH = 10_000
WRITER_PASSWORD = "bench-writer-pass-93421"
BULK_RUNS = 1_000
BULK_SAMPLES = int(os.environ.get("BENCH_RELEASES_BULK_SAMPLES", "8"))


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
        self.writer = User.objects.create_user(
            email="bench-writer@example.com", password=WRITER_PASSWORD, role="reviewer", verified=True
        )
        from allauth.account.models import EmailAddress

        EmailAddress.objects.create(user=self.writer, email=self.writer.email, verified=True, primary=True)
        self.audit_events = 0

    def reset(self) -> None:
        """Back to no cases and no runs (the RCs, suites and user stay)."""
        from django.db import connection

        database = connection.database
        collections = ("testCases", "testRuns", "qualitySummaries", "summaryDeltas", "caseScopeCounts")
        for name in (*collections, "auditEvents", "auditChainHead", "auditInbox"):
            # Dropped and re-created with the same indexes: deleting 2M documents one by one took ~18 min on the
            # stand-in, dropping takes a moment.
            indexes = [spec for spec in database[name].index_information().items() if spec[0] != "_id_"]
            database[name].drop()
            for index_name, spec in indexes:
                options = {key: value for key, value in spec.items() if key not in ("key", "v", "ns")}
                database[name].create_index(spec["key"], **{**options, "name": index_name})
        self.cases = 0
        self.runs = 0
        self.case_ids = []
        self.audit_events = 0

    def grow_audit(self, total: int) -> None:
        """Sealed audit events written raw (their hashes are not a valid chain, which sealing does not check), and
        the chain head after the last, so the sealer carries on from there as on a long-lived instance."""
        from django.db import connection

        from audit.sealing import audit_seal_pending

        audit_seal_pending()  # events the measurements wrote: sealed first, so the raw ones take the next sequences
        database = connection.database
        head = database["auditChainHead"].find_one({"_id": "head"})
        start = int(head["sequence"]) + 1 if head else 1
        stop = start + max(0, total - self.audit_events)
        base = self.now - timedelta(days=30)
        batch = []
        for sequence in range(start, stop):
            batch.append(
                {
                    "sequence": Int64(sequence),
                    "actor_id": f"{sequence % 500:024x}",
                    "actor_email": f"user{sequence % 500}@example.com",
                    "action": ("auth.login", "case.update", "run.record")[sequence % 3],
                    "resource": f"case:{sequence % 9000:024x}",
                    "outcome": "success",
                    "ip": "10.0.0.1",
                    "user_agent": "bench",
                    "request_id": f"{sequence:032x}",
                    "metadata": {},
                    "created_at": base + timedelta(milliseconds=sequence),
                    "previous_hash": f"{sequence - 1:064x}",
                    "hash": f"{sequence:064x}",
                }
            )
            if len(batch) == BATCH:
                database["auditEvents"].insert_many(batch, ordered=False)
                batch = []
        if batch:
            database["auditEvents"].insert_many(batch, ordered=False)
        if stop > start:
            database["auditChainHead"].update_one(
                {"_id": "head"},
                {"$set": {"sequence": Int64(stop - 1), "hash": f"{stop - 1:064x}", "sealed_at": self.now}},
                upsert=True,
            )
        self.audit_events += stop - start

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
                            "case_key": self.case_key(index),
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


def _write_clicks(data: Data) -> dict[str, float]:
    """p95 of each write at the current size (seconds): run record, case edit, bulk of 1,000 runs, audit append
    and seal, API login. Rate limits are off: they are measured in bench_concurrency, not here."""
    import json

    from django.core.cache import cache
    from django.test import Client
    from django.test.utils import override_settings

    from audit.sealing import audit_seal_batch
    from audit.services import audit_record
    from releases import services
    from releases.models import TestCase

    rng = random.Random(len(data.case_ids))
    with override_settings(API_RATE_LIMITS_ENABLED=False, ALLOWED_HOSTS=["*"]):
        cache.clear()
        login_body = json.dumps({"email": data.writer.email, "password": WRITER_PASSWORD})
        anonymous = Client()
        response = anonymous.post("/api/v1/auth/login", login_body, content_type="application/json")
        assert response.status_code == 200, response.content
        client = Client(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
        runs_of = data.case_ids[: data.runs // RCS]  # cases that have runs on every RC
        rc = data.rcs[-1]

        def record():
            case_id = runs_of[rng.randrange(len(runs_of))]
            body = {"rc": rc.name, "status": rng.choice(("pass", "fail"))}
            response = client.post(f"/api/v1/tests/{case_id}/runs", body, content_type="application/json")
            assert response.status_code == 201, response.content

        def edit():
            case_id = runs_of[rng.randrange(len(runs_of))]
            body = {"task": f"TASK-{rng.randrange(10**6)}"}
            response = client.patch(f"/api/v1/tests/{case_id}", body, content_type="application/json")
            assert response.status_code == 200, response.content

        def bulk():
            start = rng.randrange(max(1, len(runs_of) - BULK_RUNS))
            cases = list(TestCase.objects.filter(pk__in=runs_of[start : start + BULK_RUNS]))
            recorded = services.test_run_bulk_record(
                cases=cases, release_candidate=rc, status=rng.choice(("pass", "fail")), actor=data.writer
            )
            assert recorded == len(cases) == min(BULK_RUNS, len(runs_of)), recorded

        def audit():
            audit_record(action="case.update", actor=data.writer, resource=f"case:{rng.randrange(10**6):024x}")
            assert audit_seal_batch() >= 1

        def login():
            cache.clear()  # the failed-login and per-IP counters of earlier samples
            response = Client().post("/api/v1/auth/login", login_body, content_type="application/json")
            assert response.status_code == 200, response.content

        measured = {
            "record": _p95(_time(record, SAMPLES)),
            "edit": _p95(_time(edit, SAMPLES)),
            "bulk": _p95(_time(bulk, BULK_SAMPLES)),
            "audit": _p95(_time(audit, SAMPLES)),
            "login": _p95(_time(login, SAMPLES)),
        }
    return measured


WRITES = {
    "record": "run record (API)",
    "edit": "case edit (API)",
    "bulk": f"bulk of {BULK_RUNS:,} runs",
    "audit": "audit append + seal",
    "login": "API login",
}


# --- the tester's desk (issue 15): filters, the run grid, a grid click and a 1,000-case bulk-set ------------------
# BENCH_RELEASES_DESK_ONLY=1 at the default sizes (1k / 50k cases) ran 23.4 min here (the 50k data: 14 min). Measured
# after runs got their case's key (a dense status reads its latest runs in key order) and a sparse status in priority
# order reads one priority at a time: every row passes; status fail in RC 0.94, pass 1.04, not run 0.79, fail + owner
# + category 1.10, pending + suite by priority 1.67 (the 50k page shows 51 rows, the 1k one 8), suite + owner 1.32,
# no filter 1.45, grid 0.82, click 1.29, bulk of 1,000 1.25 (12-15 s at any size on the stand-in).
DESK_SMALL = int(os.environ.get("BENCH_RELEASES_DESK_SMALL", "1000"))  # cases (each with a run on every RC)
DESK_LARGE = int(os.environ.get("BENCH_RELEASES_DESK_LARGE", "50000"))  # 50k cases: 500k runs
DESK_SAMPLES = int(os.environ.get("BENCH_RELEASES_DESK_SAMPLES", "10"))
DESK_BULK_CASES = 1_000
DESK_FILTERS = {
    "no filter": {},
    "suite + owner": {"suite": 0, "owner": OWNERS[3]},
    "status fail in RC, all suites": {"status": "fail"},
    "status pass in RC, all suites": {"status": "pass"},
    "status not run in RC, all suites": {"status": "not_run"},
    "status fail + owner + category": {"status": "fail", "owner": OWNERS[5], "category": CATEGORIES[2]},
    "status pending + suite, by priority": {"status": "pending", "suite": 1, "sort": "-priority"},
}


def _desk_bulk_suite(data: Data):
    """A suite of exactly DESK_BULK_CASES cases with runs, the selection of every bulk-set sample (at any size)."""
    from releases.models import TestSuite

    suite = TestSuite.objects.filter(name="Bulk", product="Bench").first()
    if suite is not None:
        return suite
    from django.db import connection

    suite = TestSuite.objects.create(name="Bulk", product="Bench")
    cases = [
        {
            "suite_id": suite.pk,
            "key": f"BULK-{number:05d}",
            "title": f"Bulk case {number}",
            "category": CATEGORIES[number % len(CATEGORIES)],
            "task": "",
            "owner": OWNERS[number % len(OWNERS)],
            "priority": 1 + number % 4,
            "tags": [],
            "is_deleted": False,
            "deleted_at": None,
            "created_by_id": None,
            "created_at": data.now,
            "updated_at": data.now,
        }
        for number in range(DESK_BULK_CASES)
    ]
    connection.database["testCases"].insert_many(cases, ordered=False)
    return suite


def _desk_measure(data: Data) -> dict[str, float]:
    """p95 (seconds) of the case list under each filter combination, the run grid, a grid click and a 1,000-case
    bulk-set through the pages, as a reviewer, on the newest RC."""
    from django.core.cache import cache
    from django.test import Client
    from django.test.utils import override_settings

    rng = random.Random(data.cases)
    rc = data.rcs[-1]
    bulk_suite = _desk_bulk_suite(data)
    client = Client()
    client.force_login(data.writer)
    measured: dict[str, float] = {}
    with override_settings(API_RATE_LIMITS_ENABLED=False):
        cache.clear()
        for name, spec in DESK_FILTERS.items():
            query = {"rc": rc.name, **spec}
            if "suite" in query:
                query["suite"] = str(data.suites[query["suite"]].pk)

            def page(query=query):
                response = client.get("/cases/", query)
                assert response.status_code == 200, (query, response.status_code)

            measured[f"cases: {name}"] = _p95(_time(page, DESK_SAMPLES))

        def grid():
            response = client.get("/runs/grid/", {"rc": rc.name})
            assert response.status_code == 200 and response.content.count(b'class="grid-row"') >= 50

        def click():
            case_id = data.case_ids[rng.randrange(len(data.case_ids))]
            body = {"case": str(case_id), "release_candidate": str(rc.pk), "status": rng.choice(("pass", "fail"))}
            response = client.post("/runs/grid/set/", body, headers={"HX-Request": "true"})
            assert response.status_code == 200, response.status_code

        def bulk():
            body = {"release_candidate": str(rc.pk), "status": rng.choice(("pass", "fail"))}
            response = client.post(
                f"/runs/grid/bulk/?rc={rc.name}&suite={bulk_suite.pk}", body, headers={"HX-Request": "true"}
            )
            assert response.status_code == 200 and b"for 1000 cases" in response.content, response.content[:300]

        measured["run grid"] = _p95(_time(grid, DESK_SAMPLES))
        measured["grid click"] = _p95(_time(click, DESK_SAMPLES))
        measured["bulk-set of 1,000 cases"] = _p95(_time(bulk, max(3, DESK_SAMPLES // 3)))
    return measured


def desk_rows(data: Data | None = None) -> list[BenchRow]:
    """The tester's desk rows: each path's p95 with DESK_LARGE cases (and RCS runs each) <= 2 x with DESK_SMALL
    cases, measured small, large, small again (the baseline is the lower small figure)."""
    data = data or Data()
    measured: dict[str, dict[str, float]] = {}
    for label, size in (("small-before", DESK_SMALL), ("large", DESK_LARGE), ("small-after", DESK_SMALL)):
        started = time.perf_counter()
        if size < data.cases:
            data.reset()
            from releases.models import TestSuite

            TestSuite.objects.filter(name="Bulk").delete()
        data.grow_cases(size)
        data.grow_runs(size * RCS)
        print(f"  desk: {data.cases} cases, {data.runs} runs ready in {time.perf_counter() - started:.0f}s", flush=True)
        for path, value in _desk_measure(data).items():
            measured.setdefault(path, {})[label] = value
            print(f"  desk {label}: {path} p95 {value * 1000:.0f} ms", flush=True)
    rows = []
    for path, values in measured.items():
        small = min(values["small-before"], values["small-after"])
        ratio = values["large"] / small
        rows.append(
            BenchRow(
                area="releases",
                metric=f"desk: {path} p95 ratio {DESK_LARGE:,}/{DESK_SMALL:,} cases",
                value=ratio,
                target="<= 2.0",
                ok=ratio <= 2.0,
                detail=(
                    f"p95 {values['small-before'] * 1000:.0f}/{values['small-after'] * 1000:.0f} ms (small before/"
                    f"after) -> {values['large'] * 1000:.0f} ms with {DESK_LARGE * RCS:,} runs"
                ),
            )
        )
    return rows


def run() -> list[BenchRow]:
    from releases import selectors

    if os.environ.get("BENCH_RELEASES_DESK_ONLY"):  # a quick look at the issue-15 rows alone
        return desk_rows()
    data = Data()
    measured: dict[str, dict[str, float]] = {"metrics": {}, "cases": {}, "raw": {}, **{kind: {} for kind in WRITES}}
    audit_events: dict[str, int] = {}
    # small, large, then small again: the load on a shared machine drifts, so the small-size baseline is the better
    # (lower, i.e. stricter) of a measurement before and one after the large one.
    for label, size in (("small-before", SMALL), ("large", LARGE), ("small-after", SMALL)):
        started = time.perf_counter()
        if size < data.cases:
            data.reset()
        data.grow_cases(max(1, round(size * CASES_PER_RUN)))
        data.grow_runs(size)
        data.grow_audit(size)
        audit_events[label] = data.audit_events
        print(
            f"  releases: {data.cases} cases, {data.runs} runs, {data.audit_events} audit events ready in "
            f"{time.perf_counter() - started:.0f}s"
        )
        selectors.key_floor()
        measured["metrics"][label] = _p95(_time(_metrics_query(data), SAMPLES))
        measured["cases"][label] = _p95(_time(_case_list_page(data), SAMPLES))
        for kind, value in _write_clicks(data).items():
            measured[kind][label] = value
            print(f"  releases {label} ({size}): {WRITES[kind]} p95 {value * 1000:.1f} ms", flush=True)
        if label != "small-after":
            measured["raw"][label] = _raw_group(data)
        print(
            f"  releases {label} ({size}): metrics p95 {measured['metrics'][label] * 1000:.1f} ms, "
            f"case page p95 {measured['cases'][label] * 1000:.1f} ms",
            flush=True,
        )
    for kind in ("metrics", "cases", *WRITES):
        measured[kind]["small"] = min(measured[kind]["small-before"], measured[kind]["small-after"])
        print(
            f"  releases {kind}: p95 {measured[kind]['small-before'] * 1000:.1f} / {measured[kind]['large'] * 1000:.1f}"
            f" / {measured[kind]['small-after'] * 1000:.1f} ms (small / large / small)",
            flush=True,
        )
    measured["raw"]["small"] = measured["raw"]["small-before"]
    data.reset()
    # BENCH_RELEASES_DESK=0 leaves the issue-15 desk rows (another 50k cases / 500k runs) for a run of their own.
    desk = desk_rows(data) if os.environ.get("BENCH_RELEASES_DESK", "1") != "0" else []
    metrics_ratio = measured["metrics"]["large"] / measured["metrics"]["small"]
    cases_ratio = measured["cases"]["large"] / measured["cases"]["small"]
    raw_ratio = measured["raw"]["large"] / measured["raw"]["small"]
    label_small, label_large = f"{SMALL:,}", f"{LARGE:,}"
    cases_small, cases_large = f"{round(SMALL * CASES_PER_RUN):,}", f"{round(LARGE * CASES_PER_RUN):,}"
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
            metric=f"case list page p95 ratio {cases_large}/{cases_small} cases",
            value=cases_ratio,
            target="<= 1.5",
            ok=cases_ratio <= 1.5,
            detail=(
                f"p95 {measured['cases']['small-before'] * 1000:.0f}/{measured['cases']['small-after'] * 1000:.0f}"
                f" ms (small before/after) -> {measured['cases']['large'] * 1000:.0f} ms (full page, 50 rows)"
            ),
        ),
        *(
            BenchRow(
                area="releases",
                metric=f"{title} p95 ratio {label_large}/{label_small} runs",
                value=measured[kind]["large"] / measured[kind]["small"],
                target="<= 1.3",
                ok=measured[kind]["large"] / measured[kind]["small"] <= 1.3,
                detail=(
                    f"p95 {measured[kind]['small-before'] * 1000:.0f}/{measured[kind]['small-after'] * 1000:.0f} ms "
                    f"(small before/after) -> {measured[kind]['large'] * 1000:.0f} ms; "
                    f"{audit_events['small-before']:,} / {audit_events['large']:,} audit events"
                ),
            )
            for kind, title in WRITES.items()
        ),
        BenchRow(
            area="releases",
            metric=f"reference: raw $group over all runs ratio {label_large}/{label_small}",
            value=raw_ratio,
            target="info",
            ok=True,
            detail=f"{measured['raw']['small']:.2f} s -> {measured['raw']['large']:.2f} s (what summaries avoid)",
        ),
        *desk,
    ]
