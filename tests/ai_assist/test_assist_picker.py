"""The assistant opens on a picker (RC, case or run, task) when its subject is not chosen yet, and the usage page
prints quota resets for people (issue 15)."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_it_opens_on_a_run_picker_listing_the_rcs_failing_runs(viewer_client, release_data):
    page = viewer_client.get(reverse("ai_assist:assist"))
    body = page.content.decode()
    assert page.status_code == 200 and 'id="ai-picker"' in body and "Pick a failing run" in body
    assert "This task needs a run." not in body and 'id="ai-context-error"' not in body
    assert f"?task=triage_failure&run={release_data['run'].pk}" in body
    assert f"?task=triage_failure&run={release_data['other_run'].pk}" in body
    older = viewer_client.get(reverse("ai_assist:assist"), {"rc": str(release_data["rc1"].pk)}).content.decode()
    assert "No failing runs in RC-2026.11.1." in older


def test_it_offers_cases_for_case_tasks_and_rcs_for_rc_tasks(viewer_client, release_data):
    cases = viewer_client.get(reverse("ai_assist:assist"), {"task": "draft_steps", "q": "LOGIN-002"}).content.decode()
    assert "Pick a case" in cases and f"task=draft_steps&case={release_data['other'].pk}" in cases
    assert f'case={release_data["case"].pk}"' not in cases
    rcs = viewer_client.get(reverse("ai_assist:assist"), {"task": "summarise_rc"}).content.decode()
    assert "Pick an RC" in rcs and f'<option value="{release_data["rc2"].pk}"' in rcs
    chosen = viewer_client.get(reverse("ai_assist:assist"), {"task": "summarise_rc", "rc": release_data["rc2"].pk})
    assert 'id="ai-ask-form"' in chosen.content.decode() and 'id="ai-picker"' not in chosen.content.decode()


def test_it_still_reports_a_subject_that_does_not_exist(viewer_client, release_data):
    body = viewer_client.get(reverse("ai_assist:assist"), {"run": "0" * 24}).content.decode()
    assert 'id="ai-context-error"' in body and 'id="ai-picker"' not in body


def test_it_prints_quota_resets_for_people(viewer_client, release_data):
    body = viewer_client.get(reverse("ai_assist:usage")).content.decode()
    quota = body[body.index('id="ai-quota"') :].split("</ul>")[0]
    assert "resets in " in quota and " UTC</time>" in quota
    assert "+00:00)" not in quota  # no raw ISO time in the text
