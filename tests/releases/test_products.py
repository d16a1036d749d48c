"""Two products with interleaved RCs: every page, the API and every comparison stays in its product."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from releases import product_scope, selectors, services
from releases.models import ReleaseCandidate, TestRun

pytestmark = pytest.mark.django_db

API = "/api/v1"


@pytest.fixture
def two_products(reviewer, suite, make_case, record):
    """Web Shop and Mobile App with RCs created in turn (shop-1, app-1, shop-2, app-2, shop-3 (planned))."""
    shop_suite = suite  # Checkout, Web Shop
    app_suite = services.suite_create(name="Sync", product="Mobile App", actor=reviewer)

    def rc(name, product, state=ReleaseCandidate.State.TESTING):
        return services.release_candidate_create(name=name, product=product, state=state, actor=reviewer)

    shop1 = rc("shop-1", "Web Shop", ReleaseCandidate.State.RELEASED)
    app1 = rc("app-1", "Mobile App", ReleaseCandidate.State.RELEASED)
    shop2 = rc("shop-2", "Web Shop")
    app2 = rc("app-2", "Mobile App")
    shop3 = rc("shop-3", "Web Shop", ReleaseCandidate.State.PLANNED)
    shop_case = make_case(suite=shop_suite, key="SHOP-1", priority=1)
    app_case = make_case(suite=app_suite, key="APP-1", priority=1)
    record(shop_case, shop1, "pass")
    record(shop_case, shop2, "fail")
    record(app_case, app1, "fail")
    record(app_case, app2, "pass")
    return {
        "shop_suite": shop_suite,
        "app_suite": app_suite,
        "shop1": shop1,
        "app1": app1,
        "shop2": shop2,
        "app2": app2,
        "shop3": shop3,
        "shop_case": shop_case,
        "app_case": app_case,
    }


def test_it_picks_the_default_rc_and_the_previous_rc_within_a_product(two_products):
    data = two_products
    # shop-3 is newer but planned: the newest RC in testing wins.
    assert selectors.release_candidate_current(product="Web Shop") == data["shop2"]
    assert selectors.release_candidate_current(product="Mobile App") == data["app2"]
    assert selectors.release_candidate_previous(release_candidate=data["shop2"]) == data["shop1"]
    assert selectors.release_candidate_previous(release_candidate=data["app2"]) == data["app1"]
    ReleaseCandidate.objects.filter(product="Web Shop").update(state=ReleaseCandidate.State.RELEASED)
    assert selectors.release_candidate_current(product="Web Shop") == data["shop3"]  # else the newest
    assert [rc.name for rc in selectors.release_candidate_list(product="Mobile App")] == ["app-1", "app-2"]
    assert selectors.products_list() == ["Mobile App", "Web Shop"]


def test_trends_deltas_flaky_windows_and_the_gate_never_mix_products(two_products):
    data = two_products
    trend = selectors.pass_rate_trend(product="Web Shop")
    assert [point["release_candidate"] for point in trend] == ["shop-1", "shop-2", "shop-3"]
    assert [point["pass_rate"] for point in trend] == [100.0, 0.0, None]
    # Coverage beside it, against the product's one live case: run in shop-1 and shop-2, not yet in shop-3.
    assert [(point["coverage"], point["not_run"]) for point in trend] == [(100.0, 0), (100.0, 0), (0.0, 1)]
    delta = selectors.rc_delta(release_candidate=data["app2"])
    assert delta["baseline"]["name"] == "app-1" and [item["key"] for item in delta["fixed"]] == ["APP-1"]
    assert delta["warnings"] == []
    with pytest.raises(services.ValidationFailed) as refused:
        selectors.rc_delta(release_candidate=data["app2"], baseline=data["shop1"])
    assert refused.value.code == "baseline_other_product"
    itself = selectors.rc_delta(release_candidate=data["app2"], baseline=data["app2"])
    assert itself["warnings"] and "compared with itself" in itself["warnings"][0]
    flaky_history = selectors.flaky_cases(release_candidate=data["shop2"], window=5, min_flips=1)
    assert [step["release_candidate"] for step in flaky_history[0]["history"]] == ["shop-1", "shop-2"]
    gate = selectors.release_gate(release_candidate=data["shop2"])
    assert gate["baseline"] == "shop-1" and gate["new_p1_failures"] == ["SHOP-1"]
    summary = selectors.quality_summary(release_candidate=data["shop2"])
    assert [row["name"] for row in summary["by_suite"]] == ["Checkout"]
    assert summary["totals"]["in_scope"] == 1 and summary["release_candidate"]["product"] == "Web Shop"


def test_a_run_for_an_rc_of_another_product_is_refused_with_a_code(two_products, reviewer, reviewer_client):
    data = two_products
    runs_before = TestRun.objects.count()
    events_before = AuditEvent.objects.filter(action="run.record").count()
    with pytest.raises(services.ValidationFailed) as single:
        services.test_run_record(case=data["shop_case"], release_candidate=data["app2"], status="pass", actor=reviewer)
    assert single.value.code == "rc_product_mismatch"
    with pytest.raises(services.ValidationFailed) as bulk:
        services.test_run_bulk_record(
            cases=[data["shop_case"], data["app_case"]], release_candidate=data["app2"], status="pass", actor=reviewer
        )
    assert bulk.value.code == "rc_product_mismatch"
    response = reviewer_client.post(
        f"{API}/tests/{data['shop_case'].pk}/runs", {"rc": "app-2", "status": "pass"}, content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "rc_product_mismatch"
    page = reviewer_client.post(
        reverse("releases:run_record", kwargs={"pk": str(data["shop_case"].pk)}),
        {"release_candidate": str(data["app2"].pk), "status": "pass"},
    )
    assert page.status_code == 400 and b"rc_product_mismatch" in page.content
    assert TestRun.objects.count() == runs_before
    assert AuditEvent.objects.filter(action="run.record").count() == events_before


def test_every_page_stays_in_the_chosen_product_and_remembers_it(two_products, reviewer_client):
    data = two_products
    dashboard = reverse("releases:dashboard")
    app = reviewer_client.get(dashboard, {"product": "Mobile App"}).content.decode()
    assert "Quality dashboard · app-2" in app and "shop-2" not in app
    assert 'id="product-chooser"' in app and '<option value="Mobile App" selected>' in app
    # Remembered: the next page without ?product= stays in Mobile App.
    assert reviewer_client.session[product_scope.SESSION_KEY] == "Mobile App"
    grid = reviewer_client.get(reverse("releases:run_grid")).content.decode()
    assert "APP-1" in grid and "SHOP-1" not in grid and "shop-" not in grid
    cases = reviewer_client.get(reverse("releases:case_list")).content.decode()
    assert "APP-1" in cases and "SHOP-1" not in cases
    for name in ("rc_delta", "flaky_cases", "rc_list", "suite_list"):
        body = reviewer_client.get(reverse(f"releases:{name}")).content.decode()
        assert "shop-2" not in body and "Checkout" not in body.split("<main>", 1)[1], name
    # The case page offers its own product's RCs and opens on its current RC.
    case_page = reviewer_client.get(reverse("releases:case_detail", kwargs={"pk": str(data["shop_case"].pk)}))
    form = case_page.content.decode().split('name="release_candidate"', 1)[1].split("</select>", 1)[0]
    assert f'value="{data["shop2"].pk}" selected' in form and "app-" not in form
    # An RC in the URL decides the product.
    shop = reviewer_client.get(dashboard, {"rc": "shop-1"}).content.decode()
    assert '<option value="Web Shop" selected>' in shop
    unknown = reviewer_client.get(dashboard, {"product": "Nope"})
    assert unknown.status_code == 400 and b"unknown_product" in unknown.content


def test_the_quality_api_answers_for_one_product(two_products, viewer_client):
    body = viewer_client.get(f"{API}/metrics/quality", {"product": "Mobile App"}).json()
    assert body["release_candidate"]["name"] == "app-2" and body["release_candidate"]["product"] == "Mobile App"
    assert [point["release_candidate"] for point in body["trend"]] == ["app-1", "app-2"]
    assert body["delta"]["baseline"]["name"] == "app-1"
    assert body["totals"]["in_scope"] == 1 and body["totals"]["coverage"] == 100.0
    mixed = viewer_client.get(f"{API}/metrics/quality", {"rc": "app-2", "baseline": "shop-1"})
    assert mixed.status_code == 400 and mixed.json()["error"]["code"] == "baseline_other_product"
    wrong_suite = viewer_client.get(
        f"{API}/metrics/quality", {"rc": "app-2", "suite": str(two_products["shop_suite"].pk)}
    )
    assert wrong_suite.status_code == 400 and wrong_suite.json()["error"]["code"] == "suite_other_product"
    unknown = viewer_client.get(f"{API}/metrics/quality", {"product": "Nope"})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_product"


def test_comparing_an_rc_with_itself_on_the_delta_page_warns(two_products, viewer_client):
    body = viewer_client.get(reverse("releases:rc_delta"), {"rc": "app-2", "baseline": "app-2"}).content.decode()
    assert 'data-warning="same-rc"' in body and "compared with itself" in body
    other = viewer_client.get(reverse("releases:rc_delta"), {"rc": "app-2", "baseline": "shop-1"})
    assert other.status_code == 400 and b"baseline_other_product" in other.content


def test_a_new_rc_takes_a_product_from_the_suites_products(two_products, reviewer_client):
    url = reverse("releases:rc_create")
    assert reviewer_client.post(url, {"name": "app-3", "state": "testing", "product": "Mobile App"}).status_code == 302
    assert ReleaseCandidate.objects.get(name="app-3").product == "Mobile App"
    refused = reviewer_client.post(url, {"name": "x-1", "state": "testing", "product": "Nope"})
    assert refused.status_code == 400 and not ReleaseCandidate.objects.filter(name="x-1").exists()
    page = reviewer_client.get(reverse("releases:rc_list"), {"product": "Mobile App"}).content.decode()
    assert '<option value="Mobile App" selected>' in page.split('name="product"', 2)[2]


def test_the_admin_lists_rcs_without_a_product_and_sets_one(two_products, admin_client):
    orphan = ReleaseCandidate.objects.create(name="legacy-1", sequence=999)
    changelist = reverse("admin:releases_releasecandidate_changelist")
    listed = admin_client.get(changelist, {"product": "__none__"}).content.decode()
    assert "legacy-1" in listed and "shop-2" not in listed
    change = reverse("admin:releases_releasecandidate_change", args=[orphan.pk])
    response = admin_client.post(change, {"name": "legacy-1", "product": "Web Shop", "state": "released"})
    assert response.status_code == 302
    assert ReleaseCandidate.objects.get(pk=orphan.pk).product == "Web Shop"
    event = AuditEvent.objects.filter(action="rc.update").order_by("-sequence").first()
    assert event.metadata["after"]["product"] == "Web Shop"


def test_the_api_lists_and_creates_rcs_of_a_product(two_products, reviewer_client, viewer):
    from django.test import Client

    viewer_client = Client()
    viewer_client.force_login(viewer)
    listed = viewer_client.get(f"{API}/release-candidates", {"product": "Mobile App"}).json()
    assert [rc["name"] for rc in listed] == ["app-1", "app-2"] and {rc["product"] for rc in listed} == {"Mobile App"}
    created = reviewer_client.post(
        f"{API}/release-candidates", {"name": "app-3", "product": "Mobile App"}, content_type="application/json"
    )
    assert created.status_code == 201 and created.json()["product"] == "Mobile App"
    assert selectors.release_candidate_current(product="Mobile App").name == "app-3"
    unknown = reviewer_client.post(
        f"{API}/release-candidates", {"name": "x-1", "product": "Nope"}, content_type="application/json"
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_product"
    refused = viewer_client.post(
        f"{API}/release-candidates", {"name": "x-2", "product": "Mobile App"}, content_type="application/json"
    )
    assert refused.status_code == 403 and not ReleaseCandidate.objects.filter(name__in=["x-1", "x-2"]).exists()
    assert AuditEvent.objects.filter(action="rc.create", outcome="denied").count() == 1


def test_export_rc_choice_report_filters_and_suggestions_stay_in_the_product(
    two_products, make_case, record, admin_client, reviewer
):
    from reports.models import Report

    data = two_products
    mobile = make_case(suite=data["app_suite"], key="APP-2", owner="mo@example.com", category="sync")
    record(mobile, data["app2"], "pass")
    Report.objects.bulk_create(
        [
            Report(release_candidate=data["shop2"], release_candidate_name="shop-2", generated_by=reviewer),
            Report(release_candidate=data["app2"], release_candidate_name="app-2", generated_by=reviewer),
        ]
    )
    # The imports page exports runs of the chosen product's RCs only.
    imports = admin_client.get(reverse("imports:import_list"), {"product": "Mobile App"}).content.decode()
    export = imports.split('id="export-rc"', 1)[1].split("</select>", 1)[0]
    assert "app-1" in export and "app-2" in export and "shop-" not in export
    # The reports list shows the product's reports, and its filter offers the product's RCs and suites.
    reports = admin_client.get(reverse("reports:report_list")).content.decode()  # remembered: Mobile App
    rc_filter = reports.split('name="release_candidate"', 1)[1].split("</select>", 1)[0]
    assert "app-2" in rc_filter and "shop-" not in rc_filter and "Checkout" not in reports.split("<main>", 1)[1]
    assert reports.count('href="/reports/') >= 1 and "shop-2" not in reports.split("<main>", 1)[1]
    # Naming another product's RC switches the list to that product.
    shop = admin_client.get(reverse("reports:report_list"), {"release_candidate": str(data["shop2"].pk)})
    assert "shop-2" in shop.content.decode() and admin_client.session[product_scope.SESSION_KEY] == "Web Shop"
    # Owner and category suggestions come from the product's RCs.
    assert selectors.distinct_values(product="Mobile App") == {
        "owners": ["alice@example.com", "mo@example.com"],
        "categories": ["cart", "sync"],
    }
    assert selectors.distinct_values(product="Web Shop") == {"owners": ["alice@example.com"], "categories": ["cart"]}
    cases = admin_client.get(reverse("releases:case_list"), {"product": "Web Shop"}).content.decode()
    assert "alice@example.com" in cases and "mo@example.com" not in cases
