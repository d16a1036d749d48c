"""The CSV format of imports and exports: streamed reading, header mapping, row validation, formula neutralising.

Pure functions over byte chunks, no database. The format (README "CSV import and export"):

- one row per test case, optionally carrying one run of that case for a release candidate;
- columns (matched case-insensitively, any order): product, suite, key, title, category, task, owner, priority,
  tags, rc, status, mantis_ids, notes, executed_at, executed_by;
- required: product, suite, key, title, category, owner; once any run column is present, rc, status and
  executed_at are required too (a row with an empty rc is a case-only row);
- delimiter `,`, `;` or TAB (taken from the header line); UTF-8 with or without BOM; any line endings.

Field limits and their codes are the releases rule table's (releases/rules.py): a row is refused exactly when a
page or the API would refuse the same value, with the same code (`too_long`, `invalid_key`, `invalid_rc_name`,
`invalid_priority`, `invalid_tag`, `invalid_status`, `invalid_mantis_id`, `notes_too_long`).

Errors are coded: `CsvFileError` stops reading (the file itself is unusable), `RowError` entries describe one
cell or row; each has a row number (the header is row 1, like a spreadsheet) and a column name where one applies.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy

from releases import rules
from report_platform.errors import ValidationFailed

COLUMNS = (
    "product",
    "suite",
    "key",
    "title",
    "category",
    "task",
    "owner",
    "priority",
    "tags",
    "rc",
    "status",
    "mantis_ids",
    "notes",
    "executed_at",
    "executed_by",
)
CASE_REQUIRED = ("product", "suite", "key", "title", "category", "owner")
RUN_COLUMNS = ("rc", "status", "mantis_ids", "notes", "executed_at", "executed_by")
RUN_REQUIRED = ("rc", "status", "executed_at")
STATUSES = rules.RUN_STATUSES
LIST_SEPARATOR = "|"
# Text rules per column: the releases rule table's (releases/rules.py), so a row is refused exactly when the page
# or the API would refuse the same value, with the same code; executed_by is an e-mail address (accounts' limit).
COLUMN_RULES = {**rules.CSV_COLUMNS, "executed_by": rules.TextRule(254)}
MAX_LENGTHS = {name: rule.max_length for name, rule in COLUMN_RULES.items()}
MAX_TAG_LENGTH = rules.TAG_MAX_LENGTH
# Identifier-like columns: trimmed, and no invisible characters (they make two different keys look equal).
IDENTIFIER_COLUMNS = ("product", "suite", "key", "category", "owner", "rc", "tags", "executed_by", "status")

# Cells a spreadsheet would evaluate (OWASP CSV injection): exports prefix them with an apostrophe; imports remove
# that apostrophe again so export -> import round-trips. An apostrophe before another apostrophe is escaped too.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff\u00ad]")
_BINARY_SIGNATURES = {
    b"\x89PNG": "a PNG image",
    b"PK\x03\x04": "a ZIP archive (or an .xlsx workbook)",
    b"%PDF": "a PDF document",
    b"GIF8": "a GIF image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x1f\x8b": "a gzip archive",
}
READ_CHUNK = 1 << 16


class CsvFileError(Exception):
    """The file cannot be read as our CSV at all (encoding, binary, quoting, limits, header)."""

    def __init__(self, code: str, message: str, *, row: int | None = None, column: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.row = row
        self.column = column

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "code": self.code, "message": self.message}


def row_error(code: str, message: str, *, row: int | None, column: str | None = None) -> dict[str, Any]:
    return {"row": row, "column": column, "code": code, "message": message}


def rule_error(error: ValidationFailed, *, row: int | None, column: str | None) -> dict[str, Any]:
    """A rule-table refusal (releases/rules.py) as a row error: its code, its first field message."""
    messages = [message for field_messages in error.fields.values() for message in field_messages]
    return row_error(error.code, messages[0] if messages else error.message, row=row, column=column)


def neutralise_cell(value: str) -> str:
    """Export side: a cell that starts like a formula is prefixed with `'` (and so is one starting with `'`)."""
    if value and value[0] in FORMULA_TRIGGERS:
        return "'" + value
    return value


def unneutralise_cell(value: str) -> str:
    """Import side: the inverse of `neutralise_cell`."""
    if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_TRIGGERS:
        return value[1:]
    return value


class _ChunkStream(io.RawIOBase):
    """Raw byte stream over an iterable of chunks; refuses NUL bytes and counts lines for error positions."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._current = b""
        self._position = 0
        self.lines_before = 0  # newlines in the chunks already handed out

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bool:
        for chunk in self._chunks:
            if not chunk:
                continue
            nul = chunk.find(b"\x00")
            if nul >= 0:
                line = self.lines_before + chunk.count(b"\n", 0, nul) + 1
                raise CsvFileError(
                    "nul_byte",
                    f"Line {line} contains a NUL byte: this is not a text CSV file (UTF-16 or binary?).",
                    row=line,
                )
            self.lines_before += chunk.count(b"\n")
            self._current = chunk
            self._position = 0
            return True
        return False

    def readinto(self, buffer) -> int:
        if self._position >= len(self._current) and not self._next_chunk():
            return 0
        size = min(len(buffer), len(self._current) - self._position)
        buffer[:size] = self._current[self._position : self._position + size]
        self._position += size
        return size


