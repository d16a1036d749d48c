"""The offline provider's answers: deterministic, computed from the (redacted) task variables, no model involved.

Good enough for development, demos and tests: each answer uses the real case, run and RC data it was given.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

HEADER = "[Offline assistant: deterministic answer computed from the data, no AI model was called]"


def _d(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list:
    return value if isinstance(value, list) else []


def _history_line(history: list) -> str:
    if not history:
        return "no earlier runs are recorded"
    statuses = [f"{_d(run).get('rc', '?')}: {_d(run).get('status', '?')}" for run in history[:6]]
    return ", ".join(statuses)


def _draft_steps(v: dict) -> str:
    case, suite = _d(v.get("case")), _d(v.get("suite"))
    title = case.get("title", "the feature")
    tags = ", ".join(_l(case.get("tags"))) or "none"
    lines = [
        HEADER,
        f"Draft steps for {case.get('key', '?')} - {title}",
        f"Scope: {suite.get('product', '?')} / {suite.get('name', '?')}, category {case.get('category', '?')}, "
        f"priority P{case.get('priority', '?')}, tags: {tags}.",
        "",
        f"1. Preconditions: a clean test environment for {suite.get('product', 'the product')} and a user with "
        f"the rights needed for {case.get('category', 'this area')}.",
        f"2. Open the part of the product covered by: {title}.",
        f"3. Perform the main action of the case{(' (task ' + case['task'] + ')') if case.get('task') else ''}.",
        "   Expected: the action completes without an error message and the result is saved.",
        "4. Repeat with boundary input (empty, maximum length, special characters).",
        "   Expected: invalid input is refused with a clear message; valid input is accepted unchanged.",
        "5. Reload the page and check that the result is still shown.",
        "   Expected: the stored state matches what was entered.",
        "",
        f"Recent history: {_history_line(_l(v.get('history')))}.",
    ]
    return "\n".join(lines)


def _triage(v: dict) -> str:
    run, case = _d(v.get("run")), _d(v.get("case"))
    history = _l(v.get("history"))
    related = _l(v.get("related"))
    notes = str(run.get("notes", "") or "")
    earlier_runs = [_d(item) for item in history if _d(item).get("rc") != run.get("rc")]
    earlier = [item.get("status") for item in earlier_runs]
    causes: list[str] = []
    if earlier and earlier[0] == "pass":
        causes.append(
            f"Regression: the case passed on {earlier_runs[0].get('rc', 'the previous RC')} and fails on "
            f"{run.get('rc', 'this RC')}; look at changes between the two RCs in {case.get('category', 'its area')}."
        )
    elif earlier and all(status == "fail" for status in earlier):
        causes.append("Long-standing failure: it failed on every earlier RC recorded; check the open Mantis issues.")
    elif len(set(earlier)) > 1:
        causes.append("Possibly flaky: earlier RCs show both passes and failures; rerun it before filing a bug.")
    lowered = notes.lower()
    if any(word in lowered for word in ("timeout", "timed out", "slow")):
        causes.append("The notes mention a timeout: check environment load and service response times.")
    if any(word in lowered for word in ("500", "exception", "error", "stack")):
        causes.append("The notes mention a server error: collect the server log around the execution time.")
    if related:
        causes.append(
            f"{len(related)} other case(s) in {case.get('category', 'the same category')} also fail on this RC: "
            "a shared cause (configuration, data, dependency) is likely."
        )
    if not causes:
        causes.append("No earlier history or notes point to a cause: reproduce it manually and capture logs.")
    mantis = _l(run.get("mantis_ids"))
    lines = [
        HEADER,
        f"Triage of {case.get('key', '?')} - {case.get('title', '?')} on {run.get('rc', '?')}",
        "",
        "Likely cause (most likely first):",
        *[f"{index}. {cause}" for index, cause in enumerate(causes, start=1)],
        "",
        "What to check:",
        f"- Re-run the case on {run.get('rc', 'the RC')} to confirm it is reproducible.",
        f"- Ask the owner ({case.get('owner', 'unknown')}) whether the expected result is still valid.",
        f"- Linked Mantis issues: {', '.join(f'#{m}' for m in mantis) if mantis else 'none yet'}.",
        f"- History: {_history_line(history)}.",
    ]
    if notes:
        lines.append(f"- Tester notes: {notes[:300]}")
    return "\n".join(lines)


def _bug_report(v: dict) -> str:
    run, case = _d(v.get("run")), _d(v.get("case"))
    severity = {1: "critical", 2: "major", 3: "minor", 4: "trivial"}.get(case.get("priority"), "minor")
    lines = [
        HEADER,
        f"Summary: [{case.get('category', '?')}] {case.get('title', '?')} fails on {run.get('rc', '?')}",
        f"Severity: {severity} (case priority P{case.get('priority', '?')})",
        "",
        "Steps to reproduce:",
        f"1. Use release candidate {run.get('rc', '?')}.",
        f"2. Execute test case {case.get('key', '?')}: {case.get('title', '?')}.",
        "",
        "Expected: the case passes as it is specified.",
        f"Actual: the case fails. {('Tester notes: ' + str(run['notes'])[:400]) if run.get('notes') else ''}".rstrip(),
        "",
        f"Notes: owner {case.get('owner', '?')}; history {_history_line(_l(v.get('history')))}.",
    ]
    return "\n".join(lines)


def _rate(counts: dict) -> tuple[int, float]:
    total = sum(int(value or 0) for value in counts.values() if isinstance(value, int | float))
    passed = int(counts.get("pass", counts.get("passed", 0)) or 0)
    return total, (100.0 * passed / total if total else 0.0)


def _summarise_rc(v: dict) -> str:
    rc = _d(v.get("release_candidate"))
    counts = _d(v.get("counts"))
    failures = _l(v.get("failures"))
    total, rate = _rate(counts)
    by_category = Counter(_d(item).get("category", "?") for item in failures)
    by_owner = Counter(_d(item).get("owner", "?") for item in failures)
    previous = _d(v.get("previous"))
    lines = [
        HEADER,
        f"Summary of {rc.get('name', '?')} ({rc.get('state', '?')}): {total} cases with a result, "
        f"pass rate {rate:.1f}% ({counts.get('fail', 0)} failing, {counts.get('pending', 0)} pending).",
    ]
    if previous.get("counts"):
        prev_total, prev_rate = _rate(_d(previous.get("counts")))
        lines.append(f"Previous RC {previous.get('name', '?')}: pass rate {prev_rate:.1f}% over {prev_total} cases.")
    lines += ["", "Failure themes:"]
    lines += [f"- {category}: {count} failing" for category, count in by_category.most_common(5)] or ["- none"]
    lines += ["", "Owners with most failures:"]
    lines += [f"- {owner}: {count}" for owner, count in by_owner.most_common(3)] or ["- none"]
    lines += ["", "Before release:"]
    if counts.get("fail"):
        lines.append("- Triage every failure above; fix or accept each with a Mantis reference.")
    if counts.get("pending"):
        lines.append(f"- Execute the {counts.get('pending')} pending case(s).")
    if not counts.get("fail") and not counts.get("pending"):
        lines.append("- Nothing blocks the release according to the recorded runs.")
    return "\n".join(lines)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _find_number(figures: Any, *names: str) -> Any:
    """The first numeric value under one of `names`, searching nested dicts (as given: never recomputed)."""
    if isinstance(figures, dict):
        for name in names:
            if _is_number(figures.get(name)):
                return figures[name]
        for value in figures.values():
            found = _find_number(value, *names)
            if found is not None:
                return found
    return None


def _fmt(value: Any) -> str:
    """A figure as the caller gave it (so a narrative cites only numbers that are in the figures)."""
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _report_summary(v: dict) -> str:
    """Summary, risks and recommendation from whatever figures the caller passes (reports app: `figures` with
    totals, by_category rows, new failures, flaky cases, gate verdict). Numbers are quoted, never computed."""
    figures = _d(v.get("figures")) or v
    total = _find_number(figures, "total", "total_cases", "cases")
    failed = _find_number(figures, "failed", "fail") or 0
    pending = _find_number(figures, "pending") or 0
    rate = _find_number(figures, "pass_rate", "pass_rate_percent")
    rc = figures.get("release_candidate") or figures.get("rc") or "the release candidate"
    if isinstance(rc, dict):
        rc = rc.get("name", "the release candidate")
    scope = f" ({figures['scope']})" if isinstance(figures.get("scope"), str) and figures.get("scope") else ""
    total_text = f"{_fmt(total)} cases" if total is not None else "the recorded cases"
    rate_text = f"a pass rate of {_fmt(rate)}%" if rate is not None else "no pass rate yet"
    lines = [HEADER, "Summary"]
    lines.append(f"{rc}{scope}: {total_text}, {rate_text}, {_fmt(failed)} failing and {_fmt(pending)} pending.")
    baseline = figures.get("baseline")
    previous_rate = _find_number(_d(figures.get("previous")), "pass_rate", "pass_rate_percent")
    if previous_rate is not None and rate is not None:
        trend = "up" if rate > previous_rate else "down" if rate < previous_rate else "unchanged"
        lines.append(f"Compared with the previous RC ({_fmt(previous_rate)}%), the pass rate is {trend}.")
    elif isinstance(baseline, str) and baseline not in ("", "none"):
        lines.append(f"Compared against {baseline}.")
    gate = figures.get("release_gate")
    if isinstance(gate, str) and gate:
        lines.append(f"Release gate: {gate}.")

    risks: list[str] = []
    if failed:
        risks.append(f"- {_fmt(failed)} failing case(s) are unresolved.")
    if pending:
        risks.append(f"- {_fmt(pending)} case(s) were not executed; their state is unknown.")
    categories = figures.get("by_category")
    if isinstance(categories, list):
        failing = [row for row in categories if isinstance(row, dict) and _is_number(row.get("fail")) and row["fail"]]
        failing.sort(key=lambda row: row["fail"], reverse=True)
        for row in failing[:5]:
            rate_part = f", pass rate {_fmt(row['pass_rate'])}%" if _is_number(row.get("pass_rate")) else ""
            risks.append(f"- {row.get('name', '?')}: {_fmt(row['fail'])} failing{rate_part}")
    elif isinstance(categories, dict):
        risks += [f"- {name}: {as_short(value)}" for name, value in list(categories.items())[:5]]
    for item in (_l(figures.get("new_failures")) or _l(figures.get("failures")))[:5]:
        risks.append(f"- New failure: {as_short(item)}")
    flaky = _l(figures.get("flaky_cases"))
    if flaky:
        risks.append(f"- Flaky cases: {', '.join(str(key) for key in flaky[:5])}")
    for reason in _l(figures.get("gate_reasons"))[:3]:
        risks.append(f"- Gate: {as_short(reason)}")
    mantis = figures.get("open_mantis_issues")
    if _is_number(mantis) and mantis:
        risks.append(f"- {_fmt(mantis)} open Mantis issue(s) are linked to failures.")
    lines += ["", "Risks", *(risks or ["- No risks stand out in the figures."])]

    lines += ["", "Recommendation"]
    verdict = gate.upper().replace("_", "-") if isinstance(gate, str) else ""
    if verdict == "GO" or (not verdict and rate is not None and rate >= 95 and not failed and not pending):
        lines.append("Release: the figures meet the release criteria.")
    elif verdict == "NO-GO":
        lines.append("Do not release yet: resolve the gate reasons and the failures above, then re-test.")
    elif rate is not None and rate >= 85:
        lines.append("Release with caution: fix or explicitly accept the failures listed above first.")
    elif rate is None:
        lines.append("No recommendation yet: there are no executed runs to judge.")
    else:
        lines.append("Do not release yet: the pass rate is too low; triage the failures and re-test.")
    return "\n".join(lines)


def as_short(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {item}" for key, item in list(value.items())[:6])
    return str(value)[:200]


_ANSWERS = {
    "draft_steps": _draft_steps,
    "triage_failure": _triage,
    "draft_bug_report": _bug_report,
    "summarise_rc": _summarise_rc,
    "report_summary": _report_summary,
}


def answer(template_id: str, variables: dict) -> str:
    handler = _ANSWERS.get(template_id)
    if handler is None:
        return f"{HEADER}\nNo offline answer exists for the {template_id} template."
    return handler(variables)
