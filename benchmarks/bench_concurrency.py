"""Concurrent writers through the production HTTP stack (QUALITY.md "Added turn 2", DESIGN.md "Write path under
concurrency"), each figure measured side by side in one run:

1. recording runs: 1/4/8/16 clients, each on a different case of one RC, `POST /api/v1/tests/{id}/runs`;
2. editing distinct cases: the same levels, `PATCH /api/v1/tests/{id}` (only `task`);
3. 8 clients recording while a CSV import (runs into the same RC) is uploaded and processed by a Celery worker:
   interactive p95 during the import vs the same load just before it. The clients stop when the import ends or
   after BENCH_CONCURRENCY_IMPORT_WINDOW seconds of it; the import then goes on alone and must succeed;
4. beside every level, raw pymongo writes of the same write set at the same concurrency on the same server
   (the stand-in's own ceiling; informational).

Targets: 0 refused (409) and 0 5xx at every level; throughput(8)/throughput(1) >= 1.0; p95 at 8 clients <= 10 x
p50 at 1 client; interactive p95 during the import <= 3 x without it. On the stand-in, which is one Python process
and already near its ceiling with one client recording, the absolute ratio is bounded by the server's own: raw
pymongo writes lose 20-40 % from 1 to 8 clients there. So a second row compares the app's scaling with the raw
writes' at the same concurrency (>= 0.9: the app adds no collapse of its own).

Processes (all started here, in their own process groups, and stopped at the end whatever happens): a fresh
SecantusDB stand-in and redis-server on free loopback ports (data in a temporary folder), one set-up subprocess
(migrate + a verified reviewer), a Celery worker (`-c 2 -B`, as `make run` starts it) and gunicorn with
`deploy/gunicorn.conf.py` and sync workers, as docker-compose runs it. Settings: `report_platform.settings.production`
(DEBUG off, bcrypt, manifest static storage) with a random secret key, `DJANGO_SECURE_SSL_REDIRECT=0` (there is no
TLS proxy on loopback) and `MONGODB_STANDIN=1`. Clients are threads, each with its own `http.client` connection
(gunicorn's sync workers close it after every response, so each request reconnects, as through nginx), with a
reviewer's JWT from `POST /api/v1/auth/login` (renewed after 10 minutes: access tokens last 15). The RC, the
suites and the cases are created through the API (a small CSV import), so the harness follows the API contract, not
the models.

The raw reference writes, per run, what DESIGN.md says a run must write: the previous latest run unflagged, the run
document inserted (cloned from a run the app wrote) and one audit-shaped event (cloned likewise, unique sequence);
per edit: the case's `task` set and one event. It writes into scratch collections created with the same indexes as
`testRuns`, `testCases` and `auditEvents`, so the app's data and audit chain are never touched.

Sizes (env): BENCH_CONCURRENCY_LEVELS ("1,4,8,16"), BENCH_CONCURRENCY_REQUESTS (40 per client and level),
BENCH_CONCURRENCY_LEVEL_SECONDS (90: a level stops early after this), BENCH_CONCURRENCY_IMPORT_ROWS (50000),
BENCH_CONCURRENCY_IMPORT_CLIENTS (8), BENCH_CONCURRENCY_IMPORT_WINDOW (120 s), BENCH_CONCURRENCY_IMPORT_TIMEOUT
(600 s from the upload to the job's end), BENCH_CONCURRENCY_WEB_WORKERS (3, as compose), BENCH_CONCURRENCY_SETTINGS
(the settings module), BENCH_CONCURRENCY_KEEP=1 keeps the temporary folder (logs) for a look afterwards. At the
default sizes the module takes 10-15 minutes on the stand-in, most of it the import (bounded by the timeout).
"""

from __future__ import annotations

import csv
import http.client
import io
import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.table import BenchRow

LEVELS = [int(part) for part in os.environ.get("BENCH_CONCURRENCY_LEVELS", "1,4,8,16").split(",") if part.strip()]
REQUESTS = int(os.environ.get("BENCH_CONCURRENCY_REQUESTS", "40"))
LEVEL_SECONDS = float(os.environ.get("BENCH_CONCURRENCY_LEVEL_SECONDS", "90"))
IMPORT_ROWS = int(os.environ.get("BENCH_CONCURRENCY_IMPORT_ROWS", "50000"))
IMPORT_CLIENTS = int(os.environ.get("BENCH_CONCURRENCY_IMPORT_CLIENTS", "8"))
IMPORT_TIMEOUT = float(os.environ.get("BENCH_CONCURRENCY_IMPORT_TIMEOUT", "600"))
IMPORT_WINDOW = float(os.environ.get("BENCH_CONCURRENCY_IMPORT_WINDOW", "120"))
WEB_WORKERS = int(os.environ.get("BENCH_CONCURRENCY_WEB_WORKERS", "3"))
SETTINGS = os.environ.get("BENCH_CONCURRENCY_SETTINGS", "report_platform.settings.production")
KEEP = os.environ.get("BENCH_CONCURRENCY_KEEP", "") == "1"

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE = "bench_concurrency"
PRODUCT = "BenchConc"
RC_NAME = "BENCH-CONC-RC1"
EMAIL = "bench-concurrency@example.com"
REQUEST_TIMEOUT = 120.0
# The three case sets: recording levels, editing levels, the import phase (each client has its own case).
PREFIXES = {"record": "CREC", "edit": "CEDT", "mix": "CMIX"}