def _locate_decode_error(chunks: Iterable[bytes]) -> int:
    """Line number (1-based) of the first byte that is not valid UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    lines = 0
    for chunk in chunks:
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as error:
            return lines + chunk.count(b"\n", 0, max(error.start, 0)) + 1
        lines += chunk.count(b"\n")
    return lines + 1


def _sniff(first: bytes) -> None:
    if first.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CsvFileError(
            "unsupported_encoding", "The file is UTF-16 (or UTF-32); save it as UTF-8 and upload it again.", row=1
        )
    for signature, kind in _BINARY_SIGNATURES.items():
        if first.startswith(signature):
            raise CsvFileError("not_csv", f"The file is {kind}, not a CSV text file.", row=1)


def _detect_delimiter(header_line: str) -> str:
    counts = {delimiter: header_line.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


_CSV_ERROR_CODES = (
    ("field larger than field limit", "field_too_large", "A field is larger than the limit of {limit} bytes."),
    ("unexpected end of data", "unterminated_quote", "A quoted field is never closed (unterminated quote)."),
    ("expected after", "bad_quoting", 'A quote inside a field must be doubled (""), or the field quoted.'),
    ("new-line character seen in unquoted field", "bad_line_ending", "A line ending inside an unquoted field."),
)


class CsvReader:
    """Streamed CSV records: `header` (as written in the file), `delimiter`, then `for row, cells in reader`.

    `open_chunks()` returns a fresh iterable of byte chunks each time it is called (it is called again only to
    locate an encoding error). Raises `CsvFileError` for files that cannot be read.
    """

    def __init__(self, open_chunks: Callable[[], Iterable[bytes]]) -> None:
        self._open_chunks = open_chunks
        chunks = iter(open_chunks())
        first = b""
        for chunk in chunks:
            if chunk:
                first = chunk
                break
        _sniff(first[:8])
        self._stream = _ChunkStream(itertools.chain([first], chunks))
        self._text = io.TextIOWrapper(
            io.BufferedReader(self._stream, buffer_size=READ_CHUNK), encoding="utf-8-sig", newline=""
        )
        header_line = ""
        self._row = 0
        while not header_line.strip():
            header_line = self._guard(self._text.readline)
            if header_line == "":
                raise CsvFileError("empty_file", "The file is empty: it needs a header row and data rows.", row=1)
            if not header_line.strip():
                self._row += 1
        self.delimiter = _detect_delimiter(header_line)
        self._reader = csv.reader(itertools.chain([header_line], self._text), delimiter=self.delimiter, strict=True)
        self.header = self._next_record()
        if self.header is None:
            raise CsvFileError("empty_file", "The file is empty: it needs a header row and data rows.", row=1)
        self.header_row = self._row

    def _guard(self, read):
        try:
            return read()
        except UnicodeDecodeError as error:
            self._raise_decode_error(error)

    def _raise_decode_error(self, error: UnicodeDecodeError) -> None:
        line = _locate_decode_error(self._open_chunks())
        raise CsvFileError(
            "invalid_encoding",
            f"Line {line} is not valid UTF-8 (Latin-1 or Windows-1252?); save the file as UTF-8.",
            row=line,
        ) from error

    def _raise_csv_error(self, error: csv.Error, row: int) -> None:
        text = str(error)
        for marker, code, message in _CSV_ERROR_CODES:
            if marker in text:
                limit = csv.field_size_limit()
                column = self._locate_large_field(limit) if code == "field_too_large" else None
                raise CsvFileError(code, message.format(limit=limit), row=row, column=column) from error
        raise CsvFileError("malformed_csv", f"The CSV is malformed: {text}.", row=row) from error

    def _locate_large_field(self, limit: int) -> str | None:
        """The header name of the first cell over the field limit (the csv module does not say which): the file is
        read again with the limit lifted for that read only."""
        header = getattr(self, "header", None)
        text = io.TextIOWrapper(
            io.BufferedReader(_ChunkStream(iter(self._open_chunks())), buffer_size=READ_CHUNK),
            encoding="utf-8-sig",
            newline="",
            errors="replace",
        )
        previous = csv.field_size_limit(2**31 - 1)
        try:
            for record in csv.reader(text, delimiter=self.delimiter):
                for position, cell in enumerate(record):
                    if len(cell) > limit:
                        if header is not None and position < len(header):
                            return header[position].strip() or None
                        return f"column {position + 1}"
        except csv.Error:
            return None
        finally:
            csv.field_size_limit(previous)
        return None

    def _next_record(self) -> list[str] | None:
        try:
            record = next(self._reader)
        except StopIteration:
            return None
        except UnicodeDecodeError as error:
            self._raise_decode_error(error)
        except csv.Error as error:
            self._raise_csv_error(error, self._row + 1)
        self._row += 1
        return record

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        # The hot loop: one csv record per step, no per-row method calls.
        row = self._row
        try:
            for record in self._reader:
                row += 1
                if record:
                    yield row, record
        except UnicodeDecodeError as error:
            self._raise_decode_error(error)
        except csv.Error as error:
            self._raise_csv_error(error, row + 1)
        finally:
            self._row = row


@dataclass
class Mapping:
    """Which file column holds which field: `index[field]` is the cell position (absent columns are missing)."""

    header: list[str]
    index: dict[str, int]
    has_runs: bool

    def as_list(self) -> list[dict[str, Any]]:
        fields = {position: name for name, position in self.index.items()}
        return [{"column": title, "field": fields.get(position)} for position, title in enumerate(self.header)]


def map_header(header: list[str], *, row: int = 1) -> tuple[Mapping, list[dict[str, Any]]]:
    """Match header cells to fields case-insensitively; report unknown, duplicate and missing columns."""
    errors: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for position, raw in enumerate(header):
        name = raw.strip().lower()
        shown = raw[:80]
        if name in COLUMNS:
            if name in index:
                errors.append(
                    row_error("duplicate_column", f"Column {shown!r} appears more than once.", row=row, column=shown)
                )
            else:
                index[name] = position
        elif not name or "$" in name or "." in name or _BIDI_CONTROLS.search(name) or _INVISIBLE.search(name):
            errors.append(
                row_error(
                    "invalid_column_name",
                    f"Column name {shown!r} is not allowed (empty, or contains '$', '.' or invisible characters).",
                    row=row,
                    column=shown,
                )
            )
        else:
            errors.append(
                row_error(
                    "unknown_column",
                    f"Unknown column {shown!r}; the columns are: {', '.join(COLUMNS)}.",
                    row=row,
                    column=shown,
                )
            )
    has_runs = any(name in index for name in RUN_COLUMNS)
    required = CASE_REQUIRED + (RUN_REQUIRED if has_runs else ())
    for name in required:
        if name not in index:
            errors.append(row_error("missing_column", f"Required column {name!r} is missing.", row=row, column=name))
    return Mapping(header=header, index=index, has_runs=has_runs), errors


@dataclass
class Record:
    """One validated row, ready to write."""

    row: int
    product: str
    suite: str
    key: str
    title: str
    category: str
    task: str
    owner: str
    priority: int
    tags: list[str]
    rc: str = ""
    status: str = ""
    mantis_ids: list[int] = field(default_factory=list)
    notes: str = ""
    executed_at: datetime | None = None
    executed_by: str = ""

    def case_key(self) -> tuple[str, str, str]:
        return (self.product, self.suite, self.key)

    def case_values(self) -> tuple:
        return (self.title, self.category, self.task, self.owner, self.priority, tuple(self.tags))


def parse_datetime(value: str) -> datetime:
    """ISO 8601 (`2026-11-20T10:15:00Z`, `2026-11-20 10:15`, with or without offset; naive means UTC),
    truncated to milliseconds like MongoDB stores it."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


