"""Real Chromium: ask for a triage and watch the answer stream into the page, as text, with no CSP problems."""

from __future__ import annotations

import pytest

from ai_assist.models import AiUsageLog
from tests.conftest import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ANSWER = (
    "Likely cause: the session service times out under load since RC-2026.11.2. <b>Check</b> the gateway timeout, "
    "then the database pool size, then rerun LOGIN-001 and LOGIN-002 together."
)


def test_it_streams_a_triage_into_the_page(page, make_user, release_data, fake_openai):
    user = make_user("viewer")
    fake_openai.script([{"text": ANSWER, "chunk_delay": 0.06}])
    browser_login(page, user.email, user.raw_password)
    page.goto(f"/ai/assist/?task=triage_failure&run={release_data['run'].pk}")
    assert page.locator("#ai-subject").inner_text() == "LOGIN-001 on RC-2026.11.2"
    page.click("#ai-ask")
    # Part of the answer is on the page while the rest is still being generated.
    page.wait_for_function(
        "() => { const a = document.getElementById('ai-answer');"
        " return a.textContent.length > 0 && !a.hasAttribute('data-complete'); }"
    )
    partial = page.locator("#ai-answer").inner_text()
    page.wait_for_selector("#ai-answer[data-complete=true]")
    assert len(partial) < len(ANSWER)
    assert page.locator("#ai-answer").inner_text() == ANSWER  # shown as text: the <b> is not markup
    assert page.locator("#ai-answer b").count() == 0
    assert "gpt-4o-mini" in page.locator("#ai-meta").inner_text()
    assert page.locator("#ai-status").inner_text() == "Done"
    assert page.problems == []
    log = AiUsageLog.objects.get(user=user)
    assert (log.outcome, log.streamed, log.task_id) == ("success", True, "triage_failure")
    # The usage page draws its charts from the json_script data, under the same strict CSP.
    page.goto("/ai/usage/")
    page.wait_for_function("() => window.Chart && Chart.getChart('ai-chart-task') !== undefined")
    assert page.evaluate("Chart.getChart('ai-chart-task').data.labels") == ["triage_failure"]
    assert "triage_failure" in page.locator("#ai-by-task").inner_text()
    assert page.problems == []
