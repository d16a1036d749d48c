"""Prometheus metrics of report generation (exported at /metrics by django-prometheus's registry)."""

from prometheus_client import Counter, Histogram

REPORT_DURATION = Histogram(
    "rp_report_duration_seconds",
    "Time to render one report file, by format.",
    ["format"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80),
)
REPORTS_TOTAL = Counter(
    "rp_reports_total",
    "Report generation jobs by outcome (requested, ready, failed).",
    ["outcome"],
)
