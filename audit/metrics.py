"""Prometheus metrics of the audit trail (exported at /metrics).

rp_audit_sealed_events_total      events the sealer gave a sequence and hash (every process; multiprocess mode)
rp_audit_unsealed_events          events recorded but not sealed yet, read from MongoDB at scrape time
rp_audit_unsealed_oldest_seconds  age of the oldest of them (0 when none): the sealing lag
"""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

SEALED = Counter("rp_audit_sealed_events", "Audit events sealed into the hash chain.")


class UnsealedEventsCollector:
    def collect(self):
        from django.utils import timezone
        from pymongo.errors import PyMongoError

        from audit import sealing

        count = GaugeMetricFamily("rp_audit_unsealed_events", "Audit events recorded but not sealed yet.")
        lag = GaugeMetricFamily("rp_audit_unsealed_oldest_seconds", "Age of the oldest unsealed audit event.")
        try:
            pending = sealing.pending_count()
            oldest = sealing.oldest_pending_at() if pending else None
        except PyMongoError:
            logger.warning("unsealed audit events unavailable for /metrics: MongoDB is unreachable")
            return
        count.add_metric([], pending)
        lag.add_metric([], max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0)
        yield count
        yield lag

    def describe(self):
        return [
            GaugeMetricFamily("rp_audit_unsealed_events", "Audit events recorded but not sealed yet."),
            GaugeMetricFamily("rp_audit_unsealed_oldest_seconds", "Age of the oldest unsealed audit event."),
        ]


_registered: list[UnsealedEventsCollector] = []


def register_collectors() -> None:
    """Called from AppConfig.ready(); registers the unsealed-events collector once per process."""
    if not _registered:
        _registered.append(UnsealedEventsCollector())
        REGISTRY.register(_registered[0])
