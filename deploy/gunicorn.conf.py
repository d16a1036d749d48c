"""gunicorn settings for the api container (docker-compose.yml, Dockerfile); command-line flags and
GUNICORN_CMD_ARGS still apply on top.

`child_exit` removes a finished worker's live-gauge files from the Prometheus multiprocess folder, so /metrics does
not keep reporting gauges of dead processes (counters and histograms stay: their totals must not go backwards).
"""

# JSON access lines come from the app (RequestIdMiddleware); gunicorn's own access log would repeat them.
accesslog = None
errorlog = "-"


def child_exit(server, worker) -> None:
    from report_platform import observability

    observability.mark_process_dead(worker.pid)