_SETUP_SCRIPT = """
import os, sys
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0, interactive=False)
from allauth.account.models import EmailAddress
from accounts.models import User
email, password = sys.argv[1], sys.argv[2]
user = User.objects.create_user(email=email, password=password, role="reviewer", verified=True)
EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
print("setup ok", flush=True)
"""


# --- processes ---------------------------------------------------------------------------------------------------


class Stack:
    """Every process this module starts; `stop()` ends them all (process groups, TERM then KILL)."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-concurrency-"))
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.services: list = []
        self.env: dict[str, str] = {}
        self.port = 0
        self.mongo_uri = ""

    def log(self, name: str) -> Path:
        return self.tmp / f"{name}.log"

    def start(self) -> None:
        from report_platform import embedded

        started = time.perf_counter()
        mongo = embedded.start_mongodb(
            storage_path=self.tmp / "mongo", port=embedded.free_port(), log_path=self.log("mongo")
        )
        self.services.append(mongo)
        redis_service = embedded.start_redis(
            data_dir=self.tmp / "redis", port=embedded.free_port(), log_path=self.log("redis"), persistent=False
        )
        self.services.append(redis_service)
        self.mongo_uri = mongo.url
        env = {
            key: value
            for key, value in os.environ.items()
            if key
            not in {
                "MONGODB_URI",
                "REDIS_URL",
                "CACHE_REDIS_URL",
                "REPORT_PLATFORM_TEST_SERVICES_STARTED",
                "PROMETHEUS_MULTIPROC_DIR",
                "prometheus_multiproc_dir",
                "DJANGO_SETTINGS_MODULE",
                "MONGODB_NAME",
            }
        }
        var = self.tmp / "var"
        for name in ("media", "static", "prometheus"):
            (var / name).mkdir(parents=True, exist_ok=True)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": SETTINGS,
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
                "DJANGO_SECURE_SSL_REDIRECT": "0",
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "MONGODB_URI": mongo.url,
                "MONGODB_STANDIN": "1",
                "MONGODB_NAME": DATABASE,
                "REDIS_URL": redis_service.url,
                "REPORT_PLATFORM_VAR_DIR": str(var),
                "DJANGO_MEDIA_ROOT": str(var / "media"),
                "DJANGO_STATIC_ROOT": str(var / "static"),
                "PROMETHEUS_MULTIPROC_DIR": str(var / "prometheus"),
                "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
                "AI_PROVIDER": "offline",
                "PYTHONUNBUFFERED": "1",
                # All clients share one reviewer's token: the per-user API budget (1,200/min) would refuse them.
                # What is measured here is the write path, so the budget is raised far above the offered load.
                "API_RATE_LIMIT_REVIEWER_PER_MINUTE": "1000000",
                "API_RATE_LIMIT_REVIEWER_PER_SECOND": "100000",
                "API_RATE_LIMIT_HEAVY_PER_MINUTE": "100000",
                "API_RATE_LIMIT_HEAVY_PER_SECOND": "10000",
            }
        )
        self.env = env
        self.password = secrets.token_urlsafe(18)
        subprocess.run(
            [sys.executable, "-c", _SETUP_SCRIPT, EMAIL, self.password],
            cwd=BASE_DIR,
            env=env,
            check=True,
            stdout=self.log("setup").open("ab"),
            stderr=subprocess.STDOUT,
            timeout=600,
        )
        worker = [sys.executable, "-m", "celery", "-A", "report_platform", "worker", "-l", "warning", "-c", "2"]
        worker += ["-B", "--schedule", str(var / "celerybeat-schedule"), "-n", f"bench-{uuid.uuid4().hex[:6]}@%h"]
        self._spawn("worker", worker)
        from report_platform import embedded as embedded_module

        self.port = embedded_module.free_port()
        gunicorn = [sys.executable, "-m", "gunicorn", "report_platform.wsgi:application"]
        gunicorn += ["--config", str(BASE_DIR / "deploy" / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{self.port}"]
        gunicorn += ["--workers", str(WEB_WORKERS), "--timeout", "60"]
        # gunicorn's control socket defaults to one path per user: another instance on this machine would share it.
        gunicorn += ["--no-control-socket"]
        self._spawn("gunicorn", gunicorn)
        self._wait_http()
        print(
            f"  concurrency: stand-in, redis, worker and gunicorn ({WEB_WORKERS} workers, {SETTINGS}) ready in "
            f"{time.perf_counter() - started:.0f}s; logs in {self.tmp}",
            flush=True,
        )

    def _spawn(self, name: str, command: list[str]) -> None:
        process = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env=self.env,
            stdout=self.log(name).open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append((name, process))

    def _wait_http(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.tail(name)}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/api/v1/openapi.json")
                response = connection.getresponse()
                response.read()
                connection.close()
                if response.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"gunicorn did not answer within {timeout:.0f}s:\n{self.tail('gunicorn')}")

    def alive(self) -> list[str]:
        return [name for name, process in self.processes if process.poll() is not None]

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.log(name)
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for _name, process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            # The group may hold children (gunicorn and Celery pool workers) even when the leader has gone.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if process.poll() is None:
                process.wait(timeout=10)
        for service in reversed(self.services):
            service.stop()
            try:
                os.killpg(service.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if KEEP:
            print(f"  concurrency: logs kept in {self.tmp}", flush=True)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# --- HTTP ----------------------------------------------------------------------------------------------------------


class Client:
    """One HTTP connection (re-opened when the server closes it) speaking JSON with a bearer token."""

    def __init__(self, port: int, token: str = "") -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        self.token = token

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"):
        headers = {"Accept": "application/json", "User-Agent": "bench-concurrency"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            raise
        if response.getheader("Connection", "").lower() == "close":
            self.connection.close()
        return response.status, data

    def json(self, method: str, path: str, payload=None):
        body = None if payload is None else json.dumps(payload).encode()
        status, data = self.request(method, path, body)
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = {"raw": data[:500].decode(errors="replace")}
        return status, decoded

    def close(self) -> None:
        self.connection.close()


class Tokens:
    """The reviewer's access token, renewed by a new login when it is 10 minutes old (it lasts 15)."""

    def __init__(self, port: int, password: str) -> None:
        self.port, self.password = port, password
        self.lock = threading.Lock()
        self.token, self.issued = "", 0.0

    def get(self) -> str:
        with self.lock:
            if not self.token or time.monotonic() - self.issued > 600:
                self.token, self.issued = _login(self.port, self.password), time.monotonic()
            return self.token


