"""JUnit / xUnit XML reports: reading uploads (plain, gzip, zip, several files), streaming the testcases and
mapping each one to a case and a run (the rows `releases.bulk` writes).

Safety: the XML is parsed by lxml's `iterparse` with entities, DTD loading and the network off and `huge_tree`
off; a document that declares a DTD at all (the vehicle of XXE and entity expansion) is refused with
`xml_dtd_forbidden` as soon as its root element starts, before any entity could be used. Parsing streams: each
testcase is handed on and cleared at its end tag, so memory stays flat in the size of the file. Compressed input
is counted as it is expanded and refused past JUNIT_MAX_EXPANDED_BYTES (gzip and zip bombs); a zip member whose
name leaves the archive (`../x.xml`, `/etc/x`, `C:\\x`) refuses the whole upload (`zip_path_traversal`).

Mapping (README "JUnit import"), for an upload with product P, RC R, owner O and category C:
- suite: the name of the outermost `<testsuite>` around the testcase, unless empty or a runner's generic name
  ("pytest", "jest tests", "Mocha Tests", "root"); else the first part of the testcase's `classname` (up to
  the first `.`, `::` or `/`: pytest's module, the same in xunit1 and xunit2); else "junit". Cleaned, at most
  200 characters.
- key: `classname.name` (or `name` when there is no classname or the name starts with it), characters outside
  the key pattern replaced by `_`; when anything was replaced or the key is longer than 64 characters, it is
  cut and a digest of the original appended, so distinct testcases keep distinct keys. title: the name,
  cleaned, at most 300 characters.
- status: `<failure>`/`<error>` -> fail (message and the first JUNIT_FAILURE_TEXT_MAX_BYTES of the text kept in
  `failure_message`, the normalised signature in `failure_signature`); `<skipped>` (also xfail, todo) -> pending,
  the reason in `notes`; `<flakyFailure>`/`<flakyError>` without a final failure -> pass with `flaky` set;
  otherwise pass. `time` -> `duration_ms`. `<rerunFailure>`, `<properties>`, `<system-out>`/`<system-err>` and
  any unknown element are read past.
- executed_at: the innermost testsuite's `timestamp` (no zone = UTC; one in the future = the upload time; one
  before 2000, like Go's zero time, = none), else
  the upload time. So the same file for the same RC maps to the same runs (natural key case + RC + executed_at).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import posixpath
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from lxml import etree

from releases import rules, signatures

GENERIC_SUITE_NAMES = {"pytest", "jest tests", "mocha tests", "root", "default suite", "testsuites"}
SUITE_FALLBACK = "junit"
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._:/-]+")
_KEY_DIGEST = 8
_CLASSNAME_SPLIT = re.compile(r"::|[./\\]")
_FAIL_TAGS = {"failure", "error"}
_FLAKY_TAGS = {"flakyFailure", "flakyError"}
_READ_BYTES = 64 * 1024


class JunitFileError(Exception):
    """The upload cannot be imported: a stable `code`, a message, and where (file, line) when known."""

    def __init__(self, code: str, message: str, *, line: int | None = None, file: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.line = line
        self.file = file

    @property
    def row(self) -> int | None:  # the CSV importer's error shape: row = line here
        return self.line

    def as_error(self) -> dict[str, Any]:
        return {"row": self.line, "column": self.file or None, "code": self.code, "message": self.message}


@dataclass(slots=True)
class Record:
    """One testcase as a case + run row (the `releases.bulk.BulkRow` protocol, plus the automated-run fields)."""

    product: str
    suite: str
    key: str
    title: str
    category: str
    owner: str
    rc: str
    status: str
    notes: str
    executed_at: datetime
    executed_by: str
    failure_signature: str = ""
    failure_message: str = ""
    duration_ms: int | None = None
    flaky: bool = False
    task: str = ""
    priority: int = 3
    tags: list[str] = field(default_factory=list)
    mantis_ids: list[int] = field(default_factory=list)


@dataclass
class Upload:
    """What an upload maps to: the target and the defaults of created cases."""

    product: str
    rc: str
    owner: str
    category: str
    uploaded_at: datetime
    executed_by: str = ""
    failure_text_bytes: int = 4096


# --- reading the stored upload -------------------------------------------------------------------------------


class _Budget:
    """Bytes expanded so far across the whole upload (gzip and zip bombs stop at the limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, count: int, *, file: str) -> None:
        self.used += count
        if self.used > self.limit:
            raise JunitFileError(
                "expanded_too_large",
                f"The report expands to more than {self.limit // (1024 * 1024)} MiB; nothing was imported.",
                file=file,
            )


