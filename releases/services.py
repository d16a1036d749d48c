"""Writes of the releases app. Each service checks the actor's role, validates, writes, keeps the metric summary
documents current and records exactly one audit event.

Summary documents (`QualitySummary`, collection `qualitySummaries`) hold, per RC and suite, the counts of the latest
run statuses in total ("all") and per owner / category. A run that becomes the latest of its (case, RC) pair moves
one count from the previous latest status to the new one; deleting a case removes its latest runs from the counts,
restoring it adds them back. `summaries_rebuild` recomputes the documents from the raw runs.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, IntegrityError, connection
from django.http import HttpRequest
from django.utils import timezone
from django_mongodb_backend import transaction
from pymongo.errors import PyMongoError

from accounts.permissions import require_role
from audit.models import AuditEvent
from audit.services import audit_record
from releases.models import (
    ReleaseCandidate,
    RunStatus,
    SummaryDimension,
    TestCase,
    TestRun,
    TestSuite,
)
from report_platform.errors import Conflict, Forbidden, NotAuthenticated, ValidationFailed

MANTIS_ID_MAX = 10**9
MANTIS_IDS_PER_RUN_MAX = 20
NOTES_MAX_LENGTH = 5000
TAGS_MAX = 20
BULK_RECORD_MAX = 1000
_TRANSACTION_ATTEMPTS = 5
_KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
CASE_EDITABLE_FIELDS = ("suite", "key", "title", "category", "task", "owner", "priority", "tags")
SUMMARIES = "qualitySummaries"
RUNS = "testRuns"


# --- helpers -----------------------------------------------------------------------------------------------------


def _require(actor, role: str, *, action: str, resource: str, request: HttpRequest | None) -> None:
    """Role check that leaves a `denied` audit event behind when a signed-in user lacks the role."""
    try:
        require_role(actor, role)
    except Forbidden:
        audit_record(action=action, actor=actor, resource=resource, outcome=AuditEvent.Outcome.DENIED, request=request)
        raise
    except NotAuthenticated:
        raise


def _fields_from(error: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(error, "error_dict"):
        return {
            field: [str(message) for e in errors for message in e.messages]
            for field, errors in error.error_dict.items()
        }
    return {"__all__": [str(message) for message in error.messages]}


def _validate(instance, *, exclude: Iterable[str] = ()) -> None:
    """Model validation (lengths, choices, unique constraints) as one coded `ValidationFailed`."""
    try:
        instance.full_clean(exclude=list(exclude))
    except DjangoValidationError as error:
        fields = _fields_from(error)
        if any("already exists" in message for messages in fields.values() for message in messages):
            raise Conflict("An object with these identifying fields already exists.", code="duplicate", fields=fields)
        raise ValidationFailed(fields=fields)


def _to_millis(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _clean_mantis_ids(mantis_ids: Iterable[Any]) -> list[int]:
    cleaned: list[int] = []
    for value in mantis_ids or ():
        text = str(value).strip().lstrip("#")
        if isinstance(value, bool) or not text.isdigit() or not 0 < int(text) < MANTIS_ID_MAX:
            raise ValidationFailed(
                "Mantis ids are positive whole numbers.",
                code="invalid_mantis_id",
                fields={"mantis_ids": [f"{str(value)[:30]!r} is not a Mantis issue id."]},
            )
        if int(text) not in cleaned:
            cleaned.append(int(text))
    if len(cleaned) > MANTIS_IDS_PER_RUN_MAX:
        raise ValidationFailed(
            code="invalid_mantis_id", fields={"mantis_ids": [f"At most {MANTIS_IDS_PER_RUN_MAX} ids per run."]}
        )
    return cleaned


def _clean_tags(tags: Iterable[Any]) -> list[str]:
    cleaned: list[str] = []
    for tag in tags or ():
        text = str(tag).strip()
        if not text:
            continue
        if len(text) > 50:
            raise ValidationFailed(code="invalid_tag", fields={"tags": ["A tag has at most 50 characters."]})
        if text not in cleaned:
            cleaned.append(text)
    if len(cleaned) > TAGS_MAX:
        raise ValidationFailed(code="invalid_tag", fields={"tags": [f"At most {TAGS_MAX} tags."]})
    return cleaned


def _check_key(key: str) -> None:
    if not _KEY_PATTERN.match(key or ""):
        raise ValidationFailed(
            code="invalid_key",
            fields={"key": ["Use letters, digits and . _ : / - (no spaces), starting with a letter or digit."]},
        )


def _status_counts(status: str, sign: int) -> dict[str, int]:
    return {
        "pass_count": sign if status == RunStatus.PASS else 0,
        "fail_count": sign if status == RunStatus.FAIL else 0,
        "pending_count": sign if status == RunStatus.PENDING else 0,
    }


def _summary_adjust(*, runs: Iterable[dict[str, Any]], sign: int) -> None:
    """Add (`sign=1`) or remove (`sign=-1`) runs from the summary documents. Each run is a dict with
    release_candidate_id, suite_id, owner, category and status. Uses the open MongoDB transaction, if any."""
    increments: dict[tuple, dict[str, int]] = defaultdict(
        lambda: {"pass_count": 0, "fail_count": 0, "pending_count": 0}
    )
    for run in runs:
        counts = _status_counts(run["status"], sign)
        for dimension, key in (
            (SummaryDimension.ALL, ""),
            (SummaryDimension.OWNER, run["owner"]),
            (SummaryDimension.CATEGORY, run["category"]),
        ):
            target = increments[(run["release_candidate_id"], run["suite_id"], str(dimension), key)]
            for name, value in counts.items():
                target[name] += value
    if not increments:
        return
    collection = connection.database[SUMMARIES]
    now = timezone.now()
    for (rc_id, suite_id, dimension, key), counts in increments.items():
        collection.update_one(
            {"release_candidate_id": rc_id, "suite_id": suite_id, "dimension": dimension, "key": key},
            {"$inc": counts, "$set": {"updated_at": _to_millis(now)}},
            upsert=True,
            session=connection.session,
        )


def _run_fields(run: TestRun) -> dict[str, Any]:
    return {
        "release_candidate_id": run.release_candidate_id,
        "suite_id": run.suite_id,
        "owner": run.owner,
        "category": run.category,
        "status": run.status,
    }


# --- suites ------------------------------------------------------------------------------------------------------


def suite_create(
    *, name: str, product: str, description: str = "", actor, request: HttpRequest | None = None
) -> TestSuite:
    """Create a test suite. Raises `ValidationFailed` for bad fields, `Conflict` (code "duplicate") when the product
    already has a suite of that name."""
    _require(actor, "reviewer", action="suite.create", resource="suite:new", request=request)
    suite = TestSuite(
        name=(name or "").strip(), product=(product or "").strip(), description=description or "", created_by=actor
    )
    _validate(suite, exclude=["created_by"])
    suite.save()
    audit_record(
        action="suite.create",
        actor=actor,
        resource=f"suite:{suite.pk}",
        request=request,
        metadata={"name": suite.name, "product": suite.product},
    )
    return suite


def suite_update(
    *,
    suite: TestSuite,
    actor,
    request: HttpRequest | None = None,
    name: str | None = None,
    product: str | None = None,
    description: str | None = None,
) -> TestSuite:
    """Change a suite's name, product or description (only the arguments given)."""
    _require(actor, "reviewer", action="suite.update", resource=f"suite:{suite.pk}", request=request)
    before = {"name": suite.name, "product": suite.product, "description": suite.description}
    candidate = TestSuite.objects.get(pk=suite.pk)
    if name is not None:
        candidate.name = name.strip()
    if product is not None:
        candidate.product = product.strip()
    if description is not None:
        candidate.description = description
    _validate(candidate, exclude=["created_by"])
    candidate.save()
    changed = [field for field, value in before.items() if getattr(candidate, field) != value]
    audit_record(
        action="suite.update",
        actor=actor,
        resource=f"suite:{suite.pk}",
        request=request,
        metadata={"changed": changed},
    )
    return candidate


