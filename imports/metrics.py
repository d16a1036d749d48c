"""Prometheus counters of the imports app (exposed at /metrics by django-prometheus)."""

from prometheus_client import Counter

import_rows_total = Counter("rp_import_rows_total", "CSV rows written by imports, by kind (cases, runs).", ["kind"])
import_failures_total = Counter(
    "rp_import_failures_total", "Imports that failed or were rejected, by error code.", ["code"]
)
