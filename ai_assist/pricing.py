"""Token kinds, dated prices and exact cost.

Usage shapes. Providers report cache and reasoning tokens in different ways; `usage_normalise` turns each into one
`Usage` where `prompt` is every input token (cache reads and writes included) and `completion` every output token
(reasoning included), so each token is priced exactly once, at the rate of its kind:
- OpenAI chat completions: `prompt_tokens` INCLUDES `prompt_tokens_details.cached_tokens` (a subset), and
  `completion_tokens` includes `completion_tokens_details.reasoning_tokens`. DeepSeek's `prompt_cache_hit_tokens`
  is a subset of `prompt_tokens` too. A cache write reported next to those details (`cache_write_tokens`, or
  LiteLLM's `cache_creation_input_tokens`) is taken as a subset as well.
- Anthropic-like compatible servers: `cache_read_input_tokens` and `cache_creation_input_tokens` are reported
  BESIDE the (uncached) `prompt_tokens` / `input_tokens`: they are added to it.
Subsets are clamped to their total, so a malformed body can never make a kind negative.

Prices. Rates are integer nano-dollars per million tokens (AiModelPrice); a call costs
ceil(sum(tokens of kind x rate of kind) / 1e6) nano-dollars: exact integers, rounded up once per call (at most one
nano-dollar, never under-charged). Each process keeps the whole price table in memory and reloads it in the
background every AI_CONFIG_CACHE_SECONDS (ai_assist/config_cache.py: the call path never waits on MongoDB). Rows
carry `valid_from`, so a price dated ahead takes over exactly on time, while a newly added or edited row is seen by
other processes within that many seconds.

Seeding. Every model of settings.AI_MODEL_PRICES (USD per million tokens, as decimal strings) that has no price row
gets one, valid from 2000-01-01: after `migrate` (post_migrate) and whenever the table is loaded. Rows are never
overwritten by the seed: once a model has a row, the admin's rows are the truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings

from ai_assist.config_cache import ConfigCache

NANO = 1_000_000_000
MTOK = 1_000_000
KINDS = ("prompt", "cached_prompt", "cache_write", "completion", "reasoning")
SEED_VALID_FROM = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Usage:
    """One call's tokens. `cached_prompt` and `cache_write` are part of `prompt`; `reasoning` is part of
    `completion`."""

    prompt: int = 0
    cached_prompt: int = 0
    cache_write: int = 0
    completion: int = 0
    reasoning: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.completion

    def billable(self) -> dict[str, int]:
        """Tokens by the kind they are charged as: every token in exactly one kind."""
        return {
            "prompt": self.prompt - self.cached_prompt - self.cache_write,
            "cached_prompt": self.cached_prompt,
            "cache_write": self.cache_write,
            "completion": self.completion - self.reasoning,
            "reasoning": self.reasoning,
        }


def _count(value: Any) -> int:
    """A token count from a provider body: non-integers, booleans and negatives count as 0."""
    if isinstance(value, bool) or value is None:
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 0
    return max(0, number)


def usage_normalise(raw: Mapping[str, Any]) -> Usage:
    """The provider's `usage` object (a dict, as in the response body) as a `Usage` (see the module docstring)."""
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    if not isinstance(prompt_details, Mapping):
        prompt_details = {}
    if not isinstance(completion_details, Mapping):
        completion_details = {}
    read_beside = _count(raw.get("cache_read_input_tokens"))
    write_beside = _count(raw.get("cache_creation_input_tokens"))
    subset_reads = prompt_details.get("cached_tokens")
    if subset_reads is None:
        subset_reads = raw.get("prompt_cache_hit_tokens")
    if subset_reads is not None and "prompt_tokens" in raw:
        # OpenAI shape: reads (and any write reported with them) are already inside prompt_tokens.
        prompt = _count(raw.get("prompt_tokens"))
        cached = min(prompt, _count(subset_reads))
        write = min(prompt - cached, _count(prompt_details.get("cache_write_tokens")) or write_beside)
    else:
        # Anthropic-like shape: prompt_tokens (or Anthropic's input_tokens) are the uncached input only.
        uncached = _count(raw.get("prompt_tokens", raw.get("input_tokens")))
        cached, write = read_beside, write_beside
        prompt = uncached + cached + write
    completion = _count(raw.get("completion_tokens", raw.get("output_tokens")))
    reasoning = min(completion, _count(completion_details.get("reasoning_tokens")))
    return Usage(prompt=prompt, cached_prompt=cached, cache_write=write, completion=completion, reasoning=reasoning)


@dataclass(frozen=True)
class Price:
    """One AiModelPrice row as the gateway uses it."""

    id: str
    provider: str
    model: str
    valid_from: datetime
    rates: Mapping[str, int]

    def per_1k_usd(self, kind: str) -> float:
        """The rate as USD per 1k tokens (the usage log's older price columns)."""
        return self.rates[kind] / NANO / 1000


