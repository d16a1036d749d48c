"""The issue's "done when": the CI-style script from the README, run as it is (sh + curl + pytest) against a live
server with a CI token, uploads a real pytest report; the dashboard then shows its pass rate and error signatures,
and the flaky page the case that passed on rerun."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts import services as account_services
from imports.services import junit_import_create
from releases.models import ReleaseCandidate, TestRun
from tests.imports.junit_helpers import SAMPLE_MODULE, fixture_bytes

README = Path(__file__).resolve().parents[2] / "README.md"


def _ci_script() -> str:
    text = README.read_text()
    section = text[text.index("## Test results from CI") :]
    return re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)


@pytest.mark.django_db(transaction=True)
def test_the_readme_ci_script_uploads_a_real_pytest_report(live_server, reviewer, client, tmp_path):
    _token, text = account_services.api_token_create(actor=reviewer, name="ci")
    (tmp_path / "test_shop.py").write_text(SAMPLE_MODULE)
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider -p no:django\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)  # the script's `python` is this interpreter (pytest installed)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "REPORT_PLATFORM_URL": live_server.url,
        "REPORT_PLATFORM_TOKEN": text,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        ["sh", "-c", _ci_script()], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"status": "succeeded"' in done.stdout or '"status":"succeeded"' in done.stdout
    rc = ReleaseCandidate.objects.get(name="2026.12-rc1")
    assert rc.product == "Web" and TestRun.objects.filter(release_candidate=rc).count() == 9

    # A Surefire report of the same RC with a pass on rerun: the flaky page lists it.
    junit_import_create(
        user=reviewer, uploads=[SimpleUploadedFile("s.xml", fixture_bytes("surefire-3.xml"))], rc=rc.name, product="Web"
    )
    client.force_login(reviewer)
    page = client.get(reverse("releases:dashboard") + f"?rc={rc.name}").content.decode()
    assert 'id="total-pass-rate"' in page
    assert re.search(r'id="total-pass-rate">\d+(\.\d+)?%', page)
    assert "AssertionError: total of order &lt;n&gt; is wrong" in page
    assert "distinct error" in page
    flaky = client.get(reverse("releases:flaky_cases") + f"?rc={rc.name}").content.decode()
    assert "retriesCheckout" in flaky
