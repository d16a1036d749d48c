"""The field rules of releases data, in one table: every write path (page forms, the API, the CSV importer, bulk
writes and the services) takes its limits and its error codes from here, so a value one path accepts is never
refused by another, and each refusal carries the same code everywhere.

| field (form / API / CSV column)   | rule                                                    | code                |
|-----------------------------------|---------------------------------------------------------|---------------------|
| case key (`key`)                  | 1-64 characters; letters, digits and `. _ : / -`, no    | too_long /          |
|                                   | spaces, starting with a letter or digit                 | invalid_key         |
| case title (`title`)              | at most 300 characters                                  | too_long            |
| case category (`category`)        | at most 100 characters                                  | too_long            |
| case task (`task`)                | at most 200 characters                                  | too_long            |
| case owner (`owner`)              | at most 150 characters                                  | too_long            |
| case priority (`priority`)        | 1-4 (the CSV also takes P1-P4)                          | invalid_priority    |
| case tags (`tags`)                | at most 20 distinct tags of at most 50 characters each  | invalid_tag         |
| run status (`status`)             | pass, fail or pending                                   | invalid_status      |
| run Mantis ids (`mantis_ids`)     | at most 20 distinct ids per run, each 1-999,999,999     | invalid_mantis_id   |
| run notes (`notes`)               | at most 10,000 characters                               | notes_too_long      |
| suite name (`name`, CSV `suite`)  | at most 200 characters                                  | too_long            |
| product (`product`)               | at most 120 characters                                  | too_long            |
| RC name (`name`, CSV/API `rc`)    | 1-64 characters; starts with a letter or digit, then    | too_long /          |
|                                   | letters, digits, spaces and `. _ : / + # -`             | invalid_rc_name     |
| RC sequence                       | a new RC goes after the newest: 10, then last + 10      | (not an input)      |

Values are checked as given (callers trim identifiers first). Required values and value types (a missing title, a
priority that is not a number) are each caller's own parsing and answer `validation_failed` / `required`.

Data an older rule let in stays editable: `check_values(..., stored=...)` skips a field whose value equals the
stored one, so a case imported with the key `LOGIN 001` can still have its title changed; changing the key to
another value that breaks the pattern is refused. New values (created cases, imported rows) are always checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from report_platform.errors import ValidationFailed

# --- the table ---------------------------------------------------------------------------------------------------

KEY_MAX_LENGTH = 64
KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
KEY_PATTERN_MESSAGE = "Use letters, digits and . _ : / - (no spaces), starting with a letter or digit."
TITLE_MAX_LENGTH = 300
CATEGORY_MAX_LENGTH = 100
TASK_MAX_LENGTH = 200
OWNER_MAX_LENGTH = 150
PRIORITY_MIN = 1
PRIORITY_MAX = 4
TAGS_MAX = 20
TAG_MAX_LENGTH = 50
RUN_STATUSES = ("pass", "fail", "pending")
MANTIS_IDS_PER_RUN_MAX = 20
MANTIS_ID_MAX = 999_999_999
NOTES_MAX_LENGTH = 10_000
SUITE_NAME_MAX_LENGTH = 200
PRODUCT_MAX_LENGTH = 120
RC_NAME_MAX_LENGTH = 64
RC_NAME_PATTERN = re.compile(r"^[^\W_][\w .:/+#-]*$")
RC_NAME_PATTERN_MESSAGE = "Start with a letter or digit; then letters, digits, spaces and . _ : / + # - only."
RC_SEQUENCE_FIRST = 10
RC_SEQUENCE_STEP = 10

# Every code a rule raises (forms and the importer report these unchanged).
CODES = (
    "too_long",
    "invalid_key",
    "invalid_rc_name",
    "invalid_priority",
    "invalid_tag",
    "invalid_status",
    "invalid_mantis_id",
    "notes_too_long",
)


@dataclass(frozen=True)
class TextRule:
    """A text field: at most `max_length` characters (code `code`), optionally a pattern (code `pattern_code`)."""

    max_length: int
    code: str = "too_long"
    pattern: re.Pattern[str] | None = None
    pattern_code: str = ""
    pattern_message: str = ""

    def accepts(self, value: str) -> bool:
        """True when `check` would pass (cheap: for hot loops that only want the error path to cost more)."""
        return len(value) <= self.max_length and (
            self.pattern is None or not value or bool(self.pattern.fullmatch(value))
        )

    def check(self, value: str, *, field: str) -> str:
        """Return `value`, or raise `ValidationFailed` with the rule's code naming `field`. An empty value passes
        (whether a value is required is the caller's business)."""
        if len(value) > self.max_length:
            raise ValidationFailed(
                f"{field}: at most {self.max_length} characters.",
                code=self.code,
                fields={field: [f"At most {self.max_length} characters ({len(value)} given)."]},
            )
        if self.pattern is not None and value and not self.pattern.fullmatch(value):
            raise ValidationFailed(
                f"{field}: {self.pattern_message}", code=self.pattern_code, fields={field: [self.pattern_message]}
            )
        return value


KEY = TextRule(KEY_MAX_LENGTH, pattern=KEY_PATTERN, pattern_code="invalid_key", pattern_message=KEY_PATTERN_MESSAGE)
TITLE = TextRule(TITLE_MAX_LENGTH)
CATEGORY = TextRule(CATEGORY_MAX_LENGTH)
TASK = TextRule(TASK_MAX_LENGTH)
OWNER = TextRule(OWNER_MAX_LENGTH)
NOTES = TextRule(NOTES_MAX_LENGTH, code="notes_too_long")
SUITE_NAME = TextRule(SUITE_NAME_MAX_LENGTH)
PRODUCT = TextRule(PRODUCT_MAX_LENGTH)
RC_NAME = TextRule(
    RC_NAME_MAX_LENGTH, pattern=RC_NAME_PATTERN, pattern_code="invalid_rc_name", pattern_message=RC_NAME_PATTERN_MESSAGE
)

# Text rules by model and field name (what the services check on an instance before saving it).
CASE_TEXT = {"key": KEY, "title": TITLE, "category": CATEGORY, "task": TASK, "owner": OWNER}
SUITE_TEXT = {"name": SUITE_NAME, "product": PRODUCT}
RELEASE_CANDIDATE_TEXT = {"name": RC_NAME}
# Text rules by CSV column (imports/csvformat.py).
CSV_COLUMNS = {
    "product": PRODUCT,
    "suite": SUITE_NAME,
    "key": KEY,
    "title": TITLE,
    "category": CATEGORY,
    "task": TASK,
    "owner": OWNER,
    "rc": RC_NAME,
    "notes": NOTES,
}


# --- small pure checks -------------------------------------------------------------------------------------------


def clean_priority(value: Any, *, field: str = "priority") -> int:
    """A priority 1-4 from an int or a text ("2", "P2", "p2"); anything else is `invalid_priority`."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip().upper().removeprefix("P")
        if text.isascii() and text.isdigit() and len(text) <= 3:
            number = int(text)
    if number is None or not PRIORITY_MIN <= number <= PRIORITY_MAX:
        raise ValidationFailed(
            f"Priority must be {PRIORITY_MIN}-{PRIORITY_MAX}.",
            code="invalid_priority",
            fields={field: [f"Priority must be {PRIORITY_MIN}-{PRIORITY_MAX} (or P1-P4), got {str(value)[:40]!r}."]},
        )
    return number


def clean_tags(tags: Iterable[Any] | None, *, check_count: bool = True) -> list[str]:
    """Trimmed, distinct, non-empty tags in their first order. Each at most TAG_MAX_LENGTH characters; at most
    TAGS_MAX of them (unless `check_count` is False: the caller checks the count against the stored tags)."""
    cleaned: list[str] = []
    for tag in tags or ():
        text = str(tag).strip()
        if not text:
            continue
        if len(text) > TAG_MAX_LENGTH:
            raise ValidationFailed(
                f"A tag has at most {TAG_MAX_LENGTH} characters.",
                code="invalid_tag",
                fields={"tags": [f"A tag has at most {TAG_MAX_LENGTH} characters ({text[:30]!r}... has {len(text)})."]},
            )
        if text not in cleaned:
            cleaned.append(text)
    if check_count:
        check_tag_count(cleaned)
    return cleaned


def check_tag_count(tags: list[str]) -> None:
    if len(tags) > TAGS_MAX:
        raise ValidationFailed(
            f"At most {TAGS_MAX} tags.",
            code="invalid_tag",
            fields={"tags": [f"At most {TAGS_MAX} tags ({len(tags)})."]},
        )


def clean_mantis_ids(values: Iterable[Any] | None) -> list[int]:
    """Distinct Mantis issue ids (ints, or texts like "12" / "#12"; blank entries are skipped), in first order.
    Each 1..MANTIS_ID_MAX, at most MANTIS_IDS_PER_RUN_MAX per run; otherwise `invalid_mantis_id`."""
    cleaned: list[int] = []
    digits = len(str(MANTIS_ID_MAX))
    for value in values or ():
        text = str(value).strip().lstrip("#")
        if not text and isinstance(value, str):
            continue
        valid = not isinstance(value, bool) and text.isascii() and text.isdigit() and len(text) <= digits
        if not valid or not 0 < int(text) <= MANTIS_ID_MAX:
            raise ValidationFailed(
                "Mantis ids are positive whole numbers.",
                code="invalid_mantis_id",
                fields={"mantis_ids": [f"{str(value)[:30]!r} is not a Mantis issue id (1-{MANTIS_ID_MAX})."]},
            )
        if int(text) not in cleaned:
            cleaned.append(int(text))
    if len(cleaned) > MANTIS_IDS_PER_RUN_MAX:
        raise ValidationFailed(
            f"At most {MANTIS_IDS_PER_RUN_MAX} Mantis ids per run.",
            code="invalid_mantis_id",
            fields={"mantis_ids": [f"At most {MANTIS_IDS_PER_RUN_MAX} ids per run ({len(cleaned)} given)."]},
        )
    return cleaned


def check_status(value: str, *, field: str = "status") -> str:
    if value not in RUN_STATUSES:
        raise ValidationFailed(
            "Unknown run status.", code="invalid_status", fields={field: [f"Use one of: {', '.join(RUN_STATUSES)}."]}
        )
    return value


def check_notes(value: str) -> str:
    return NOTES.check(value, field="notes")


def next_rc_sequence(last: int | None) -> int:
    """The sequence of a new RC placed after the newest one (`last` = its sequence, None when there is none)."""
    return RC_SEQUENCE_FIRST if last is None else last + RC_SEQUENCE_STEP


# --- whole records -----------------------------------------------------------------------------------------------


_UNSET = object()


def check_values(
    values: Mapping[str, Any], *, text: Mapping[str, TextRule], stored: Mapping[str, Any] | None = None
) -> None:
    """Check the text fields in `text` (and `priority`, `tags` when present) of one record.

    `stored` holds the record's values as saved (None for a new record): a field whose value equals its stored
    value is not judged again, so data an older rule let in can still be edited around. Raises the first
    `ValidationFailed`."""
    stored = stored or {}

    def unchanged(name: str) -> bool:
        return stored.get(name, _UNSET) == values[name]

    for name, rule in text.items():
        if name in values and not unchanged(name):
            rule.check(values[name] or "", field=name)
    if "priority" in values and not unchanged("priority"):
        clean_priority(values["priority"])
    if "tags" in values and not unchanged("tags"):
        check_tag_count(clean_tags(values["tags"], check_count=False))