# --- release candidates ------------------------------------------------------------------------------------------


def release_candidate_create(
    *,
    name: str,
    sequence: int | None = None,
    state: str = ReleaseCandidate.State.TESTING,
    actor,
    request: HttpRequest | None = None,
) -> ReleaseCandidate:
    """Create an RC. Without `sequence` it goes after the newest RC (sequence + 10), so "previous RC" is defined."""
    _require(actor, "reviewer", action="rc.create", resource="rc:new", request=request)
    if sequence is None:
        last = ReleaseCandidate.objects.order_by("-sequence").first()
        sequence = (last.sequence + 10) if last else 10
    if ReleaseCandidate.objects.filter(sequence=sequence).exists():
        raise Conflict(
            "Another RC already has this position.",
            code="duplicate_sequence",
            fields={"sequence": ["Another RC already has this position."]},
        )
    release_candidate = ReleaseCandidate(name=(name or "").strip(), sequence=sequence, state=state)
    _validate(release_candidate)
    release_candidate.save()
    audit_record(
        action="rc.create",
        actor=actor,
        resource=f"rc:{release_candidate.pk}",
        request=request,
        metadata={"name": release_candidate.name, "sequence": sequence, "state": state},
    )
    return release_candidate


def release_candidate_update(
    *,
    release_candidate: ReleaseCandidate,
    actor,
    request: HttpRequest | None = None,
    name: str | None = None,
    state: str | None = None,
) -> ReleaseCandidate:
    """Rename an RC or change its state (planned / testing / released / rejected)."""
    _require(actor, "reviewer", action="rc.update", resource=f"rc:{release_candidate.pk}", request=request)
    candidate = ReleaseCandidate.objects.get(pk=release_candidate.pk)
    before = {"name": candidate.name, "state": candidate.state}
    if name is not None:
        candidate.name = name.strip()
    if state is not None:
        candidate.state = state
    _validate(candidate)
    candidate.save()
    audit_record(
        action="rc.update",
        actor=actor,
        resource=f"rc:{candidate.pk}",
        request=request,
        metadata={"before": before, "after": {"name": candidate.name, "state": candidate.state}},
    )
    return candidate


