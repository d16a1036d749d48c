"""Release tracking data: suites, cases, release candidates and runs (blueprint collections).

Collection names follow the blueprint (`testSuites`, `testCases`, `testRuns`). A run copies its case's owner,
category and suite so the blueprint's indexes `(releaseCandidate, status)`, `(owner, releaseCandidate)` and
`(category, releaseCandidate)` answer metric queries without joins.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_mongodb_backend.fields import ArrayField


class TestSuite(models.Model):
    __test__ = False  # not a pytest test class
    name = models.CharField(max_length=200)
    product = models.CharField(max_length=120, db_index=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "testSuites"
        ordering = ["product", "name"]
        constraints = [models.UniqueConstraint(fields=["product", "name"], name="suite_unique_product_name")]

    def __str__(self) -> str:
        return f"{self.product} / {self.name}"


class ReleaseCandidate(models.Model):
    """An RC of a product. `sequence` orders RCs, so "the previous RC" is defined; trends, deltas and the default
    RC are taken among the RCs of one product. `product` is empty only for an RC that migration 0006 could not
    assign (runs of several products, or none): the admin lists those until someone picks the product."""

    class State(models.TextChoices):
        PLANNED = "planned", "Planned"
        TESTING = "testing", "Testing"
        RELEASED = "released", "Released"
        REJECTED = "rejected", "Rejected"

    name = models.CharField(max_length=64, unique=True)
    product = models.CharField(max_length=120, blank=True, default="", db_index=True)
    sequence = models.PositiveIntegerField(db_index=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.TESTING)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "releaseCandidates"
        ordering = ["sequence"]

    def __str__(self) -> str:
        return self.name


class Priority(models.IntegerChoices):
    P1 = 1, "P1 (critical)"
    P2 = 2, "P2 (high)"
    P3 = 3, "P3 (medium)"
    P4 = 4, "P4 (low)"


class TestCase(models.Model):
    __test__ = False  # not a pytest test class
    """A test case. Natural key: (suite, key), used by CSV import to update instead of duplicating."""

    # No single-field indexes on suite, category, owner and is_deleted: each is the first key of a compound index
    # below (or of the (suite, key) constraint), which serves every query on it alone; one more index would only
    # cost every write (an import maintains each index of every case it inserts).
    suite = models.ForeignKey(TestSuite, on_delete=models.PROTECT, related_name="cases", db_index=False)
    key = models.CharField(max_length=64, help_text="Identifier of the case within its suite, e.g. LOGIN-001.")
    title = models.CharField(max_length=300)
    category = models.CharField(max_length=100)
    task = models.CharField(max_length=200, blank=True, help_text="Task / ticket this case covers.")
    owner = models.CharField(max_length=150)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.P3)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    is_deleted = models.BooleanField(default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Bumped by every transaction that records runs of the case or changes its visibility (releases.store), so
    # MongoDB serialises writers of the same case; writers of different cases share no document.
    write_version = models.PositiveBigIntegerField(default=0, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "testCases"
        ordering = ["suite_id", "key"]
        constraints = [models.UniqueConstraint(fields=["suite", "key"], name="case_unique_suite_key")]
        # Keyset pages of the case list: (filter, sort field, id). The (suite, key) constraint and the
        # (equality filters, key, id) indexes let a filtered page in key order read its own cases' entries only
        # (selectors.CASE_KEY_PINS), not those of every live case.
        indexes = [
            models.Index(fields=["is_deleted", "key", "id"], name="case_live_key_id"),
            models.Index(fields=["is_deleted", "priority", "id"], name="case_live_priority_id"),
            models.Index(fields=["is_deleted", "updated_at", "id"], name="case_live_updated_id"),
            models.Index(fields=["suite", "owner", "key", "id"], name="case_suite_owner_key_id"),
            models.Index(fields=["suite", "category", "key", "id"], name="case_suite_category_key_id"),
            models.Index(fields=["owner", "category", "key", "id"], name="case_owner_category_key_id"),
            models.Index(fields=["owner", "key", "id"], name="case_owner_key_id"),
            models.Index(fields=["category", "key", "id"], name="case_category_key_id"),
        ]

    def __str__(self) -> str:
        return f"{self.key} {self.title}"


class RunStatus(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    PENDING = "pending", "Pending"


class TestRun(models.Model):
    __test__ = False  # not a pytest test class
    """One execution of a case for an RC. The newest run of a (case, RC) pair has `is_latest` set: that status
    is the case's status for the RC."""

    # Case and RC have no single-field indexes: (case, RC, latest) and the (RC, ...) indexes below start with them.
    case = models.ForeignKey(TestCase, on_delete=models.PROTECT, related_name="runs", db_index=False)
    release_candidate = models.ForeignKey(
        ReleaseCandidate, on_delete=models.PROTECT, related_name="runs", db_index=False
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices)
    mantis_ids = ArrayField(models.PositiveIntegerField(), default=list, blank=True)
    notes = models.TextField(blank=True)
    executed_at = models.DateTimeField(default=timezone.now)
    executed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Copied from the case when the run is recorded (denormalised for the blueprint's indexes).
    suite = models.ForeignKey(TestSuite, on_delete=models.PROTECT, related_name="+")
    owner = models.CharField(max_length=150)
    category = models.CharField(max_length=100)
    # The case's key, kept equal to it (a key edit rewrites its runs' copies in the same transaction): a status page
    # in key order reads the latest runs with that status in key order, an index range instead of a case-by-case
    # examination.
    case_key = models.CharField(max_length=64, blank=True, default="")
    is_latest = models.BooleanField(default=True)
    # Automated results (JUnit import, bulk API): the failure's normalised signature (releases/signatures.py) and
    # its message with the first FAILURE_TEXT_MAX_BYTES of the report's text; the duration; a pass on rerun.
    failure_signature = models.CharField(max_length=300, blank=True, default="")
    failure_message = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    flaky = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "testRuns"
        ordering = ["-executed_at"]
        indexes = [
            models.Index(fields=["owner", "release_candidate"], name="run_owner_rc"),
            models.Index(fields=["category", "release_candidate"], name="run_category_rc"),
            models.Index(fields=["case", "release_candidate", "is_latest"], name="run_case_rc_latest"),
            models.Index(fields=["release_candidate", "suite", "is_latest"], name="run_rc_suite_latest"),
            # The latest runs of a page's cases in one RC: equality on (RC, flag) and `$in` on the cases, one index
            # entry per case (the (case, RC, flag) index narrows an `$in` of cases by the case alone on the
            # stand-in: every RC's runs of each case).
            models.Index(fields=["release_candidate", "is_latest", "case"], name="run_rc_latest_case"),
            # The cases with a status in an RC (optionally of one suite): the latest runs with that status only.
            models.Index(
                fields=["release_candidate", "status", "is_latest", "suite"], name="run_rc_status_latest_suite"
            ),
            # The same in the cases' key order (also every query on RC and status alone).
            models.Index(
                fields=["release_candidate", "status", "is_latest", "case_key", "case"], name="run_rc_status_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.case_id} @ {self.release_candidate_id}: {self.status}"

    def save(self, *args, **kwargs):
        # The product writes runs through releases/store.py, which copies the key; this covers ORM-made runs.
        if not self.case_key and self.case_id is not None:
            self.case_key = self.case.key
        super().save(*args, **kwargs)


class KnownIssue(models.Model):
    """A failure signature of a product linked to a Mantis issue, once: later failures with that signature show
    the link (a "known issue")."""

    product = models.CharField(max_length=120)
    signature = models.CharField(max_length=300)
    mantis_id = models.PositiveIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "knownIssues"
        ordering = ["product", "signature"]
        constraints = [
            models.UniqueConstraint(fields=["product", "signature"], name="knownissue_unique_product_signature")
        ]

    def __str__(self) -> str:
        return f"{self.product}: {self.signature[:60]} -> #{self.mantis_id}"


class SummaryDimension(models.TextChoices):
    ALL = "all", "All cases of the suite"
    OWNER = "owner", "Owner"
    CATEGORY = "category", "Category"


class SettledSummaryManager(models.Manager):
    """Applies pending summary deltas (releases.store) before any queryset, so the admin, exports and tests read
    figures that include every run recorded so far."""

    def get_queryset(self):
        from releases import store

        store.summaries_settle()
        return super().get_queryset()


class QualitySummary(models.Model):
    """Counts of the latest run statuses of one RC, per suite and per owner / category within the suite.

    Kept by the applier of `releases.store` (summary deltas written with each run, applied in batches) and
    rebuilt from the raw runs by `summaries_rebuild` / `manage.py rebuild_summaries`, so dashboards never scan the
    runs. A row with dimension "all" and an empty key holds the suite's totals for the RC. Runs of soft-deleted
    cases are not counted.
    """

    release_candidate = models.ForeignKey(ReleaseCandidate, on_delete=models.CASCADE, related_name="+")
    suite = models.ForeignKey(TestSuite, on_delete=models.CASCADE, related_name="+")
    dimension = models.CharField(max_length=16, choices=SummaryDimension.choices)
    key = models.CharField(max_length=150, blank=True)
    pass_count = models.IntegerField(default=0)
    fail_count = models.IntegerField(default=0)
    pending_count = models.IntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = SettledSummaryManager()

    class Meta:
        db_table = "qualitySummaries"
        verbose_name_plural = "quality summaries"
        constraints = [
            models.UniqueConstraint(
                fields=["release_candidate", "suite", "dimension", "key"], name="summary_unique_rc_suite_dim_key"
            )
        ]
        indexes = [models.Index(fields=["release_candidate", "dimension"], name="summary_rc_dimension")]

    def __str__(self) -> str:
        return f"{self.release_candidate_id}/{self.suite_id}/{self.dimension}:{self.key}"


class CaseScopeCount(models.Model):
    """How many live (not soft-deleted) cases a suite has, in total (dimension "all", empty key) and per owner and
    category: the "in scope" side of coverage. Kept by the applier of `releases.store` from the case-count entries
    that case create, edit, delete and restore write into the outbox, and rebuilt from the cases by
    `summaries_rebuild`, so coverage figures never scan the cases."""

    suite = models.ForeignKey(TestSuite, on_delete=models.CASCADE, related_name="+")
    dimension = models.CharField(max_length=16, choices=SummaryDimension.choices)
    key = models.CharField(max_length=150, blank=True)
    case_count = models.IntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = SettledSummaryManager()

    class Meta:
        db_table = "caseScopeCounts"
        constraints = [
            models.UniqueConstraint(fields=["suite", "dimension", "key"], name="casecount_unique_suite_dim_key")
        ]

    def __str__(self) -> str:
        return f"{self.suite_id}/{self.dimension}:{self.key} = {self.case_count}"
