#!/bin/sh
# Entry point of the application image (Dockerfile) for the api, worker and beat services.
#
# Static files are collected at build time into DJANGO_STATIC_ROOT (/app/staticfiles, inside the image, so they
# always match the code). When STATIC_EXPORT_DIR is set (the api service sets /srv/static, the `static` volume
# that nginx serves), they are copied there on every start: a named volume is only filled from the image when it
# is first created, so without this copy nginx would keep serving the first release's files after an upgrade.
# Older hashed files stay in the volume, which keeps pages cached by browsers working during a rollout.
set -eu

if [ -n "${STATIC_EXPORT_DIR:-}" ]; then
	cp -R "${DJANGO_STATIC_ROOT:-/app/staticfiles}/." "$STATIC_EXPORT_DIR/"
fi

exec "$@"
