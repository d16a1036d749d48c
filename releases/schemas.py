"""Schemas of the releases API (blueprint: GET/POST tests, PATCH/DELETE tests/{id}, POST tests/{id}/runs,
GET metrics/quality). Unknown fields are rejected (no mass assignment).

The field limits in the OpenAPI schema come from the rule table (releases/rules.py). They are documented here and
checked by the services, so a refusal carries the rule's code (`too_long`, `invalid_key`, `invalid_priority`,
`invalid_tag`, `invalid_mantis_id`, `notes_too_long`), the same as on the pages and in a CSV import, and a value an
older rule let in passes when a PATCH sends it back unchanged."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ninja import Field, Schema
from pydantic import ConfigDict

from releases import rules
from releases.models import TestCase, TestRun

StatusLiteral = Literal["pass", "fail", "pending"]


class StrictSchema(Schema):
    model_config = ConfigDict(extra="forbid")


def _max_length(limit: int) -> dict:
    return {"maxLength": limit}


_KEY = {"maxLength": rules.KEY_MAX_LENGTH, "pattern": rules.KEY_PATTERN.pattern}
_PRIORITY = {"minimum": rules.PRIORITY_MIN, "maximum": rules.PRIORITY_MAX}
_TAGS = {"maxItems": rules.TAGS_MAX, "items": {"type": "string", "maxLength": rules.TAG_MAX_LENGTH}}


class CaseIn(StrictSchema):
    suite: str = Field(..., min_length=24, max_length=24, description="Suite id (24 hex characters).")
    key: str = Field(..., min_length=1, json_schema_extra=_KEY)
    title: str = Field(..., min_length=1, json_schema_extra=_max_length(rules.TITLE_MAX_LENGTH))
    category: str = Field(..., min_length=1, json_schema_extra=_max_length(rules.CATEGORY_MAX_LENGTH))
    owner: str = Field(..., min_length=1, json_schema_extra=_max_length(rules.OWNER_MAX_LENGTH))
    task: str = Field("", json_schema_extra=_max_length(rules.TASK_MAX_LENGTH))
    priority: int = Field(3, json_schema_extra=_PRIORITY)
    tags: list[str] = Field(default_factory=list, json_schema_extra=_TAGS)


class CasePatch(StrictSchema):
    suite: str | None = Field(None, min_length=24, max_length=24)
    key: str | None = Field(None, min_length=1, json_schema_extra=_KEY)
    title: str | None = Field(None, min_length=1, json_schema_extra=_max_length(rules.TITLE_MAX_LENGTH))
    category: str | None = Field(None, min_length=1, json_schema_extra=_max_length(rules.CATEGORY_MAX_LENGTH))
    owner: str | None = Field(None, min_length=1, json_schema_extra=_max_length(rules.OWNER_MAX_LENGTH))
    task: str | None = Field(None, json_schema_extra=_max_length(rules.TASK_MAX_LENGTH))
    priority: int | None = Field(None, json_schema_extra=_PRIORITY)
    tags: list[str] | None = Field(None, json_schema_extra=_TAGS)


class RunIn(StrictSchema):
    rc: str = Field(..., min_length=1, max_length=rules.RC_NAME_MAX_LENGTH, description="RC name or id.")
    status: StatusLiteral
    mantis_ids: list[int | str] = Field(
        default_factory=list,
        json_schema_extra={"maxItems": rules.MANTIS_IDS_PER_RUN_MAX},
        description=f"Mantis issue ids, 1-{rules.MANTIS_ID_MAX}.",
    )
    notes: str = Field("", json_schema_extra=_max_length(rules.NOTES_MAX_LENGTH))
    executed_at: datetime | None = Field(None, description="Defaults to now; must carry a time zone.")


class LatestRunOut(Schema):
    id: str
    status: str
    executed_at: datetime


class CaseOut(Schema):
    id: str
    suite: str
    suite_name: str
    key: str
    title: str
    category: str
    task: str
    owner: str
    priority: int
    tags: list[str]
    is_deleted: bool
    created_at: datetime
    updated_at: datetime
    latest_run: LatestRunOut | None = None

    @staticmethod
    def of(case: TestCase, run: TestRun | None = None) -> dict:
        return {
            "id": str(case.pk),
            "suite": str(case.suite_id),
            "suite_name": case.suite.name,
            "key": case.key,
            "title": case.title,
            "category": case.category,
            "task": case.task,
            "owner": case.owner,
            "priority": case.priority,
            "tags": list(case.tags),
            "is_deleted": case.is_deleted,
            "created_at": case.created_at,
            "updated_at": case.updated_at,
            "latest_run": (
                {"id": str(run.pk), "status": run.status, "executed_at": run.executed_at} if run is not None else None
            ),
        }


class CasePageOut(Schema):
    items: list[CaseOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last page.")
    limit: int
    sort: str


class RunOut(Schema):
    id: str
    case: str
    release_candidate: str
    release_candidate_id: str
    status: str
    mantis_ids: list[int]
    notes: str
    executed_at: datetime
    executed_by: str | None
    is_latest: bool

    @staticmethod
    def of(run: TestRun) -> dict:
        return {
            "id": str(run.pk),
            "case": str(run.case_id),
            "release_candidate": run.release_candidate.name,
            "release_candidate_id": str(run.release_candidate_id),
            "status": run.status,
            "mantis_ids": list(run.mantis_ids),
            "notes": run.notes,
            "executed_at": run.executed_at,
            "executed_by": str(run.executed_by_id) if run.executed_by_id else None,
            "is_latest": run.is_latest,
        }


class QualityOut(Schema):
    release_candidate: dict
    suite: dict | None
    totals: dict
    by_owner: list[dict]
    by_category: list[dict]
    by_suite: list[dict]
    trend: list[dict]
    delta: dict | None
    gate: dict


# --- bulk runs (POST runs/bulk) ----------------------------------------------------------------------------------


class BulkRunIn(StrictSchema):
    case: str | None = Field(None, min_length=24, max_length=24, description="Case id; or product + suite + key.")
    product: str | None = Field(None, min_length=1, json_schema_extra=_max_length(rules.PRODUCT_MAX_LENGTH))
    suite: str | None = Field(None, min_length=1, json_schema_extra=_max_length(rules.SUITE_NAME_MAX_LENGTH))
    key: str | None = Field(None, min_length=1, json_schema_extra=_KEY)
    status: StatusLiteral
    mantis_ids: list[int | str] = Field(
        default_factory=list, json_schema_extra={"maxItems": rules.MANTIS_IDS_PER_RUN_MAX}
    )
    notes: str = Field("", json_schema_extra=_max_length(rules.NOTES_MAX_LENGTH))
    executed_at: datetime | None = Field(None, description="Defaults to now; must carry a time zone.")
    failure_type: str = Field("", json_schema_extra=_max_length(200), description="Exception type of a failure.")
    failure_message: str = Field("", json_schema_extra=_max_length(rules.NOTES_MAX_LENGTH))
    duration_ms: int | None = Field(None, ge=0, le=10**10)
    flaky: bool = Field(False, description="Passed on rerun: counts in the flaky score.")


class BulkRunsIn(StrictSchema):
    rc: str = Field(..., min_length=1, max_length=rules.RC_NAME_MAX_LENGTH, description="RC name or id.")
    runs: list[BulkRunIn] = Field(..., min_length=1, description="At most BULK_RUNS_MAX runs; all or nothing.")


class BulkRunsOut(Schema):
    release_candidate: str
    recorded: int
    runs: list[str]


class ReleaseCandidateIn(StrictSchema):
    name: str = Field(..., min_length=1, max_length=rules.RC_NAME_MAX_LENGTH, description="RC name.")
    product: str = Field(
        ..., min_length=1, max_length=rules.PRODUCT_MAX_LENGTH, description="A product that has suites."
    )
    state: Literal["planned", "testing", "released", "rejected"] = "testing"


class ReleaseCandidateOut(Schema):
    id: str
    name: str
    product: str
    state: str
    sequence: int
    created_at: datetime

    @staticmethod
    def of(release_candidate) -> dict:
        return {
            "id": str(release_candidate.pk),
            "name": release_candidate.name,
            "product": release_candidate.product,
            "state": str(release_candidate.state),
            "sequence": release_candidate.sequence,
            "created_at": release_candidate.created_at,
        }
