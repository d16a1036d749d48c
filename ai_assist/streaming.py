"""An admitted AI stream as newline-delimited JSON events, for the assistant page and `POST /api/v1/ai/assist`.

{"type": "meta", "provider": "offline", "offline": true, "model": ..., "template": ..., "usage_log_id": ...}
{"type": "delta", "text": "..."}            (many)
{"type": "done", "prompt_tokens": ..., "completion_tokens": ..., "cached_prompt_tokens": ..., "cache_write_tokens": ...,
 "reasoning_tokens": ..., "cost": ..., "cost_nano": ..., "latency_ms": ...}
{"type": "error", "code": "ai_unavailable", "message": "..."}   (instead of "done" when the provider failed)
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.http import StreamingHttpResponse

from ai_assist.services import AiTextStream
from report_platform.errors import DomainError


def _line(event: dict) -> bytes:
    return (json.dumps(event) + "\n").encode()


def ndjson_events(stream: AiTextStream, *, title: str = "") -> Iterator[bytes]:
    try:
        yield _line(
            {
                "type": "meta",
                "provider": stream.provider,
                "offline": stream.provider == "offline",
                "model": stream.model,
                "template": stream.template_id,
                "version": stream.template_version,
                "usage_log_id": stream.usage_log_id,
                "title": title,
            }
        )
        pieces = iter(stream)
        try:
            for piece in pieces:
                yield _line({"type": "delta", "text": piece})
        except DomainError as error:
            yield _line({"type": "error", "code": error.code, "message": error.message})
            return
        finally:
            pieces.close()  # a reader that left mid-answer: logged now, not whenever the generator is collected
    finally:
        stream.close()  # a response closed before the first piece still gets its usage log row
    result = stream.result
    yield _line(
        {
            "type": "done",
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "cached_prompt_tokens": result.cached_prompt_tokens,
            "cache_write_tokens": result.cache_write_tokens,
            "reasoning_tokens": result.reasoning_tokens,
            "cost": result.cost,
            "cost_nano": result.cost_nano,
            "latency_ms": result.latency_ms,
        }
    )


def ndjson_response(stream: AiTextStream, *, title: str = "") -> StreamingHttpResponse:
    response = StreamingHttpResponse(ndjson_events(stream, title=title), content_type="application/x-ndjson")
    # Pieces must reach the browser as they come: no gzip buffering here, none in nginx.
    response["Content-Encoding"] = "identity"
    response["X-Accel-Buffering"] = "no"
    response["Cache-Control"] = "no-store"
    return response
