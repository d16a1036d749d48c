"""PII redaction before a prompt leaves: a labelled corpus, and the captured outbound request."""

from __future__ import annotations

import json
import random
import re
import string
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ai_assist.models import AiUsageLog
from ai_assist.prompts import TEMPLATES
from ai_assist.redaction import PLACEHOLDERS, redact
from ai_assist.services import ai_generate_text, ai_stream_text
from tests.ai_assist.redaction_corpus import ATTACK_FORMATS, CORPUS, MUST_SURVIVE, NAMES, NEGATIVES, corpus_scores


def test_it_has_a_corpus_of_at_least_200_labelled_snippets():
    assert len(CORPUS) >= 200
    assert {kind for kind, _, _ in CORPUS} == set(PLACEHOLDERS)


@pytest.mark.parametrize("kind", sorted(PLACEHOLDERS))
def test_it_redacts_every_snippet_of_the_corpus(kind):
    snippets = [(text, secrets) for label, text, secrets in CORPUS if label == kind]
    misses = []
    for text, secrets in snippets:
        result = redact(text, names=tuple(NAMES))
        leaked = [secret for secret in secrets if secret.lower() in result.text.lower()]
        if leaked or PLACEHOLDERS[kind] not in result.text:
            misses.append((text, result.text))
    assert misses == [], f"{len(misses)} of {len(snippets)} {kind} snippets not redacted: {misses[:3]}"


def test_it_leaves_text_without_pii_unchanged():
    changed = [(text, redact(text, names=tuple(NAMES)).text) for text in NEGATIVES]
    assert [pair for pair in changed if pair[0] != pair[1]] == []


def test_it_keeps_versions_uuids_ticket_ids_ports_durations_dates_and_identifiers():
    changed = [(text, redact(text, names=tuple(NAMES)).text) for text in MUST_SURVIVE]
    assert [pair for pair in changed if pair[0] != pair[1]] == []


def test_it_reports_recall_and_over_redaction_of_the_corpus(capsys):
    scores = corpus_scores()
    kinds = Counter(kind for kind, _, _ in ATTACK_FORMATS)
    with capsys.disabled():
        print(
            f"\nredaction corpus: recall {scores['recall']:.1%} of {scores['snippets']} labelled snippets, "
            f"over-redaction {scores['over_redaction']:.1%} of {scores['survivors']} must-survive items; "
            f"attack formats added: {dict(sorted(kinds.items()))}"
        )
    assert (scores["missed"], scores["damaged"]) == ([], [])


def test_it_keeps_the_quote_after_a_redacted_bearer_token():
    result = redact('headers = {"Authorization": "Bearer abcDEF123456ghiJKL7890"}').text
    assert result == 'headers = {"Authorization": "Bearer [REDACTED_API_KEY]"}'
    assert redact("api_key='Zx81kLmn0PqR'").text == "api_key='[REDACTED_API_KEY]'"


def test_it_redacts_the_whole_of_a_stripe_key_longer_than_the_plugin_pattern():
    key = "sk_live_" + "a1B2c3D4e5" * 10
    assert redact(f"key {key} end").text == "key [REDACTED_API_KEY] end"


def test_it_keeps_four_part_versions_but_not_addresses():
    assert redact("Version 10.4.2.1 deployed").text == "Version 10.4.2.1 deployed"
    assert redact("from 10.4.2.1 at noon").text == "from [REDACTED_IP] at noon"


def test_it_decodes_url_encoding_before_matching_and_keeps_other_encoded_text():
    assert redact("GET /search?q=a%20b&user=jane%40example.com").text == "GET /search?q=a b&user=[REDACTED_EMAIL]"
    assert redact("GET /search?q=a%20b&page=2").text == "GET /search?q=a%20b&page=2"


def test_it_only_redacts_national_ids_and_ibans_with_valid_check_digits():
    assert redact("Steuer-ID 39 170 342 364").text == "Steuer-ID [REDACTED_NATIONAL_ID]"
    assert redact("Steuer-ID 39 170 342 365").text == "Steuer-ID 39 170 342 365"
    assert redact("PESEL 85073012341").text == "PESEL [REDACTED_NATIONAL_ID]"
    assert redact("PESEL 85073012342").text == "PESEL 85073012342"
    assert redact("to DE35 3704 0044 0532 0130 99").text == "to [REDACTED_IBAN]"
    assert redact("to DE36 3704 0044 0532 0130 99").text == "to DE36 3704 0044 0532 0130 99"


