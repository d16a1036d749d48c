"""deploy/nginx/nginx.conf: rendered like the nginx image renders it, checked with `nginx -t`, then run for real.

The template is rendered into a private temporary prefix (loopback ports, a certificate made here, its own pid and
temp paths), so nothing needs a root-owned path and nothing leaves loopback. The live test puts nginx in front of a
small http.server upstream and checks what a browser and the app would see.

nginx must be installed (Debian: `apt-get install nginx-light`; .ci/run installs it): when it is missing these
tests fail, they do not skip. Plain functions, no Django.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "nginx" / "nginx.conf"
HSTS = "max-age=31536000; includeSubDomains; preload"  # the same header production settings send
UPLOAD_LIMIT = 20 * 1024 * 1024  # client_max_body_size 20m == the app's CSV_MAX_UPLOAD_BYTES (20 MiB)
TIMEOUT = 10


# --- helpers ------------------------------------------------------------------------------------------------------


def nginx_binary() -> str:
    candidates = [os.environ.get("NGINX_BIN"), shutil.which("nginx"), "/usr/sbin/nginx"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "nginx is not installed (looked for $NGINX_BIN, nginx on PATH, /usr/sbin/nginx). "
        "Install it with `apt-get install nginx-light`; CI installs it in .ci/run.",
        pytrace=False,
    )


def render(template: str, values: dict[str, str]) -> str:
    """What the nginx image's 20-envsubst-on-templates.sh does with NGINX_ENVSUBST_FILTER=NGINX_.

    ${NGINX_*} and $NGINX_* are replaced; nginx's own variables ($host, $request_uri...) are left alone. Unlike the
    image, an unknown placeholder is an error here, so a typo cannot reach production silently.
    """

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"placeholder {name} has no value"
        return values[name]

    return re.sub(r"\$\{(NGINX_\w+)\}|\$(NGINX_\w+)", replace, template)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_certificates(cert_dir: Path) -> Path:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost signed by it. Returns the CA file."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "report-platform test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_dir.mkdir(parents=True, exist_ok=True)
    (cert_dir / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = cert_dir / "privkey.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_file.chmod(0o600)
    ca_file = cert_dir.parent / "test-ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return ca_file


@contextmanager
def nginx_prefix(*, upstream: str, http_port: int, https_port: int) -> Iterator[dict]:
    """A rendered nginx prefix in a fresh temporary folder, removed afterwards."""
    # Not pytest's tmp_path: its parent is mode 0700, and nginx's worker processes (user `nobody` when the test
    # runs as root) must be able to read the static files.
    prefix = Path(tempfile.mkdtemp(prefix="rp-nginx-"))
    try:
        prefix.chmod(0o755)
        state = prefix / "state"
        static = prefix / "static"
        state.mkdir()
        (static / "css").mkdir(parents=True)
        (static / "css" / "app.4f2a9c.css").write_text("body { color: #123; }\n" * 200)
        (static / "js").mkdir()
        (static / "js" / "app.js").write_text("console.log('report platform');\n" * 200)
        ca_file = make_certificates(prefix / "certs")
        mime_types = Path("/etc/nginx/mime.types")
        if mime_types.exists():
            shutil.copy(mime_types, prefix / "mime.types")
        else:
            (prefix / "mime.types").write_text(
                "types { text/html html; text/css css; application/javascript js; application/json json; }\n"
            )
        values = {
            "NGINX_API_UPSTREAM": upstream,
            "NGINX_RESOLVER": "127.0.0.1",
            "NGINX_HTTP_PORT": str(http_port),
            "NGINX_HTTPS_PORT": str(https_port),
            "NGINX_PUBLIC_HTTPS_PORT": str(https_port),
            "NGINX_CERT_DIR": str(prefix / "certs"),
            "NGINX_STATIC_ROOT": str(static),
            "NGINX_STATE_DIR": str(state),
        }
        conf = prefix / "nginx.conf"
        conf.write_text(render(TEMPLATE.read_text(), values))
        yield {"prefix": prefix, "conf": conf, "ca_file": ca_file, "http_port": http_port, "https_port": https_port}
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def wait_for_port(port: int, process: subprocess.Popen, log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nginx exited with {process.returncode}:\n{log.read_text()}", pytrace=False)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nginx did not listen on 127.0.0.1:{port} in time:\n{log.read_text()}", pytrace=False)


@contextmanager
def running_nginx(site: dict) -> Iterator[None]:
    log = site["prefix"] / "nginx.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [nginx_binary(), "-e", "stderr", "-p", str(site["prefix"]), "-c", str(site["conf"]), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 15
            wait_for_port(site["http_port"], process, log, deadline)
            wait_for_port(site["https_port"], process, log, deadline)
            yield
        finally:
            process.terminate()  # SIGTERM: fast shutdown of master and workers
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the group this test started (start_new_session)
                process.wait(timeout=10)


class RecordingUpstream(ThreadingHTTPServer):
    """Stands in for gunicorn: records what nginx forwards, answers with JSON, sets the headers Django sets."""

    daemon_threads = True

    def __init__(self) -> None:
        self.requests: list[dict] = []
        super().__init__(("127.0.0.1", 0), UpstreamHandler)


class UpstreamHandler(BaseHTTPRequestHandler):
    server: RecordingUpstream

    def _answer(self, body_length: int = 0) -> None:
        record = {
            "method": self.command,
            "path": self.path,
            "headers": {name.lower(): value for name, value in self.headers.items()},
            "body_length": body_length,
        }
        self.server.requests.append(record)
        payload = json.dumps({"upstream": "ok", "path": self.path, "body_length": body_length}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        # Django's SecurityMiddleware / RequestIdMiddleware would send these too; nginx must not double them.
        self.send_header("Strict-Transport-Security", "max-age=60")
        self.send_header("X-Request-ID", "set-by-upstream")
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        remaining = int(self.headers.get("Content-Length", "0"))
        received = 0
        while remaining:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            received += len(chunk)
            remaining -= len(chunk)
        self._answer(received)

    def log_message(self, format: str, *args) -> None:  # keep test output quiet
        return


@contextmanager
def recording_upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def tls_context(ca_file: Path, *, alpn: list[str], maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))  # verifies the chain and the 127.0.0.1 SAN
    context.set_alpn_protocols(alpn)
    if maximum is not None:
        context.maximum_version = maximum
    return context


def https_request(site: dict, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    connection = http.client.HTTPSConnection(
        "127.0.0.1",
        site["https_port"],
        timeout=TIMEOUT,
        context=tls_context(site["ca_file"], alpn=["http/1.1"]),
    )
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


# --- tests --------------------------------------------------------------------------------------------------------


def test_template_placeholders_are_documented_and_leave_nginx_variables_alone():
    template = TEMPLATE.read_text()
    placeholders = set(re.findall(r"\$\{(NGINX_\w+)\}", template))
    header = template.split("\nworker_processes", 1)[0]
    for name in placeholders:
        assert f"#   {name} " in header, f"{name} is not documented in the header comment"
    rendered = render(template, dict.fromkeys(placeholders, "X"))
    assert "NGINX_" not in rendered.split("\nworker_processes", 1)[1]
    for variable in ("$host", "$request_uri", "$remote_addr", "$request_id", "$http_x_request_id"):
        assert variable in rendered
    assert "client_max_body_size 20m;" in template
    assert "CSV_MAX_UPLOAD_BYTES" in template


def test_rendered_config_passes_nginx_t():
    with nginx_prefix(upstream="127.0.0.1:9", http_port=free_port(), https_port=free_port()) as site:
        result = subprocess.run(
            [nginx_binary(), "-e", "stderr", "-t", "-p", str(site["prefix"]), "-c", str(site["conf"])],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert "test is successful" in result.stderr


def test_nginx_terminates_tls_redirects_http_and_proxies_to_the_upstream():
    with (
        recording_upstream() as upstream,
        nginx_prefix(
            upstream=f"127.0.0.1:{upstream.server_address[1]}", http_port=free_port(), https_port=free_port()
        ) as site,
        running_nginx(site),
    ):
        # Plain HTTP: a permanent redirect to the same URL on HTTPS, nothing reaches the upstream.
        connection = http.client.HTTPConnection("127.0.0.1", site["http_port"], timeout=TIMEOUT)
        try:
            connection.request("GET", "/tests/?rc=RC1&status=fail")
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
        assert response.status == 301
        assert response.getheader("Location") == f"https://127.0.0.1:{site['https_port']}/tests/?rc=RC1&status=fail"
        assert upstream.requests == []

        # TLS: 1.2 or 1.3 only, HTTP/2 offered through ALPN, certificate chain verified.
        context = tls_context(site["ca_file"], alpn=["h2", "http/1.1"])
        with (
            socket.create_connection(("127.0.0.1", site["https_port"]), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert tls.selected_alpn_protocol() == "h2"
        tls12 = tls_context(site["ca_file"], alpn=["http/1.1"], maximum=ssl.TLSVersion.TLSv1_2)
        with (
            socket.create_connection(("127.0.0.1", site["https_port"]), timeout=TIMEOUT) as raw,
            tls12.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() == "TLSv1.2"

        # HTTPS: proxied to the upstream, with the forwarding headers the app relies on.
        response, body = https_request(
            site, "GET", "/api/v1/tests?page=2", headers={"X-Request-ID": "req-abc.123", "X-Forwarded-For": "6.6.6.6"}
        )
        assert response.status == 200
        assert json.loads(body) == {"upstream": "ok", "path": "/api/v1/tests?page=2", "body_length": 0}
        assert response.headers.get_all("Strict-Transport-Security") == [HSTS]
        assert response.headers.get_all("X-Request-ID") == ["req-abc.123"]
        assert response.getheader("Server") == "nginx"  # server_tokens off: no version
        seen = upstream.requests[-1]["headers"]
        assert seen["x-forwarded-proto"] == "https"
        assert seen["x-forwarded-for"] == "127.0.0.1"  # the client's own value is not trusted
        assert seen["x-real-ip"] == "127.0.0.1"
        assert seen["x-request-id"] == "req-abc.123"
        assert seen["host"] == "127.0.0.1"

        # Without (or with a malformed) X-Request-ID nginx makes one, and the same id goes both ways.
        for headers in ({}, {"X-Request-ID": "bad id\twith spaces"}):
            response, _ = https_request(site, "GET", "/healthz", headers=headers)
            assert response.status == 200
            generated = response.getheader("X-Request-ID")
            assert re.fullmatch(r"[0-9a-f]{32}", generated), generated
            assert upstream.requests[-1]["headers"]["x-request-id"] == generated

        # Uploads: exactly 20 MiB passes through, one byte more is refused by nginx with 413.
        response, body = https_request(
            site, "POST", "/api/v1/imports/csv", body=b"x" * UPLOAD_LIMIT, headers={"Content-Type": "text/csv"}
        )
        assert response.status == 200
        assert json.loads(body)["body_length"] == UPLOAD_LIMIT
        requests_before = len(upstream.requests)
        connection = http.client.HTTPSConnection(
            "127.0.0.1", site["https_port"], timeout=TIMEOUT, context=tls_context(site["ca_file"], alpn=["http/1.1"])
        )
        try:
            connection.putrequest("POST", "/api/v1/imports/csv")
            connection.putheader("Content-Length", str(UPLOAD_LIMIT + 1))
            connection.endheaders()
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
        assert response.status == 413
        assert len(upstream.requests) == requests_before

        # Static files: served by nginx itself, cached for a year, still with HSTS, gzip for text types.
        requests_before = len(upstream.requests)
        response, body = https_request(site, "GET", "/static/css/app.4f2a9c.css")
        assert response.status == 200
        assert body.startswith(b"body { color: #123; }")
        assert "immutable" in response.getheader("Cache-Control")
        assert "max-age=31536000" in response.getheader("Cache-Control")
        assert response.headers.get_all("Strict-Transport-Security") == [HSTS]
        response, _ = https_request(site, "GET", "/static/js/app.js", headers={"Accept-Encoding": "gzip"})
        assert response.status == 200
        assert response.getheader("Content-Encoding") == "gzip"
        response, _ = https_request(site, "GET", "/static/missing.css")
        assert response.status == 404
        assert len(upstream.requests) == requests_before


def test_the_access_log_is_json_and_masks_one_time_keys_in_urls():
    with (
        recording_upstream() as upstream,
        nginx_prefix(
            upstream=f"127.0.0.1:{upstream.server_address[1]}", http_port=free_port(), https_port=free_port()
        ) as site,
        running_nginx(site),
    ):
        https_request(site, "GET", "/accounts/password/reset/key/3-s3cr3tt0ken/?next=/")
        https_request(site, "GET", "/accounts/confirm-email/MTpjb25maXJt/")
        https_request(site, "GET", "/tests/?rc=RC1")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            lines = [
                json.loads(line)
                for line in (site["prefix"] / "nginx.log").read_text().splitlines()
                if line.startswith("{")
            ]
            if len(lines) >= 3:
                break
            time.sleep(0.05)
        uris = [line["uri"] for line in lines]
        assert "/accounts/password/reset/key/[redacted]/?next=/" in uris
        assert "/accounts/confirm-email/[redacted]/" in uris
        assert "/tests/?rc=RC1" in uris
        text = (site["prefix"] / "nginx.log").read_text()
        assert "s3cr3tt0ken" not in text and "MTpjb25maXJt" not in text
        assert upstream.requests[0]["path"] == "/accounts/password/reset/key/3-s3cr3tt0ken/?next=/"  # unchanged