class _Counted(io.RawIOBase):
    """A read-only stream that charges what it yields to the budget."""

    def __init__(self, raw: IO[bytes], *, budget: _Budget, name: str) -> None:
        self.raw, self.budget, self.name = raw, budget, name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        self.budget.spend(len(data), file=self.name)
        buffer[: len(data)] = data
        return len(data)


class ByteStream(io.RawIOBase):
    """The bytes `[start, start + size)` of a stream given as chunks (the job's stored upload)."""

    def __init__(self, chunks: Iterable[bytes], *, start: int = 0, size: int | None = None) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""
        self._skip = start
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._buffer:
            piece = next(self._chunks, None)
            if piece is None:
                return 0
            if self._skip:
                cut = min(self._skip, len(piece))
                piece, self._skip = piece[cut:], self._skip - cut
            self._buffer = piece
        count = min(len(buffer), len(self._buffer))
        if self._left is not None:
            count = min(count, self._left)
            if count <= 0:
                return 0
            self._left -= count
        buffer[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return count


def _zip_member_safe(name: str) -> bool:
    if not name or "\x00" in name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return False
    parts = name.replace("\\", "/").split("/")
    return ".." not in parts and posixpath.normpath(name.replace("\\", "/")) == name.replace("\\", "/").rstrip("/")


def documents(
    files: list[tuple[str, Callable[[], IO[bytes]]]], *, expanded_limit: int, max_files: int
) -> Iterator[tuple[str, IO[bytes]]]:
    """Each XML document of the upload as (display name, stream): a plain file, a gzip'ed one, or the `.xml`
    members of a zip (other members are skipped). Raises JunitFileError for traversal, bombs and too many files."""
    budget = _Budget(expanded_limit)
    count = 0
    for name, opener in files:
        stream = io.BufferedReader(opener(), buffer_size=_READ_BYTES)
        magic = stream.peek(4)[:4]
        if magic[:2] == b"\x1f\x8b":
            inner: IO[bytes] = gzip.GzipFile(fileobj=stream, mode="rb")
            count += 1
            yield name, io.BufferedReader(_Counted(inner, budget=budget, name=name), buffer_size=_READ_BYTES)
        elif magic == b"PK\x03\x04":
            archive = zipfile.ZipFile(io.BytesIO(stream.read()))  # bounded by the upload limit
            members = archive.infolist()
            unsafe = [member.filename for member in members if not _zip_member_safe(member.filename)]
            if unsafe:
                raise JunitFileError(
                    "zip_path_traversal",
                    f"The zip holds a member outside the archive ({unsafe[0][:80]!r}); nothing was imported.",
                    file=name,
                )
            for member in members:
                if member.is_dir() or not member.filename.lower().endswith((".xml", ".xml.gz")):
                    continue
                count += 1
                if count > max_files:
                    break
                member_name = f"{name}/{member.filename}"[-200:]
                raw = archive.open(member)
                if member.filename.lower().endswith(".gz"):
                    raw = gzip.GzipFile(fileobj=raw, mode="rb")
                yield member_name, io.BufferedReader(_Counted(raw, budget=budget, name=member_name))
        else:
            count += 1
            yield name, io.BufferedReader(_Counted(stream, budget=budget, name=name), buffer_size=_READ_BYTES)
        if count > max_files:
            raise JunitFileError("too_many_files", f"At most {max_files} report files per upload.", file=name)


# --- mapping -------------------------------------------------------------------------------------------------


def _local(tag: Any) -> str:
    if not isinstance(tag, str):
        return ""  # comments, processing instructions
    return tag.rpartition("}")[2]


def case_key(classname: str, name: str) -> str:
    """The case key of a testcase (see the module docstring): within the key rule, distinct for distinct input."""
    # jest-junit writes the describe path into both (its default templates): the name alone then.
    raw = f"{classname}.{name}" if classname and not name.startswith(classname) else name
    cleaned = _KEY_UNSAFE.sub("_", raw).lstrip("._:/-") or "case"
    if cleaned == raw and len(raw) <= rules.KEY_MAX_LENGTH:
        return raw
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:_KEY_DIGEST]
    return f"{cleaned[: rules.KEY_MAX_LENGTH - _KEY_DIGEST - 1]}-{digest}"


def _suite_name(suite_names: list[str], testcase: dict[str, str]) -> str:
    for name in suite_names[:1]:
        if name and name.lower() not in GENERIC_SUITE_NAMES:
            return signatures.capped(name, rules.SUITE_NAME_MAX_LENGTH)
    classname = signatures.text_clean(testcase.get("classname", ""))
    candidate = _CLASSNAME_SPLIT.split(classname, maxsplit=1)[0] if classname else ""
    return signatures.capped(candidate or SUITE_FALLBACK, rules.SUITE_NAME_MAX_LENGTH)