def _login(port: int, password: str) -> str:
    client = Client(port)
    status, body = client.json("POST", "/api/v1/auth/login", {"email": EMAIL, "password": password})
    client.close()
    if status != 200:
        raise RuntimeError(f"login failed: {status} {body}")
    return body["access"]


def _multipart(filename: str, data: bytes, fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = f"----bench{uuid.uuid4().hex}"
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: text/csv\r\n\r\n".encode()
    )
    parts.append(data)
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _csv(rows: list[list[str]]) -> bytes:
    from imports.csvformat import COLUMNS

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _row(suite: str, key: str, n: int, *, status: str = "pass") -> list[str]:
    # product, suite, key, title, category, task, owner, priority, tags, rc, status, mantis_ids, notes, executed_at,
    # executed_by
    return [
        PRODUCT,
        suite,
        key,
        f"Bench case {key}",
        f"category-{n % 7}",
        "",
        f"owner{n % 11}@example.com",
        str(1 + n % 4),
        "bench",
        RC_NAME,
        status,
        "",
        "",
        "2026-11-01T10:00:00Z",
        "",
    ]


def _import(port: int, token: str, data: bytes, *, timeout: float, on_status: Callable | None = None) -> dict:
    """Upload a CSV (validated in the request, then queued) and poll the job to its end. Returns timings + job."""
    client = Client(port, token)
    body, content_type = _multipart("bench.csv", data, {})
    started = time.perf_counter()
    status, raw = client.request("POST", "/api/v1/imports/csv", body, content_type)
    uploaded = time.perf_counter()
    job = json.loads(raw) if raw else {}
    if status != 202:
        client.close()
        raise RuntimeError(f"import upload answered {status}: {raw[:800]!r}")
    deadline = started + timeout
    while job.get("status") not in ("succeeded", "failed", "cancelled", "invalid") and time.perf_counter() < deadline:
        time.sleep(1.0)
        status, polled = client.json("GET", f"/api/v1/imports/{job['id']}")
        if status == 200:
            job = polled
            if on_status:
                on_status(job)
    client.close()
    return {"job": job, "upload_s": uploaded - started, "total_s": time.perf_counter() - started}


# --- measuring ---------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    started: float
    seconds: float
    status: int  # 0: no answer (connection error or timeout)


