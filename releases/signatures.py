"""Failure signatures: what two failures of the same bug have in common, as a short normalised text.

A signature is the exception type and the first line of the message with everything that changes from run to run
replaced by a placeholder: quoted values (`<str>`), paths and URLs (`<path>`), UUIDs (`<uuid>`), hex values and
object addresses (`<hex>`), other numbers (`<n>`). "AssertionError: expected 3 == 4 for '/tmp/x1/a.py'" and
"AssertionError: expected 7 == 9 for '/tmp/y2/b.py'" share the signature "AssertionError: expected <n> == <n> for
<str>". The signature is computed once, when the run is written (JUnit import, bulk runs), and stored on the run
(`TestRun.failure_signature`), so grouping an RC's failures is a read of its failing runs.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

SIGNATURE_MAX_LENGTH = 300  # TestRun.failure_signature / KnownIssue.signature
_DIGEST_LENGTH = 10

# The leading "SomeError:" / "pkg.mod.SomeException" of a message or a stack trace's first line.
_TYPE_PREFIX = re.compile(r"^\s*((?:[A-Za-z_][\w$]*\.)*[A-Za-z_][\w$]*(?:Error|Exception|Failure|Fault|Panic))\b:?\s*")
_REPLACEMENTS = (
    (re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`|“[^”]*”|‘[^’]*’"), "<str>"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE), "<path>"),
    (re.compile(r"(?:[A-Za-z]:\\|\\\\)[^\s:;,)\]]+"), "<path>"),
    (re.compile(r"[\w./-]*\.(?:py|js|mjs|cjs|ts|tsx|jsx|java|kt|go|rb|cs|cpp|c|h|rs|php|robot)(?::\d+)*\b"), "<path>"),
    (re.compile(r"(?:~|\.{1,2})?(?:/[\w.@%+-]+){2,}/?"), "<path>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE), "<uuid>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.IGNORECASE), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}\b", re.IGNORECASE), "<hex>"),
    (re.compile(r"(?<!\w)[-+]?\d+(?:[.,:]\d+)*(?:e[-+]?\d+)?(?!\w)", re.IGNORECASE), "<n>"),
    (re.compile(r"(?<=[A-Za-z_])\d+\b"), "<n>"),  # ids glued to a word: user42, order_17
)
_SPACES = re.compile(r"\s+")
# pytest reports a setup/teardown error as `failed on setup with "RuntimeError: ..."`: the quoted part is the error.
_WRAPPED = re.compile(r"^failed on (?:setup|teardown|call) with \"(.*)\"\s*$", re.DOTALL)
# Types some runners write for every failure: they tell nothing about the failure.
_GENERIC_TYPES = {"", "failure", "error", "testcodefailure", "hookfailure", "assertionfailure"}
# Messages that say only that something failed (Go: "Failed"): the text tells what.
_GENERIC_MESSAGES = {"failed", "failure", "error", "skipped"}
# Lines of a runner's own output around the failure (Go's "=== RUN", "--- FAIL:"), never the failure itself.
_RUNNER_LINE = re.compile(r"^(?:=== (?:RUN|PAUSE|CONT|NAME)\b|--- (?:FAIL|PASS|SKIP):|FAIL\s|ok\s|Traceback \()")


def text_clean(value: str) -> str:
    """Control and format characters (bidi overrides, zero-width) removed, whitespace runs made one space."""
    if not value:
        return ""
    if value.isprintable():  # the common case, without a look at each character (no Cc/Cf/Cs/Zl/Zp in it)
        return _SPACES.sub(" ", value).strip() if "  " in value else value.strip()
    kept = "".join(
        " " if char in "\t\r\n" else char
        for char in value or ""
        if char in "\t\r\n" or unicodedata.category(char) not in ("Cc", "Cf", "Cs")
    )
    return _SPACES.sub(" ", kept).strip()


def capped(value: str, limit: int) -> str:
    """`value` if it fits in `limit` characters, else cut with a digest of the whole value, so two long values
    that differ only after the cut stay different."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST_LENGTH]
    return f"{value[: limit - _DIGEST_LENGTH - 1]}~{digest}"


def _first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line
    return ""


def failure_type_and_message(*, failure_type: str = "", message: str = "", text: str = "") -> tuple[str, str]:
    """The exception type and the one-line message of a failure as reports give it: `type` may be empty or a
    generic word (Node writes "testCodeFailure", Playwright "FAILURE"), the message may be empty (then the text's
    first line), and the message itself may start with the type ("AssertionError: ...")."""
    if failure_type.strip().lower() in _GENERIC_TYPES:
        failure_type = ""
    wrapped = _WRAPPED.match((message or "").strip())
    if wrapped:
        message = wrapped.group(1)
    message = _first_line(message)
    if message.strip().lower() in _GENERIC_MESSAGES:
        message = ""
    if not message:  # a stack trace: its first line naming an exception, else its first line of substance
        lines = [line.strip() for line in (text or "").splitlines()[:200] if line.strip()]
        lines = [line for line in lines if not _RUNNER_LINE.match(line)] or lines
        message = next((line for line in lines if _TYPE_PREFIX.match(line)), lines[0] if lines else "")
    found = _TYPE_PREFIX.match(message)
    if found:
        message = message[found.end() :]
        if not failure_type or not _TYPE_PREFIX.match(failure_type):
            failure_type = found.group(1)
    failure_type = text_clean(failure_type)
    return failure_type, text_clean(message)


def normalise(message: str) -> str:
    """The message with run-specific values replaced by placeholders (see the module docstring)."""
    for pattern, placeholder in _REPLACEMENTS:
        message = pattern.sub(placeholder, message)
    return _SPACES.sub(" ", message).strip()


def failure_signature(*, failure_type: str = "", message: str = "", text: str = "") -> str:
    """The signature of one failure: "Type: normalised message" (either part may be missing), at most
    SIGNATURE_MAX_LENGTH characters; "" when the failure says nothing at all."""
    kind, line = failure_type_and_message(failure_type=failure_type, message=message, text=text)
    line = normalise(line)
    signature = f"{kind}: {line}" if kind and line else kind or line
    return capped(signature, SIGNATURE_MAX_LENGTH)


def reason_text(*, message: str = "", text: str = "", limit: int = 1000) -> str:
    """A skip reason as people want to read it: the message unless it is a generic word, else the text; runner
    lines (Go's "=== RUN", "--- SKIP:") left out; cleaned, at most `limit` characters."""
    candidate = message if message.strip().lower() not in _GENERIC_MESSAGES else ""
    candidate = candidate or text
    lines = [line.strip() for line in candidate.splitlines() if line.strip()]
    kept = [line for line in lines if not _RUNNER_LINE.match(line)]
    return text_clean(" ".join(kept))[:limit]
