"""docker-compose.yml, the env file examples and the Dockerfile: structure and secrets, without Docker.

No docker compose on this machine and no network at test time: the file is validated against the Compose
Specification JSON schema vendored at deploy/compose-spec.schema.json (source and refresh: deploy/README.md).
Plain functions, no Django.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = ROOT / "deploy" / "compose-spec.schema.json"
ENV_DIR = ROOT / "deploy" / "env"
ENVIRONMENTS = ("dev", "stage", "prod")

# What the application reads from its environment (deploy/README.md lists them with their meaning).
APP_ENV_VARS = {
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_CSRF_TRUSTED_ORIGINS",
    "MONGODB_URI",
    "REDIS_URL",
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_HOST_USER",
    "EMAIL_HOST_PASSWORD",
    "EMAIL_USE_TLS",
    "DEFAULT_FROM_EMAIL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "AI_PROVIDER",
    "JWT_SIGNING_KEYS",
    "METRICS_TOKEN",
}
SECRET_VARS = {
    "DJANGO_SECRET_KEY",
    "MONGO_INITDB_ROOT_PASSWORD",
    "MONGO_APP_PASSWORD",
    "MONGODB_URI",
    "EMAIL_HOST_PASSWORD",
    "OPENAI_API_KEY",
    "JWT_SIGNING_KEYS",
    "METRICS_TOKEN",
    "MONGO_REPLICA_KEY",
}
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|SIGNING|PRIVATE|CREDENTIAL|_KEY$", re.IGNORECASE)


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def load_schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def validator() -> jsonschema.Draft7Validator:
    schema = load_schema()
    # The schema says draft-07 (its "$schema" URL lacks the trailing "#", so jsonschema can't infer it).
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", stripped)
        assert match, f"{path.name}:{number}: not VAR=value: {line!r}"
        name, value = match.groups()
        assert name not in values, f"{path.name}:{number}: {name} set twice"
        assert not (value[:1] in "\"'" and value[:1] and value.endswith(value[:1])), (
            f"{path.name}:{number}: quoted value (docker run --env-file would keep the quotes)"
        )
        values[name] = value
    return values


_INTERPOLATION = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value, env: dict[str, str]):
    """Compose-style interpolation of ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, $VAR and $$."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("plain"):
            return env.get(match.group("plain"), "")
        expression = match.group("braced")
        found = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])(.*))?", expression, re.DOTALL)
        assert found, f"unsupported interpolation ${{{expression}}}"
        name, operator, argument = found.groups()
        current = env.get(name)
        if operator in (":-", "-"):
            if current is None or (operator == ":-" and current == ""):
                return argument
            return current
        if operator in (":?", "?"):
            assert current is not None and (operator == "?" or current != ""), f"{name} is required: {argument}"
            return current
        return current or ""

    return _INTERPOLATION.sub(replace, value)


# --- schema -------------------------------------------------------------------------------------------------------


def test_vendored_schema_is_the_compose_specification():
    schema = load_schema()
    assert schema["title"] == "Compose Specification"
    assert {"service", "network", "volume", "healthcheck"} <= set(schema["definitions"])


def test_compose_file_matches_the_compose_specification_schema():
    errors = sorted(validator().iter_errors(load_compose()), key=lambda error: list(error.path))
    assert not errors, "\n".join(f"{list(error.path)}: {error.message}" for error in errors)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_compose_file_matches_the_schema_after_interpolation(environment):
    env = read_env_file(ENV_DIR / f"{environment}.env.example")
    rendered = interpolate(load_compose(), env)
    errors = list(validator().iter_errors(rendered))
    assert not errors, "\n".join(f"{list(error.path)}: {error.message}" for error in errors)
    assert rendered["services"]["api"]["env_file"] == f"deploy/env/{environment}.env"


def test_schema_validation_rejects_a_broken_file():
    """The schema check has teeth: unknown service keys and wrong types are reported."""
    broken = copy.deepcopy(load_compose())
    broken["services"]["redis"]["comand"] = ["redis-server"]
    broken["services"]["api"]["healthcheck"]["interval"] = 15
    messages = [error.message for error in validator().iter_errors(broken)]
    assert any("comand" in message for message in messages), messages
    assert any("15 is not of type 'string'" in message for message in messages), messages