@dataclass
class Level:
    kind: str
    clients: int
    again: bool = False
    samples: list[Sample] = field(default_factory=list)
    wall: float = 0.0
    raw_ops: int = 0
    raw_wall: float = 0.0
    raw_errors: int = 0
    error_examples: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"x{self.clients}" + (" again" if self.again else "")

    def ok_samples(self) -> list[Sample]:
        return [s for s in self.samples if 200 <= s.status < 300]

    @property
    def ok(self) -> int:
        return len(self.ok_samples())

    @property
    def refused(self) -> int:
        return sum(1 for s in self.samples if s.status == 409)

    @property
    def server_errors(self) -> int:
        return sum(1 for s in self.samples if s.status >= 500)

    @property
    def other_errors(self) -> int:
        return sum(1 for s in self.samples if not (200 <= s.status < 300) and s.status not in (409,) and s.status < 500)

    @property
    def throughput(self) -> float:
        return self.ok / self.wall if self.wall else 0.0

    @property
    def raw_throughput(self) -> float:
        return self.raw_ops / self.raw_wall if self.raw_wall else 0.0

    def percentile(self, fraction: float) -> float:
        return _percentile([s.seconds for s in self.ok_samples()], fraction)


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("inf")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def _drive(
    port: int,
    tokens: Tokens,
    clients: int,
    make_request: Callable[[int, int], tuple[str, str, dict]],
    *,
    requests: int | None,
    seconds: float,
    stop: threading.Event | None = None,
    level: Level,
) -> None:
    """`clients` threads, each with its own connection, each sending `requests` requests (or until `stop` is set),
    none past `seconds`. Fills `level.samples` and `level.wall`."""
    barrier = threading.Barrier(clients + 1)
    lock = threading.Lock()
    deadline_box: list[float] = []

    def client_loop(index: int) -> None:
        client = Client(port, tokens.get())
        samples: list[Sample] = []
        barrier.wait()
        deadline = deadline_box[0]
        for n in itertools.count():
            if requests is not None and n >= requests:
                break
            if stop is not None and stop.is_set():
                break
            if time.perf_counter() >= deadline:
                break
            method, path, payload = make_request(index, n)
            client.token = tokens.get()
            started = time.perf_counter()
            try:
                status, body = client.json(method, path, payload)
            except (OSError, http.client.HTTPException) as error:
                status, body = 0, {"error": repr(error)}
            samples.append(Sample(started, time.perf_counter() - started, status))
            if not (200 <= status < 300) and len(level.error_examples) < 5:
                with lock:
                    level.error_examples.append(f"{status} {json.dumps(body)[:300]}")
        client.close()
        with lock:
            level.samples.extend(samples)

    threads = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    deadline_box.append(started + seconds)
    barrier.wait()
    for thread in threads:
        thread.join(timeout=seconds + REQUEST_TIMEOUT + 30)
    level.wall = time.perf_counter() - started


class Raw:
    """The stand-in's own ceiling: pymongo threads writing the same write set into scratch collections indexed like
    the app's (runs, cases, audit events) on the same server."""

    def __init__(self, mongo_uri: str) -> None:
        import pymongo

        self.client = pymongo.MongoClient(mongo_uri, maxPoolSize=64)
        self.database = self.client[DATABASE]
        self.sequence = itertools.count(10**12)
        self.sequence_lock = threading.Lock()
        self.runs = self._scratch("testRuns", "benchRawRuns")
        self.cases = self._scratch("testCases", "benchRawCases")
        self.audit = self._scratch("auditEvents", "benchRawAuditEvents")
        self.run_template = self.database["testRuns"].find_one({}, sort=[("_id", -1)]) or {}
        self.audit_template = self.database["auditEvents"].find_one({"action": "run.record"}, sort=[("_id", -1)]) or {
            "action": "run.record",
            "outcome": "success",
            "metadata": {},
        }

    def _scratch(self, source: str, name: str):
        self.database.drop_collection(name)
        target = self.database[name]
        for index_name, spec in self.database[source].index_information().items():
            if index_name == "_id_":
                continue
            options = {k: v for k, v in spec.items() if k in ("unique", "sparse", "partialFilterExpression")}
            if "expireAfterSeconds" in spec:
                continue  # a TTL index would only delete scratch rows in the background
            target.create_index(spec["key"], name=index_name, **options)
        return target

    def seed_cases(self, case_ids: list) -> None:
        from bson import ObjectId

        documents = list(self.database["testCases"].find({"_id": {"$in": [ObjectId(i) for i in case_ids]}}))
        if documents:
            self.cases.insert_many(documents)

    def _event(self, resource: str) -> dict:
        from bson import ObjectId

        with self.sequence_lock:
            sequence = next(self.sequence)
        now = datetime.now(UTC)
        event = {k: v for k, v in self.audit_template.items() if k != "_id"}
        event.update(_id=ObjectId(), resource=resource, created_at=now, request_id=uuid.uuid4().hex)
        for name in ("sequence", "seq"):
            if name in event:
                event[name] = sequence
        for name in ("hash", "previous_hash"):
            if name in event:
                event[name] = secrets.token_hex(32)
        return event

    def record(self, case_id, rc_id, status: str) -> None:
        from bson import ObjectId

        now = datetime.now(UTC)
        self.runs.update_many(
            {"case_id": case_id, "release_candidate_id": rc_id, "is_latest": True}, {"$set": {"is_latest": False}}
        )
        run = {k: v for k, v in self.run_template.items() if k != "_id"}
        run.update(
            _id=ObjectId(),
            case_id=case_id,
            release_candidate_id=rc_id,
            status=status,
            executed_at=now,
            created_at=now,
            is_latest=True,
        )
        self.runs.insert_one(run)
        self.audit.insert_one(self._event(f"run:{run['_id']}"))

    def edit(self, case_id, task: str) -> None:
        self.cases.update_one({"_id": case_id}, {"$set": {"task": task, "updated_at": datetime.now(UTC)}})
        self.audit.insert_one(self._event(f"case:{case_id}"))

    def drive(self, level: Level, case_ids: list, rc_id) -> None:
        from bson import ObjectId

        # As many writes per thread as each HTTP client sent (fewer when the level hit its time cap).
        clients = level.clients
        count = max(1, len(level.samples) // max(1, clients))
        barrier = threading.Barrier(clients + 1)
        lock = threading.Lock()
        done = {"ops": 0, "errors": 0}

        def loop(index: int) -> None:
            case_id = ObjectId(case_ids[index])
            ops = errors = 0
            barrier.wait()
            for n in range(count):
                try:
                    if level.kind == "edit":
                        self.edit(case_id, f"RAW-{index}-{n}")
                    else:
                        self.record(case_id, rc_id, "pass" if n % 2 else "fail")
                    ops += 1
                except Exception:
                    errors += 1
            with lock:
                done["ops"] += ops
                done["errors"] += errors

        threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(clients)]
        for thread in threads:
            thread.start()
        started = time.perf_counter()
        barrier.wait()
        for thread in threads:
            thread.join()
        level.raw_wall = time.perf_counter() - started
        level.raw_ops = done["ops"]
        level.raw_errors = done["errors"]

    def probe(self, stop: threading.Event, samples: list[tuple[float, float]]) -> None:
        """One small insert into a scratch collection every 0.2 s until `stop`: (start, seconds) into `samples`."""
        from bson import ObjectId

        collection = self.database["benchRawProbe"]
        while not stop.wait(0.2):
            started = time.perf_counter()
            try:
                collection.insert_one({"_id": ObjectId(), "at": datetime.now(UTC)})
            except Exception:
                continue
            samples.append((started, time.perf_counter() - started))

    def close(self) -> None:
        for name in ("benchRawRuns", "benchRawCases", "benchRawAuditEvents", "benchRawProbe"):
            self.database.drop_collection(name)
        self.client.close()


