"""Library-backed detectors used by `ai_assist.redaction`: secrets (detect-secrets), phone numbers (phonenumbers),
national ids, IBANs and card numbers (python-stdnum).

Every detector returns spans `(start, end, kind)`; the caller replaces them. Nothing here talks to the network:
detect-secrets' plugins are only used for their compiled regexes, keyword patterns and entropy calculation — their
`verify()` (which calls the vendor's API) is never called. The expensive scanners only run where a cheap check says
they could match (a trigger substring, a candidate regex), so plain prose costs a few regex scans.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from functools import lru_cache

import phonenumbers
from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.filters.heuristic import is_potential_uuid, is_sequential_string, is_templated_secret
from detect_secrets.plugins import keyword as ds_keyword
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.slack import SlackDetector
from stdnum import iban as stdnum_iban
from stdnum import luhn as stdnum_luhn

Span = tuple[int, int, str]

# Characters a key or token is made of: a match is grown over them so that a plugin regex that stops after a fixed
# length (Stripe's `sk_live_` + 24) never leaves the rest of a longer key behind.
_TOKEN_CHAR = re.compile(r"[A-Za-z0-9_+/=-]")
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_+/=-]*")

# Plugins handled elsewhere: IPs and JWTs by our own rules (with context), private keys as whole blocks, the keyword
# and entropy plugins below with their own span logic.
_SKIPPED_PLUGINS = {"IPPublicDetector", "JwtTokenDetector", "PrivateKeyDetector"}
# The keyword-shaped plugins (Cloudant, IBM, Softlayer: ~0.2 ms per prompt each) want a value of 24+ characters.
_LONG_VALUE = re.compile(r"(?<![A-Za-z0-9_/+-])[A-Za-z0-9_/+-]{24}")
# (Scans of a character class start only where a run starts — the look-behind — so they stay linear.)
# A plugin's regexes run only when its trigger is found (a regex, or substrings of the lower-cased text);
# plugins not listed always run.
_PLUGIN_TRIGGERS: dict[str, re.Pattern | tuple[str, ...]] = {
    "ArtifactoryDetector": re.compile(r"AKC|AP[\dA-F]"),
    "AWSKeyDetector": ("a3t", "abia", "acca", "akia", "asia", "aws"),
    "AzureStorageKeyDetector": ("accountkey=",),
    "BasicAuthDetector": ("@",),
    "CloudantDetector": _LONG_VALUE,
    "GitHubTokenDetector": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    "GitLabTokenDetector": (
        "glpat-",
        "gldt-",
        "glft-",
        "glsoat-",
        "glrt-",
        "gr1348941",
        "glcbt-",
        "glimt-",
        "glptt-",
        "glagent-",
        "gloas-",
    ),
    "IbmCloudIamDetector": _LONG_VALUE,
    "IbmCosHmacDetector": _LONG_VALUE,
    "MailchimpDetector": ("-us",),
    "NpmDetector": ("_authtoken",),
    "OpenAIDetector": ("t3blbkfj",),
    "PypiTokenDetector": ("pypi-",),
    "SendGridDetector": ("sg.",),
    "SlackDetector": ("xox", "hooks.slack"),
    "SoftlayerDetector": _LONG_VALUE,
    "SquareOAuthDetector": ("sq0csp-",),
    "StripeDetector": ("k_live_",),
    "TelegramBotTokenDetector": re.compile(r":(?<=\d{8}:)"),  # 8 digits before a colon; found from the colon
    "TwilioKeyDetector": _LONG_VALUE,  # `AC` / `SK` and 32 more: a run of 24 key characters
    "DiscordBotTokenDetector": _LONG_VALUE,  # 24 to 26 characters before its first dot
}
# Artifactory's `AP[0-9A-F]...` also matches CamelCase identifiers (`APEXController`): its tokens carry digits.
_NEEDS_DIGIT = {"ArtifactoryDetector"}
_DIGIT = re.compile(r"\d")
# Every plugin's secret is a run of 10+ key characters (a webhook URL included): text without one is skipped.
_KEY_RUN = re.compile(r"(?<![A-Za-z0-9_+/=.-])[A-Za-z0-9_+/=.-]{10}")


@lru_cache(maxsize=1)
def _regex_plugins() -> tuple[tuple[str, re.Pattern | tuple[str, ...], tuple[re.Pattern, ...]], ...]:
    plugins = []
    for plugin in get_mapping_from_secret_type_to_class().values():
        if not issubclass(plugin, RegexBasedDetector) or plugin.__name__ in _SKIPPED_PLUGINS:
            continue
        plugins.append((plugin.__name__, _PLUGIN_TRIGGERS.get(plugin.__name__, ()), tuple(plugin.denylist)))
    return tuple(sorted(plugins, key=lambda plugin: plugin[0]))


def _value_span(text: str, match: re.Match) -> tuple[int, int]:
    """The secret inside a plugin match: its first non-empty group (or all of it), trimmed and grown to the token."""
    start, end = match.span()
    for index in range(1, (match.re.groups or 0) + 1):
        if match.group(index):
            start, end = match.span(index)
            break
    while start < end and not _TOKEN_CHAR.match(text, start):
        start += 1
    while end > start and not _TOKEN_CHAR.match(text, end - 1):
        end -= 1
    space = re.search(r"\s", text[start:end])
    if space:
        end = start + space.start()
    end = _TOKEN_TAIL.match(text, end).end()
    return start, end


# detect-secrets' Slack webhook pattern, also used to redact the whole URL (ai_assist.redaction._url).
SLACK_WEBHOOK = next(pattern for pattern in SlackDetector.denylist if "hooks" in pattern.pattern)


@lru_cache(maxsize=1)
def _trigger_words() -> tuple[str, ...]:
    return tuple(sorted({word for _, trigger, _ in _regex_plugins() if isinstance(trigger, tuple) for word in trigger}))


def _triggered(trigger: re.Pattern | tuple[str, ...], text: str, lowered: str, seen: dict) -> bool:
    if isinstance(trigger, re.Pattern):
        if trigger not in seen:  # one scan per text for a trigger shared by several plugins
            seen[trigger] = trigger.search(text) is not None
        return seen[trigger]
    if not trigger:
        return True
    if "words" not in seen:  # every plugin's trigger words looked up once per text, not plugin by plugin
        seen["words"] = {word for word in _trigger_words() if word in lowered}
    return not seen["words"].isdisjoint(trigger)


def secret_spans(text: str) -> Iterator[Span]:
    """Cloud and SaaS keys, tokens and webhooks that detect-secrets' regex plugins know."""
    if not _KEY_RUN.search(text):
        return
    lowered = text.lower()
    seen: dict = {}
    for name, trigger, patterns in _regex_plugins():
        if not _triggered(trigger, text, lowered, seen):
            continue
        for pattern in patterns:
            for match in pattern.finditer(text):
                start, end = _value_span(text, match)
                value = text[start:end]
                if end - start < 8 or value.startswith("REDACTED_") or is_potential_uuid(value):
                    continue
                if name in _NEEDS_DIGIT and not _DIGIT.search(value):
                    continue
                yield start, end, "api_key"