# --- services -----------------------------------------------------------------------------------------------------


def test_required_services_exist():
    services = load_compose()["services"]
    assert {"api", "worker", "beat", "mongo", "redis", "nginx"} <= set(services)


def test_application_services_run_gunicorn_and_celery_from_the_local_image():
    services = load_compose()["services"]
    for name in ("api", "worker", "beat"):
        assert services[name]["build"]["dockerfile"] == "Dockerfile", name
        assert services[name]["env_file"] == "${ENV_FILE:-deploy/env/prod.env}", name
    assert services["api"]["command"][:2] == ["gunicorn", "report_platform.wsgi:application"]
    assert services["worker"]["command"][:6] == ["celery", "-A", "report_platform", "worker", "-l", "info"]
    assert services["beat"]["command"][:6] == ["celery", "-A", "report_platform", "beat", "-l", "info"]
    for name in ("api", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["mongo"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_healthchecks_for_api_mongo_and_redis():
    services = load_compose()["services"]
    for name in ("api", "mongo", "redis"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert "/app/deploy/healthcheck.py" in services["api"]["healthcheck"]["test"]
    assert "/healthz" in (ROOT / "deploy" / "healthcheck.py").read_text()
    assert services["redis"]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]


def test_redis_uses_append_only_file_persistence():
    redis = load_compose()["services"]["redis"]
    assert redis["image"] == "redis:7"
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_mongo_runs_a_replica_set_with_keyfile_and_auth():
    mongo = load_compose()["services"]["mongo"]
    assert mongo["image"] == "mongo:7.0"
    command = mongo["command"]
    assert command[command.index("--replSet") + 1] == "rs0"
    keyfile = command[command.index("--keyFile") + 1]
    assert keyfile.startswith("/data/configdb/"), "the keyfile must live in the persisted config volume"
    assert any(volume.endswith(":/data/db") for volume in mongo["volumes"])
    assert any(volume.endswith(":/data/configdb") for volume in mongo["volumes"])
    # Root credentials come from the env file, never from this file.
    assert "environment" not in mongo
    assert mongo["env_file"] == "${ENV_FILE:-deploy/env/prod.env}"
    # The healthcheck initiates the replica set when it is not initiated yet.
    test = mongo["healthcheck"]["test"]
    script_in_container = test[test.index("--file") + 1]
    mounts = dict(volume.rsplit(":", 2)[:2][::-1] for volume in mongo["volumes"] if volume.startswith("./"))
    script = (ROOT / mounts[script_in_container]).read_text()
    assert "replSetInitiate" in script and "NotYetInitialized" in script
    assert 'process.env.MONGO_REPLICA_SET_NAME || "rs0"' in script
    # Its entry point creates that keyfile (mode 400) before handing over to the image's entry point.
    entrypoint_script = (ROOT / mounts[mongo["entrypoint"][1]]).read_text()
    assert f"MONGO_KEYFILE:-{keyfile}" in entrypoint_script
    assert 'chmod 400 "$keyfile"' in entrypoint_script
    assert "exec docker-entrypoint.sh" in entrypoint_script


def test_nginx_terminates_tls_on_443_with_the_templated_config():
    nginx = load_compose()["services"]["nginx"]
    assert nginx["image"] == "nginx:1.27"
    targets = {str(port).rsplit(":", 1)[-1] for port in nginx["ports"]}
    assert {"443", "80"} <= targets
    volumes = nginx["volumes"]
    assert "./deploy/nginx/nginx.conf:/etc/nginx/templates/nginx.conf.template:ro" in volumes
    assert any(volume.endswith(":/etc/nginx/certs:ro") for volume in volumes)
    environment = nginx["environment"]
    assert environment["NGINX_ENVSUBST_OUTPUT_DIR"] == "/etc/nginx"
    assert environment["NGINX_API_UPSTREAM"] == "api:8000"
    template = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    placeholders = set(re.findall(r"\$\{(NGINX_[A-Z0-9_]+)\}", template))
    assert placeholders == {
        name for name in environment if name not in ("NGINX_ENVSUBST_OUTPUT_DIR", "NGINX_ENVSUBST_FILTER")
    }
    assert all(name.startswith(environment["NGINX_ENVSUBST_FILTER"]) for name in placeholders)


def test_volumes_for_data_media_and_static():
    compose = load_compose()
    assert {"mongo_data", "mongo_config", "redis_data", "media", "static"} <= set(compose["volumes"])
    services = compose["services"]
    assert "media:/srv/media" in services["api"]["volumes"]
    assert "media:/srv/media" in services["worker"]["volumes"]
    assert "static:/srv/static" in services["api"]["volumes"]
    assert "static:/srv/static:ro" in services["nginx"]["volumes"]


def test_datastores_are_not_published_and_sit_on_an_internal_network():
    compose = load_compose()
    for name in ("mongo", "redis"):
        assert "ports" not in compose["services"][name], name
        assert compose["services"][name]["networks"] == ["data"], name
    assert compose["networks"]["data"]["internal"] is True


# --- secrets ------------------------------------------------------------------------------------------------------


def _walk(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, str(index)))
    else:
        yield path, node


def test_no_literal_secrets_in_the_compose_file():
    compose = load_compose()
    text = COMPOSE_FILE.read_text()
    for service_name, service in compose["services"].items():
        environment = service.get("environment", {})
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) if "=" in item else (item, None) for item in environment)
        for name, value in environment.items():
            assert not SECRET_NAME.search(name), f"{service_name}: secret {name} belongs in the env file"
            assert name not in APP_ENV_VARS, f"{service_name}: {name} belongs in the env file"
            assert value is None or not str(value).startswith("change-me"), f"{service_name}: {name}"
    for path, value in _walk(compose):
        if isinstance(value, str):
            assert not re.search(r"(?i)(password|secret|token|api[_-]?key)\s*[=:]\s*[^$\s{]", value), path
            assert not re.search(r"mongodb(\+srv)?://[^/@\s]+:[^@\s]+@", value), f"credentials in URI at {path}"
            assert not re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", value), path
    assert "change-me" not in text