# --- the phases ------------------------------------------------------------------------------------------------------


def _case_ids(port: int, token: str) -> dict[str, str]:
    """key -> id of every case of the bench suites (through the list API, following the cursors)."""
    client = Client(port, token)
    found: dict[str, str] = {}
    cursor = ""
    while True:
        path = "/api/v1/tests?limit=200" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        status, body = client.json("GET", path)
        if status != 200:
            raise RuntimeError(f"case list answered {status}: {body}")
        for item in body["items"]:
            found[item["key"]] = item["id"]
        cursor = body.get("next_cursor") or ""
        if not cursor:
            break
    client.close()
    return found


def _seed(stack: Stack, token: str) -> tuple[dict[str, list[str]], str]:
    """One RC, a suite per case set and one case per client (each with a run in the RC), through a CSV import."""
    most = max([*LEVELS, IMPORT_CLIENTS])
    rows = []
    for kind, prefix in PREFIXES.items():
        count = IMPORT_CLIENTS if kind == "mix" else most
        rows += [_row(f"Bench {kind}", f"{prefix}-{n:04d}", n) for n in range(count)]
    result = _import(stack.port, token, _csv(rows), timeout=180)
    if result["job"].get("status") != "succeeded":
        raise RuntimeError(f"seeding import did not succeed: {json.dumps(result['job'])[:1500]}")
    ids = _case_ids(stack.port, token)
    cases = {
        kind: [ids[f"{prefix}-{n:04d}"] for n in range(IMPORT_CLIENTS if kind == "mix" else most)]
        for kind, prefix in PREFIXES.items()
    }
    return cases, _rc_id(stack.mongo_uri)


def _rc_id(mongo_uri: str):
    import pymongo

    client = pymongo.MongoClient(mongo_uri)
    try:
        document = client[DATABASE]["releaseCandidates"].find_one({"name": RC_NAME})
        if document is None:
            raise RuntimeError(f"the seeding import did not create the RC {RC_NAME}")
        return document["_id"]
    finally:
        client.close()


def _requests_for(kind: str, cases: list[str]) -> Callable[[int, int], tuple[str, str, dict]]:
    def make(index: int, n: int) -> tuple[str, str, dict]:
        case_id = cases[index]
        if kind == "edit":
            return "PATCH", f"/api/v1/tests/{case_id}", {"task": f"TASK-{index}-{n}"}
        return "POST", f"/api/v1/tests/{case_id}/runs", {"rc": RC_NAME, "status": "pass" if n % 2 else "fail"}

    return make


def _warm_up(stack: Stack, tokens: Tokens, cases: dict[str, list[str]]) -> None:
    """Untimed: every gunicorn worker has imported its views, opened its connections and filled its caches."""
    clients = min(len(cases["mix"]), max(2, WEB_WORKERS * 2))
    for kind in ("record", "edit"):
        _drive(
            stack.port,
            tokens,
            clients,
            _requests_for(kind, cases["mix"]),
            requests=3,
            seconds=60,
            level=Level(kind, clients),
        )


