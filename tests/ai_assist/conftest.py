"""Fixtures for the AI gateway tests: the loopback fake OpenAI server, provider settings, release data."""

from __future__ import annotations

import pytest

from tests.ai_assist.fake_openai import FakeOpenAI


@pytest.fixture(autouse=True)
def _fresh_ai_config():
    """Each test reads prices and budgets from its own database (the per-process caches would keep the last test's)."""
    from ai_assist.budgets import budget_cache_clear, budget_warned_forget
    from ai_assist.pricing import price_cache_clear

    price_cache_clear()
    budget_cache_clear()
    budget_warned_forget()
    yield
    price_cache_clear()
    budget_cache_clear()


@pytest.fixture(scope="session")
def fake_openai_server():
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def fake_openai(fake_openai_server, settings):
    """The fake provider, reset, with the gateway pointed at it through the real `openai` SDK."""
    fake_openai_server.reset()
    settings.AI_PROVIDER = "openai"
    settings.AI_MODEL = "gpt-4o-mini"
    settings.OPENAI_BASE_URL = fake_openai_server.url
    settings.OPENAI_API_KEY = "sk-test-fake-key-for-loopback-only"
    settings.AI_REQUEST_TIMEOUT_SECONDS = 5.0
    settings.AI_RETRY_BACKOFF_SECONDS = 0.0
    settings.AI_MAX_RETRIES = 2
    yield fake_openai_server
    fake_openai_server.reset()


@pytest.fixture
def release_data(db, reviewer):
    """A suite, two RCs, a case with history and a failed run on the newer RC."""
    from releases.models import ReleaseCandidate, TestCase, TestRun, TestSuite

    suite = TestSuite.objects.create(name="Login", product="Portal", description="Sign-in flows")
    rc1 = ReleaseCandidate.objects.create(name="RC-2026.11.1", sequence=1)
    rc2 = ReleaseCandidate.objects.create(name="RC-2026.11.2", sequence=2)
    case = TestCase.objects.create(
        suite=suite,
        key="LOGIN-001",
        title="Sign in with a valid password",
        category="auth",
        owner="dana",
        priority=1,
        tags=["smoke"],
    )
    other = TestCase.objects.create(
        suite=suite, key="LOGIN-002", title="Sign in with MFA", category="auth", owner="lee", priority=2
    )
    common = {"suite": suite, "category": "auth"}
    TestRun.objects.create(case=case, release_candidate=rc1, status="pass", owner="dana", **common)
    failed = TestRun.objects.create(
        case=case,
        release_candidate=rc2,
        status="fail",
        owner="dana",
        mantis_ids=[4711],
        notes="Timeout after 30 s on submit; contact dana.smith@example.com, +44 20 7946 0958",
        **common,
    )
    other_failed = TestRun.objects.create(
        case=other, release_candidate=rc2, status="fail", owner="lee", notes="500 from /session", **common
    )
    return {
        "suite": suite,
        "rc1": rc1,
        "rc2": rc2,
        "case": case,
        "other": other,
        "run": failed,
        "other_run": other_failed,
    }