# --- env files ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_env_example_sets_everything_the_app_reads(environment):
    values = read_env_file(ENV_DIR / f"{environment}.env.example")
    missing = APP_ENV_VARS - set(values)
    assert not missing, f"{environment}: missing {sorted(missing)}"
    assert values["DJANGO_SETTINGS_MODULE"] == "report_platform.settings.production"
    assert values["ENV_FILE"] == f"deploy/env/{environment}.env"
    assert values["COMPOSE_PROJECT_NAME"] == f"report-platform-{environment}"
    assert {"MONGO_INITDB_ROOT_USERNAME", "MONGO_INITDB_ROOT_PASSWORD"} <= set(values)
    uri = values["MONGODB_URI"]
    assert "replicaSet=rs0" in uri and "@mongo:27017/" in uri
    assert f"{values['MONGO_APP_USERNAME']}:{values['MONGO_APP_PASSWORD']}@" in uri
    assert values["MONGODB_NAME"] == f"report_platform_{environment}"
    assert values["REDIS_URL"].startswith("redis://redis:6379/")
    assert values["TRUSTED_PROXY_IPS"] == values["NGINX_IPV4"]
    subnet_prefix = values["EDGE_SUBNET"].rsplit(".", 1)[0]
    assert values["NGINX_IPV4"].startswith(subnet_prefix + ".")
    assert (
        int(values["NGINX_IPV4"].rsplit(".", 1)[1])
        < 128
        <= int(values["EDGE_DYNAMIC_RANGE"].split("/")[0].rsplit(".", 1)[1])
    )


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_env_examples_hold_placeholders_not_secrets(environment):
    values = read_env_file(ENV_DIR / f"{environment}.env.example")
    for name in SECRET_VARS & set(values):
        assert "change-me" in values[name], f"{environment}: {name} must be a change-me placeholder"
    # Too short for production settings: a forgotten placeholder stops the app instead of running insecurely.
    assert len(values["DJANGO_SECRET_KEY"]) < 50