# --- Private keys: the whole PEM block, body included (also inside JSON with `\n` escapes, also when truncated).
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
# Without a footer (a truncated paste): the base64 lines after the header, not the prose after them.
_PEM_BODY = re.compile(
    r"(?:(?:\s|\\[nr])*(?:[A-Za-z0-9+/]{16,}=*|[A-Za-z0-9+/]*==?|Proc-Type:[^\n]*|DEK-Info:[^\n]*))*"
)
_PEM_TRIGGER = ("PRIVATE KEY", "PuTTY-User-Key-File")
# detect-secrets' header list misses PKCS#8 `ENCRYPTED PRIVATE KEY` (and any other `... PRIVATE KEY` label).
_PEM_HEADERS = (*PrivateKeyDetector.denylist, re.compile(r"BEGIN [A-Z0-9 ]*PRIVATE KEY"))


def private_key_spans(text: str) -> Iterator[Span]:
    """From the header that detect-secrets' PrivateKeyDetector recognises to the footer (or the end of the body)."""
    if not any(trigger in text for trigger in _PEM_TRIGGER):
        return
    position = 0
    while True:
        found = [match for pattern in _PEM_HEADERS if (match := pattern.search(text, position))]
        if not found:
            return
        header = min(found, key=lambda match: match.start())
        start = text.rfind("-----", max(0, header.start() - 6), header.start())
        start = header.start() if start < 0 else start
        footer = _PEM_END.search(text, header.end())
        if footer is not None:
            end = footer.end()
        else:
            body_start = text.find("-----", header.end(), header.end() + 6)
            body_start = header.end() if body_start < 0 else body_start + 5
            end = _PEM_BODY.match(text, body_start).end()
        yield start, end, "private_key"
        position = end