def test_it_needs_a_region_for_local_phone_numbers(settings):
    settings.AI_REDACTION_PHONE_REGIONS = ["DE"]
    assert redact("call 030 1234567").text == "call [REDACTED_PHONE]"
    assert redact("call +33 1 23 45 67 89").text == "call [REDACTED_PHONE]"  # international: any region
    settings.AI_REDACTION_PHONE_REGIONS = ["US"]
    assert redact("call 030 1234567").text == "call 030 1234567"


def test_it_never_calls_a_secret_vendor_to_verify(monkeypatch):
    import requests

    def no_network(*args, **kwargs):
        raise AssertionError("redaction must not use the network")

    monkeypatch.setattr(requests.Session, "request", no_network)
    for _, text, _ in ATTACK_FORMATS:
        redact(text)


def test_it_only_redacts_luhn_valid_card_numbers():
    assert redact("card 4111 1111 1111 1111").text == "card [REDACTED_CARD]"
    assert redact("card 4111 1111 1111 1112").text == "card 4111 1111 1111 1112"


@pytest.mark.django_db
def test_it_sends_none_of_the_seeded_values_to_the_provider(viewer, fake_openai, settings, release_data):
    settings.AI_REDACT_NAMES = NAMES
    seeded = [(text, secrets) for _, text, secrets in CORPUS]
    variables = {"release_candidate": "RC-2026.11.2", "notes": [text for text, _ in seeded], "total": 10}
    ai_generate_text(user=viewer, task_id="report_summary", template_id="report_summary", variables=variables)
    # Also through the page/API path: run notes with an email and a phone number.
    from ai_assist.selectors import assist_context_build

    built = assist_context_build(task="triage_failure", run_id=str(release_data["run"].pk))
    result = ai_generate_text(
        user=viewer, task_id="triage_failure", template_id="triage_failure", variables=built["variables"]
    )
    assert fake_openai.request_count == 2
    outbound = b"\n".join(fake_openai.raw_bodies).decode()
    decoded = json.dumps(fake_openai.requests, ensure_ascii=False)
    values = {secret for _, secrets in seeded for secret in secrets} | {"dana.smith@example.com", "+44 20 7946 0958"}
    leaked = [value for value in values if value.lower() in outbound.lower() or value.lower() in decoded.lower()]
    assert leaked == []
    assert "[REDACTED_EMAIL]" in decoded and "[REDACTED_CARD]" in decoded and "[REDACTED_NAME]" in decoded
    stored = AiUsageLog.objects.get(pk=result.usage_log_id)
    assert "dana.smith@example.com" not in stored.prompt_redacted and stored.redactions.get("email", 0) >= 1


def _template_variables(template, value: str) -> dict:
    fields = {name for part in (template.system, template.user) for _, name, _, _ in string.Formatter().parse(part)}
    return {name: value for name in fields if name}


@pytest.mark.django_db
@pytest.mark.parametrize("template_id", sorted(TEMPLATES))
def test_it_redacts_every_template_on_the_streaming_path(template_id, viewer, fake_openai):
    template = TEMPLATES[template_id]
    notes = "\n".join(text for _, text, _ in ATTACK_FORMATS)
    stream = ai_stream_text(
        user=viewer, task_id=template_id, template_id=template_id, variables=_template_variables(template, notes)
    )
    "".join(stream)
    outbound = b"\n".join(fake_openai.raw_bodies).decode()
    decoded = json.dumps(fake_openai.requests, ensure_ascii=False)
    values = {secret for _, _, secrets in ATTACK_FORMATS for secret in secrets}
    assert [value for value in values if value.lower() in outbound.lower() or value.lower() in decoded.lower()] == []
    stored = AiUsageLog.objects.get(pk=stream.usage_log_id)
    assert [value for value in values if value.lower() in stored.prompt_redacted.lower()] == []


def _gate_sample() -> list[str]:
    """The corpus, the must-survive items, and mixes and slices of them (a gate must hold in any mix)."""
    base = [text for _, text, _ in CORPUS + ATTACK_FORMATS] + list(MUST_SURVIVE) + list(NEGATIVES)
    rng = random.Random(20261201)
    mixed = [" ".join(rng.sample(base, 3)) for _ in range(400)]
    sliced = []
    for text in rng.sample(base, 200):
        start = rng.randrange(len(text))
        sliced.append(text[start : rng.randrange(start, len(text) + 1)])
    return base + mixed + sliced


