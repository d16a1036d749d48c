"""Builders for release data: suites, cases, RCs and runs made through the services (so summaries stay true)."""

from __future__ import annotations

import itertools

import pytest

from releases import services
from releases.models import ReleaseCandidate, TestCase, TestSuite

_counter = itertools.count(1)


@pytest.fixture
def suite(reviewer) -> TestSuite:
    return services.suite_create(name="Checkout", product="Web Shop", description="Cart and payment.", actor=reviewer)


@pytest.fixture
def make_case(reviewer, suite):
    def factory(**overrides) -> TestCase:
        number = next(_counter)
        fields = {
            "suite": suite,
            "key": f"CASE-{number:04d}",
            "title": f"Case number {number}",
            "category": "cart",
            "owner": "alice@example.com",
            "priority": 3,
            "actor": reviewer,
        }
        fields.update(overrides)
        return services.case_create(**fields)

    return factory


@pytest.fixture
def make_rc(reviewer):
    """An RC of the `suite` fixture's product unless `product=` says otherwise."""

    def factory(name: str | None = None, **overrides) -> ReleaseCandidate:
        overrides.setdefault("product", "Web Shop")
        return services.release_candidate_create(name=name or f"rc-{next(_counter)}", actor=reviewer, **overrides)

    return factory


@pytest.fixture
def record(reviewer):
    def factory(case, rc, status, **extra):
        return services.test_run_record(case=case, release_candidate=rc, status=status, actor=reviewer, **extra)

    return factory
