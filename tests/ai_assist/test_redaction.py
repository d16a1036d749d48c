"""PII redaction before a prompt leaves: a labelled corpus, and the captured outbound request."""

from __future__ import annotations

import json

import pytest

from ai_assist.models import AiUsageLog
from ai_assist.redaction import PLACEHOLDERS, redact
from ai_assist.services import ai_generate_text
from tests.ai_assist.redaction_corpus import CORPUS, NAMES, NEGATIVES


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