# --- Keyword assignments (`password: ...`, `"db_pass" = "..."`, `AccountKey=...`): detect-secrets' keyword regexes.
_KEYWORD_TRIGGER = re.compile(ds_keyword.DENYLIST_REGEX, re.IGNORECASE)
_KEYWORD_PATTERNS = {**ds_keyword.CONFIG_DENYLIST_REGEX_TO_GROUP, **ds_keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP}
# The plugin's value group runs to the end of the line (fine for config files); in prose the value is one token.
_VALUE_END = re.compile(r"[\s;,&'\"`)\]}<>]")


# Substrings that every word of detect-secrets' keyword DENYLIST contains (`passed` is not one of them).
_KEYWORD_WORDS = ("key", "passw", "dbpass", "db_pass", "databasepass", "database_pass", "pwd", "secret", "contrase")


def keyword_spans(text: str) -> Iterator[Span]:
    """The value after a secret-sounding key word, on the lines that contain one."""
    lowered = text.lower()
    if not any(word in lowered for word in _KEYWORD_WORDS):
        return
    offset = 0
    for line in text.splitlines(keepends=True):
        line_lowered = line.lower()
        if any(word in line_lowered for word in _KEYWORD_WORDS) and _KEYWORD_TRIGGER.search(line):
            seen: set[int] = set()
            for pattern, group in _KEYWORD_PATTERNS.items():
                for match in pattern.finditer(line):
                    start = match.start(group)
                    if start in seen:
                        continue
                    seen.add(start)
                    value_end = _VALUE_END.search(line, start)
                    end = value_end.start() if value_end else len(line.rstrip("\r\n"))
                    value = line[start:end]
                    if len(value) < 4 or value.startswith("[REDACTED_") or is_templated_secret(value):
                        continue
                    yield offset + start, offset + end, "api_key"
        offset += len(line)


# --- High-entropy tokens (random keys without a known prefix, PEM bodies pasted without their header).
_ENTROPY = Base64HighEntropyString()
_LONG_TOKEN = re.compile(r"(?<![\w+/=-])[A-Za-z0-9_+/=-]{24,}(?![\w+/=-])")
_LONG_VALUE_RUN = re.compile(r"(?<![A-Za-z0-9_+/=-])[A-Za-z0-9_+/=-]{24}")
_HAS_MIXED = re.compile(r"(?=.*\d)(?=.*[a-z])(?=.*[A-Z])", re.DOTALL)


def high_entropy_spans(text: str) -> Iterator[Span]:
    """Tokens of 24+ base64 characters, mixed case with digits, above detect-secrets' base64 entropy limit."""
    if not _LONG_VALUE_RUN.search(text):  # no token that long (a cheaper scan than the token pattern's)
        return
    for match in _LONG_TOKEN.finditer(text):
        token = match.group(0)
        if "REDACTED_" in token or not _HAS_MIXED.match(token) or is_potential_uuid(token):
            continue
        if is_sequential_string(token):
            continue
        if _ENTROPY.calculate_shannon_entropy(token) > _ENTROPY.entropy_limit:
            yield match.start(), match.end(), "api_key"


# --- Phone numbers: phonenumbers' matcher, run only on candidates (it costs ~0.25 ms per call and region).
# A local number starts with a trunk prefix `0` (DE `030 1234567`, FR `01 23 45 67 89`, GB `020 7946 0958`) or is
# NANP-shaped (`415-555-0132`, `(415) 555-0132`); international numbers start with `+` or `00`.
_PHONE_CANDIDATE = re.compile(
    r"(?<![\w.+/-])(?:\+|\(?0|\(\d)[\d \t().\-/]{5,22}\d(?![\w])"
    r"|(?<![\w.+/-])\d{3}[. \t-]\d{3}[. \t-]\d{4}(?![\w.-])"
)
_DATE_LIKE = re.compile(
    r"(?<!\d)(?:(?:19|20)\d{2}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.](?:19|20)\d{2}(?!\d))"
)


# Every character of a candidate is one of these, so a candidate lies inside one run of them, and a run with fewer
# than 7 digits holds none worth checking: the candidate pattern is only run over the runs that have 7.
_PHONE_RUN = re.compile(r"[\d+(][\d \t().\-/+]*")