def _timestamp(value: str, *, upload: Upload) -> datetime | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace(" ", "T", 1))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.year < 2000:  # Go's zero time and the like: no time at all
        return None
    if moment > upload.uploaded_at:
        return upload.uploaded_at
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _duration_ms(value: str | None) -> int | None:
    try:
        seconds = float((value or "").replace(",", ""))
    except ValueError:
        return None
    if seconds != seconds or seconds < 0 or seconds > 10**7:  # NaN, negative, absurd
        return None
    return round(seconds * 1000)


def _cut_bytes(text: str, limit: int) -> str:
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore") + "\n[…cut]"


def _element_text(element) -> str:
    parts: list[str] = []
    size = 0
    for piece in element.itertext():
        parts.append(piece)
        size += len(piece)
        if size > 1 << 20:
            break
    return "".join(parts)


def _record(element, *, suite_names: list[str], timestamp: datetime | None, upload: Upload, file: str) -> Record:
    attributes = dict(element.attrib)
    raw_name = signatures.text_clean(attributes.get("name", ""))
    if not raw_name:
        raise JunitFileError(
            "testcase_name_missing",
            "A testcase has no name; nothing was imported.",
            line=element.sourceline,
            file=file,
        )
    classname = signatures.text_clean(attributes.get("classname", ""))
    failed = flaky_element = skipped = None
    for child in element:
        tag = _local(child.tag)
        if tag in _FAIL_TAGS and failed is None:
            failed = child
        elif tag in _FLAKY_TAGS and flaky_element is None:
            flaky_element = child
        elif tag == "skipped" and skipped is None:
            skipped = child
    status, notes, message, signature, flaky = rules.RUN_STATUSES[0], "", "", "", False
    limit = upload.failure_text_bytes
    if failed is not None:
        status = "fail"
        kind = failed.get("type", "")
        first = failed.get("message", "")
        text = _element_text(failed)
        signature = signatures.failure_signature(failure_type=kind, message=first, text=text)
        message = _cut_bytes("\n\n".join(part for part in (first.strip(), text.strip()) if part), limit)
    elif skipped is not None:
        status = "pending"
        reason = signatures.reason_text(message=skipped.get("message", ""), text=_element_text(skipped))
        notes = f"Skipped: {reason}" if reason else "Skipped"
    elif flaky_element is not None:
        flaky = True
        first = flaky_element.get("message", "")
        text = _element_text(flaky_element)
        message = _cut_bytes("\n\n".join(part for part in (first.strip(), text.strip()) if part), limit)
        notes = "Passed on rerun (flaky)."
    return Record(
        product=upload.product,
        suite=_suite_name(suite_names, attributes),
        key=case_key(classname, raw_name),
        title=signatures.capped(raw_name, rules.TITLE_MAX_LENGTH),
        category=upload.category,
        owner=upload.owner,
        rc=upload.rc,
        status=status,
        notes=notes[: rules.NOTES_MAX_LENGTH],
        executed_at=timestamp or upload.uploaded_at,
        executed_by=upload.executed_by,
        failure_signature=signature,
        failure_message=message,
        duration_ms=_duration_ms(attributes.get("time")),
        flaky=flaky,
    )


def _parse_error(error: etree.XMLSyntaxError, *, file: str) -> JunitFileError:
    text, line = str(error.msg or error), error.lineno or None
    entries = list(error.error_log or [])
    if entries:  # libxml2's own message names the cause ("Entity 'x' not defined"); the exception's may not
        text, line = entries[-1].message, entries[-1].line or line
    if any(marker in text for marker in ("Document is empty", "Start tag expected", "no element found")):
        return JunitFileError("not_xml", f"The file is not XML: {text[:200]}", line=line, file=file)
    if "Premature end of data" in text or "EndTag" in text or "chunk is not well balanced" in text:
        return JunitFileError("xml_truncated", f"The XML ends too early: {text[:200]}", line=line, file=file)
    if "ntity" in text:
        return JunitFileError("xml_entity_forbidden", f"Entities are not allowed: {text[:200]}", line=line, file=file)
    return JunitFileError("xml_malformed", f"The XML is not well-formed: {text[:200]}", line=line, file=file)