def release_candidate_move(
    *, release_candidate: ReleaseCandidate, direction: str, actor, request: HttpRequest | None = None
) -> ReleaseCandidate:
    """Swap an RC's position with its neighbour (`direction` "up" = earlier, "down" = later). Moving the first RC
    up or the last one down changes nothing and raises `Conflict` (code "cannot_move")."""
    _require(actor, "reviewer", action="rc.move", resource=f"rc:{release_candidate.pk}", request=request)
    if direction not in ("up", "down"):
        raise ValidationFailed(code="invalid_direction", fields={"direction": ["Use 'up' or 'down'."]})
    current = ReleaseCandidate.objects.get(pk=release_candidate.pk)
    if direction == "up":
        neighbour = ReleaseCandidate.objects.filter(sequence__lt=current.sequence).order_by("-sequence").first()
    else:
        neighbour = ReleaseCandidate.objects.filter(sequence__gt=current.sequence).order_by("sequence").first()
    if neighbour is None:
        raise Conflict("This RC is already at that end of the order.", code="cannot_move")
    with transaction.atomic():
        ReleaseCandidate.objects.filter(pk=current.pk).update(sequence=neighbour.sequence)
        ReleaseCandidate.objects.filter(pk=neighbour.pk).update(sequence=current.sequence)
    audit_record(
        action="rc.move",
        actor=actor,
        resource=f"rc:{current.pk}",
        request=request,
        metadata={"direction": direction, "swapped_with": str(neighbour.pk)},
    )
    current.sequence = neighbour.sequence
    return current


