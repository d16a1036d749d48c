"""Versioned prompt templates. A template is data: id, version, the task it serves, the variables it needs, and the
system/user text. Changing a prompt means a new version; the id and version used are stored on every usage log.

Variables are rendered into readable blocks (`key: value` lines, lists as bullets) so a template never depends on the
shape of nested data, and the same variables feed the offline provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from report_platform.errors import ValidationFailed


@dataclass(frozen=True)
class PromptTemplate:
    id: str
    version: int
    title: str
    system: str
    user: str  # str.format text over rendered variable blocks
    required: tuple[str, ...]
    max_completion_tokens: int = 600

    def render(self, variables: dict[str, Any]) -> list[dict[str, str]]:
        """The chat messages for these variables; missing variables are a ValidationFailed."""
        missing = [name for name in self.required if variables.get(name) in (None, "", [], {})]
        if missing:
            raise ValidationFailed(
                f"The {self.title.lower()} prompt needs: {', '.join(missing)}.",
                code="ai_prompt_variables_missing",
                fields={name: ["This is required for this task."] for name in missing},
            )
        blocks = _Blocks(variables)
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user.format_map(blocks)},
        ]


class _Blocks(dict):
    def __init__(self, variables: dict[str, Any]) -> None:
        super().__init__()
        self.variables = variables

    def __missing__(self, key: str) -> str:
        if key == "figures" and key not in self.variables:
            return as_text(self.variables)  # report_summary takes whatever figures the caller passes
        return as_text(self.variables.get(key, "(none)"))


def as_text(value: Any, indent: int = 0) -> str:
    """Render nested variables as plain indented text."""
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                lines.append(as_text(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {as_text(item) if isinstance(item, dict | list) else item}")
        return "\n".join(lines) if lines else f"{pad}(none)"
    if isinstance(value, list):
        if not value:
            return f"{pad}(none)"
        lines = []
        for item in value:
            if isinstance(item, dict):
                inner = "; ".join(f"{k}: {v}" for k, v in item.items())
                lines.append(f"{pad}- {inner}")
            else:
                lines.append(f"{pad}- {item}")
        return "\n".join(lines)
    return f"{pad}{value}"


_SYSTEM = (
    "You are a senior QA engineer helping a release team. Answer in plain text (no HTML, no Markdown tables), "
    "be concrete and brief, and never invent facts that are not in the data given."
)

TEMPLATES: dict[str, PromptTemplate] = {
    template.id: template
    for template in [
        PromptTemplate(
            id="draft_steps",
            version=1,
            title="Draft test steps",
            system=_SYSTEM,
            user=(
                "Draft numbered test steps with expected results for this test case.\n\n"
                "Case:\n{case}\n\nSuite:\n{suite}\n\nRecent runs:\n{history}\n"
            ),
            required=("case",),
        ),
        PromptTemplate(
            id="triage_failure",
            version=1,
            title="Triage a failed run",
            system=_SYSTEM,
            user=(
                "Triage this failed test run: give the likely cause and what to check next, most likely first.\n\n"
                "Run:\n{run}\n\nCase:\n{case}\n\nHistory of this case across RCs:\n{history}\n\n"
                "Other failures in the same RC and category:\n{related}\n"
            ),
            required=("run", "case"),
        ),
        PromptTemplate(
            id="draft_bug_report",
            version=1,
            title="Draft a Mantis bug report",
            system=_SYSTEM,
            user=(
                "Draft a Mantis bug report (summary, steps to reproduce, expected, actual, severity, notes) "
                "for this failure.\n\nRun:\n{run}\n\nCase:\n{case}\n\nHistory:\n{history}\n"
            ),
            required=("run", "case"),
        ),
        PromptTemplate(
            id="summarise_rc",
            version=1,
            title="Summarise an RC's failures",
            system=_SYSTEM,
            user=(
                "Summarise the state of this release candidate: main failure themes, risky areas, and what to "
                "do before release.\n\nRelease candidate:\n{release_candidate}\n\nStatus counts:\n{counts}\n\n"
                "Failures:\n{failures}\n\nPrevious RC:\n{previous}\n"
            ),
            required=("release_candidate", "counts"),
            max_completion_tokens=800,
        ),
        PromptTemplate(
            id="report_summary",
            version=1,
            title="Report narrative",
            system=_SYSTEM,
            user=(
                "Write the narrative of a release-quality report from these figures, in three parts headed "
                "'Summary', 'Risks' and 'Recommendation'.\n\nFigures:\n{figures}\n"
            ),
            required=(),
            max_completion_tokens=700,
        ),
    ]
}

# Tasks a user can ask for from the assistant page (report_summary is used by the reports app).
ASSIST_TASKS = ("draft_steps", "triage_failure", "draft_bug_report", "summarise_rc")


def template_get(template_id: str) -> PromptTemplate:
    try:
        return TEMPLATES[template_id]
    except KeyError:
        raise ValidationFailed(
            f"Unknown prompt template {template_id!r}.",
            code="ai_unknown_template",
            fields={"template": [f"Choose one of: {', '.join(TEMPLATES)}."]},
        ) from None