def format_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RowConverter:
    """Turns the cells of one row into a `Record`, appending coded errors to `errors` when it cannot."""

    def __init__(self, mapping: Mapping) -> None:
        self.mapping = mapping
        self.width = len(mapping.header)
        self.positions = [(name, mapping.index[name]) for name in COLUMNS if name in mapping.index]
        self.titles = {name: mapping.header[position][:80] for name, position in self.positions}

    def convert(self, row: int, cells: list[str], errors: list[dict[str, Any]]) -> Record | None:
        if len(cells) != self.width:
            kind = "few" if len(cells) < self.width else "many"
            errors.append(
                row_error(
                    "ragged_row",
                    f"Row has too {kind} cells: {len(cells)} instead of {self.width}.",
                    row=row,
                )
            )
            return None
        values: dict[str, str] = {}
        ok = True
        titles = self.titles
        for name, position in self.positions:
            value = cells[position]
            if value and value[0] == "'":
                value = unneutralise_cell(value)
            if name in IDENTIFIER_COLUMNS:
                value = value.strip()
                if _INVISIBLE.search(value):
                    errors.append(
                        row_error(
                            "invisible_character",
                            "Zero-width or other invisible characters are not allowed in this column.",
                            row=row,
                            column=titles[name],
                        )
                    )
                    ok = False
            if _BIDI_CONTROLS.search(value):
                errors.append(
                    row_error(
                        "bidi_control",
                        "Right-to-left override / bidirectional control characters are not allowed.",
                        row=row,
                        column=titles[name],
                    )
                )
                ok = False
            rule = COLUMN_RULES.get(name)
            if rule is not None and not rule.accepts(value):
                try:
                    rule.check(value, field=name)
                except ValidationFailed as error:
                    errors.append(rule_error(error, row=row, column=titles[name]))
                    ok = False
            values[name] = value
        for name in CASE_REQUIRED:
            if not values.get(name):
                errors.append(row_error("required", "This value is required.", row=row, column=titles[name]))
                ok = False
        priority = 3
        raw_priority = values.get("priority", "")
        if raw_priority:
            try:
                priority = rules.clean_priority(raw_priority)
            except ValidationFailed as error:
                errors.append(rule_error(error, row=row, column=titles["priority"]))
                ok = False
        tags: list[str] = []
        raw_tags = values.get("tags", "")
        if raw_tags:
            try:
                tags = rules.clean_tags(raw_tags.split(LIST_SEPARATOR))
            except ValidationFailed as error:
                errors.append(rule_error(error, row=row, column=titles["tags"]))
                ok = False
        record = Record(
            row=row,
            product=values["product"],
            suite=values["suite"],
            key=values["key"],
            title=values["title"],
            category=values["category"],
            task=values.get("task", ""),
            owner=values["owner"],
            priority=priority,
            tags=tags,
        )
        rc = values.get("rc", "")
        if rc:
            ok = self._convert_run(record, rc, values, row, errors) and ok
        elif any(values.get(name) for name in RUN_COLUMNS):
            errors.append(
                row_error(
                    "required", "A row with run values needs the release candidate.", row=row, column=titles["rc"]
                )
            )
            ok = False
        return record if ok else None

    def executed_by_of(self, cells: list[str]) -> str:
        """The row's executed_by e-mail (lower case), read even when the row has other errors; "" without one."""
        position = self.mapping.index.get("executed_by")
        if position is None or len(cells) != self.width:
            return ""
        value = cells[position]
        if value and value[0] == "'":
            value = unneutralise_cell(value)
        return value.strip().lower()

    def _convert_run(self, record: Record, rc: str, values: dict[str, str], row: int, errors: list) -> bool:
        titles = self.titles
        ok = True
        record.rc = rc
        status = values.get("status", "").lower()
        if status not in STATUSES:
            errors.append(
                row_error(
                    "invalid_status" if status else "required",
                    f"Status must be one of {', '.join(STATUSES)}, got {values.get('status', '')[:40]!r}.",
                    row=row,
                    column=titles["status"],
                )
            )
            ok = False
        record.status = status
        raw_date = values.get("executed_at", "")
        try:
            record.executed_at = parse_datetime(raw_date)
        except (ValueError, OverflowError):
            errors.append(
                row_error(
                    "invalid_date" if raw_date else "required",
                    f"executed_at must be an ISO 8601 date-time such as 2026-11-20T10:15:00Z, got {raw_date[:40]!r}.",
                    row=row,
                    column=titles["executed_at"],
                )
            )
            ok = False
        raw_ids = values.get("mantis_ids", "")
        if raw_ids:
            try:
                record.mantis_ids = rules.clean_mantis_ids(raw_ids.split(LIST_SEPARATOR))
            except ValidationFailed as error:
                errors.append(rule_error(error, row=row, column=titles["mantis_ids"]))
                ok = False
        record.notes = values.get("notes", "")
        record.executed_by = values.get("executed_by", "").lower()
        return ok


