"""Model providers: the `openai` SDK against a configurable base URL, and an offline provider for development.

Both take already-redacted messages/variables. The OpenAI provider retries timeouts, 429s, connection errors and
5xx a bounded number of times (the SDK's own retries are off so the count is ours and logged); a stream is retried
only before its first chunk reached the caller. Usage comes from the response's `usage` object (streams request it
with `stream_options.include_usage`), normalised to the five token kinds by ai_assist/pricing.py.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import openai
from django.conf import settings

from ai_assist import offline
from ai_assist.pricing import Usage, usage_normalise


class ProviderError(Exception):
    """The provider failed after the retries. `code` is stable and shown to the user."""

    def __init__(self, code: str, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.attempts = attempts


@dataclass
class ProviderReply:
    text: str = ""
    prompt_tokens: int = 0  # every input token (cache reads and writes included)
    completion_tokens: int = 0  # every output token (reasoning included)
    attempts: int = 1
    cached_prompt_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    def take_usage(self, raw: Any) -> None:
        """Take the provider's `usage` object (an SDK model, extra fields kept, or a dict), whatever its shape."""
        body = raw if isinstance(raw, dict) else raw.model_dump()
        usage = usage_normalise(body)
        self.prompt_tokens, self.completion_tokens = usage.prompt, usage.completion
        self.cached_prompt_tokens, self.cache_write_tokens = usage.cached_prompt, usage.cache_write
        self.reasoning_tokens = usage.reasoning

    def usage(self) -> Usage:
        return Usage(
            prompt=self.prompt_tokens,
            cached_prompt=min(self.cached_prompt_tokens, self.prompt_tokens),
            cache_write=min(
                self.cache_write_tokens, self.prompt_tokens - min(self.cached_prompt_tokens, self.prompt_tokens)
            ),
            completion=self.completion_tokens,
            reasoning=min(self.reasoning_tokens, self.completion_tokens),
        )


@dataclass
class ProviderCall:
    model: str
    messages: list[dict[str, str]]
    max_tokens: int
    template_id: str
    variables: dict[str, Any] = field(default_factory=dict)


def estimate_tokens(text: str) -> int:
    """A rough count (~4 characters a token) for providers that report none."""
    return max(1, math.ceil(len(text) / 4))


class OfflineProvider:
    """Deterministic, useful answers computed from the task metadata. No network, no cost."""

    name = "offline"

    def complete(self, call: ProviderCall) -> ProviderReply:
        text = offline.answer(call.template_id, call.variables)
        prompt_chars = sum(len(message["content"]) for message in call.messages)
        return ProviderReply(
            text=text, prompt_tokens=max(1, math.ceil(prompt_chars / 4)), completion_tokens=estimate_tokens(text)
        )

    def stream(self, call: ProviderCall, reply: ProviderReply) -> Iterator[str]:
        full = self.complete(call)
        reply.prompt_tokens, reply.completion_tokens, reply.attempts = full.prompt_tokens, full.completion_tokens, 1
        words = full.text.split(" ")
        # The offline answer exists at once; paced pieces let the page show it arriving as a model's would.
        pace = float(getattr(settings, "AI_OFFLINE_STREAM_PACE_SECONDS", 0.0))
        for index in range(0, len(words), 4):
            chunk = " ".join(words[index : index + 4])
            piece = chunk if index + 4 >= len(words) else chunk + " "
            reply.text += piece
            if pace and index:
                time.sleep(pace)
            yield piece


_RETRYABLE = (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)
_clients: dict[tuple, openai.OpenAI] = {}
_clients_lock = threading.Lock()


def openai_client() -> openai.OpenAI:
    """One SDK client per configuration (connection pooling across calls)."""
    key = (settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY, settings.AI_REQUEST_TIMEOUT_SECONDS)
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = openai.OpenAI(
                    api_key=settings.OPENAI_API_KEY or "missing-key",
                    base_url=settings.OPENAI_BASE_URL,
                    timeout=settings.AI_REQUEST_TIMEOUT_SECONDS,
                    max_retries=0,
                )
                _clients[key] = client
    return client


