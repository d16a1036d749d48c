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
    # "short": cover and a one-page executive summary; "full": everything, with the appendix.
    edition: str = "full"
    # Who wrote each narrative section: {"summary" | "risks" | "recommendation": "ai" | "fallback"}.
    narrative_sources: dict[str, str] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"Release report {self.release_candidate}"

    @property
    def edition_label(self) -> str:
        if self.edition == "short":
            return "Short edition: executive summary (the full edition adds breakdowns and every case)"
        return "Full edition, with the appendix of every case in scope"

    @property
    def failures(self) -> list[CaseRow]:
        return [row for row in self.cases if row.status == "fail"]

    @property
    def ai_sections(self) -> list[str]:
        """The narrative sections the AI wrote (all three when the sources are not recorded and the AI wrote)."""
        if self.summary_source != "ai":
            return []
        sections = ("summary", "risks", "recommendation")
        return [name for name in sections if self.narrative_sources.get(name, "ai") == "ai"]

    @property
    def ai_statement(self) -> str:
        """The line that says who wrote the narrative (section by section) and what it cost."""
        if self.summary_source == "ai":
            written = self.ai_sections
            plain = [name for name in ("summary", "risks", "recommendation") if name not in written]
            which = f"AI-written sections: {', '.join(written)}"
            if plain:
                which += f"; written from the figures without AI: {', '.join(plain)}"
            return (
                f"Narrative written by the AI model {self.ai_model} from the figures below ({which}); "
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


KPI_HEADER = ["In scope", "Executed", "Not run", "Coverage", "Pass", "Fail", "Pending", "Pass rate"]


def kpi_values(totals: dict[str, Any]) -> list[str]:
    """The headline figures in KPI_HEADER order: the summary table of the PDF and of the DOCX."""
    return [
        str(totals.get("in_scope", 0)),
        str(totals.get("total", 0)),
        str(totals.get("not_run", 0)),
        percent(totals.get("coverage")),
        str(totals.get("pass", 0)),
        str(totals.get("fail", 0)),
        str(totals.get("pending", 0)),
        percent(totals.get("pass_rate")),
    ]


def cover_line(totals: dict[str, Any]) -> str:
    """The cover's one line of figures (the same numbers as the summary table and the appendix's row count)."""
    return (
        f"{totals.get('in_scope', 0)} cases in scope · {totals.get('total', 0)} executed "
        f"(coverage {percent(totals.get('coverage'))}) · {totals.get('not_run', 0)} not run · "
        f"pass rate {percent(totals.get('pass_rate'))}"
    )


SHORT_RISKS = 5
SHORT_KEYS = 10


def _keys(rows: Sequence[dict], limit: int) -> str:
    """ "KEY-1, KEY-2 and 3 more" for a list of case dicts."""
    keys = [str(row.get("key", "")) for row in rows[:limit]]
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return ", ".join(keys) + more


def executive_lines(content: ReportContent) -> dict[str, Any]:
    """What the executive summary says besides the narrative, from the figures (PDF and DOCX print the same):
    {"verdict", "reasons", "delta": sentence, "new_failures": sentence, "fixed": sentence}."""
    figures = content.figures
    delta = figures.get("delta", {})
    counts = delta.get("counts", {})
    baseline = delta.get("baseline") or ""
    new, fixed = delta.get("new_failures", []), delta.get("fixed", [])
    if baseline:
        against = (
            f"Against the baseline {baseline}: {counts.get('new_failures', len(new))} new failures, "
            f"{counts.get('fixed', len(fixed))} fixed, {counts.get('still_failing', 0)} still failing, "
            f"{counts.get('newly_not_run', 0)} newly not run."
        )
    else:
        against = "There is no earlier release candidate of this product to compare with."
    return {
        "verdict": str(figures.get("gate", {}).get("verdict", "n/a")),
        "reasons": list(figures.get("gate", {}).get("reasons", [])),
        "delta": against,
        "new_failures": f"New failures ({len(new)}): {_keys(new, SHORT_KEYS)}." if new else "New failures: none.",
        "fixed": f"Fixed ({len(fixed)}): {_keys(fixed, SHORT_KEYS)}." if fixed else "Fixed: none.",
    }


def mantis_text(ids: Sequence[int]) -> str:
    return ", ".join(str(i) for i in ids)
