"""Dependency checks for /healthz and /api/v1/health."""

from __future__ import annotations

import time

import redis
from django.conf import settings
from django.db import connection


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        check()
        return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
    except Exception as error:  # any failure of a dependency is reported, never raised
        return {"status": "error", "error": type(error).__name__}


def check_mongodb() -> None:
    connection.ensure_connection()
    connection.database.command("ping")


def check_redis() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def check_all() -> dict:
    checks = {"mongodb": _timed(check_mongodb), "redis": _timed(check_redis)}
    status = "ok" if all(item["status"] == "ok" for item in checks.values()) else "degraded"
    return {"status": status, "checks": checks}
