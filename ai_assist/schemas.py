"""Input and output schemas of the AI API."""

from __future__ import annotations

from ninja import Schema
from pydantic import Field


class AssistIn(Schema):
    task: str = Field(..., description="draft_steps | triage_failure | draft_bug_report | summarise_rc")
    case: str | None = Field(None, description="Test case id (draft_steps)")
    run: str | None = Field(None, description="Test run id (triage_failure, draft_bug_report)")
    rc: str | None = Field(None, description="Release candidate id (summarise_rc)")
    stream: bool = Field(False, description="Answer as newline-delimited JSON events while it is generated")


class AssistOut(Schema):
    text: str
    provider: str
    offline: bool
    model: str
    template: str
    template_version: int
    prompt_tokens: int = Field(..., description="Every input token, cache reads and writes included")
    completion_tokens: int = Field(..., description="Every output token, reasoning included")
    cached_prompt_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = Field(..., description="USD (cost_nano / 1e9)")
    cost_nano: int = Field(0, description="Exact cost in nano-dollars")
    latency_ms: float
    outcome: str
    usage_log_id: str


class BatchIn(Schema):
    task: str = Field("triage_failure", description="triage_failure | draft_bug_report")
    rc: str


class BatchOut(Schema):
    id: str
    task: str
    release_candidate: str
    status: str
    total: int
    done: int
    failed: int
    progress_percent: int
    error: str