def _phone_candidates(text: str) -> Iterator[re.Match]:
    for run in _PHONE_RUN.finditer(text):
        if run.end() - run.start() < 7 or sum(char.isdigit() for char in run.group(0)) < 7:
            continue
        # From the run's start (the look-behind still sees the text before it) to one character past its end (the
        # look-ahead sees what follows; no candidate can take it, it is not one of the run's characters).
        yield from _PHONE_CANDIDATE.finditer(text, run.start(), run.end() + 1)


def phone_spans(text: str, regions: tuple[str, ...]) -> Iterator[Span]:
    """Valid phone numbers (international, or local in one of `regions`), found by `PhoneNumberMatcher`."""
    for candidate in _phone_candidates(text):
        raw = candidate.group(0)
        if sum(char.isdigit() for char in raw) < 7 or _DATE_LIKE.search(raw):
            continue
        international = raw.startswith(("+", "00"))
        for region in regions[:1] if international else regions:
            matches = list(phonenumbers.PhoneNumberMatcher(raw, region, leniency=phonenumbers.Leniency.VALID))
            if matches:
                for match in matches:
                    yield candidate.start() + match.start, candidate.start() + match.end, "phone"
                break


# --- National ids (python-stdnum, checksums validated), IBANs and card numbers.
_ID_COMPACT = re.compile(r"\b(?<!-)[A-Z0-9]{8,16}\b(?!-)")
_ID_GROUPED = re.compile(r"\b(?<![.+/-])\d+(?:[ ./-]\d+){0,6}(?:[ -]?[A-Z])?\b(?!-)")
_EIGHT_DIGITS = re.compile(r"\d(?:[ ./-]?\d){7}")
_EIGHT_UPPER_OR_DIGITS = re.compile(r"(?<![A-Z0-9])[A-Z0-9]{8}")  # a compact id is a run of 8 to 16 of them
_ID_CONTEXT = re.compile(
    r"(?i)(?:\b(?:bsn|ssn|social security|sozialversicherung\w*|steuer\w*|tax|id|idnr|nir|insee|pesel|"
    r"personnummer|cpr|national|passport|identity|identifiant|ausweis\w*|burgerservicenummer)\b)[^\n]{0,30}$"
)
# Without a checksum worth the name (us.ssn), or with one that random digits pass often (nl.bsn 1 in 11, Luhn 1 in
# 10): only in the module's own written format or after a key word.
_WEAK_IDS = {"us.ssn", "nl.bsn", "dk.cpr", "se.personnummer", "gb.nhs", "at.vnr"}


@lru_cache(maxsize=8)
def _id_modules(names: tuple[str, ...]) -> tuple[tuple[str, object], ...]:
    return tuple((name, importlib.import_module(f"stdnum.{name}")) for name in names)


def _id_valid(text: str, start: int, candidate: str, modules) -> bool:
    context = None
    for name, module in modules:
        if not module.is_valid(candidate):
            continue
        if name not in _WEAK_IDS:
            return True
        formatter = getattr(module, "format", None)
        if formatter is not None and formatter(module.compact(candidate)) == candidate:
            return True
        if context is None:
            context = bool(_ID_CONTEXT.search(text, max(0, start - 40), start))
        if context:
            return True
    return False


def national_id_spans(text: str, names: tuple[str, ...]) -> Iterator[Span]:
    """National id numbers that one of the configured python-stdnum modules validates (checksum included)."""
    modules = _id_modules(names)
    for pattern in (_ID_GROUPED, _ID_COMPACT):
        if pattern is _ID_GROUPED and not _EIGHT_DIGITS.search(text):  # digit-only ids have 8+ digits
            continue
        if pattern is _ID_COMPACT and not _EIGHT_UPPER_OR_DIGITS.search(text):
            continue
        for match in pattern.finditer(text):
            candidate = match.group(0)
            digits = sum(char.isdigit() for char in candidate)
            # Every configured id has 7+ digits, 8+ when it is digits only (the letters carry the rest).
            if not (8 if pattern is _ID_GROUPED else 7) <= digits <= 15:
                continue
            if pattern is _ID_GROUPED and _DATE_LIKE.search(candidate):
                continue
            if _id_valid(text, match.start(), candidate, modules):
                yield match.start(), match.end(), "national_id"


def iban_valid(candidate: str) -> bool:
    """Mod-97 check digits and the country's registered BBAN structure and length (python-stdnum). The national
    BBAN checksum (Spain's, Belgium's...) is not required: a typo'd or made-up account number is still personal."""
    return stdnum_iban.is_valid(candidate, check_country=False)


def luhn_valid(digits: str) -> bool:
    return stdnum_luhn.is_valid(digits)
