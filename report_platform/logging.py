"""JSON log lines (one object per line) carrying the request id, user id and any bound context.

Every stdlib logger (Django, Celery, ours) goes through structlog's ProcessorFormatter, so a line from anywhere has
the same shape. `bind_context` / `clear_context` scope fields to a request or a task.
"""

from __future__ import annotations

import structlog

_shared_processors = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]

structlog.configure(
    processors=[*_shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=True,
)


class JsonFormatter(structlog.stdlib.ProcessorFormatter):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(sort_keys=True),
            ],
            foreign_pre_chain=_shared_processors,
        )


def get_logger(name: str):
    return structlog.stdlib.get_logger(name)


def bind_context(**values) -> None:
    structlog.contextvars.bind_contextvars(**values)


def clear_context() -> None:
    structlog.contextvars.clear_contextvars()
