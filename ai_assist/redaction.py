"""PII redaction applied to every prompt before it leaves the machine (and to what the usage log stores).

Order matters: URLs with credentials go before emails (`user:pass@host` looks like an address), JWTs and API keys
before the generic number rules, card numbers (Luhn-checked) and IBANs (mod-97-checked) before phone numbers.
Placeholders contain no digits, `@` or dots, so no later rule can match inside them.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from django.conf import settings

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
}

_SENSITIVE_QUERY = (
    r"(?:access_?token|refresh_?token|id_?token|token|api_?key|apikey|key|secret|client_secret|password|passwd|pwd|"
    r"auth|sig|signature|session|sessionid|jwt|code|x-amz-signature|x-amz-credential|private_token)"
)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s<>\"'`]+")
_URL_USERINFO = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#\s]*@")
_URL_TOKEN_PARAM = re.compile(r"[?&#;]" + _SENSITIVE_QUERY + r"=", re.IGNORECASE)

_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_API_KEYS = re.compile(
    r"(?:\bsk-(?:proj-|live-|test-|ant-)?[A-Za-z0-9_-]{16,}"
    r"|\b(?:rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
    r"|\bgithub_pat_[A-Za-z0-9_]{30,}"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\bAIza[0-9A-Za-z_-]{35}"
    r"|\bglpat-[A-Za-z0-9_-]{20,})"
)
# `api_key = abc123...`, `Authorization: Bearer ...`, `password: hunter2`: the value after the marker.
_SECRET_ASSIGNMENT = re.compile(
    r"(?P<label>\b(?:api[_-]?key|apikey|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|token|password|passwd|"
    r"pwd|client[_-]?secret)\b\s*[:=]\s*|\bBearer\s+)"
    r"(?P<value>[\"']?[^\s\"',;]{6,}[\"']?)",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ -]?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\w.])\d(?:[ -]?\d){12,18}(?![\w.])")
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%\w+)?(?![\w:])")
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,4}(?:[\s.-]?\d{2,4}){1,4}"  # +44 20 7946 0958, +1-415-555-0132
    r"|\(\d{3}\)\s?\d{3}[\s.-]\d{4}"  # (415) 555-0132
    r"|\b\d{3}[.-]\d{3}[.-]\d{4}"  # 415-555-0132
    r"|\b0\d{2,4}[\s/-]\d{3,4}[\s-]?\d{3,4}"  # 030 1234 5678, 020-7946-0958
    r")(?![\w])"
)


@dataclass
class Redacted:
    text: str
    counts: Counter = field(default_factory=Counter)


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    compact = re.sub(r"[ -]", "", candidate).upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    numeric = "".join(str(int(char, 36)) for char in rearranged)
    return int(numeric) % 97 == 1


def _url(match: re.Match, counts: Counter) -> str:
    url = match.group(0)
    if _URL_USERINFO.match(url) or _URL_TOKEN_PARAM.search(url):
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


def _rules(names: tuple[str, ...]):
    rules = [
        (_URL, _url),
        (_JWT, _simple("jwt")),
        (_API_KEYS, _simple("api_key")),
        (_SECRET_ASSIGNMENT, _secret_assignment),
        (_EMAIL, _simple("email")),
        (_IBAN, _iban),
        (_CARD, _card),
        (_IPV4, _simple("ip")),
        (_IPV6, _ipv6),
        (_PHONE, _simple("phone")),
    ]
    names_pattern = _names_pattern(names)
    if names_pattern is not None:
        rules.append((names_pattern, _simple("name")))
    return rules


# Characters without which no rule can match: a cheap pre-check keeps plain prose fast.
_TRIGGER = re.compile(r"[\d@:]|eyJ|sk-|AKIA|gh[pousr]_|xox|AIza|glpat|bearer|key|secret|token|passw|pwd", re.I)


def redact(text: str, *, names: tuple[str, ...] | None = None) -> Redacted:
    """Replace PII and secrets in `text` with labelled placeholders; `counts` says what was found."""
    names = tuple(settings.AI_REDACT_NAMES) if names is None else names
    counts: Counter = Counter()
    if not text:
        return Redacted(text, counts)
    if not _TRIGGER.search(text) and not names:
        return Redacted(text, counts)
    for pattern, replace in _rules(names):
        text = pattern.sub(lambda match, replace=replace: replace(match, counts), text)
    return Redacted(text, counts)


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