def test_environments_differ_only_in_values():
    keys = {environment: set(read_env_file(ENV_DIR / f"{environment}.env.example")) for environment in ENVIRONMENTS}
    assert keys["dev"] == keys["stage"] == keys["prod"]
    subnets = {read_env_file(ENV_DIR / f"{environment}.env.example")["EDGE_SUBNET"] for environment in ENVIRONMENTS}
    assert len(subnets) == len(ENVIRONMENTS), "environments sharing a host need distinct subnets"


def test_real_env_files_and_certificates_are_git_ignored():
    rules = (ROOT / "deploy" / ".gitignore").read_text().split()
    assert "/env/*.env" in rules
    assert "/certs/*" in rules


# --- Dockerfile ---------------------------------------------------------------------------------------------------


def test_dockerfile_builds_a_non_root_gunicorn_image_with_collected_static():
    dockerfile = (ROOT / "Dockerfile").read_text()
    instructions = [line for line in dockerfile.splitlines() if line and not line.startswith("#")]
    from_lines = [line for line in instructions if line.startswith("FROM ")]
    assert all(line.split()[1] == "python:3.11-slim" for line in from_lines)
    assert "pip install --no-cache-dir -r /app/requirements.txt" in dockerfile
    assert "DJANGO_SETTINGS_MODULE=report_platform.settings.production" in dockerfile
    assert "manage.py collectstatic --noinput" in dockerfile
    user_lines = [line for line in instructions if line.startswith("USER ")]
    assert user_lines and user_lines[-1].split()[1] not in ("root", "0")
    assert '"gunicorn", "report_platform.wsgi:application"' in dockerfile
    # The dummy key is only in the RUN step's environment, never an ENV/ARG baked into the image.
    assert not re.search(r"^(ENV|ARG)\b.*DJANGO_SECRET_KEY", dockerfile, re.MULTILINE)
    # Local env files and certificates never reach the image.
    assert "deploy/env/*.env" in dockerfile and "deploy/certs" in dockerfile


# --- metrics (Prometheus multiprocess files shared by api and worker) ----------------------------------------------


def test_api_and_worker_share_the_metrics_volume_under_distinct_host_names():
    services = load_compose()["services"]
    hostnames = set()
    for name in ("api", "worker", "beat"):
        service = services[name]
        assert service["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/srv/metrics", name
        assert "metrics:/srv/metrics" in service["volumes"], name
        hostnames.add(service["hostname"])
    assert len(hostnames) == 3, "metric files are named <hostname>-<pid>: host names must differ"
    assert "metrics" in load_compose()["volumes"]
    assert "--config" in services["api"]["command"] and "/app/deploy/gunicorn.conf.py" in services["api"]["command"]
    assert "--access-logfile" not in services["api"]["command"], "the app writes JSON access lines itself"


def test_the_entrypoint_clears_only_this_containers_old_metric_files(tmp_path):
    import socket
    import subprocess
    import sys

    host = socket.gethostname()
    mine = [tmp_path / f"counter_{host}-7.db", tmp_path / f"gauge_livesum_{host}-8.db"]
    others = [tmp_path / f"counter_{host}x-7.db", tmp_path / "counter_worker-7.db"]
    for path in mine + others:
        path.write_bytes(b"")
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    env.pop("STATIC_EXPORT_DIR", None)
    result = subprocess.run(
        ["sh", str(ROOT / "deploy" / "docker-entrypoint.sh"), "echo", "started"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"
    assert not any(path.exists() for path in mine)
    assert all(path.exists() for path in others)


def test_gunicorn_child_exit_drops_the_dead_workers_live_gauges(tmp_path, monkeypatch):
    import runpy
    import socket
    from types import SimpleNamespace

    host = socket.gethostname()
    live = tmp_path / f"gauge_livesum_{host}-4242.db"
    counter = tmp_path / f"counter_{host}-4242.db"
    live.write_bytes(b"")
    counter.write_bytes(b"")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    assert config["accesslog"] is None
    config["child_exit"](None, SimpleNamespace(pid=4242))
    assert not live.exists()
    assert counter.exists(), "counters of finished workers must keep counting in the totals"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build_context():
    rules = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "var", "media", "deploy/env/*.env", "deploy/certs/*"):
        assert entry in rules, entry
