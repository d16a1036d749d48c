"""Settings shared by every environment. Everything secret or deployment-specific comes from the environment.

`dev`, `test` and `production` modules beside this one import from here and override what differs.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from csp.constants import NONCE, NONE, SELF

from report_platform.env import env_bool, env_int, env_list, env_str, redis_url_with_db

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("REPORT_PLATFORM_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env_str("DJANGO_SECRET_KEY", "")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "report_platform.apps.ReportPlatformConfig",
    "accounts.apps.AccountsConfig",
    "report_platform.contrib_apps.MongoAdminConfig",
    "report_platform.contrib_apps.MongoAuthConfig",
    "report_platform.contrib_apps.MongoContentTypesConfig",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_mongodb_backend",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "django_htmx",
    "csp",
    "ninja",
    "django_prometheus",
    "releases.apps.ReleasesConfig",
    "imports.apps.ImportsConfig",
    "ai_assist.apps.AiAssistConfig",
    "reports.apps.ReportsConfig",
    "audit.apps.AuditConfig",
]

# Contrib and third-party apps hard-code integer keys; on MongoDB they get ObjectId keys and migrations of ours.
MIGRATION_MODULES = {
    "admin": "report_platform.contrib_migrations.admin",
    "auth": "report_platform.contrib_migrations.auth",
    "contenttypes": "report_platform.contrib_migrations.contenttypes",
    "account": "report_platform.contrib_migrations.account",
    "mfa": "report_platform.contrib_migrations.mfa",
    "usersessions": "report_platform.contrib_migrations.usersessions",
}
DEFAULT_AUTO_FIELD = "django_mongodb_backend.fields.ObjectIdAutoField"
ALLAUTH_DEFAULT_AUTO_FIELD = DEFAULT_AUTO_FIELD

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "report_platform.middleware.RequestIdMiddleware",
    "report_platform.interactive.InteractiveLoadMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.gzip.GZipMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
    "accounts.middleware.AccountsMiddleware",
    "report_platform.middleware.DomainErrorMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "report_platform.urls"
WSGI_APPLICATION = "report_platform.wsgi.application"
ASGI_APPLICATION = "report_platform.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
                "report_platform.context_processors.platform",
                "releases.context_processors.product_chooser",
            ],
        },
    },
]

# --- MongoDB ---------------------------------------------------------------------------------------------------
# MONGODB_URI points at a real MongoDB (>= 7.0, replica set). Without it, `make run` and the test run start the
# embedded stand-in and set MONGODB_URI for their child processes (report_platform/embedded.py).
MONGODB_URI = env_str("MONGODB_URI", "mongodb://127.0.0.1:27117/?directConnection=true")
MONGODB_NAME = env_str("MONGODB_NAME", "report_platform")
# True when MONGODB_URI is the embedded stand-in: enables the workarounds in report_platform/standin_compat.py.
MONGODB_STANDIN = env_bool("MONGODB_STANDIN", "MONGODB_URI" not in os.environ)
DATABASES = {
    "default": {
        "ENGINE": "django_mongodb_backend",
        "HOST": MONGODB_URI,
        "NAME": MONGODB_NAME,
        "OPTIONS": {"serverSelectionTimeoutMS": env_int("MONGODB_SERVER_SELECTION_TIMEOUT_MS", 5000)},
    },
}

# --- Redis, cache, Celery --------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6389/0")
# The cache lives in its own Redis database so clearing it never touches the Celery queues.
CACHE_REDIS_URL = env_str("CACHE_REDIS_URL", "") or redis_url_with_db(REDIS_URL, 1)
CACHES = {
    "default": {
        # Shared across processes: login rate limits and lockouts must hold for every web worker.
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_REDIS_URL,
        "KEY_PREFIX": "rp",
    },
}
SESSION_ENGINE = "django.contrib.sessions.backends.db"

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A redelivered task must not run before the first delivery could have finished.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE: dict = {}

# --- Auth ------------------------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = [
    # bcrypt with a SHA-256 pre-hash: no silent truncation at bcrypt's 72 bytes. Cost is 2**12 (the blueprint's 12).
    "accounts.hashers.BCryptSHA256Cost12PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # zxcvbn with the product name and the user's e-mail as known words; no whitespace-only / repeated characters.
    {"NAME": "accounts.password_validation.PasswordStrengthValidator", "OPTIONS": {"min_score": 3}},
]
LOGIN_URL = "account_login"
# After login: the dashboard (the start page is for visitors).
LOGIN_REDIRECT_URL = "releases:dashboard"
LOGOUT_REDIRECT_URL = "home"

ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = False
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Report Platform] "
ACCOUNT_PASSWORD_RESET_TIMEOUT = 3600
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key",
    "reset_password": "20/m/ip,1/5m/key",
    "reset_password_from_key": "20/m/ip",
    "signup": "20/m/ip",
    "confirm_email": "1/3m/key",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Report Platform"

# --- Internationalisation, time --------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media ------------------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("DJANGO_MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# --- Email -----------------------------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_FILE_PATH = str(VAR_DIR / "mail")
# The name and host mails and pages call the site (allauth's mails read them through the account adapter, not
# the request's host, so a dev server's "127.0.0.1:8000" never reaches a user).
SITE_NAME = env_str("SITE_NAME", "Report Platform")
SITE_DOMAIN = env_str("SITE_DOMAIN", "report-platform.localhost")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", f"{SITE_NAME} <noreply@{SITE_DOMAIN}>")

# --- Security headers ------------------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Trusted reverse proxies (nginx) whose X-Forwarded-For we believe; anything else is ignored.
TRUSTED_PROXY_IPS = env_list("TRUSTED_PROXY_IPS", [])

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- API -------------------------------------------------------------------------------------------------------
API_PAGE_SIZE_DEFAULT = 50
API_PAGE_SIZE_MAX = 200
NINJA_PAGINATION_MAX_LIMIT = API_PAGE_SIZE_MAX

# --- API rate limits (report_platform/rate_limits.py) ----------------------------------------------------------
# Every /api/v1 call is counted in the cache Redis (shared by every web process), in fixed windows: per user by
# role, per client IP when anonymous, per token for a scope (long-lived CI tokens), and the heavy routes in their
# own bucket. Each bucket: sustained per minute + burst per second; env API_RATE_LIMIT_<BUCKET>_PER_MINUTE /
# _PER_SECOND (0 drops that window). API_RATE_LIMITS_ENABLED=0 switches the gateway limits off (benchmarks).
API_RATE_LIMITS_ENABLED = env_bool("API_RATE_LIMITS_ENABLED", True)
API_RATE_LIMITS = {
    bucket: {
        "per_minute": env_int(f"API_RATE_LIMIT_{bucket.upper()}_PER_MINUTE", per_minute),
        "per_second": env_int(f"API_RATE_LIMIT_{bucket.upper()}_PER_SECOND", per_second),
    }
    for bucket, (per_minute, per_second) in {
        "anonymous": (120, 30),  # per client IP: logins, refresh, register, reset, health, docs
        "viewer": (600, 30),
        "reviewer": (1200, 50),
        "admin": (1200, 50),
        "heavy": (30, 5),  # per caller, the routes below (instead of the caller's own bucket)
        "ci": (3000, 100),  # scope of long-lived CI tokens (request.rate_limit_scope = "ci"), per token
    }.items()
}
API_RATE_LIMIT_HEAVY_ROUTES = {
    "POST /api/v1/imports/csv",
    "GET /api/v1/exports/cases.csv",
    "GET /api/v1/exports/runs.csv",
    "POST /api/v1/reports",
    "POST /api/v1/ai/batches",
}
API_RATE_LIMIT_REDIS_TIMEOUT_SECONDS = float(env_str("API_RATE_LIMIT_REDIS_TIMEOUT_SECONDS", "0.25"))

# --- Metrics ---------------------------------------------------------------------------------------------------
PROMETHEUS_EXPORT_MIGRATIONS = False
# /metrics is open to these client IPs, or to requests with `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# --- Domain settings -------------------------------------------------------------------------------------------
MANTIS_BASE_URL = env_str("MANTIS_BASE_URL", "https://mantis.example.invalid/view.php?id=")
SEED_DEMO_ALLOWED = True

# --- Logging: JSON lines with the request id (report_platform/logging.py) --------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "report_platform.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "pymongo": {"level": "WARNING"},
        "celery": {"level": "INFO"},
    },
}

SESSION_COOKIE_AGE = int(timedelta(days=14).total_seconds())

# --- accounts --------------------------------------------------------------------------------------------------
# JWT API tokens (accounts/tokens.py). JWT_SIGNING_KEYS="kid1:secret1,kid2:secret2": the first key signs, every key
# verifies (rotation: put the new key first, drop the old one after the refresh lifetime). Without it, a key is
# derived from SECRET_KEY with HMAC-SHA256 (then rotating SECRET_KEY ends every API login).
JWT_SIGNING_KEYS = env_str("JWT_SIGNING_KEYS", "")
JWT_ISSUER = env_str("JWT_ISSUER", "report-platform")
JWT_AUDIENCE = env_str("JWT_AUDIENCE", "report-platform-api")
JWT_ACCESS_LIFETIME = timedelta(minutes=15)
JWT_REFRESH_LIFETIME = timedelta(days=14)  # absolute, per token family; rotation never extends it
# A refresh token presented again within this many seconds by the device that just rotated it (parallel requests of
# one client) is answered 409 `token_already_rotated` and the login stays; later, or from another device, reuse
# revokes the whole token family (Auth0's "reuse interval").
JWT_REFRESH_REUSE_GRACE_SECONDS = env_int("JWT_REFRESH_REUSE_GRACE_SECONDS", 5)
# Failed bearer-token checks per client IP (report_platform/client_ip.py) in a fixed window: beyond the limit every
# bearer-authenticated call from that IP is refused 429 `too_many_token_failures` until the window ends.
API_TOKEN_FAILURES_PER_IP = env_int("API_TOKEN_FAILURES_PER_IP", 20)
API_TOKEN_FAILURE_WINDOW_SECONDS = env_int("API_TOKEN_FAILURE_WINDOW_SECONDS", 300)
# TOTP secrets and recovery-code seeds are encrypted at rest (Fernet). MFA_ENCRYPTION_KEYS="key1,key2": the first
# encrypts, all decrypt. Without it, a key is derived from SECRET_KEY: set it in production, or keep the old
# SECRET_KEY-derived key listed when rotating SECRET_KEY, or enrolled authenticators can no longer be read.
MFA_ENCRYPTION_KEYS = env_list("MFA_ENCRYPTION_KEYS", [])
# Roles that must have TOTP enrolled before using any page (and the Django admin); e.g. "reviewer,admin".
MFA_REQUIRED_ROLES = env_list("MFA_REQUIRED_ROLES", [])
ACCOUNT_EMAIL_CONFIRMATION_HMAC = False  # HMAC keys JSON-serialise the ObjectId pk; DB-stored keys do not
ACCOUNT_FORMS = {"reset_password": "accounts.forms.ResetPasswordForm"}
MFA_ADAPTER = "accounts.adapters.MFAAdapter"
USERSESSIONS_TRACK_ACTIVITY = False  # accounts.middleware records "last seen" at most every 5 minutes instead
SESSION_SERIALIZER = "accounts.allauth_compat.SessionSerializer"  # allauth's MFA step stores an ObjectId
PASSWORD_RESET_TIMEOUT = 3600  # reset links (Django's token generator, used by allauth) expire after 1 h

# --- releases --------------------------------------------------------------------------------------------------
# Summary deltas (releases.store outbox) are applied by a thread in each process that records runs, every
# SUMMARY_APPLY_SECONDS (0: no thread), by every reader of the figures, and by beat for rows of dead processes.
SUMMARY_APPLY_SECONDS = float(env_str("SUMMARY_APPLY_SECONDS", "1.0"))
CELERY_BEAT_SCHEDULE["releases-apply-summary-deltas"] = {
    "task": "releases.tasks.summary_deltas_apply",
    "schedule": 5.0,
}

# --- audit -----------------------------------------------------------------------------------------------------
# Recorded events are sealed into the hash chain by one sealer under a lease (audit/sealing.py): this beat task
# every 2 s, and every reader of AuditEvent.objects. A message older than 10 s is dropped (the next one seals).
CELERY_BEAT_SCHEDULE["audit-seal"] = {"task": "audit.seal", "schedule": 2.0, "options": {"expires": 10}}

# --- imports ---------------------------------------------------------------------------------------------------
# CSV import/export (imports app; format documented in README "CSV import and export"). nginx's
# client_max_body_size is 20m to match CSV_MAX_UPLOAD_BYTES.
CSV_MAX_UPLOAD_BYTES = env_int("CSV_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
CSV_MAX_ROWS = env_int("CSV_MAX_ROWS", 250_000)  # data rows per file (the header not counted)
CSV_MAX_ERRORS_KEPT = 1000  # validation errors stored and shown per job; the total is always counted
CSV_PREVIEW_ROWS = 20
# One write batch = one MongoDB transaction (journal + writes + fence): keep it far below 16 MB and a few seconds.
# Small batches keep each write short, so interactive requests never wait long behind one (measured on the
# stand-in: 100 rows cost 6 % of throughput against 500 and halve the p95 of pages during an import).
CSV_IMPORT_BATCH_ROWS = env_int("CSV_IMPORT_BATCH_ROWS", 100)
CSV_IMPORT_BATCH_RETRIES = env_int("CSV_IMPORT_BATCH_RETRIES", 8)  # a batch aborted by a write conflict is retried
# A heartbeat thread renews the lease every third of it, however long a batch takes.
CSV_IMPORT_LEASE_SECONDS = env_int("CSV_IMPORT_LEASE_SECONDS", 60)
# Pacing: while people are using the product (a web process served a request within the window), the worker
# sleeps this fraction of each batch's own duration (at most the max) after the batch, so a big import leaves the
# database time for interactive requests; with nobody waiting it writes at full speed (report_platform.interactive).
CSV_IMPORT_PACE_FRACTION = float(os.environ.get("CSV_IMPORT_PACE_FRACTION", "1.0"))
CSV_IMPORT_PACE_MAX_SECONDS = 2.0
CSV_IMPORT_PACE_WINDOW_SECONDS = float(os.environ.get("CSV_IMPORT_PACE_WINDOW_SECONDS", "3.0"))
# ... and writes smaller batches, so no interactive request waits behind a long one (the stand-in serves one
# command at a time; a real server's lock and cache pressure grow with a batch's size too).
CSV_IMPORT_BATCH_ROWS_INTERACTIVE = env_int("CSV_IMPORT_BATCH_ROWS_INTERACTIVE", 25)
# Test hook: every batch holds its transaction open this long (a batch slower than the lease).
CSV_IMPORT_BATCH_DELAY_SECONDS = float(os.environ.get("CSV_IMPORT_BATCH_DELAY_SECONDS", "0"))
CSV_IMPORT_MAX_ATTEMPTS = env_int("CSV_IMPORT_MAX_ATTEMPTS", 3)
CSV_IMPORT_RETRY_DELAY_SECONDS = env_int("CSV_IMPORT_RETRY_DELAY_SECONDS", 10)
CSV_IMPORT_QUEUED_STALE_SECONDS = env_int("CSV_IMPORT_QUEUED_STALE_SECONDS", 600)
CELERY_BEAT_SCHEDULE["imports-sweep-stale-jobs"] = {"task": "imports.tasks.import_jobs_sweep", "schedule": 60.0}
# How often a worker looks for unacknowledged messages past the visibility timeout (a killed worker's import is
# then redelivered); kombu's default is every ~100 s.
CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_interval"] = env_int("CELERY_UNACKED_RESTORE_INTERVAL", 10)
CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_throttle"] = env_int("CELERY_UNACKED_RESTORE_THROTTLE", 1)
# The restore runs under a Redis mutex; a worker killed while holding it (kombu's default expiry: 300 s) would hold
# every other worker's restore, and so a killed import's redelivery, back for five minutes.
CELERY_BROKER_TRANSPORT_OPTIONS["unacked_mutex_expire"] = env_int("CELERY_UNACKED_MUTEX_EXPIRE", 30)

# --- ai_assist -------------------------------------------------------------------------------------------------
# Provider: "offline" (deterministic answers from the task metadata, no network) or "openai" (the openai SDK
# against OPENAI_BASE_URL: OpenAI or any compatible server).
AI_PROVIDER = env_str("AI_PROVIDER", "offline")
AI_MODEL = env_str("AI_MODEL", "gpt-4o-mini")
OPENAI_API_KEY = env_str("OPENAI_API_KEY", "")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL", "https://api.openai.com/v1")
AI_REQUEST_TIMEOUT_SECONDS = float(env_str("AI_REQUEST_TIMEOUT_SECONDS", "30"))
AI_MAX_RETRIES = env_int("AI_MAX_RETRIES", 2)  # on timeout, 429 and 5xx; bounded, then ai_unavailable
AI_RETRY_BACKOFF_SECONDS = float(env_str("AI_RETRY_BACKOFF_SECONDS", "0.5"))  # doubled per attempt
AI_MAX_COMPLETION_TOKENS = env_int("AI_MAX_COMPLETION_TOKENS", 800)
# Seconds between the offline assistant's streamed pieces (0: all at once), so its answer arrives like a model's.
AI_OFFLINE_STREAM_PACE_SECONDS = float(env_str("AI_OFFLINE_STREAM_PACE_SECONDS", "0.03"))
# Seed of the price table (ai_assist.AiModelPrice, edited in the Django admin; ai_assist/pricing.py): USD per MILLION
# tokens as decimal strings (exact). Kinds: prompt, cached_prompt (cache read), cache_write, completion, reasoning; a
# kind left out costs what its parent costs (prompt / completion). A model that has price rows is not re-seeded.
# A model without a price valid at call time cannot be called.
AI_MODEL_PRICES = {
    "offline": {"provider": "offline", "prompt": "0", "completion": "0"},
    "gpt-4o-mini": {"provider": "openai", "prompt": "0.15", "cached_prompt": "0.075", "completion": "0.60"},
    "gpt-4o": {"provider": "openai", "prompt": "2.50", "cached_prompt": "1.25", "completion": "10.00"},
    "gpt-4.1-mini": {"provider": "openai", "prompt": "0.40", "cached_prompt": "0.10", "completion": "1.60"},
}
# How long a process keeps the price table and the enabled budgets (AiBudget) before reading them again (seconds).
AI_CONFIG_CACHE_SECONDS = float(env_str("AI_CONFIG_CACHE_SECONDS", "10"))
# Per user, by role: daily token cap, cost ceiling per "day" or "month", burst limit of requests per minute. Pooled
# budgets (per role, per RC, per task template) are data: ai_assist.AiBudget, in the Django admin.
AI_QUOTAS = {
    "viewer": {"daily_tokens": 20_000, "cost_ceiling_usd": 0.50, "cost_period": "day", "burst_per_minute": 10},
    "reviewer": {"daily_tokens": 100_000, "cost_ceiling_usd": 5.0, "cost_period": "day", "burst_per_minute": 20},
    "admin": {"daily_tokens": 300_000, "cost_ceiling_usd": 100.0, "cost_period": "month", "burst_per_minute": 30},
}
# Circuit breaker per provider/model (state in Redis, shared by every process).
AI_BREAKER = {
    "failure_threshold": 5,  # consecutive failures
    "latency_window": 20,  # last N successful calls
    "latency_min_samples": 10,
    "latency_p95_seconds": 20.0,
    "cost_interval_seconds": 3600,
    "cost_threshold_usd": 25.0,  # spent on one provider/model within one interval
    "cooldown_seconds": 60,
}
AI_REDACT_NAMES = env_list("AI_REDACT_NAMES", [])  # people's names replaced before a prompt leaves
# Regions whose local-format phone numbers are redacted (phonenumbers needs one: `030 1234567` is only a number in DE;
# numbers written with +/00 are found whatever the list). The first region is also used for international numbers.
AI_REDACTION_PHONE_REGIONS = env_list("AI_REDACTION_PHONE_REGIONS", ["DE", "FR", "GB", "US", "NL", "ES", "AT", "CH"])
# python-stdnum modules whose national id numbers are redacted (checksums validated; see ai_assist/redaction.py).
AI_REDACTION_NATIONAL_IDS = env_list(
    "AI_REDACTION_NATIONAL_IDS",
    [
        *("de.idnr", "fr.nir", "es.dni", "es.nie", "it.codicefiscale", "nl.bsn", "pl.pesel", "be.nn", "ch.ssn"),
        *("at.vnr", "se.personnummer", "dk.cpr", "fi.hetu", "no.fodselsnummer", "us.ssn"),
    ],
)
AI_LOG_TEXT_LIMIT = 4000  # characters of redacted prompt/response kept on each usage log
AI_USAGE_LOG_TTL_DAYS = 90  # the TTL index is created by ai_assist/migrations
# Usage rows are queued in Redis on the call path and moved to MongoDB in batches (ai_assist/usage_buffer.py): by a
# thread in each process every AI_USAGE_FLUSH_SECONDS (0: no thread), by any reader, and by beat for dead processes.
AI_USAGE_FLUSH_SECONDS = float(env_str("AI_USAGE_FLUSH_SECONDS", "1.0"))
CELERY_BEAT_SCHEDULE["ai-usage-flush"] = {"task": "ai_assist.usage_flush", "schedule": 15.0}
AI_BATCH_MAX_ITEMS = 200

# --- reports ---------------------------------------------------------------------------------------------------
# Release reports (reports app). Files go through Django's storage API (STORAGES["default"]; README "Report files").
REPORTS_FONT_DIR = env_str("REPORTS_FONT_DIR", "/usr/share/fonts/truetype/dejavu")  # DejaVuSans(-Bold).ttf
REPORTS_STORAGE_PREFIX = "reports"  # storage folder; one subfolder per report
REPORTS_DOWNLOAD_MAX_AGE = 300  # seconds a signed download link stays valid
REPORTS_MAX_ATTEMPTS = 3  # deliveries of one generation job before it is failed (a poison job never loops)
REPORTS_LEASE_SECONDS = 600  # a running job not heard from for this long is stale (re-queued or failed)
CELERY_BEAT_SCHEDULE["reports-recover-stale"] = {"task": "reports.recover_stale", "schedule": 300.0}

# --- operations: metrics (report_platform/observability.py) ----------------------------------------------------
# prometheus_client multiprocess mode: every process (web workers, Celery) writes its metrics to files here and
# /metrics merges them. Web and worker must share the folder; `make run` and the containers clean it at start.
from report_platform import observability  # noqa: E402

PROMETHEUS_MULTIPROC_DIR = observability.setup_multiprocess(
    env_str("PROMETHEUS_MULTIPROC_DIR", "") or str(VAR_DIR / "prometheus")
)
# rp_jobs_stale{kind}: running without progress for METRICS_STALE_JOB_SECONDS, or queued for METRICS_QUEUED_JOB_SECONDS.
METRICS_STALE_JOB_SECONDS = env_int("METRICS_STALE_JOB_SECONDS", 900)
METRICS_QUEUED_JOB_SECONDS = env_int("METRICS_QUEUED_JOB_SECONDS", 900)
METRICS_STALE_JOB_SOURCES = {
    "import": {
        "collection": "importJobs",
        "running": ["running", "rolling_back"],
        "running_since": "updated_at",
        "queued": ["queued"],
        "queued_since": "queued_at",
    },
    "report": {
        "collection": "reports",
        "running": ["running"],
        "running_since": "updated_at",
        "queued": ["queued"],
        "queued_since": "created_at",
    },
    "ai_batch": {
        "collection": "aiBatchJobs",
        "running": ["running"],
        "running_since": "started_at",
        "queued": ["queued"],
        "queued_since": "created_at",
    },
}

# --- releases ---
# Release gate: an RC is GO when its pass rate (latest runs) reaches this percentage and no more than this many
# priority-1 cases newly fail against the previous RC.
RELEASES_GATE_MIN_PASS_RATE = float(env_str("RELEASES_GATE_MIN_PASS_RATE", "95"))
RELEASES_GATE_MAX_NEW_P1_FAILURES = int(env_str("RELEASES_GATE_MAX_NEW_P1_FAILURES", "0"))
# Coverage (cases with a run / live cases of the RC's product), percent: below it the gate says NO-GO.
RELEASES_GATE_MIN_COVERAGE = float(env_str("RELEASES_GATE_MIN_COVERAGE", "90"))
# The quality dashboard's live region polls this often (seconds).
RELEASES_DASHBOARD_POLL_SECONDS = int(env_str("RELEASES_DASHBOARD_POLL_SECONDS", "10"))

# --- CI results (issue 13): JUnit/xUnit import, CI tokens, bulk runs, failure signatures ---
JUNIT_MAX_UPLOAD_BYTES = env_int("JUNIT_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)  # the upload as sent (gzip/zip too)
JUNIT_MAX_EXPANDED_BYTES = env_int("JUNIT_MAX_EXPANDED_BYTES", 200 * 1024 * 1024)  # after gunzip / unzip, all files
JUNIT_MAX_FILES = env_int("JUNIT_MAX_FILES", 200)  # report files per upload (several parts, or members of a zip)
JUNIT_MAX_TESTCASES = env_int("JUNIT_MAX_TESTCASES", 250_000)
JUNIT_INLINE_MAX_TESTCASES = env_int("JUNIT_INLINE_MAX_TESTCASES", 500)  # smaller reports finish in the request
JUNIT_FAILURE_TEXT_MAX_BYTES = env_int("JUNIT_FAILURE_TEXT_MAX_BYTES", 4096)  # of a failure's text, kept on the run
# Owner / category of cases the import creates, when the upload does not give them: per product, then "*".
JUNIT_CASE_DEFAULTS = {"*": {"owner": "ci", "category": "automated"}}
CI_TOKEN_PREFIX = "rpt_"
BULK_RUNS_MAX = env_int("BULK_RUNS_MAX", 1000)  # runs per POST /api/v1/runs/bulk
# Release gate, optional: NO-GO when the RC has a failure signature its baseline RC did not have.
RELEASES_GATE_NO_NEW_SIGNATURE = env_str("RELEASES_GATE_NO_NEW_SIGNATURE", "0") == "1"
