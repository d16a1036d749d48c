# syntax=docker/dockerfile:1
# Application image for the api (gunicorn), worker and beat (Celery) services of docker-compose.yml.
# Build: docker compose --env-file deploy/env/prod.env build      (see deploy/README.md)

# --- stage 1: the source tree, minus everything that must never end up in an image -----------------------------
FROM python:3.11-slim AS source
COPY . /src
RUN cd /src \
 && rm -rf .git .venv venv var media staticfiles node_modules htmlcov .pytest_cache .ruff_cache .hypothesis \
           .coverage .coverage.* .env deploy/env/*.env deploy/certs \
 && find /src -name __pycache__ -type d -prune -exec rm -rf {} +

# --- stage 2: runtime -------------------------------------------------------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=report_platform.settings.production \
    DJANGO_STATIC_ROOT=/app/staticfiles \
    DJANGO_MEDIA_ROOT=/srv/media \
    REPORT_PLATFORM_VAR_DIR=/srv/var

WORKDIR /app

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

# Dependencies first: this layer is reused as long as requirements.txt does not change.
COPY requirements.txt /app/requirements.txt
RUN pip install --no-cache-dir -r /app/requirements.txt

COPY --from=source /src /app

# collectstatic with the production settings (manifest storage, hashed names, .gz copies). The secret key is a
# build-time dummy that only lives in this RUN step's environment (not in the image config); MONGODB_URI is set so
# that settings do not select the embedded stand-in. No database is contacted.
RUN DJANGO_SECRET_KEY=build-time-dummy-not-a-secret-only-for-collectstatic-0123456789abcdef \
    MONGODB_URI=mongodb://build.invalid:27017/ \
    python manage.py collectstatic --noinput \
 && mkdir -p /srv/static /srv/media /srv/var /srv/metrics \
 && chown -R app:app /srv

USER app

EXPOSE 8000

ENTRYPOINT ["/bin/sh", "/app/deploy/docker-entrypoint.sh"]
# Tune with GUNICORN_CMD_ARGS in the env file, e.g. GUNICORN_CMD_ARGS="--workers 5".
CMD ["gunicorn", "report_platform.wsgi:application", "--config", "/app/deploy/gunicorn.conf.py", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "60"]
