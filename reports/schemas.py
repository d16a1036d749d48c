"""API schemas of the reports app."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema


class ReportIn(Schema):
    release_candidate: str = Field(..., min_length=1, max_length=64, description="RC id or name.")
    suite: str | None = Field(None, max_length=24, description="Suite id; empty or 'all' = all suites.")
    baseline: str | None = Field(
        None, max_length=64, description="RC id or name (same product) to compare with; default: previous RC."
    )
    edition: Literal["short", "full"] = Field(
        "full",
        description="short: cover and a one-page executive summary; full: with breakdowns, failures and the "
        "appendix of every case.",
    )


class ReportCreatedOut(Schema):
    id: str
    status: str
    progress: int
    status_url: str
    page_url: str


class ReportOut(Schema):
    id: str
    status: str
    progress: int
    stage: str
    error: dict[str, str] | None
    release_candidate: str
    suite: str | None
    baseline: str | None
    summary: str
    summary_source: str
    summary_note: str
    ai_model: str
    ai_cost: float
    figures: dict[str, Any]
    generated_by: str | None
    created_at: datetime
    generated_at: datetime | None
    downloads: dict[str, str] | None = Field(None, description="Signed links for you, valid 5 minutes (ready only).")
    downloads_expire_at: datetime | None = None


class ReportListOut(Schema):
    items: list[ReportOut]
    next_cursor: str | None
