"""Prometheus metrics of the accounts app (exported at /metrics by django-prometheus' registry)."""

from prometheus_client import Counter

LOGIN_ATTEMPTS = Counter(
    "rp_login_attempts_total",
    "Login attempts (browser and API) by outcome.",
    ["outcome"],
)
for _outcome in ("success", "failure", "locked"):
    LOGIN_ATTEMPTS.labels(outcome=_outcome)


def login_attempt(outcome: str) -> None:
    """Count one login attempt: "success", "failure" or "locked"."""
    LOGIN_ATTEMPTS.labels(outcome=outcome).inc()