# --- cases -------------------------------------------------------------------------------------------------------


def case_create(
    *,
    suite: TestSuite,
    key: str,
    title: str,
    category: str,
    owner: str,
    task: str = "",
    priority: int = 3,
    tags: Iterable[str] = (),
    actor,
    request: HttpRequest | None = None,
) -> TestCase:
    """Create a test case in `suite`. `key` is unique within the suite (`Conflict` code "duplicate" otherwise)."""
    _require(actor, "reviewer", action="case.create", resource="case:new", request=request)
    key = (key or "").strip()
    _check_key(key)
    case = TestCase(
        suite=suite,
        key=key,
        title=(title or "").strip(),
        category=(category or "").strip(),
        owner=(owner or "").strip(),
        task=(task or "").strip(),
        priority=priority,
        tags=_clean_tags(tags),
        created_by=actor,
    )
    _validate(case, exclude=["created_by"])
    try:
        case.save()
    except IntegrityError:
        raise Conflict("A case with this key already exists in the suite.", code="duplicate")
    audit_record(
        action="case.create",
        actor=actor,
        resource=f"case:{case.pk}",
        request=request,
        metadata={"suite": str(suite.pk), "key": case.key},
    )
    return case


def case_update(*, case: TestCase, actor, request: HttpRequest | None = None, **changes: Any) -> TestCase:
    """Change some of a case's fields (`suite`, `key`, `title`, `category`, `task`, `owner`, `priority`, `tags`).
    Any other name (e.g. `is_deleted`, `created_by`) is rejected with `ValidationFailed` (code "unknown_field").
    Runs already recorded keep the owner/category/suite copied at record time; new runs use the new values."""
    _require(actor, "reviewer", action="case.update", resource=f"case:{case.pk}", request=request)
    unknown = sorted(set(changes) - set(CASE_EDITABLE_FIELDS))
    if unknown:
        raise ValidationFailed(
            "These fields cannot be changed here.",
            code="unknown_field",
            fields={name: ["This field cannot be changed."] for name in unknown},
        )
    candidate = TestCase.objects.get(pk=case.pk)
    if candidate.is_deleted:
        raise Conflict("Deleted cases cannot be edited; restore it first.", code="case_deleted")
    before = {name: getattr(candidate, name if name != "suite" else "suite_id") for name in changes}
    for name, value in changes.items():
        if name == "tags":
            value = _clean_tags(value)
        elif name == "key":
            value = (value or "").strip()
            _check_key(value)
        elif isinstance(value, str):
            value = value.strip()
        setattr(candidate, name, value)
    _validate(candidate, exclude=["created_by"])
    try:
        candidate.save()
    except IntegrityError:
        raise Conflict("A case with this key already exists in the suite.", code="duplicate")
    changed = [
        name for name, value in before.items() if getattr(candidate, name if name != "suite" else "suite_id") != value
    ]
    audit_record(
        action="case.update", actor=actor, resource=f"case:{case.pk}", request=request, metadata={"changed": changed}
    )
    return candidate


def _latest_runs_of(case: TestCase) -> list[dict[str, Any]]:
    return [
        _run_fields(run)
        for run in TestRun.objects.filter(case=case, is_latest=True).only(
            "release_candidate_id", "suite_id", "owner", "category", "status"
        )
    ]


def case_delete(*, case: TestCase, actor, request: HttpRequest | None = None) -> TestCase:
    """Soft-delete a case (admin only): hidden from lists and removed from the metrics; its runs are kept."""
    _require(actor, "admin", action="case.delete", resource=f"case:{case.pk}", request=request)
    with transaction.atomic():
        claimed = TestCase.objects.filter(pk=case.pk, is_deleted=False).update(
            is_deleted=True, deleted_at=_to_millis(timezone.now())
        )
        if claimed != 1:
            raise Conflict("The case is already deleted.", code="already_deleted")
        _summary_adjust(runs=_latest_runs_of(case), sign=-1)
    audit_record(action="case.delete", actor=actor, resource=f"case:{case.pk}", request=request)
    return TestCase.objects.get(pk=case.pk)


