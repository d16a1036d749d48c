"""What a report contains, independent of the file format: the renderers (PDF, DOCX) draw a `ReportContent`.

Every number in here was computed from the data (reports/figures.py) before any AI ran; the narrative is the only
part an AI may have written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

STATUS_LABELS = {"pass": "Pass", "fail": "Fail", "pending": "Pending", "": "No run"}


class CaseRow(NamedTuple):
    """One case with its latest status for the RC (a row of the appendix and of the failure tables)."""

    suite: str
    key: str
    title: str
    category: str
    owner: str
    priority: int
    status: str
    mantis_ids: tuple[int, ...] = ()


@dataclass
class ReportContent:
    release_candidate: str
    scope: str
    baseline: str
    generated_at: datetime
    generated_by: str
    # JSON-safe headline figures (the shape of `reports.figures.figures_headline`).
    figures: dict[str, Any]
    # {"summary": str, "risks": [str], "recommendation": str}
    narrative: dict[str, Any]
    summary_source: str
    summary_note: str
    ai_model: str
    ai_cost: Decimal
    # Every case of the scope, ordered by suite and key.
    cases: Sequence[CaseRow] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"Release report {self.release_candidate}"

    @property
    def failures(self) -> list[CaseRow]:
        return [row for row in self.cases if row.status == "fail"]

    @property
    def ai_statement(self) -> str:
        """The line that says who wrote the narrative and what it cost."""
        if self.summary_source == "ai":
            return (
                f"Narrative written by the AI model {self.ai_model} from the figures below; "
                f"AI cost of this report: ${self.ai_cost:.4f}. All figures are computed from the test data."
            )
        note = f" ({self.summary_note})" if self.summary_note else ""
        return (
            f"AI narrative unavailable{note}: the summary was generated from the figures without AI. "
            f"AI cost of this report: ${self.ai_cost:.4f}. All figures are computed from the test data."
        )


def percent(value: float | None) -> str:
    """A pass rate (0-100) for people: one decimal, or an en dash when there is nothing to rate."""
    if value is None:
        return "–"
    return f"{value:.1f} %"


def mantis_text(ids: Sequence[int]) -> str:
    return ", ".join(str(i) for i in ids)