@dataclass
class ValidationReport:
    delimiter: str = ","
    mapping: list[dict[str, Any]] = field(default_factory=list)
    preview: list[list[str]] = field(default_factory=list)
    total: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_count: int = 0
    has_runs: bool = False
    release_candidates: list[str] = field(default_factory=list)
    # RC name -> {product of the rows naming it: the first such row}: an RC belongs to one product.
    release_candidate_products: dict[str, dict[str, int]] = field(default_factory=dict)
    # email -> every row naming it (even rows with other errors, so an unknown user is reported with them)
    executed_by: dict[str, array] = field(default_factory=dict)
    executed_by_column: str = "executed_by"  # the column's title in the file

    def add(self, error: dict[str, Any], *, keep: int) -> None:
        self.error_count += 1
        if len(self.errors) < keep:
            self.errors.append(error)


def open_and_map(open_chunks: Callable[[], Iterable[bytes]]) -> tuple[CsvReader, Mapping, list[dict[str, Any]]]:
    reader = CsvReader(open_chunks)
    mapping, errors = map_header(reader.header, row=reader.header_row)
    return reader, mapping, errors


class _KeyLog:
    """Natural keys seen in a file, as 64-bit hashes in flat arrays (about 30 bytes per row, whatever the row
    holds); duplicates and conflicts are found once at the end by sorting (numpy)."""

    def __init__(self) -> None:
        self.case_hashes = array("q")
        self.value_hashes = array("q")
        self.case_rows = array("q")
        self.case_only = array("b")
        self.run_hashes = array("q")
        self.run_rows = array("q")

    def case(self, case_hash: int, value_hash: int, row: int, case_only: bool) -> None:
        self.case_hashes.append(case_hash)
        self.value_hashes.append(value_hash)
        self.case_rows.append(row)
        self.case_only.append(case_only)

    def run(self, run_hash: int, row: int) -> None:
        self.run_hashes.append(run_hash)
        self.run_rows.append(row)

    @staticmethod
    def _sorted(hashes: array, rows: array) -> tuple[Any, Any, Any]:
        keys = numpy.frombuffer(hashes, dtype=numpy.int64)
        row_numbers = numpy.frombuffer(rows, dtype=numpy.int64)
        order = numpy.lexsort((row_numbers, keys))
        return order, keys[order], row_numbers[order]

    @staticmethod
    def _group_first(sorted_keys) -> Any:
        """For each position of a sorted array, the position where its run of equal keys starts."""
        count = len(sorted_keys)
        starts = numpy.flatnonzero(numpy.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        return numpy.repeat(starts, numpy.diff(numpy.r_[starts, count]))

    def errors(self, *, column: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        if len(self.case_hashes) > 1:
            order, keys, rows = self._sorted(self.case_hashes, self.case_rows)
            values = numpy.frombuffer(self.value_hashes, dtype=numpy.int64)[order]
            only = numpy.frombuffer(self.case_only, dtype=numpy.int8)[order].astype(bool)
            first = self._group_first(keys)
            for position in numpy.flatnonzero(values != values[first]):
                found.append(
                    row_error(
                        "conflicting_case",
                        f"This case (same product, suite and key) has different values in row {rows[first[position]]}.",
                        row=int(rows[position]),
                        column=column,
                    )
                )
            only_keys, only_rows = keys[only], rows[only]
            if len(only_keys) > 1:
                only_first = self._group_first(only_keys)
                for position in numpy.flatnonzero(only_first != numpy.arange(len(only_keys))):
                    found.append(
                        row_error(
                            "duplicate_key",
                            f"This case (same product, suite and key) already appears in row "
                            f"{only_rows[only_first[position]]}.",
                            row=int(only_rows[position]),
                            column=column,
                        )
                    )
        if len(self.run_hashes) > 1:
            _, keys, rows = self._sorted(self.run_hashes, self.run_rows)
            first = self._group_first(keys)
            for position in numpy.flatnonzero(first != numpy.arange(len(keys))):
                found.append(
                    row_error(
                        "duplicate_key",
                        f"This run (same case, RC and executed_at) already appears in row {rows[first[position]]}.",
                        row=int(rows[position]),
                        column=column,
                    )
                )
        return sorted(found, key=lambda error: error["row"])


def validate(
    open_chunks: Callable[[], Iterable[bytes]], *, max_rows: int, max_errors: int, preview_rows: int
) -> ValidationReport:
    """Read the whole file once (streamed) and report every problem; nothing is written.

    Duplicate detection keeps one 64-bit hash per case and per run (not the rows), so memory grows by tens of
    bytes per row, never with the row contents.
    """
    report = ValidationReport()
    try:
        reader, mapping, header_errors = open_and_map(open_chunks)
    except CsvFileError as error:
        report.add(error.as_dict(), keep=max_errors)
        return report
    report.delimiter = reader.delimiter
    report.mapping = mapping.as_list()
    report.has_runs = mapping.has_runs
    for error in header_errors:
        report.add(error, keep=max_errors)
    if header_errors:
        return report
    converter = RowConverter(mapping)
    has_executed_by = "executed_by" in mapping.index
    if has_executed_by:
        report.executed_by_column = converter.titles["executed_by"]
    keys = _KeyLog()
    rcs: dict[str, dict[str, int]] = {}  # RC name -> {product of a row naming it: first such row}
    errors: list[dict[str, Any]] = []
    try:
        for row, cells in reader:
            report.total += 1
            if report.total > max_rows:
                report.add(
                    row_error("too_many_rows", f"The file has more than {max_rows} data rows; split it.", row=row),
                    keep=max_errors,
                )
                return report
            if len(report.preview) < preview_rows:
                # Preview row i is file row i + 2 (blank lines kept as empty rows), so errors can mark its cells.
                while len(report.preview) < min(row - 2, preview_rows):
                    report.preview.append([])
                if len(report.preview) < preview_rows:
                    report.preview.append([cell[:200] for cell in cells])
            record = converter.convert(row, cells, errors)
            if errors:
                for error in errors:
                    report.add(error, keep=max_errors)
                errors.clear()
            if has_executed_by:
                email = record.executed_by if record is not None else converter.executed_by_of(cells)
                if email:
                    rows_of_email = report.executed_by.get(email)
                    if rows_of_email is None:
                        rows_of_email = report.executed_by[email] = array("q")
                    rows_of_email.append(row)
            if record is None:
                continue
            case_hash = hash(record.case_key())
            keys.case(case_hash, hash(record.case_values()), row, not record.rc)
            if record.rc:
                keys.run(hash((case_hash, record.rc, record.executed_at)), row)
                rcs.setdefault(record.rc, {}).setdefault(record.product, row)
    except CsvFileError as error:
        report.add(error.as_dict(), keep=max_errors)
        return report
    if report.total == 0:
        report.add(
            row_error("no_rows", "The file has a header but no data rows.", row=reader.header_row + 1),
            keep=max_errors,
        )
    for error in keys.errors(column=converter.titles["key"]):
        report.add(error, keep=max_errors)
    report.release_candidates = list(rcs)
    report.release_candidate_products = rcs
    return report


def iter_records(open_chunks: Callable[[], Iterable[bytes]]) -> Iterator[Record]:
    """The records of a file that `validate` accepted. Raises `CsvFileError` if it no longer validates."""
    reader, mapping, header_errors = open_and_map(open_chunks)
    if header_errors:
        first = header_errors[0]
        raise CsvFileError(first["code"], first["message"], row=first["row"], column=first["column"])
    converter = RowConverter(mapping)
    errors: list[dict[str, Any]] = []
    for row, cells in reader:
        record = converter.convert(row, cells, errors)
        if record is None:
            first = errors[0]
            raise CsvFileError(first["code"], first["message"], row=first["row"], column=first["column"])
        yield record


def write_rows(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Export: CSV text chunks (header first) with every cell neutralised; same columns as the import."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for number, row in enumerate(rows, start=1):
        writer.writerow([neutralise_cell(_export_text(row.get(name))) for name in COLUMNS])
        if number % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _export_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, list | tuple):
        return LIST_SEPARATOR.join(str(item) for item in value)
    return str(value)