def case_restore(*, case: TestCase, actor, request: HttpRequest | None = None) -> TestCase:
    """Restore a soft-deleted case (admin only): it reappears in lists and its latest runs count again."""
    _require(actor, "admin", action="case.restore", resource=f"case:{case.pk}", request=request)
    with transaction.atomic():
        claimed = TestCase.objects.filter(pk=case.pk, is_deleted=True).update(is_deleted=False, deleted_at=None)
        if claimed != 1:
            raise Conflict("The case is not deleted.", code="not_deleted")
        _summary_adjust(runs=_latest_runs_of(case), sign=1)
    audit_record(action="case.restore", actor=actor, resource=f"case:{case.pk}", request=request)
    return TestCase.objects.get(pk=case.pk)


# --- runs --------------------------------------------------------------------------------------------------------


def _validate_run_input(*, status: str, mantis_ids: Iterable[Any], notes: str, executed_at: datetime | None):
    if status not in RunStatus.values:
        raise ValidationFailed(
            code="invalid_status", fields={"status": [f"Use one of: {', '.join(RunStatus.values)}."]}
        )
    cleaned_ids = _clean_mantis_ids(mantis_ids)
    notes = notes or ""
    if len(notes) > NOTES_MAX_LENGTH:
        raise ValidationFailed(code="notes_too_long", fields={"notes": [f"At most {NOTES_MAX_LENGTH} characters."]})
    now = timezone.now()
    if executed_at is None:
        executed_at = now
    if timezone.is_naive(executed_at):
        raise ValidationFailed(code="invalid_executed_at", fields={"executed_at": ["Give a time zone."]})
    if executed_at > now + timedelta(minutes=5):
        raise ValidationFailed(code="invalid_executed_at", fields={"executed_at": ["This time is in the future."]})
    return cleaned_ids, notes, _to_millis(executed_at)


def _record_one(
    *,
    case: TestCase,
    release_candidate: ReleaseCandidate,
    status: str,
    mantis_ids: list[int],
    notes: str,
    executed_at: datetime,
    actor,
) -> TestRun:
    run = TestRun(
        case=case,
        release_candidate=release_candidate,
        status=status,
        mantis_ids=mantis_ids,
        notes=notes,
        executed_at=executed_at,
        executed_by=actor if getattr(actor, "is_authenticated", False) else None,
        suite_id=case.suite_id,
        owner=case.owner,
        category=case.category,
        is_latest=False,
        created_at=_to_millis(timezone.now()),
    )
    for attempt in range(_TRANSACTION_ATTEMPTS):
        try:
            return _record_in_transaction(run, case=case, release_candidate=release_candidate)
        except (PyMongoError, DatabaseError) as error:
            # Two runs of the same (case, RC) recorded at once: MongoDB aborts one transaction; try it again.
            cause = error if isinstance(error, PyMongoError) else error.__cause__
            transient = isinstance(cause, PyMongoError) and cause.has_error_label("TransientTransactionError")
            if not transient or attempt == _TRANSACTION_ATTEMPTS - 1:
                if transient:
                    raise Conflict("Another run was recorded at the same moment; try again.", code="concurrent_run")
                raise
            run.pk = None
            run.is_latest = False
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def _record_in_transaction(run: TestRun, *, case: TestCase, release_candidate: ReleaseCandidate) -> TestRun:
    executed_at = run.executed_at
    with transaction.atomic():
        current = (
            TestRun.objects.filter(case=case, release_candidate=release_candidate, is_latest=True)
            .order_by("-executed_at", "-id")
            .first()
        )
        becomes_latest = current is None or executed_at >= current.executed_at
        if becomes_latest:
            if current is not None:
                claimed = TestRun.objects.filter(pk=current.pk, is_latest=True).update(is_latest=False)
                if claimed != 1:
                    raise Conflict("Another run was recorded at the same moment; try again.", code="concurrent_run")
            run.is_latest = True
        run.save()
        if becomes_latest and not case.is_deleted:
            if current is not None:
                _summary_adjust(runs=[_run_fields(current)], sign=-1)
            _summary_adjust(runs=[_run_fields(run)], sign=1)
    return run


