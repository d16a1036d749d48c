#!/bin/sh
# Entry point of the application image (Dockerfile) for the api, worker and beat services.
#
# Static files are collected at build time into DJANGO_STATIC_ROOT (/app/staticfiles, inside the image, so they
# always match the code). When STATIC_EXPORT_DIR is set (the api service sets /srv/static, the `static` volume
# that nginx serves), they are copied there on every start: a named volume is only filled from the image when it
# is first created, so without this copy nginx would keep serving the first release's files after an upgrade.
# Older hashed files stay in the volume, which keeps pages cached by browsers working during a rollout.
set -eu

# Prometheus multiprocess files (report_platform/observability.py) left by this container's previous run: its
# processes are gone, so their counters restart from zero. Other containers' files in the shared volume stay.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
	mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
	python -c 'import os, sys; from report_platform.observability import clean_multiprocess_dir as clean; clean(os.environ["PROMETHEUS_MULTIPROC_DIR"], this_host_only=True)'
fi

if [ -n "${STATIC_EXPORT_DIR:-}" ]; then
	cp -R "${DJANGO_STATIC_ROOT:-/app/staticfiles}/." "$STATIC_EXPORT_DIR/"
fi

exec "$@"