def _levels(stack: Stack, tokens: Tokens, raw: Raw, cases: dict[str, list[str]], rc_id) -> list[Level]:
    measured = []
    # One client again at the end of each kind: the machine's load drifts, so the 1-client baseline is the stricter
    # of a measurement before and one after the others (higher throughput, lower p50).
    sequence = [(clients, False) for clients in LEVELS] + ([(1, True)] if 1 in LEVELS and len(LEVELS) > 1 else [])
    for kind in ("record", "edit"):
        for clients, again in sequence:
            level = Level(kind, clients, again=again)
            _drive(
                stack.port,
                tokens,
                clients,
                _requests_for(kind, cases[kind]),
                requests=REQUESTS,
                seconds=LEVEL_SECONDS,
                level=level,
            )
            raw.drive(level, cases[kind], rc_id)
            measured.append(level)
            print(
                f"  concurrency {kind:6} {level.label:>9}: {level.throughput:6.1f}/s p50 "
                f"{_ms(level.percentile(0.5)):>6} ms p95 {_ms(level.percentile(0.95)):>6} ms  ok {level.ok} "
                f"409 {level.refused} 5xx {level.server_errors} other {level.other_errors}; "
                f"raw {level.raw_throughput:6.1f}/s",
                flush=True,
            )
            if level.error_examples:
                print(f"    e.g. {level.error_examples[0]}", flush=True)
            dead = stack.alive()
            if dead:
                raise RuntimeError(f"{dead} exited during the {kind} x{clients} level")
    return measured


def _import_phase(stack: Stack, tokens: Tokens, raw: Raw, cases: list[str]) -> dict:
    """IMPORT_CLIENTS clients recording runs: first alone (the baseline), then while an IMPORT_ROWS-row import with
    runs into the same RC is uploaded, validated and processed. A pymongo probe (one small insert every 0.2 s) runs
    throughout, so a server that is itself blocked can be told from an app path that waits."""
    make = _requests_for("record", cases)
    data = _csv(
        [_row("Bench imported", f"IMP-{n:07d}", n, status="pass" if n % 5 else "fail") for n in range(IMPORT_ROWS)]
    )
    probe_stop = threading.Event()
    probe: list[tuple[float, float]] = []
    probe_thread = threading.Thread(target=raw.probe, args=(probe_stop, probe), daemon=True)
    probe_thread.start()
    try:
        window: dict[str, float] = {"baseline_start": time.perf_counter()}
        baseline = Level("record", IMPORT_CLIENTS)
        _drive(stack.port, tokens, IMPORT_CLIENTS, make, requests=REQUESTS, seconds=LEVEL_SECONDS, level=baseline)
        window["baseline_end"] = time.perf_counter()

        during = Level("record", IMPORT_CLIENTS)
        stop = threading.Event()
        outcome: dict = {}

        progress: list[tuple[float, int]] = []

        def importer() -> None:
            time.sleep(1.0)  # the interactive clients are all sending before the upload starts
            window["start"] = time.perf_counter()
            try:
                outcome.update(
                    _import(
                        stack.port,
                        tokens.get(),
                        data,
                        timeout=IMPORT_TIMEOUT,
                        on_status=lambda job: progress.append((time.perf_counter(), job.get("processed", 0))),
                    )
                )
            except Exception as error:
                outcome["error"] = repr(error)
            window["end"] = time.perf_counter()
            stop.set()

        thread = threading.Thread(target=importer, daemon=True)
        thread.start()
        # The clients stop when the import ends or after IMPORT_WINDOW seconds of it; the import then goes on alone.
        _drive(
            stack.port,
            tokens,
            IMPORT_CLIENTS,
            make,
            requests=None,
            seconds=IMPORT_WINDOW + 1.0,
            stop=stop,
            level=during,
        )
        window["clients_end"] = time.perf_counter()
        thread.join(timeout=IMPORT_TIMEOUT + 60)
    finally:
        probe_stop.set()
        probe_thread.join(timeout=10)
    start = window.get("start", 0.0)
    end = min(window.get("end", float("inf")), window["clients_end"])
    under_load = [done for at, done in progress if at <= window["clients_end"]]
    outcome["processed_under_load"] = under_load[-1] if under_load else 0
    outcome["window_s"] = max(0.0, end - start)
    during.samples = [s for s in during.samples if s.started >= start and s.started + s.seconds <= end]
    during.wall = max(0.0, end - start)
    if KEEP:  # for a look at when the server stalled: seconds since the upload started, probe latency / rows done
        with (stack.tmp / "import-timeline.csv").open("w") as handle:
            handle.writelines(f"probe,{at - start:.2f},{seconds:.3f}\n" for at, seconds in probe)
            handle.writelines(f"rows,{at - start:.2f},{done}\n" for at, done in progress)
    probe_idle = [t for at, t in probe if window["baseline_start"] <= at <= window["baseline_end"]]
    probe_busy = [t for at, t in probe if start <= at <= end]
    return {
        "baseline": baseline,
        "during": during,
        "import": outcome,
        "bytes": len(data),
        "probe_idle": probe_idle,
        "probe_busy": probe_busy,
    }