def test_the_cheap_gates_never_skip_a_rule_that_would_have_matched(monkeypatch):
    """Every rule runs only where its gate (a substring, a cheaper pattern, a plugin trigger, the digit runs a phone
    number can be in, the positions a windowed rule's matches can start at) says it could match: with every gate
    forced open, redaction gives the same text and counts."""
    from ai_assist import redaction, redaction_detectors

    texts = _gate_sample()
    gated = [(redact(text).text, redact(text, names=tuple(NAMES)).text) for text in texts]
    gated_counts = [redact(text).counts for text in texts]

    always = re.compile("")  # an empty pattern is found in any text
    for name in ("_MAC_GATE", "_IBAN_GATE", "_CARD_GATE", "_IPV4_GATE", "_IPV6_GATE"):
        monkeypatch.setattr(redaction, name, always)
    monkeypatch.setattr(redaction, "_API_KEY_PREFIXES", ("",))
    monkeypatch.setattr(redaction, "_could_match", lambda text: True)
    monkeypatch.setattr(redaction_detectors, "_PLUGIN_TRIGGERS", {})
    for name in ("_KEY_RUN", "_LONG_VALUE_RUN", "_EIGHT_UPPER_OR_DIGITS"):
        monkeypatch.setattr(redaction_detectors, name, always)
    monkeypatch.setattr(redaction_detectors, "_phone_candidates", redaction_detectors._PHONE_CANDIDATE.finditer)
    original_sub = redaction._sub
    monkeypatch.setattr(redaction, "_sub", lambda pattern, replace, needs=(), gate=None: original_sub(pattern, replace))
    monkeypatch.setattr(redaction, "_windowed", lambda pattern, replace, starts: original_sub(pattern, replace))
    for cached in (redaction._rules, redaction_detectors._regex_plugins, redaction_detectors._trigger_words):
        cached.cache_clear()
    try:
        ungated = [(redact(text).text, redact(text, names=tuple(NAMES)).text) for text in texts]
        ungated_counts = [redact(text).counts for text in texts]
    finally:
        for cached in (redaction._rules, redaction_detectors._regex_plugins, redaction_detectors._trigger_words):
            cached.cache_clear()
    differences = [(text, a, b) for text, a, b in zip(texts, gated, ungated, strict=True) if a != b]
    assert differences == [], differences[:3]
    assert gated_counts == ungated_counts
    assert sum(1 for a, _ in gated if "[REDACTED_" in a) > 300  # the sample does exercise the rules


_WINDOW_PIECES = (
    "key", "Key", "KEY", "token", "secret", "passw", "pwd", "bearer", "Bearer ", "api", "_", "-", "=", ":", " ", "\n",
    "'", '"', "sharedaccess", "account", "client", "sas", "auth", "access", "abc123xyz", "hunter22", "@", ".", "%",
    "+", "dana", "example", "com", "de", "x", "1", "[REDACTED_API_KEY]", ",", ";", "client_secret", "CLIENT-SECRET",
    "sharedaccess_key", "SharedAccessKey", "access-token", "account_key", "sas_token", "api-key", "apikey", "password",
    "passwd", "auth_token", "secret_key", "Authorization: Bearer ", "token=", "key: ", "=abc123xyz",
)  # fmt: skip


@hypothesis_settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(_WINDOW_PIECES), max_size=40).map("".join))
def test_a_windowed_rule_finds_exactly_what_a_scan_of_the_whole_text_finds(text):
    """`_SECRET_ASSIGNMENT` and `_EMAIL` are tried only at the positions their matches can start (near a label word,
    at the start of the run before an `@`): the result equals `pattern.sub` over the whole text, counts included."""
    from ai_assist import redaction

    for pattern, replace, starts in (
        (redaction._SECRET_ASSIGNMENT, redaction._secret_assignment, redaction._SECRET_ASSIGNMENT_STARTS),
        (redaction._EMAIL, redaction._simple("email"), redaction._email_starts),
    ):
        windowed, whole = Counter(), Counter()
        result = redaction._windowed(pattern, replace, starts)(text, windowed)
        assert result == pattern.sub(lambda match: replace(match, whole), text)  # noqa: B023
        assert windowed == whole


def test_a_templates_system_text_is_redacted_once_and_kept_per_configuration(monkeypatch, settings):
    from ai_assist import redaction

    redaction._redact_fixed.cache_clear()
    scans = Counter()
    original = redaction._redact

    def counting(text, config):
        scans[text] += 1
        return original(text, config)

    monkeypatch.setattr(redaction, "_redact", counting)
    system = TEMPLATES["report_summary"].system + " Escalate to Dana Smith."
    first = redaction.redact_fixed(system)
    again = redaction.redact_fixed(system)
    assert again.text == first.text and scans[system] == 1
    again.counts["name"] += 5  # a caller's counts are its own copy
    assert redaction.redact_fixed(system).counts == first.counts
    settings.AI_REDACT_NAMES = ["Dana Smith"]
    named = redaction.redact_fixed(system)
    assert "[REDACTED_NAME]" in named.text and "Dana Smith" not in named.text and scans[system] == 2