def testcases(name: str, stream: IO[bytes], *, upload: Upload) -> Iterator[Record]:
    """The testcases of one XML document, streamed in document order. Raises JunitFileError at the first problem
    (its line included)."""
    etree.clear_error_log()  # the log is per thread: only this document's messages may name the cause
    parser = etree.iterparse(
        stream,
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    suite_names: list[str] = []
    timestamps: list[datetime | None] = []
    depth_in_case = 0
    started = False
    try:
        for event, element in parser:
            tag = _local(element.tag)
            if event == "start":
                if not started:
                    started = True
                    info = element.getroottree().docinfo
                    if info.internalDTD is not None or info.doctype or info.system_url:
                        raise JunitFileError(
                            "xml_dtd_forbidden",
                            "The report declares a DTD (DOCTYPE); DTDs and entities are refused.",
                            line=element.sourceline,
                            file=name,
                        )
                    if tag not in ("testsuites", "testsuite", "testcase"):
                        raise JunitFileError(
                            "not_junit",
                            f"The root element is <{tag[:40]}>, not <testsuites> or <testsuite>.",
                            line=element.sourceline,
                            file=name,
                        )
                if depth_in_case:
                    depth_in_case += 1
                elif tag == "testcase":
                    depth_in_case = 1
                elif tag == "testsuite":
                    suite_names.append(signatures.text_clean(element.get("name", "")))
                    stamp = _timestamp(element.get("timestamp", ""), upload=upload)
                    timestamps.append(stamp if stamp is not None else (timestamps[-1] if timestamps else None))
                continue
            if depth_in_case > 1:
                depth_in_case -= 1
                continue
            if depth_in_case == 1:
                depth_in_case = 0
                yield _record(
                    element,
                    suite_names=suite_names,
                    timestamp=timestamps[-1] if timestamps else None,
                    upload=upload,
                    file=name,
                )
            elif tag == "testsuite":
                suite_names.pop()
                timestamps.pop()
            # Done with this element and everything before it: memory stays flat.
            element.clear(keep_tail=False)
            parent = element.getparent()
            if parent is not None:
                while element.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError as error:
        raise _parse_error(error, file=name) from None
    if not started:
        raise JunitFileError("not_xml", "The file is empty or not XML.", file=name)


def iter_records(
    files: list[tuple[str, Callable[[], IO[bytes]]]], *, upload: Upload, expanded_limit: int, max_files: int
) -> Iterator[Record]:
    """Every testcase of the upload (all files, in order) as a Record."""
    for name, stream in documents(files, expanded_limit=expanded_limit, max_files=max_files):
        try:
            yield from testcases(name, stream, upload=upload)
        except (OSError, EOFError, zipfile.BadZipFile) as error:  # a corrupt gzip / zip member
            raise JunitFileError("archive_corrupt", f"The compressed file is damaged: {error}"[:300], file=name)


@dataclass
class Validation:
    total: int = 0
    files: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=lambda: {"pass": 0, "fail": 0, "pending": 0, "flaky": 0})
    preview: list[list[str]] = field(default_factory=list)


def validate(
    files: list[tuple[str, Callable[[], IO[bytes]]]],
    *,
    upload: Upload,
    expanded_limit: int,
    max_files: int,
    max_testcases: int,
    preview_rows: int = 20,
) -> Validation:
    """Read the whole upload once, writing nothing: the number of testcases, their statuses, a preview, or the
    first error (a report that cannot be read is refused whole)."""
    report = Validation()
    seen_files: set[str] = set()
    try:
        for record_file, stream in documents(files, expanded_limit=expanded_limit, max_files=max_files):
            seen_files.add(record_file)
            try:
                for record in testcases(record_file, stream, upload=upload):
                    report.total += 1
                    if report.total > max_testcases:
                        raise JunitFileError(
                            "too_many_testcases", f"At most {max_testcases} testcases per upload.", file=record_file
                        )
                    report.statuses[record.status] += 1
                    report.statuses["flaky"] += int(record.flaky)
                    if len(report.preview) < preview_rows:
                        report.preview.append([record.suite, record.key, record.status, record.failure_signature])
            except (OSError, EOFError, zipfile.BadZipFile) as error:
                raise JunitFileError(
                    "archive_corrupt", f"The compressed file is damaged: {error}"[:300], file=record_file
                )
    except zipfile.BadZipFile as error:
        report.errors.append(JunitFileError("archive_corrupt", f"The zip file is damaged: {error}"[:300]).as_error())
    except JunitFileError as error:
        report.errors.append(error.as_error())
    report.files = len(seen_files)
    if not report.errors and report.total == 0:
        report.errors.append(
            JunitFileError("report_empty", "The report holds no testcases; nothing was imported.").as_error()
        )
    return report
