"""The narrative of a report (summary, risks, recommendation): written by the AI from the figures, or generated
plainly from the same figures when the AI is unavailable, over quota, or cites a number that is not in them.

Each section is judged on its own (`narrative_grounded`): a section the AI left empty, "no risks" while the gate
says NO-GO or priority-1 cases newly fail, or a recommendation to release a NO-GO RC is replaced by the plain
sentence written from the figures, and `sources` records which sections the AI wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from reports.content import percent

_HEADINGS = {"summ": "summary", "risk": "risks", "reco": "recommendation"}
_HEADING_LINE = re.compile(r"^[#*\s]*(summary|risks?|recommendations?)[*:\s]*$", re.IGNORECASE)
_LIST_MARKER = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
SECTIONS = ("summary", "risks", "recommendation")
# A risk line that says there is none ("None", "No risks identified", "n/a", "Nothing notable").
_NO_RISK = re.compile(
    r"^\W*(none|n/?a|nothing( notable| significant)?|no (specific |significant |major |known |notable |open )?"
    r"risks?( (were |are )?(identified|found|noted))?)\W*$",
    re.IGNORECASE,
)
# A recommendation to go ahead (used only to catch one that contradicts a NO-GO gate).
_GO_AHEAD = re.compile(r"\b(release|ship|go ahead|go live|go-live|approve|proceed|ready)\b", re.IGNORECASE)
_HOLD = re.compile(r"\b(not|don't|no-go|hold|block|delay|wait|postpone|until|before|fix|resolve)\b", re.IGNORECASE)


@dataclass
class Narrative:
    summary: str
    risks: list[str]
    recommendation: str
    source: str  # "ai" | "fallback"
    note: str = ""
    provider: str = ""
    model: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = field(default_factory=lambda: Decimal("0"))
    usage_log_id: str = ""
    # Who wrote each section: {"summary" | "risks" | "recommendation": "ai" | "fallback"}.
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in SECTIONS:
            self.sources.setdefault(name, self.source)

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "risks": self.risks,
            "recommendation": self.recommendation,
            "sources": dict(self.sources),
        }

    @property
    def text(self) -> str:
        risks = "\n".join(f"- {risk}" for risk in self.risks)
        return f"{self.summary}\n\nRisks\n{risks}\n\nRecommendation\n{self.recommendation}".strip()


def prompt_variables(headline: dict[str, Any], *, scope: str) -> dict[str, Any]:
    """What the AI sees: the computed figures only (names, counts, rates, verdict), trimmed to the essentials."""
    delta = headline.get("delta", {})
    return {
        "figures": {
            "release_candidate": headline.get("release_candidate"),
            "product": headline.get("product", ""),
            "scope": scope,
            "totals": headline.get("totals", {}),
            "release_gate": headline.get("gate", {}).get("verdict"),
            "gate_reasons": headline.get("gate", {}).get("reasons", []),
            "by_category": [
                {key: row.get(key) for key in ("name", "pass", "fail", "pending", "total", "pass_rate")}
                for row in headline.get("by_category", [])[:15]
            ],
            "baseline": delta.get("baseline") or "none",
            "delta_counts": delta.get("counts", {}),
            "new_failures": [f"{row['key']} {row['title']}" for row in delta.get("new_failures", [])[:10]],
            "flaky_cases": [row["key"] for row in headline.get("flaky", [])[:10]],
            "open_mantis_issues": len(headline.get("mantis_open", [])),
        }
    }


def _numbers(text: str) -> set[str]:
    return {match.replace(",", ".") for match in _NUMBER.findall(text)}


def _allowed_numbers(variables: dict[str, Any]) -> set[str]:
    allowed: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, int | float):
            allowed.update({str(value), f"{value:.1f}", f"{value:.0f}", str(int(value))})
        else:
            allowed.update(_numbers(str(value)))

    walk(variables)
    return allowed


def ungrounded_numbers(text: str, variables: dict[str, Any]) -> list[str]:
    """Numbers in the AI's text that appear nowhere in the figures it was given (list markers excepted)."""
    allowed = _allowed_numbers(variables)
    found = set()
    for line in text.splitlines():
        found |= _numbers(_LIST_MARKER.sub("", line, count=1))
    return sorted(number for number in found if number not in allowed)


def parse_ai_text(text: str) -> tuple[str, list[str], str]:
    """Split the AI's answer into (summary, risks, recommendation) on its 'Summary'/'Risks'/'Recommendation'
    headings; text before any heading belongs to the summary."""
    parts: dict[str, list[str]] = {"summary": [], "risks": [], "recommendation": []}
    current = "summary"
    for line in text.splitlines():
        heading = _HEADING_LINE.match(line.strip())
        if heading:
            current = _HEADINGS[heading.group(1).lower()[:4]]
            continue
        parts[current].append(line)
    summary = "\n".join(parts["summary"]).strip()
    risks = [_LIST_MARKER.sub("", line).strip() for line in parts["risks"] if line.strip()]
    recommendation = "\n".join(parts["recommendation"]).strip()
    return summary, risks, recommendation


