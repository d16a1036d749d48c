"""PII redaction applied to every prompt before it leaves the machine (and to what the usage log stores).

Every AI path (assistant page, API, streaming, batches, every task template) goes through
`ai_assist.services._prepare`, which calls `redact()` on each rendered message: there is one redaction function.

The detectors come from maintained libraries where one exists (ai_assist/redaction_detectors.py): detect-secrets'
plugins for cloud/SaaS keys, webhooks, private keys, basic auth, keyword assignments and high-entropy tokens;
phonenumbers for phone numbers (local formats need `AI_REDACTION_PHONE_REGIONS`); python-stdnum for national ids
(`AI_REDACTION_NATIONAL_IDS`), IBANs and Luhn-checked card numbers. Our own rules only cover what no library does:
URL-encoded values (decoded before matching), MAC addresses, Unicode e-mail addresses, chat-tool webhook URLs, and
the context that keeps version numbers, UUIDs and dates intact.

Order matters: URL-encoded tokens are decoded first; private key blocks and URLs with credentials go before emails
(`user:pass@host` looks like an address), keys before the generic number rules, card numbers and IBANs before
national ids and phone numbers. Placeholders contain no digits, `@` or dots, so no later rule can match inside them.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import unquote

from django.conf import settings

from ai_assist import redaction_detectors as detectors

PLACEHOLDERS = {
    "url": "[REDACTED_URL]",
    "jwt": "[REDACTED_JWT]",
    "api_key": "[REDACTED_API_KEY]",
    "email": "[REDACTED_EMAIL]",
    "iban": "[REDACTED_IBAN]",
    "card": "[REDACTED_CARD]",
    "ip": "[REDACTED_IP]",
    "phone": "[REDACTED_PHONE]",
    "name": "[REDACTED_NAME]",
    "private_key": "[REDACTED_PRIVATE_KEY]",
    "national_id": "[REDACTED_NATIONAL_ID]",
    "mac": "[REDACTED_MAC]",
}

_SENSITIVE_QUERY = (
    r"(?:access_?token|refresh_?token|id_?token|token|api_?key|apikey|key|secret|client_secret|password|passwd|pwd|"
    r"auth|sig|signature|session|sessionid|jwt|code|x-amz-signature|x-amz-credential|private_token)"
)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s<>\"'`]+")
_URL_USERINFO = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#\s]*@")
_URL_TOKEN_PARAM = re.compile(r"[?&#;]" + _SENSITIVE_QUERY + r"=", re.IGNORECASE)
# Incoming-webhook URLs carry their secret in the path. detect-secrets knows Slack's (SlackDetector, applied to
# every URL below); Discord, Teams/Power Automate, Google Chat and Zapier hooks it does not.
_WEBHOOK_URL = re.compile(
    r"^https?://(?:hooks\.slack\.com/|(?:[\w-]+\.)?discord(?:app)?\.com/api/webhooks/|[\w-]+\.webhook\.office\.com/"
    r"|outlook\.office(?:365)?\.com/webhook|[\w.-]+\.logic\.azure\.com(?::\d+)?/workflows/"
    r"|chat\.googleapis\.com/v1/spaces/|hooks\.zapier\.com/hooks/|[\w.-]+/hooks/[A-Za-z0-9]{16,})",
    re.IGNORECASE,
)

_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
# Formats detect-secrets has no plugin for (or only an older form of: OpenAI's legacy `T3BlbkFJ` keys).
_API_KEYS = re.compile(
    r"(?:\bsk-(?:proj-|live-|test-|ant-)?[A-Za-z0-9_-]{16,}"
    r"|\b(?:rk|pk|sk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
    r"|\bgithub_pat_[A-Za-z0-9_]{30,}"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\bAIza[0-9A-Za-z_-]{35}"
    r"|\bglpat-[A-Za-z0-9_-]{20,})"
)
# `token = abc123...`, `Authorization: Bearer ...`, `SharedAccessKey=...`: the value after the marker. An opening
# quote belongs to the label, so the closing one is left in place (`"Bearer [REDACTED_API_KEY]"`).
_SECRET_ASSIGNMENT = re.compile(
    r"(?P<label>\b(?:api[_-]?key|apikey|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|token|password|passwd|"
    r"pwd|client[_-]?secret|(?:shared)?access[_-]?key|account[_-]?key|sas[_-]?token)\b\s*[:=]\s*[\"']?"
    r"|\bBearer\s+)"
    r"(?P<value>[^\s\"',;]{6,})",
    re.IGNORECASE,
)
# Unicode local parts and domains (`jürgen.müller@beispiel.de`), also with combining accents (NFD input).
_EMAIL = re.compile(
    r"(?<![\w\u0300-\u036f.%+'-])[\w\u0300-\u036f.%+'-]+@[\w\u0300-\u036f-]+(?:\.[\w\u0300-\u036f-]+)*\.[^\W\d_]{2,}"
)
# `00:1a:2b:3c:4d:5e`, `00-1A-2B-3C-4D-5E`, Cisco's `001a.2b3c.4d5e` (with a letter, so `1234.5678.9012` stays).
_MAC = re.compile(
    r"\b(?<![:-])[0-9A-Fa-f]{2}(?P<sep>[:-])(?:[0-9A-Fa-f]{2}(?P=sep)){4}[0-9A-Fa-f]{2}\b(?![:-])"
    r"|\b(?<!\.)[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\b(?!\.)"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\w.])\d(?:[ -]?\d){12,18}(?![\w.])")
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w])")
# A dotted quad after one of these words is a version number ("Version 10.4.2.1", "build 1.0.0.7"), not an address.
_VERSION_BEFORE = re.compile(
    r"(?:\b(?:v|version|ver|release|build|firmware|fw|rev|revision|sdk|agent|driver|patch|update)\.?\s*[:#]?\s*"
    r"|[\w-]+/)$",
    re.IGNORECASE,
)
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%\w+)?(?![\w:])")
_URL_ENCODED = re.compile(r"[^\s<>\"'`]*%[0-9A-Fa-f]{2}[^\s<>\"'`]*")

# Gates: cheap checks that every match of a rule passes, so a rule whose gate fails is skipped. Patterns that start
# with a character class let the regex engine jump to candidate positions instead of trying the rule at each one.
_API_KEY_PREFIXES = (
    "sk-", "_live_", "_test_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "aiza", "glpat-"
)  # fmt: skip
# A MAC address holds `:hh:` or `-hh-` (or Cisco's `.hhhh.`), a dotted quad `.d.d.`, an IPv6 address `::` or
# `:h:` (eight groups, or six and a dotted quad): each gate starts with the separator, which the engine finds fast.
_MAC_GATE = re.compile(r":[0-9A-Fa-f]{2}:|-[0-9A-Fa-f]{2}-|\.[0-9A-Fa-f]{4}\.")
_IBAN_GATE = re.compile(r"[A-Z]{2}\d{2}")
_CARD_GATE = re.compile(r"\d(?:[ -]?\d){12}")
_IPV4_GATE = re.compile(r"\.\d{1,3}\.\d{1,3}\.")
_IPV6_GATE = re.compile(r"::|:[0-9A-Fa-f]{1,4}:")


@dataclass
class Redacted:
    text: str
    counts: Counter = field(default_factory=Counter)


def luhn_valid(digits: str) -> bool:
    return detectors.luhn_valid(digits)


def iban_valid(candidate: str) -> bool:
    return detectors.iban_valid(candidate)


def _url(match: re.Match, counts: Counter) -> str:
    url = match.group(0)
    if (
        _URL_USERINFO.match(url)
        or _URL_TOKEN_PARAM.search(url)
        or _WEBHOOK_URL.match(url)
        or detectors.SLACK_WEBHOOK.match(url)
    ):
        counts["url"] += 1
        return PLACEHOLDERS["url"]
    return url


def _card(match: re.Match, counts: Counter) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        counts["card"] += 1
        return PLACEHOLDERS["card"]
    return match.group(0)


def _iban(match: re.Match, counts: Counter) -> str:
    if iban_valid(match.group(0)):
        counts["iban"] += 1
        return PLACEHOLDERS["iban"]
    return match.group(0)


def _ipv4(match: re.Match, counts: Counter) -> str:
    before = match.string[max(0, match.start() - 24) : match.start()]
    if _VERSION_BEFORE.search(before):
        return match.group(0)
    counts["ip"] += 1
    return PLACEHOLDERS["ip"]


def _ipv6(match: re.Match, counts: Counter) -> str:
    candidate = match.group(0).split("%", 1)[0]
    if candidate.count(":") >= 2:
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            return match.group(0)
        counts["ip"] += 1
        return PLACEHOLDERS["ip"]
    return match.group(0)


def _mac(match: re.Match, counts: Counter) -> str:
    if match.group("sep") is None and not re.search(r"[A-Fa-f]", match.group(0)):
        return match.group(0)
    counts["mac"] += 1
    return PLACEHOLDERS["mac"]


def _simple(kind: str):
    def replace(match: re.Match, counts: Counter) -> str:
        counts[kind] += 1
        return PLACEHOLDERS[kind]

    return replace


def _secret_assignment(match: re.Match, counts: Counter) -> str:
    value = match.group("value")
    if value.startswith("[REDACTED_"):
        return match.group(0)
    counts["api_key"] += 1
    return match.group("label") + PLACEHOLDERS["api_key"]


@lru_cache(maxsize=8)
def _names_pattern(names: tuple[str, ...]) -> re.Pattern | None:
    cleaned = sorted({name.strip() for name in names if name.strip()}, key=len, reverse=True)
    if not cleaned:
        return None
    alternatives = "|".join(r"\s+".join(re.escape(part) for part in name.split()) for name in cleaned)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _replace_spans(text: str, spans: Iterable[detectors.Span], counts: Counter) -> str:
    """Replace detector spans (earliest first wins on overlap) with their placeholders."""
    chosen: list[detectors.Span] = []
    for span in sorted(spans, key=lambda span: (span[0], -span[1])):
        if span[1] > span[0] and (not chosen or span[0] >= chosen[-1][1]):
            chosen.append(span)
    for start, end, kind in reversed(chosen):
        counts[kind] += 1
        text = text[:start] + PLACEHOLDERS[kind] + text[end:]
    return text


def _sub(
    pattern: re.Pattern, replace, needs: tuple[str, ...] = (), gate: re.Pattern | None = None
) -> Callable[[str, Counter], str]:
    """A regex rule. It only runs when the text could hold a match: with `needs`, when one of those substrings is in
    the lower-cased text; with `gate`, when that cheaper pattern (one every match contains) is found."""

    def rule(text: str, counts: Counter) -> str:
        if needs:
            lowered = text.lower()
            if not any(word in lowered for word in needs):
                return text
        if gate is not None and not gate.search(text):
            return text
        return pattern.sub(lambda match: replace(match, counts), text)

    return rule


def _windowed(pattern: re.Pattern, replace, starts: Callable[[str], Iterable[int]]) -> Callable[[str, Counter], str]:
    """A regex rule tried only where its matches can start: `starts(text)` gives every such position of an ASCII
    text (in increasing order), and the rule's result equals `pattern.sub` over the whole text (leftmost matches,
    none overlapping). A scan of the whole text costs about 50 ns a character per rule; a prompt holds a few
    candidates. Text with other characters is scanned whole (case-insensitive matching and `\\w` reach beyond
    ASCII, and a lower-cased character can change the length)."""

    def rule(text: str, counts: Counter) -> str:
        if not text.isascii():
            return pattern.sub(lambda match: replace(match, counts), text)
        pieces: list[str] = []
        done = 0
        for start in starts(text):
            if start < done:
                continue
            match = pattern.match(text, start)
            if match is not None:
                pieces += (text[done:start], replace(match, counts))
                done = match.end()
        if not pieces:
            return text
        pieces.append(text[done:])
        return "".join(pieces)

    return rule


def _word_starts(words: tuple[str, ...], lookback: int) -> Callable[[str], list[int]]:
    """Positions at most `lookback` characters before an occurrence of one of `words` (in the lower-cased text)."""

    def starts(text: str) -> list[int]:
        lowered = text.lower()
        found: set[int] = set()
        for word in words:
            at = lowered.find(word)
            while at >= 0:
                found.update(range(max(0, at - lookback), at + 1))
                at = lowered.find(word, at + 1)
        return sorted(found)

    return starts


_LOCAL_PART_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.%+'-")


def _email_starts(text: str) -> list[int]:
    """The start of the run of local-part characters before each `@` (the look-behind puts a match nowhere else)."""
    starts = []
    at = text.find("@")
    while at >= 0:
        start = at
        while start > 0 and text[start - 1] in _LOCAL_PART_CHARS:
            start -= 1
        starts.append(start)
        at = text.find("@", at + 1)
    return starts


# Each label of `_SECRET_ASSIGNMENT` holds one of these words, at most 13 characters after its start
# (`sharedaccess_key`).
_SECRET_ASSIGNMENT_STARTS = _word_starts(("key", "secret", "token", "passw", "pwd", "bearer"), 13)


def _spans(find) -> Callable[[str, Counter], str]:
    return lambda text, counts: _replace_spans(text, find(text), counts)


@dataclass(frozen=True)
class _Config:
    names: tuple[str, ...]
    phone_regions: tuple[str, ...]
    national_ids: tuple[str, ...]


@lru_cache(maxsize=8)
def _rules(config: _Config) -> tuple[Callable[[str, Counter], str], ...]:
    rules = [
        _spans(detectors.private_key_spans),
        _sub(_URL, _url, needs=("://",)),
        _sub(_JWT, _simple("jwt"), needs=("eyj",)),
        _spans(detectors.secret_spans),
        _sub(_API_KEYS, _simple("api_key"), needs=_API_KEY_PREFIXES),
        _spans(detectors.keyword_spans),
        _windowed(_SECRET_ASSIGNMENT, _secret_assignment, _SECRET_ASSIGNMENT_STARTS),
        _spans(detectors.high_entropy_spans),
        _windowed(_EMAIL, _simple("email"), _email_starts),
        _sub(_MAC, _mac, gate=_MAC_GATE),
        _sub(_IBAN, _iban, gate=_IBAN_GATE),
        _sub(_CARD, _card, gate=_CARD_GATE),
        _spans(lambda text: detectors.national_id_spans(text, config.national_ids)),
        _sub(_IPV4, _ipv4, gate=_IPV4_GATE),
        _sub(_IPV6, _ipv6, gate=_IPV6_GATE),
        _spans(lambda text: detectors.phone_spans(text, config.phone_regions)),
    ]
    names_pattern = _names_pattern(config.names)
    if names_pattern is not None:
        rules.append(_sub(names_pattern, _simple("name")))
    return tuple(rules)


def _run_rules(text: str, config: _Config, counts: Counter) -> str:
    for rule in _rules(config):
        text = rule(text, counts)
    return text


def _decode_url_encoded(text: str, config: _Config, counts: Counter) -> str:
    """`user%40example.com` is an address too: a percent-encoded token is decoded and redacted in decoded form
    when that finds something; otherwise it is left as it was."""

    def replace(match: re.Match) -> str:
        token = match.group(0)
        decoded = token
        for _ in range(3):  # double encoding (`%2540`) too
            decoded, previous = unquote(decoded), decoded
            if decoded == previous:
                break
        if decoded == token:
            return token
        found: Counter = Counter()
        redacted = _run_rules(decoded, config, found)
        if not found:
            return token
        counts.update(found)
        return redacted

    return _URL_ENCODED.sub(replace, text)


# Without one of these (a character, a word in the lower-cased text, a run of 24 key characters) no rule can match:
# three cheap checks keep plain prose fast. (One alternation of them all cost ~70 us on a 180-character prompt.)
_TRIGGER_CHARS = re.compile(r"[\d@:%]")
_TRIGGER_WORDS = (
    "eyj", "sk-", "akia", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox", "aiza", "glpat", "bearer", "key", "secret",
    "token", "passw", "pwd", "contrase", "private", "putty",
)  # fmt: skip
_TRIGGER_RUN = re.compile(r"(?<![A-Za-z0-9_+/=-])[A-Za-z0-9_+/=-]{24}")


def _could_match(text: str) -> bool:
    if _TRIGGER_CHARS.search(text):
        return True
    lowered = text.lower()
    return any(word in lowered for word in _TRIGGER_WORDS) or _TRIGGER_RUN.search(text) is not None


def _config(names: tuple[str, ...] | None) -> _Config:
    return _Config(
        names=tuple(settings.AI_REDACT_NAMES) if names is None else tuple(names),
        phone_regions=tuple(settings.AI_REDACTION_PHONE_REGIONS),
        national_ids=tuple(settings.AI_REDACTION_NATIONAL_IDS),
    )


def redact(text: str, *, names: tuple[str, ...] | None = None) -> Redacted:
    """Replace PII and secrets in `text` with labelled placeholders; `counts` says what was found."""
    return _redact(text, _config(names))


def _redact(text: str, config: _Config) -> Redacted:
    counts: Counter = Counter()
    if not text:
        return Redacted(text, counts)
    if not config.names and not _could_match(text):
        return Redacted(text, counts)
    if "%" in text:
        text = _decode_url_encoded(text, config, counts)
    text = _run_rules(text, config, counts)
    return Redacted(text, counts)


def redact_fixed(text: str, *, names: tuple[str, ...] | None = None) -> Redacted:
    """`redact` for text the code owns (a prompt template's system text), kept per text and configuration: the
    same text is not scanned again on every call. Never for user data, which would then stay in memory."""
    redacted, counts = _redact_fixed(text, _config(names))
    return Redacted(redacted, Counter(dict(counts)))


@lru_cache(maxsize=64)
def _redact_fixed(text: str, config: _Config) -> tuple[str, tuple[tuple[str, int], ...]]:
    result = _redact(text, config)
    return result.text, tuple(result.counts.items())


def redact_value(value, counts: Counter, names: tuple[str, ...]):
    """Redact every string inside a JSON-like value (dicts, lists, scalars)."""
    if isinstance(value, str):
        result = redact(value, names=names)
        counts.update(result.counts)
        return result.text
    if isinstance(value, dict):
        return {key: redact_value(item, counts, names) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item, counts, names) for item in value]
    return value
