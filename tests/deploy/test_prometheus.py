"""deploy/prometheus: the alert rules validate (`promtool check rules`), their unit tests pass (`promtool test
rules`), the example scrape config validates, and every metric the rules use is one the code exports.

Needs Debian's `prometheus` package for promtool (.ci/run installs it): without it these tests fail, they do not skip.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS_DIR / "alerts.yml"
REQUIRED_ALERTS = {
    "ErrorBudgetBurnFast",
    "ErrorBudgetBurnSlow",
    "LatencyP95High",
    "LoginFailureSpike",
    "AICostAnomaly",
    "AILatencyP95High",
    "AIModelUnpriced",
    "AIBudgetNearlyUsed",
    "AIBudgetExhausted",
    "StaleJobs",
}


def promtool() -> str:
    for candidate in (os.environ.get("PROMTOOL_BIN"), shutil.which("promtool"), "/usr/bin/promtool"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("promtool is missing: install Debian's prometheus package (.ci/run does).", pytrace=False)


def run(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_check_rules_accepts_the_alert_rules():
    result = run("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_check_rules_has_teeth(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        RULES.read_text().replace("rp:http_error_ratio:rate1h > (14.4", "rp:http_error_ratio:rate1h >> (14.4")
    )
    assert run("check", "rules", str(broken)).returncode != 0


def test_promtool_unit_tests_of_the_alerts_pass():
    result = run("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS_DIR / "alerts.test.yml").read_text()))
    assert {"LoginFailureSpike", "ErrorBudgetBurnFast", "LatencyP95High", "StaleJobs", "AICostAnomaly"} <= tested
    assert {"AIModelUnpriced", "AIBudgetNearlyUsed", "AIBudgetExhausted"} <= tested


def test_the_example_scrape_config_validates(tmp_path):
    token = tmp_path / "token"
    token.write_text("metrics-token\n")
    shutil.copy(RULES, tmp_path / "alerts.yml")
    config = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    config = config.replace("/etc/prometheus/report-platform-metrics-token", str(token))
    (tmp_path / "prometheus.yml").write_text(config)
    result = run("check", "config", "prometheus.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_required_alert_exists_with_a_severity_and_a_summary():
    alerts = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    assert set(alerts) >= REQUIRED_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"page", "ticket"}, name
        assert rule["annotations"]["summary"], name


def test_every_metric_the_rules_use_is_exported_by_the_code():
    """A renamed metric must not silently disable an alert: each rp_* name is declared in the apps' code, each
    django_* name in django-prometheus."""
    expressions = " ".join(rule["expr"] for rule in rules())
    names = set(re.findall(r"\b((?:rp|django)_[a-z_]+)\b", expressions))
    sources = "\n".join(
        path.read_text()
        for path in ROOT.glob("*/*.py")
        if ".venv" not in path.parts and path.parts[-2] not in ("tests", "benchmarks")
    )
    import django_prometheus

    library = "\n".join(path.read_text() for path in Path(django_prometheus.__file__).parent.rglob("*.py"))
    assert names, "no metric found in the rules"
    for name in sorted(names):
        base = re.sub(r"_(total|bucket|count|sum)$", "", name)
        haystack = library if name.startswith("django_") else sources
        candidates = {f'"{base}"', f'"{base}_total"', f'"{name}"'}
        assert any(candidate in haystack for candidate in candidates), f"{name} is not declared anywhere"
