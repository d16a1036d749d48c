"""`make run`: start the embedded services (unless configured), migrate, seed on first start, then run the Celery
worker and the web server side by side until Ctrl-C.

    python -m report_platform.devstack [--host 127.0.0.1] [--port 8000]
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from report_platform import embedded, observability

DEFAULT_MONGODB_PORT = 27117
DEFAULT_REDIS_PORT = 6389
SECRET_KEY_FILE = "secret_key"


def local_secret_key(var_dir: Path) -> str:
    """The development SECRET_KEY: random, generated on first use into `var_dir/secret_key` (git-ignored, mode
    0600) and read from there afterwards. No key published in the repository ever signs a session, token or link."""
    path = Path(var_dir) / SECRET_KEY_FILE
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if len(key) >= 50:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(64)
    try:
        # O_EXCL: of two processes starting at once, one writes the key and the other reads it.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        existing = path.read_text().strip()
        if len(existing) >= 50:
            return existing
        path.unlink()  # an empty or truncated file from an interrupted start
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    return key


def _manage(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=embedded.BASE_DIR,
        check=True,
        text=True,
        capture_output=capture,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    options = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "report_platform.settings.dev")
    var_dir = embedded.BASE_DIR / "var"
    services: list[embedded.EmbeddedService] = []
    children: list[subprocess.Popen] = []

    def shutdown() -> None:
        # A second Ctrl-C / SIGTERM (a process group signal arrives more than once) must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        for service in reversed(services):
            service.stop()

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
    try:
        if os.environ.get("DJANGO_SECRET_KEY"):
            print("Using DJANGO_SECRET_KEY from the environment.", flush=True)
        else:
            local_secret_key(Path(os.environ.get("REPORT_PLATFORM_VAR_DIR", var_dir)))
            print("Secret key: var/secret_key (generated on the first start, never committed).", flush=True)
        if "MONGODB_URI" in os.environ:
            print("Using MongoDB at MONGODB_URI (nothing started).", flush=True)
        else:
            port = int(os.environ.get("EMBEDDED_MONGODB_PORT", DEFAULT_MONGODB_PORT))
            if embedded.port_is_open(port):
                raise SystemExit(f"Port {port} is busy: stop the other instance or set EMBEDDED_MONGODB_PORT.")
            mongo = embedded.start_mongodb(
                storage_path=var_dir / "mongo", port=port, log_path=var_dir / "log" / "mongo.log"
            )
            services.append(mongo)
            os.environ["MONGODB_URI"] = mongo.url
            os.environ["MONGODB_STANDIN"] = "1"
            print(f"Started the embedded MongoDB stand-in at {mongo.url} (data in var/mongo).", flush=True)
        if "REDIS_URL" in os.environ:
            print("Using Redis at REDIS_URL (nothing started).", flush=True)
        else:
            port = int(os.environ.get("EMBEDDED_REDIS_PORT", DEFAULT_REDIS_PORT))
            if embedded.port_is_open(port):
                raise SystemExit(f"Port {port} is busy: stop the other instance or set EMBEDDED_REDIS_PORT.")
            redis_service = embedded.start_redis(
                data_dir=var_dir / "redis", port=port, log_path=var_dir / "log" / "redis.log", persistent=True
            )
            services.append(redis_service)
            os.environ["REDIS_URL"] = redis_service.url
            print(f"Started the embedded redis-server at {redis_service.url} (data in var/redis).", flush=True)

        _manage("migrate", "--no-input", "-v", "0")
        if os.environ.get("SEED_DEMO", "1") != "0":
            _manage("seed_demo", "--if-empty")

        # Metric files of earlier runs (report_platform/observability.py): counters restart with the stack.
        observability.clean_multiprocess_dir(
            os.environ.get(observability.ENV_VAR)
            or Path(os.environ.get("REPORT_PLATFORM_VAR_DIR", var_dir)) / "prometheus"
        )
        # -B: the periodic tasks (stale import/report recovery, the AI usage-row drain) run inside the worker.
        schedule = Path(os.environ.get("REPORT_PLATFORM_VAR_DIR", var_dir)) / "celerybeat-schedule"
        worker = [sys.executable, "-m", "celery", "-A", "report_platform", "worker", "-l", "info", "-c", "2"]
        children.append(subprocess.Popen([*worker, "-B", "--schedule", str(schedule)], cwd=embedded.BASE_DIR))
        children.append(
            subprocess.Popen(
                [sys.executable, "manage.py", "runserver", f"{options.host}:{options.port}", "--noreload"],
                cwd=embedded.BASE_DIR,
            )
        )
        print(
            f"\nReport Platform is running at http://{options.host}:{options.port}/\n"
            "Log in with one of the demo users printed above (or see README: `make run`). Ctrl-C stops everything.\n",
            flush=True,
        )
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