def test_run_record(
    *,
    case: TestCase,
    release_candidate: ReleaseCandidate,
    status: str,
    mantis_ids: Iterable[Any] = (),
    notes: str = "",
    executed_at: datetime | None = None,
    actor,
    request: HttpRequest | None = None,
) -> TestRun:
    """Append a run of `case` for `release_candidate` and return it.

    The newest run (by `executed_at`, then insertion) of a (case, RC) pair is the latest (`is_latest=True`); a run
    back-dated before the current latest is stored as history only. When the new run becomes the latest, the summary
    documents move one count from the old status to the new one, in the same MongoDB transaction. `executed_by` is
    the actor. Raises `ValidationFailed` (codes "invalid_status", "invalid_mantis_id", "notes_too_long",
    "invalid_executed_at") and `Conflict` ("case_deleted") without writing anything.
    """
    _require(actor, "reviewer", action="run.record", resource=f"case:{case.pk}", request=request)
    mantis, notes, executed_at = _validate_run_input(
        status=status, mantis_ids=mantis_ids, notes=notes, executed_at=executed_at
    )
    if case.is_deleted:
        raise Conflict("Runs cannot be recorded for a deleted case.", code="case_deleted")
    run = _record_one(
        case=case,
        release_candidate=release_candidate,
        status=status,
        mantis_ids=mantis,
        notes=notes,
        executed_at=executed_at,
        actor=actor,
    )
    audit_record(
        action="run.record",
        actor=actor,
        resource=f"run:{run.pk}",
        request=request,
        metadata={"case": str(case.pk), "rc": release_candidate.name, "status": status, "latest": run.is_latest},
    )
    return run


def test_run_bulk_record(
    *,
    cases: Iterable[TestCase],
    release_candidate: ReleaseCandidate,
    status: str,
    notes: str = "",
    actor,
    request: HttpRequest | None = None,
) -> int:
    """Record the same status for many cases of an RC (the run grid's bulk action); returns how many runs were
    written. At most `BULK_RECORD_MAX` cases (`ValidationFailed` code "bulk_too_large" otherwise, nothing written).
    One audit event for the whole action."""
    _require(actor, "reviewer", action="run.bulk_record", resource=f"rc:{release_candidate.pk}", request=request)
    mantis, notes, executed_at = _validate_run_input(status=status, mantis_ids=(), notes=notes, executed_at=None)
    cases = [case for case in cases if not case.is_deleted]
    if len(cases) > BULK_RECORD_MAX:
        raise ValidationFailed(
            f"At most {BULK_RECORD_MAX} cases at once; narrow the filter.",
            code="bulk_too_large",
            fields={"__all__": [f"{len(cases)} cases match; the limit is {BULK_RECORD_MAX}."]},
        )
    for case in cases:
        _record_one(
            case=case,
            release_candidate=release_candidate,
            status=status,
            mantis_ids=mantis,
            notes=notes,
            executed_at=executed_at,
            actor=actor,
        )
    audit_record(
        action="run.bulk_record",
        actor=actor,
        resource=f"rc:{release_candidate.pk}",
        request=request,
        metadata={"status": status, "count": len(cases)},
    )
    return len(cases)


# --- summaries ---------------------------------------------------------------------------------------------------