# --- reporting -----------------------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return "-" if seconds == float("inf") else f"{seconds * 1000:.0f}"


def _print_levels(levels: list[Level], phase: dict | None) -> None:
    headers = [
        "kind",
        "clients",
        "requests",
        "ok",
        "409",
        "5xx",
        "other",
        "req/s",
        "p50 ms",
        "p95 ms",
        "raw ops/s",
        "app/raw",
    ]
    rows = []
    for level in levels:
        ratio = level.throughput / level.raw_throughput if level.raw_throughput else 0.0
        rows.append(
            [
                level.kind,
                str(level.clients) + (" again" if level.again else ""),
                str(len(level.samples)),
                str(level.ok),
                str(level.refused),
                str(level.server_errors),
                str(level.other_errors),
                f"{level.throughput:.1f}",
                _ms(level.percentile(0.5)),
                _ms(level.percentile(0.95)),
                f"{level.raw_throughput:.1f}",
                f"{ratio:.2f}",
            ]
        )
    if phase:
        for label in ("baseline", "during"):
            level = phase[label]
            rows.append(
                [
                    f"record, import {'running' if label == 'during' else 'idle'}",
                    str(level.clients),
                    str(len(level.samples)),
                    str(level.ok),
                    str(level.refused),
                    str(level.server_errors),
                    str(level.other_errors),
                    f"{level.throughput:.1f}",
                    _ms(level.percentile(0.5)),
                    _ms(level.percentile(0.95)),
                    "",
                    "",
                ]
            )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("\n  concurrency per level (through gunicorn; raw = pymongo on the same server, same write set)")
    print("  " + " | ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    print("  " + "-+-".join("-" * w for w in widths))
    for row in rows:
        print("  " + " | ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    print(flush=True)


def _rows(levels: list[Level], phase: dict | None) -> list[BenchRow]:
    result = []
    for level in levels:
        bad = level.refused + level.server_errors + level.other_errors + (len(level.samples) == 0)
        detail = (
            f"{len(level.samples)} requests: 409 {level.refused}, 5xx {level.server_errors}, other "
            f"{level.other_errors}; {level.throughput:.1f}/s, p50 {_ms(level.percentile(0.5))} ms, p95 "
            f"{_ms(level.percentile(0.95))} ms"
        )
        if level.error_examples:
            detail += f"; e.g. {level.error_examples[0][:160]}"
        result.append(
            BenchRow(
                "concurrency",
                f"{level.kind} {level.label}: refused + 5xx + other errors",
                bad,
                "= 0",
                bad == 0,
                detail,
            )
        )
    for kind in ("record", "edit"):
        mine = [level for level in levels if level.kind == kind]
        ones = [level for level in mine if level.clients == 1]
        eight = next((level for level in mine if level.clients == 8), None)
        if not ones or eight is None:
            continue
        # The stricter 1-client baseline of the two measurements (before and after the other levels).
        one_throughput = max(level.throughput for level in ones)
        p50_one = min(level.percentile(0.5) for level in ones)
        both = " / ".join(f"{level.throughput:.1f}" for level in ones)
        ratio = eight.throughput / one_throughput if one_throughput else 0.0
        result.append(
            BenchRow(
                "concurrency",
                f"{kind}: throughput(8) / throughput(1)",
                ratio,
                ">= 1.0",
                ratio >= 1.0,
                f"{one_throughput:.1f}/s (x1 before/after: {both}) -> {eight.throughput:.1f}/s; raw pymongo "
                f"{ones[0].raw_throughput:.0f}/s -> {eight.raw_throughput:.0f}/s",
            )
        )
        # The stand-in is one Python process that saturates before the app does: beside the absolute ratio, the
        # app's scaling against the server's own at the same concurrency (1.0: the app loses nothing the raw
        # writes do not lose too). The baseline is the raw x1 measured next to the app's stricter x1.
        raw_one = next(level.raw_throughput for level in ones if level.throughput == one_throughput)
        raw_ratio = eight.raw_throughput / raw_one if raw_one else 0.0
        relative = ratio / raw_ratio if raw_ratio else 0.0
        result.append(
            BenchRow(
                "concurrency",
                f"{kind}: scaling(8/1) app / raw pymongo",
                relative,
                ">= 0.9",
                relative >= 0.9,
                f"app x{ratio:.2f}, raw pymongo x{raw_ratio:.2f} ({raw_one:.0f}/s -> {eight.raw_throughput:.0f}/s)",
            )
        )
        p95_eight = eight.percentile(0.95)
        latency = p95_eight / p50_one if p50_one not in (0.0, float("inf")) else float("inf")
        result.append(
            BenchRow(
                "concurrency",
                f"{kind}: p95(8 clients) / p50(1 client)",
                latency,
                "<= 10",
                latency <= 10,
                f"p50(1) {_ms(p50_one)} ms (x1 before/after: "
                f"{' / '.join(_ms(level.percentile(0.5)) for level in ones)}), p95(8) {_ms(p95_eight)} ms",
            )
        )
        for level in mine:
            app_raw = level.throughput / level.raw_throughput if level.raw_throughput else 0.0
            result.append(
                BenchRow(
                    "concurrency",
                    f"reference: {kind} {level.label} app / raw pymongo throughput",
                    app_raw,
                    "info",
                    True,
                    f"{level.throughput:.1f}/s vs {level.raw_throughput:.0f}/s raw ({level.raw_ops} ops, "
                    f"{level.raw_errors} errors)",
                )
            )
    if phase:
        baseline, during, outcome = phase["baseline"], phase["during"], phase["import"]
        job = outcome.get("job", {})
        p95_idle, p95_busy = baseline.percentile(0.95), during.percentile(0.95)
        ratio = p95_busy / p95_idle if p95_idle not in (0.0, float("inf")) else float("inf")
        succeeded = job.get("status") == "succeeded"
        bad = during.refused + during.server_errors + during.other_errors
        detail = (
            f"p95 {_ms(p95_idle)} ms idle -> {_ms(p95_busy)} ms during ({len(during.samples)} requests, 409 "
            f"{during.refused}, 5xx {during.server_errors}, other {during.other_errors}); p50 "
            f"{_ms(baseline.percentile(0.5))} -> {_ms(during.percentile(0.5))} ms"
        )
        processed, total = job.get("processed", 0), job.get("total", 0) or IMPORT_ROWS
        import_detail = (
            f"{IMPORT_ROWS:,} rows with runs ({phase['bytes'] / 1e6:.1f} MB) beside {IMPORT_CLIENTS} recording "
            f"clients: {job.get('status', outcome.get('error', '?'))}, {processed:,}/{total:,} rows"
        )
        if "upload_s" in outcome:
            import_detail += (
                f"; upload+validate {outcome['upload_s']:.0f}s, end to end {outcome['total_s']:.0f}s (timeout "
                f"{IMPORT_TIMEOUT:.0f}s); {outcome['processed_under_load']:,} rows done in the "
                f"{outcome['window_s']:.0f}s with clients"
            )
        if job.get("failure_code"):
            import_detail += f" ({job['failure_code']}: {job.get('failure_message', '')[:120]})"
        result.append(
            BenchRow(
                "concurrency",
                "import under interactive load: fraction of rows done",
                processed / total if total else 0.0,
                "succeeded",
                succeeded,
                import_detail,
            )
        )
        probe_idle, probe_busy = _percentile(phase["probe_idle"], 0.95), _percentile(phase["probe_busy"], 0.95)
        result.append(
            BenchRow(
                "concurrency",
                "reference: raw pymongo insert p95 during import / without",
                probe_busy / probe_idle if probe_idle not in (0.0, float("inf")) else float("inf"),
                "info",
                True,
                f"{_ms(probe_idle)} ms -> {_ms(probe_busy)} ms, max {_ms(max(phase['probe_busy'] or [0.0]))} ms "
                f"({len(phase['probe_busy'])} probes): how long the server itself makes a writer wait",
            )
        )
        result.append(
            BenchRow(
                "concurrency",
                f"record x{IMPORT_CLIENTS}: p95 during import / without",
                ratio,
                "<= 3",
                ratio <= 3 and bad == 0 and len(during.samples) > 0,
                detail,
            )
        )
    return result


def run() -> list[BenchRow]:
    stack = Stack()
    raw = None
    try:
        stack.start()
        tokens = Tokens(stack.port, stack.password)
        cases, rc_id = _seed(stack, tokens.get())
        raw = Raw(stack.mongo_uri)
        raw.seed_cases(cases["edit"])
        _warm_up(stack, tokens, cases)
        levels = _levels(stack, tokens, raw, cases, rc_id)
        phase = _import_phase(stack, tokens, raw, cases["mix"]) if IMPORT_ROWS > 0 else None
        if phase:
            print(
                f"  concurrency import phase: {phase['import'].get('job', {}).get('status')} "
                f"p95 idle {_ms(phase['baseline'].percentile(0.95))} ms, during "
                f"{_ms(phase['during'].percentile(0.95))} ms; raw probe p95 idle "
                f"{_ms(_percentile(phase['probe_idle'], 0.95))} ms, during "
                f"{_ms(_percentile(phase['probe_busy'], 0.95))} ms",
                flush=True,
            )
        _print_levels(levels, phase)
        return _rows(levels, phase)
    except Exception as error:
        print(f"  concurrency: failed: {error!r}", flush=True)
        for name in ("gunicorn", "worker"):
            tail = stack.tail(name, 1500)
            if tail:
                print(f"  --- {name} log tail ---\n{tail}", flush=True)
        return [BenchRow("concurrency", "harness", 0.0, "runs", False, repr(error)[:300])]
    finally:
        if raw is not None:
            try:
                raw.close()
            except Exception:
                pass
        stack.stop()