def fallback_narrative(headline: dict[str, Any], *, scope: str, note: str) -> Narrative:
    """A plain narrative written from the figures by rules, used whenever the AI narrative is not available."""
    totals = headline.get("totals", {})
    gate = headline.get("gate", {})
    delta = headline.get("delta", {})
    counts = delta.get("counts", {})
    rc = headline.get("release_candidate", "")
    summary = (
        f"{rc} ({scope}): {totals.get('total', 0)} cases with a latest run: {totals.get('pass', 0)} pass, "
        f"{totals.get('fail', 0)} fail, {totals.get('pending', 0)} pending; pass rate "
        f"{percent(totals.get('pass_rate'))}. Release gate: {gate.get('verdict', 'n/a')}."
    )
    if totals.get("in_scope"):
        summary += (
            f" Coverage: {totals.get('executed', 0)} of {totals['in_scope']} cases in scope executed "
            f"({percent(totals.get('coverage'))}), {totals.get('not_run', 0)} not run."
        )
    if delta.get("baseline"):
        summary += (
            f" Compared with {delta['baseline']}: {counts.get('new_failures', 0)} new failures, "
            f"{counts.get('fixed', 0)} fixed, {counts.get('still_failing', 0)} still failing, "
            f"{counts.get('newly_not_run', 0)} newly not run."
        )
    risks = list(gate.get("reasons", []))
    worst = sorted(
        (row for row in headline.get("by_category", []) if row.get("fail")), key=lambda row: -int(row.get("fail", 0))
    )[:3]
    risks += [f"Category {row['name']}: {row['fail']} failing of {row['total']}." for row in worst]
    if headline.get("flaky"):
        risks.append(f"{len(headline['flaky'])} flaky cases change status between release candidates.")
    if totals.get("pending"):
        risks.append(f"{totals['pending']} cases are pending: their state is unknown.")
    if not risks:
        risks.append("No failing, pending or flaky cases and every gate threshold is met.")
    if gate.get("verdict") == "GO":
        recommendation = "The release gate passes: release, after a last look at any open failures listed below."
    else:
        recommendation = "Do not release yet: resolve the gate reasons above, then re-test and regenerate this report."
    return Narrative(summary=summary, risks=risks, recommendation=recommendation, source="fallback", note=note)


def _blocking(headline: dict[str, Any]) -> bool:
    """The figures say the release is blocked: a NO-GO gate or priority-1 cases that newly fail."""
    gate = headline.get("gate", {})
    return gate.get("verdict") != "GO" or bool(gate.get("new_p1_failures"))


def narrative_grounded(narrative: Narrative, headline: dict[str, Any], *, scope: str) -> Narrative:
    """The AI's narrative with every unusable section replaced by the plain one written from the figures: an
    empty section; risks that are empty or only say "none" (most often contradicting a NO-GO gate or new P1
    failures); a recommendation to release while the gate says NO-GO (or P1 cases newly fail). `sources` says
    who wrote each section, `source` is "ai" while the AI wrote at least one, and `note` names the sections that
    were replaced."""
    plain = fallback_narrative(headline, scope=scope, note="")
    sources = {name: "ai" for name in SECTIONS}
    summary = narrative.summary.strip()
    if not summary:
        summary, sources["summary"] = plain.summary, "fallback"
    risks = [risk.strip() for risk in narrative.risks if risk.strip()]
    meaningful = [risk for risk in risks if not _NO_RISK.match(risk)]
    if not meaningful:  # nothing but "none": the figures' own risks (the gate's reasons first) say it plainly
        risks, sources["risks"] = plain.risks, "fallback"
    recommendation = narrative.recommendation.strip()
    go_ahead = _GO_AHEAD.search(recommendation) and not _HOLD.search(recommendation)
    if not recommendation or (_blocking(headline) and go_ahead):
        recommendation, sources["recommendation"] = plain.recommendation, "fallback"
    replaced = [name for name in SECTIONS if sources[name] == "fallback"]
    note = narrative.note
    if replaced:
        note = f"generated from the figures: {', '.join(replaced)} (the AI's text was empty or contradicted them)"
    return Narrative(
        summary=summary,
        risks=risks,
        recommendation=recommendation,
        source="ai" if len(replaced) < len(SECTIONS) else "fallback",
        note=note,
        provider=narrative.provider,
        model=narrative.model,
        prompt_tokens=narrative.prompt_tokens,
        completion_tokens=narrative.completion_tokens,
        cost=narrative.cost,
        usage_log_id=narrative.usage_log_id,
        sources=sources,
    )