def _repair_latest_flags(match: dict[str, Any]) -> int:
    """Where bulk writers left several runs of one (case, RC) marked latest, keep only the newest one marked.
    Returns how many runs were unmarked."""
    runs = connection.database[RUNS]
    duplicates = runs.aggregate(
        [
            {"$match": {**match, "is_latest": True}},
            {"$group": {"_id": {"c": "$case_id", "r": "$release_candidate_id"}, "n": {"$sum": 1}}},
            {"$match": {"n": {"$gt": 1}}},
        ],
        allowDiskUse=True,
    )
    unmarked = 0
    for group in duplicates:
        marked = list(
            runs.find(
                {"case_id": group["_id"]["c"], "release_candidate_id": group["_id"]["r"], "is_latest": True},
                {"_id": 1},
            ).sort([("executed_at", -1), ("_id", -1)])
        )
        stale = [doc["_id"] for doc in marked[1:]]
        unmarked += runs.update_many({"_id": {"$in": stale}}, {"$set": {"is_latest": False}}).modified_count
    return unmarked


def summaries_rebuild(*, release_candidate_ids: list | None = None) -> None:
    """Recompute the metric summary documents from the raw runs, for the given RC ids (ObjectIds or 24-hex strings)
    or for every RC when None.

    Counts the latest run (`is_latest`) of each (case, RC) whose case is not soft-deleted, per RC and suite:
    one document with dimension "all" (key "") and one per owner and per category, each with pass_count,
    fail_count and pending_count. Where a bulk writer left several runs of a (case, RC) marked latest, only the
    newest (by executed_at, then id) stays marked. Idempotent; safe to run at any time.
    """
    match: dict[str, Any] = {}
    summary_filter: dict[str, Any] = {}
    if release_candidate_ids is not None:
        ids = []
        for value in release_candidate_ids:
            if isinstance(value, ReleaseCandidate):
                ids.append(value.pk)
            elif isinstance(value, ObjectId):
                ids.append(value)
            elif ObjectId.is_valid(str(value)):
                ids.append(ObjectId(str(value)))
            else:
                raise ValidationFailed(code="invalid_release_candidate", fields={"release_candidate_ids": [str(value)]})
        match = {"release_candidate_id": {"$in": ids}}
        summary_filter = {"release_candidate_id": {"$in": ids}}
    _repair_latest_flags(match)
    deleted_case_ids = list(TestCase.objects.filter(is_deleted=True).values_list("pk", flat=True))
    pipeline_match: dict[str, Any] = {**match, "is_latest": True}
    if deleted_case_ids:
        pipeline_match["case_id"] = {"$nin": deleted_case_ids}
    grouped = connection.database[RUNS].aggregate(
        [
            {"$match": pipeline_match},
            {
                "$group": {
                    "_id": {
                        "r": "$release_candidate_id",
                        "s": "$suite_id",
                        "o": "$owner",
                        "c": "$category",
                        "t": "$status",
                    },
                    "n": {"$sum": 1},
                }
            },
        ],
        allowDiskUse=True,
    )
    documents: dict[tuple, dict[str, Any]] = {}
    now = _to_millis(timezone.now())
    for row in grouped:
        key = row["_id"]
        counts = _status_counts(key["t"], row["n"])
        for dimension, value in (
            (SummaryDimension.ALL, ""),
            (SummaryDimension.OWNER, key["o"]),
            (SummaryDimension.CATEGORY, key["c"]),
        ):
            identity = (key["r"], key["s"], str(dimension), value)
            document = documents.setdefault(
                identity,
                {
                    "release_candidate_id": key["r"],
                    "suite_id": key["s"],
                    "dimension": str(dimension),
                    "key": value,
                    "pass_count": 0,
                    "fail_count": 0,
                    "pending_count": 0,
                    "updated_at": now,
                },
            )
            for name, amount in counts.items():
                document[name] += amount
    collection = connection.database[SUMMARIES]
    with transaction.atomic():
        collection.delete_many(summary_filter, session=connection.session)
        if documents:
            collection.insert_many(list(documents.values()), session=connection.session)