def _error_code(error: Exception) -> tuple[str, str]:
    if isinstance(error, openai.APITimeoutError):
        return "ai_provider_timeout", "The AI provider did not answer in time."
    if isinstance(error, openai.RateLimitError):
        return "ai_provider_rate_limited", "The AI provider is rate limiting us."
    if isinstance(error, openai.APIConnectionError):
        return "ai_provider_unreachable", "The AI provider could not be reached."
    if isinstance(error, openai.APIStatusError):
        return "ai_provider_error", f"The AI provider answered with an error (HTTP {error.status_code})."
    return "ai_provider_error", "The AI provider's answer could not be used."


class OpenAIProvider:
    name = "openai"

    def _attempts(self):
        """Yield attempt numbers with backoff between them; bounded by AI_MAX_RETRIES."""
        retries = max(0, settings.AI_MAX_RETRIES)
        for attempt in range(1, retries + 2):
            if attempt > 1 and settings.AI_RETRY_BACKOFF_SECONDS > 0:
                time.sleep(settings.AI_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 2))
            yield attempt, attempt == retries + 1

    def complete(self, call: ProviderCall) -> ProviderReply:
        client = openai_client()
        for attempt, last in self._attempts():
            try:
                response = client.chat.completions.create(
                    model=call.model, messages=call.messages, max_tokens=call.max_tokens
                )
            except _RETRYABLE as error:
                if last:
                    raise ProviderError(*_error_code(error), attempts=attempt) from error
                continue
            except openai.OpenAIError as error:
                raise ProviderError(*_error_code(error), attempts=attempt) from error
            text = (response.choices[0].message.content or "") if response.choices else ""
            reply = ProviderReply(text=text, attempts=attempt)
            if response.usage is not None:
                reply.take_usage(response.usage)
            else:
                prompt_chars = sum(len(message["content"]) for message in call.messages)
                reply.prompt_tokens, reply.completion_tokens = math.ceil(prompt_chars / 4), estimate_tokens(text)
            return reply
        raise AssertionError("unreachable")  # pragma: no cover - _attempts always ends with last=True

    def stream(self, call: ProviderCall, reply: ProviderReply) -> Iterator[str]:
        client = openai_client()
        for attempt, last in self._attempts():
            reply.attempts = attempt
            started = False
            try:
                stream = client.chat.completions.create(
                    model=call.model,
                    messages=call.messages,
                    max_tokens=call.max_tokens,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                finished = False
                with stream:
                    for chunk in stream:
                        if chunk.choices and chunk.choices[0].finish_reason:
                            finished = True
                        if chunk.usage is not None:
                            reply.take_usage(chunk.usage)
                        if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                            piece = chunk.choices[0].delta.content
                            started = True
                            reply.text += piece
                            yield piece
            except _RETRYABLE as error:
                if last or started:
                    raise ProviderError(*_error_code(error), attempts=attempt) from error
                continue
            except openai.OpenAIError as error:
                raise ProviderError(*_error_code(error), attempts=attempt) from error
            if not finished:
                # The connection closed before the model said it was done: a cut-off answer is not a success.
                if started or last:
                    raise ProviderError(
                        "ai_provider_stream_incomplete", "The AI provider's answer was cut off.", attempts=attempt
                    )
                continue
            if not reply.prompt_tokens:
                reply.prompt_tokens = math.ceil(sum(len(m["content"]) for m in call.messages) / 4)
            if not reply.completion_tokens:
                reply.completion_tokens = estimate_tokens(reply.text)
            return


def provider_get(name: str | None = None) -> OfflineProvider | OpenAIProvider:
    name = name or settings.AI_PROVIDER
    return OpenAIProvider() if name == "openai" else OfflineProvider()


def provider_model(provider_name: str) -> str:
    """The model a provider answers with: the offline provider has its own (free) price row."""
    return "offline" if provider_name == "offline" else settings.AI_MODEL