def cost_nano(usage: Usage, rates: Mapping[str, int]) -> int:
    """What `usage` costs at `rates`, in nano-dollars: exact, rounded up once."""
    total = sum(count * int(rates[kind]) for kind, count in usage.billable().items())
    return -(-total // MTOK)


def worst_case_cost_nano(*, prompt_tokens: int, completion_tokens: int, rates: Mapping[str, int]) -> int:
    """The most a call of at most these tokens can cost, whatever the provider reports as cached or reasoning."""
    prompt_rate = max(int(rates["prompt"]), int(rates["cached_prompt"]), int(rates["cache_write"]))
    completion_rate = max(int(rates["completion"]), int(rates["reasoning"]))
    return -(-(prompt_tokens * prompt_rate + completion_tokens * completion_rate) // MTOK)


def usd_to_nano(value: Any) -> int:
    """USD (a decimal string, int or Decimal) as integer nano-dollars; refuses fractions of a nano-dollar."""
    try:
        amount = Decimal(str(value)) * NANO
    except InvalidOperation as error:
        raise ValueError(f"Not an amount of USD: {value!r}") from error
    if amount < 0 or amount != amount.to_integral_value():
        raise ValueError(f"USD amounts are exact to the nano-dollar and not negative: {value!r}")
    return int(amount)


def nano_to_usd_text(nano: int, places: int = 9) -> str:
    """Nano-dollars as an exact decimal string of USD ("0.000018000")."""
    return f"{Decimal(int(nano)).scaleb(-9):.{places}f}"


def seed_rates(config: Mapping[str, Any]) -> dict[str, int]:
    """Rates of one AI_MODEL_PRICES entry (USD per million tokens). A kind left out is charged like its parent:
    cache reads and writes at the prompt rate, reasoning at the completion rate (never under-charged)."""
    prompt = usd_to_nano(config.get("prompt", 0))
    completion = usd_to_nano(config.get("completion", 0))
    return {
        "prompt": prompt,
        "cached_prompt": usd_to_nano(config["cached_prompt"]) if "cached_prompt" in config else prompt,
        "cache_write": usd_to_nano(config["cache_write"]) if "cache_write" in config else prompt,
        "completion": completion,
        "reasoning": usd_to_nano(config["reasoning"]) if "reasoning" in config else completion,
    }


def _configured_provider(model: str, config: Mapping[str, Any]) -> str:
    return str(config.get("provider") or ("offline" if model == "offline" else "openai"))


def price_table_seed() -> int:
    """Give every model of settings.AI_MODEL_PRICES without any price row its configured row. Returns how many rows
    were created. Idempotent; never touches a model that has rows (the admin's edits win)."""
    from ai_assist.models import AiModelPrice

    existing = set(AiModelPrice.objects.values_list("provider", "model"))
    created = 0
    for model, config in settings.AI_MODEL_PRICES.items():
        provider = _configured_provider(model, config)
        if (provider, model) in existing:
            continue
        rates = seed_rates(config)
        _, made = AiModelPrice.objects.get_or_create(
            provider=provider,
            model=model,
            valid_from=SEED_VALID_FROM,
            defaults={f"{kind}_nano_per_mtok": rate for kind, rate in rates.items()}
            | {"note": "seeded from settings.AI_MODEL_PRICES"},
        )
        created += int(made)
    return created


def _load() -> dict[tuple[str, str], list[Price]]:
    """The whole table, newest row first per model; a configured model without rows is seeded first."""
    from ai_assist.models import AiModelPrice

    rows = list(AiModelPrice.objects.order_by("provider", "model", "-valid_from"))
    present = {(row.provider, row.model) for row in rows}
    configured = settings.AI_MODEL_PRICES.items()
    if any((_configured_provider(model, config), model) not in present for model, config in configured):
        price_table_seed()
        rows = list(AiModelPrice.objects.order_by("provider", "model", "-valid_from"))
    table: dict[tuple[str, str], list[Price]] = {}
    for row in rows:
        valid_from = row.valid_from if row.valid_from.tzinfo else row.valid_from.replace(tzinfo=UTC)
        table.setdefault((row.provider, row.model), []).append(
            Price(id=str(row.pk), provider=row.provider, model=row.model, valid_from=valid_from, rates=row.rates())
        )
    return table


_cache: ConfigCache[dict[tuple[str, str], list[Price]]] = ConfigCache("prices", _load)
price_cache_clear = _cache.clear


def price_at(*, provider: str, model: str, at: datetime) -> Price | None:
    """The price of provider/model valid at `at` (the newest row whose `valid_from` is not after it), or None."""
    for price in _cache.get().get((provider, model), ()):
        if price.valid_from <= at:
            return price
    return None
