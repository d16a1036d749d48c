"""Token kinds per provider shape, dated prices from the database, exact cost; real response bodies through the SDK."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from ai_assist.models import AiModelPrice, AiUsageLog
from ai_assist.pricing import (
    KINDS,
    Usage,
    cost_nano,
    price_cache_clear,
    price_table_seed,
    usage_normalise,
    worst_case_cost_nano,
)
from ai_assist.services import AiModelUnpriced, ai_generate_text, ai_stream_text

pytestmark = pytest.mark.django_db

FIGURES = {"release_candidate": "RC-9", "total": 10, "passed": 9, "failed": 1, "pass_rate": 90.0}

# Bodies as providers send them (trimmed to `usage`): OpenAI with prompt caching and reasoning details, OpenAI
# without details, and an Anthropic-like compatible server that reports cache reads/writes beside prompt tokens.
OPENAI_CACHED = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 128,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
OPENAI_PLAIN = {"prompt_tokens": 120, "completion_tokens": 14, "total_tokens": 134}
BESIDE = {
    "prompt_tokens": 50,
    "completion_tokens": 120,
    "total_tokens": 170,
    "cache_read_input_tokens": 1800,
    "cache_creation_input_tokens": 200,
}
# gpt-4o-mini as seeded from settings: USD 0.15 / 0.075 (cached) / 0.60 per 1M tokens, in nano-dollars per 1M.
MINI = {
    "prompt": 150_000_000,
    "cached_prompt": 75_000_000,
    "cache_write": 150_000_000,
    "completion": 600_000_000,
    "reasoning": 600_000_000,
}


def _call(user, **extra):
    return ai_generate_text(
        user=user, task_id="report_summary", template_id="report_summary", variables=FIGURES, **extra
    )


def _metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_it_normalises_the_openai_shape_with_cache_reads_inside_prompt_tokens():
    usage = usage_normalise(OPENAI_CACHED)
    assert usage == Usage(prompt=2006, cached_prompt=1920, cache_write=0, completion=300, reasoning=128)
    assert usage.billable() == {
        "prompt": 86,
        "cached_prompt": 1920,
        "cache_write": 0,
        "completion": 172,
        "reasoning": 128,
    }


def test_it_normalises_the_shape_that_reports_cache_tokens_beside_prompt_tokens():
    usage = usage_normalise(BESIDE)
    assert usage == Usage(prompt=2050, cached_prompt=1800, cache_write=200, completion=120, reasoning=0)
    anthropic_names = {"input_tokens": 50, "output_tokens": 120, "cache_read_input_tokens": 1800}
    assert usage_normalise(anthropic_names) == Usage(prompt=1850, cached_prompt=1800, completion=120)


def test_it_takes_a_litellm_style_mixed_body_as_subsets_without_double_counting():
    mixed = {
        "prompt_tokens": 2050,
        "completion_tokens": 10,
        "prompt_tokens_details": {"cached_tokens": 1800},
        "cache_read_input_tokens": 1800,
        "cache_creation_input_tokens": 200,
    }
    assert usage_normalise(mixed) == Usage(prompt=2050, cached_prompt=1800, cache_write=200, completion=10)


def test_it_prices_a_cached_openai_answer_through_the_sdk_at_each_kinds_rate(viewer, fake_openai):
    fake_openai.script([{"usage": OPENAI_CACHED}])
    result = _call(viewer)
    assert result.cost_nano == 86 * 150 + 1920 * 75 + 172 * 600 + 128 * 600 == 336_900
    log = AiUsageLog.objects.get(pk=result.usage_log_id)
    assert (log.prompt_tokens, log.cached_prompt_tokens, log.cache_write_tokens) == (2006, 1920, 0)
    assert (log.completion_tokens, log.reasoning_tokens, log.total_tokens) == (300, 128, 2306)
    assert log.cost_nano == 336_900 and log.cost_usd == pytest.approx(0.0003369)
    assert log.price_rates == MINI and log.price_id
    # Without caching the same prompt would have cost 2006 * 150 for the input: the cache saved 1920 * 75.
    assert cost_nano(Usage(prompt=2006, completion=300), MINI) - log.cost_nano == 1920 * 75


def test_it_prices_an_answer_without_cache_details_as_plain_prompt_and_completion(viewer, fake_openai):
    fake_openai.script([{"usage": OPENAI_PLAIN}])
    result = _call(viewer)
    log = AiUsageLog.objects.get(pk=result.usage_log_id)
    assert (log.prompt_tokens, log.cached_prompt_tokens, log.reasoning_tokens) == (120, 0, 0)
    assert log.cost_nano == 120 * 150 + 14 * 600 == result.cost_nano


def test_it_prices_cache_reads_and_writes_reported_beside_prompt_tokens(viewer, fake_openai):
    AiModelPrice.objects.create(
        provider="openai",
        model="compat-cache",
        valid_from=datetime(2020, 1, 1, tzinfo=UTC),
        prompt_nano_per_mtok=3_000_000_000,
        cached_prompt_nano_per_mtok=300_000_000,
        cache_write_nano_per_mtok=3_750_000_000,
        completion_nano_per_mtok=15_000_000_000,
        reasoning_nano_per_mtok=15_000_000_000,
    )
    from django.conf import settings

    settings.AI_MODEL = "compat-cache"
    fake_openai.script([{"usage": BESIDE}])
    result = _call(viewer)
    log = AiUsageLog.objects.get(pk=result.usage_log_id)
    assert (log.prompt_tokens, log.cached_prompt_tokens, log.cache_write_tokens) == (2050, 1800, 200)
    assert log.cost_nano == 50 * 3000 + 1800 * 300 + 200 * 3750 + 120 * 15000


def test_it_carries_the_same_token_kinds_on_a_streamed_call(viewer, fake_openai):
    fake_openai.script([{"usage": OPENAI_CACHED}])
    stream = ai_stream_text(user=viewer, task_id="report_summary", template_id="report_summary", variables=FIGURES)
    text = "".join(stream)
    assert text == fake_openai.default_text
    assert fake_openai.requests[0]["stream_options"] == {"include_usage": True}
    assert (stream.result.cached_prompt_tokens, stream.result.reasoning_tokens) == (1920, 128)
    log = AiUsageLog.objects.get(pk=stream.usage_log_id)
    assert (log.streamed, log.cached_prompt_tokens, log.reasoning_tokens, log.cost_nano) == (True, 1920, 128, 336_900)


def test_it_prices_a_call_at_the_rate_valid_when_it_was_made_and_keeps_it(viewer, fake_openai):
    change = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    price_table_seed()  # the settings' rate, valid since 2000; then an admin adds a dearer one from `change` on
    AiModelPrice.objects.create(
        provider="openai",
        model="gpt-4o-mini",
        valid_from=change,
        prompt_nano_per_mtok=300_000_000,
        cached_prompt_nano_per_mtok=150_000_000,
        cache_write_nano_per_mtok=300_000_000,
        completion_nano_per_mtok=1_200_000_000,
        reasoning_nano_per_mtok=1_200_000_000,
    )
    price_cache_clear()
    with time_machine.travel(change - timedelta(minutes=1), tick=False):
        before = _call(viewer)
    with time_machine.travel(change + timedelta(minutes=1), tick=False):
        after = _call(viewer)
    assert after.cost_nano == 2 * before.cost_nano  # same tokens, doubled rates
    AiModelPrice.objects.filter(valid_from=change).update(prompt_nano_per_mtok=1)  # editing a price later...
    price_cache_clear()
    old = AiUsageLog.objects.get(pk=before.usage_log_id)
    new = AiUsageLog.objects.get(pk=after.usage_log_id)
    assert old.price_rates == MINI and new.price_rates["prompt"] == 300_000_000  # ...never reprices a call
    assert (old.cost_nano, new.cost_nano) == (before.cost_nano, after.cost_nano)
    assert new.price_valid_from == change


def test_it_refuses_a_model_without_a_valid_price_before_the_provider_and_counts_it(viewer, fake_openai, settings):
    settings.AI_MODEL = "gpt-5-unpriced"
    AiModelPrice.objects.create(  # a price that starts tomorrow is no price today
        provider="openai", model="gpt-5-unpriced", valid_from=datetime.now(UTC) + timedelta(days=1)
    )
    counted = _metric("rp_ai_unpriced_refusals_total", provider="openai", model="gpt-5-unpriced")
    with pytest.raises(AiModelUnpriced) as refused:
        _call(viewer)
    assert refused.value.code == "ai_model_unpriced" and "gpt-5-unpriced" in refused.value.message
    assert fake_openai.request_count == 0
    assert _metric("rp_ai_unpriced_refusals_total", provider="openai", model="gpt-5-unpriced") == counted + 1
    log = AiUsageLog.objects.get(user=viewer)
    assert (log.outcome, log.error_code, log.cost_nano, log.price_id) == ("refused", "ai_model_unpriced", 0, "")


def test_it_seeds_prices_from_settings_once_and_never_over_an_admins_rows(settings):
    AiModelPrice.objects.all().delete()
    assert price_table_seed() == len(settings.AI_MODEL_PRICES)
    mini = AiModelPrice.objects.get(model="gpt-4o-mini")
    assert mini.rates() == MINI and mini.provider == "openai"
    mini.prompt_nano_per_mtok = 1
    mini.save()
    assert price_table_seed() == 0
    assert AiModelPrice.objects.get(model="gpt-4o-mini").prompt_nano_per_mtok == 1
    assert AiModelPrice.objects.get(model="offline").rates() == dict.fromkeys(KINDS, 0)


def test_it_lets_admins_enter_prices_in_usd_per_million_tokens(admin_client):
    form = {
        "provider": "openai",
        "model": "gpt-4.1-nano",
        "valid_from_0": "2026-11-01",
        "valid_from_1": "00:00:00",
        "note": "",
        "prompt_usd_per_mtok": "0.10",
        "cached_prompt_usd_per_mtok": "0.025",
        "cache_write_usd_per_mtok": "0.10",
        "completion_usd_per_mtok": "0.40",
        "reasoning_usd_per_mtok": "0.40",
    }
    response = admin_client.post("/admin/ai_assist/aimodelprice/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    price = AiModelPrice.objects.get(model="gpt-4.1-nano")
    assert (price.prompt_nano_per_mtok, price.cached_prompt_nano_per_mtok) == (100_000_000, 25_000_000)
    tiny = {**form, "model": "too-precise", "prompt_usd_per_mtok": "0.0000000001"}
    assert admin_client.post("/admin/ai_assist/aimodelprice/add/", tiny).status_code == 200
    assert not AiModelPrice.objects.filter(model="too-precise").exists()


_counts = st.one_of(st.none(), st.integers(min_value=-5, max_value=10**7), st.text(max_size=3), st.booleans())
_openai_bodies = st.fixed_dictionaries(
    {"prompt_tokens": _counts, "completion_tokens": _counts},
    optional={
        "prompt_tokens_details": st.fixed_dictionaries({"cached_tokens": _counts}),
        "completion_tokens_details": st.fixed_dictionaries({"reasoning_tokens": _counts}),
        "cache_creation_input_tokens": _counts,
    },
)
_beside_bodies = st.fixed_dictionaries(
    {"prompt_tokens": _counts, "completion_tokens": _counts},
    optional={"cache_read_input_tokens": _counts, "cache_creation_input_tokens": _counts},
)
_rates = st.fixed_dictionaries({kind: st.integers(min_value=0, max_value=10**11) for kind in KINDS})


@hypothesis_settings(max_examples=300, deadline=None)
@given(body=st.one_of(_openai_bodies, _beside_bodies), rates=_rates)
def test_it_never_charges_a_negative_cost_nor_a_cached_token_twice(body, rates):
    usage = usage_normalise(body)
    billable = usage.billable()
    assert all(count >= 0 for count in billable.values())
    # Every token is charged in exactly one kind: the kinds add up to the call's tokens, nothing more.
    assert sum(billable.values()) == usage.total
    cost = cost_nano(usage, rates)
    assert cost >= 0
    assert cost <= worst_case_cost_nano(prompt_tokens=usage.prompt, completion_tokens=usage.completion, rates=rates)
    # With cache reads priced like prompt tokens, reporting them changes nothing: they are never added on top.
    if (body.get("prompt_tokens_details") or {}).get("cached_tokens") is not None:
        flat = {**rates, "cached_prompt": rates["prompt"], "cache_write": rates["prompt"]}
        without = {name: value for name, value in body.items() if name not in ("prompt_tokens_details",)}
        without.pop("cache_creation_input_tokens", None)
        assert cost_nano(usage, flat) == cost_nano(
            Usage(prompt=usage.prompt, completion=usage.completion, reasoning=usage.reasoning), flat
        )
        assert usage_normalise(without).prompt == usage.prompt


def test_it_reports_the_token_kinds_and_exact_cost_in_the_api_and_the_stream(viewer_client, release_data, fake_openai):
    import json

    payload = {"task": "triage_failure", "run": str(release_data["run"].pk)}
    fake_openai.script([{"usage": OPENAI_CACHED}, {"usage": OPENAI_CACHED}])
    body = viewer_client.post("/api/v1/ai/assist", payload, content_type="application/json").json()
    assert (body["prompt_tokens"], body["cached_prompt_tokens"], body["reasoning_tokens"]) == (2006, 1920, 128)
    assert body["cost_nano"] == 336_900 and body["cost"] == pytest.approx(0.0003369)
    streamed = viewer_client.post("/api/v1/ai/assist", {**payload, "stream": True}, content_type="application/json")
    events = [json.loads(line) for line in b"".join(streamed.streaming_content).decode().splitlines() if line]
    done = events[-1]
    assert done["type"] == "done" and (done["cached_prompt_tokens"], done["cost_nano"]) == (1920, 336_900)
