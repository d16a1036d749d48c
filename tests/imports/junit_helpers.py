"""Helpers for the JUnit import tests: real reports produced by pytest in a subprocess, committed fixtures, and
uploads through the service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "junit"

# A small test module with every outcome pytest reports: pass, fail, error in setup, skip, xfail, xpass,
# parametrised ids with spaces, and a class.
SAMPLE_MODULE = """
import pytest


@pytest.fixture
def broken():
    raise RuntimeError("database at 10.0.0.7:5432 refused connection 42")


def test_adds():
    assert 1 + 1 == 2


def test_total_is_wrong():
    order = {"id": 4711, "total": 0.1 + 0.2}
    assert order["total"] == 0.3, f"total of order {order['id']} is wrong"


def test_needs_database(broken):
    pass


@pytest.mark.skip(reason="coupon service not deployed")
def test_coupon():
    pass


@pytest.mark.xfail(reason="known rounding bug")
def test_rounding():
    assert round(2.675, 2) == 2.68


@pytest.mark.parametrize("country", ["DE", "United States"])
def test_ships(country):
    assert country


class TestCart:
    def test_empty(self):
        assert [] == []

    def test_lookup(self):
        raise KeyError("sku-8d3f9a1b")
"""


def pytest_report(tmp_path: Path, *, family: str = "xunit2", module: str = SAMPLE_MODULE, name: str = "test_shop.py"):
    """Run pytest (this interpreter's, in a subprocess) on `module` and return the bytes of its --junitxml."""
    directory = tmp_path / f"sample_{family}"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(module)
    report = directory / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:django", "--no-cov",
         f"--junitxml={report}", "-o", f"junit_family={family}", "-o", "addopts=", str(directory / name)],
        cwd=directory,
        capture_output=True,
        check=False,
        timeout=120,
    )  # fmt: skip
    return report.read_bytes()


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()
