"""Real Chromium walks the tester's, the manager's and the admin's journeys at desktop (1400x900) and phone
(390x844) size. Every page visited must have:

- no console error and no CSP violation (`securitypolicyviolation` events, recorded from the first script on);
- no horizontal overflow of the page (`document.documentElement.scrollWidth <= innerWidth`);
- on the phone, tap targets of at least 40 px for the visible buttons, links, summaries and fields of the main
  content and the header (links inside running text are exempt, as WCAG 2.5.8 exempts them).

The tester records a failure with Mantis ids from the keyboard, a bulk status and a CSV preview; the manager reads
the dashboard, the delta and the AI assistant's picker and answer; the admin the users page and the audit log.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from playwright.sync_api import expect

from releases import services
from releases.models import TestRun
from tests.conftest import browser_login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = {"desktop": {"width": 1400, "height": 900}, "phone": {"width": 390, "height": 844}}
MIN_TAP = 40

_RECORD_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__cspViolations.push(event.violatedDirective + " " + (event.blockedURI || "inline"));
});
"""

# The outermost elements reaching past the window's right edge (to say what overflows).
_WIDE_ELEMENTS = """
() => {
  const wide = [];
  for (const element of document.body.querySelectorAll("*")) {
    const box = element.getBoundingClientRect();
    const parentRight = element.parentElement.getBoundingClientRect().right;
    let scrolled = false;
    for (let up = element.parentElement; up && up !== document.body; up = up.parentElement) {
      if (["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(up).overflowX)) { scrolled = true; break; }
    }
    if (!scrolled && box.right > window.innerWidth + 1 && !(parentRight > window.innerWidth + 1)) {
      wide.push(element.tagName.toLowerCase() + "." + element.className + " right=" + Math.round(box.right));
    }
  }
  return wide.slice(0, 8);
}
"""

# Visible interactive elements smaller than the minimum; links in running text are exempt.
_SMALL_TARGETS = """
(minimum) => {
  const small = [];
  const selector = "main a[href], main button, main summary, main select, main input:not([type=hidden]), " +
    "main textarea, header a[href], header button";
  for (const element of document.querySelectorAll(selector)) {
    const box = element.getBoundingClientRect();
    const style = getComputedStyle(element);
    if (box.width === 0 || box.height === 0 || style.visibility === "hidden") { continue; }
    if (element.type === "checkbox" || element.type === "radio") { continue; }  // their labels are the targets
    if (element.closest("details:not([open])") && element.tagName !== "SUMMARY") { continue; }
    if (element.tagName === "A" && style.display === "inline") {
      const parent = element.parentElement;
      let text = parent.textContent;
      for (const link of parent.querySelectorAll("a")) { text = text.replace(link.textContent, ""); }
      if (text.replace(/[\\s·|,.:;()→←–-]/g, "").length >= 12) { continue; }  // a link inside a sentence
    }
    if (box.height < minimum || box.width < minimum) {
      const label = (element.textContent || element.name || "").trim().slice(0, 30);
      const size = Math.round(box.width) + "x" + Math.round(box.height);
      small.push(element.tagName.toLowerCase() + " '" + label + "' " + size);
    }
  }
  return small;
}
"""


class Walk:
    """One browser context at one size; `check()` asserts the page's health after each step."""

    def __init__(self, browser, live_server, size: str) -> None:
        self.size = size
        self.context = browser.new_context(base_url=live_server.url, viewport=VIEWPORTS[size])
        self.context.add_init_script(_RECORD_CSP)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.problems: list[str] = []
        self.page.on("console", lambda message: message.type == "error" and self.problems.append(message.text))
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))
        self.page.on("dialog", lambda dialog: dialog.accept())

    def visit(self, path: str) -> None:
        response = self.page.goto(path)
        assert response is not None and response.status < 400, (path, response and response.status)
        self.check(path)

    def check(self, where: str) -> None:
        page = self.page
        page.wait_for_load_state()
        violations = page.evaluate("window.__cspViolations || []")
        assert violations == [], (self.size, where, violations)
        assert self.problems == [], (self.size, where, self.problems)
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if widths[0] > widths[1]:
            wide = page.evaluate(_WIDE_ELEMENTS)
            raise AssertionError((self.size, where, "page wider than the window", widths, wide))
        if self.size == "phone":
            small = page.evaluate(_SMALL_TARGETS, MIN_TAP)
            assert small == [], (self.size, where, "tap targets under 40 px", small)

    @contextmanager
    def refused(self, status: int):
        """A step the server is meant to refuse with `status` (a form error): the browser's console lines about
        that response are expected; anything else still fails the walk."""
        before = len(self.problems)
        yield
        self.page.wait_for_load_state()
        during = self.problems[before:]
        expected = [text for text in during if f"status of {status}" in text or f"Error Code {status}" in text]
        assert expected, (self.size, "the refusal did not happen", during)
        self.problems[before:] = [text for text in during if text not in expected]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def walk(browser, live_server):
    walks: list[Walk] = []

    def start(size: str, user) -> Walk:
        journey = Walk(browser, live_server, size)
        walks.append(journey)
        browser_login(journey.page, user.email, user.raw_password)
        journey.check("after login")
        assert journey.page.url.endswith("/dashboard/"), journey.page.url
        return journey

    yield start
    for journey in walks:
        journey.close()


@pytest.fixture
def desk(make_user):
    """A product with two suites, two RCs and a dozen cases with runs: enough for every page to show data."""
    reviewer = make_user("reviewer")
    suites = [
        services.suite_create(name=name, product="Web Shop", description="", actor=reviewer)
        for name in ("Checkout", "Accounts")
    ]
    rc1 = services.release_candidate_create(name="2026.4-rc1", actor=reviewer)
    rc2 = services.release_candidate_create(name="2026.4-rc2", actor=reviewer)
    cases = [
        services.case_create(
            suite=suites[n % 2],
            key=f"WEB-{n:03d}",
            title=f"Customer flow number {n} with a longer title that wraps on a phone",
            category=("cart", "payment", "login")[n % 3],
            owner=("alice@example.com", "bob@example.com")[n % 2],
            priority=n % 4 + 1,
            actor=reviewer,
        )
        for n in range(1, 13)
    ]
    for index, case in enumerate(cases):
        services.test_run_record(case=case, release_candidate=rc1, status="pass", actor=reviewer)
        if index < 8:
            status = "fail" if index % 3 == 0 else "pass"
            services.test_run_record(
                case=case, release_candidate=rc2, status=status, mantis_ids=[4700 + index], actor=reviewer
            )
    return {"reviewer": reviewer, "rc": rc2, "cases": cases, "suites": suites}


@pytest.mark.parametrize("size", VIEWPORTS)
def test_the_testers_journey(walk, desk, size, tmp_path):
    tester = walk(size, desk["reviewer"])
    page = tester.page
    tester.visit("/cases/")
    # Filter with htmx, then go Back: the page comes back without CSP complaints.
    page.select_option("#f-rc", "2026.4-rc2")
    page.select_option("#f-status", "fail")
    page.click("form.filters button[type=submit]")
    expect(page.locator("#case-table")).to_contain_text("WEB-001")
    expect(page.locator("#case-table")).not_to_contain_text("WEB-002")
    tester.check("cases filtered")
    with page.expect_event("load"):  # htmx keeps no snapshots (no inline styles restored): Back reloads the page
        page.go_back()
    expect(page.locator("#f-status")).to_have_value("")
    tester.check("cases after Back")

    case = desk["cases"][10]  # no run in rc2 yet
    tester.visit(f"/cases/{case.pk}/")
    page.select_option("#id_release_candidate", label="2026.4-rc2")
    page.select_option("#id_status", "fail")
    page.fill("#id_mantis_ids", "abc")
    with tester.refused(400):
        page.click("#run-form button[type=submit]")
        expect(page.locator("#run-form .errorlist")).to_contain_text("is not a Mantis issue id")
    page.fill("#id_mantis_ids", "4811")
    page.click("#run-form button[type=submit]")
    expect(page.locator("#case-history")).to_contain_text("#4811")
    expect(page.locator("#run-form")).not_to_contain_text("is not a Mantis issue id")
    tester.check("case page after recording")

    # The grid: fail a case from the keyboard with a Mantis id and a note.
    tester.visit("/runs/grid/?rc=2026.4-rc2")
    target = desk["cases"][11]
    row = page.locator(f"#grid-row-{target.pk}")
    row.focus()
    page.keyboard.press("f")
    expect(row.locator("input[name=mantis_ids]")).to_be_focused()
    page.keyboard.type("4900, 4901")
    row.locator("input[name=notes]").fill("Card declined twice")
    row.locator("input[name=notes]").press("Enter")
    expect(page.locator(f"#grid-row-{target.pk} .grid-status")).to_contain_text("#4901")
    run = TestRun.objects.get(case=target, release_candidate=desk["rc"], is_latest=True)
    assert (run.status, list(run.mantis_ids), run.notes) == ("fail", [4900, 4901], "Card declined twice")
    tester.check("grid after a keyboard fail")

    # Bulk: the dialog is accepted; the result is said.
    tester.visit("/runs/grid/?rc=2026.4-rc2&q=WEB-01")
    expect(page.locator("form.bulk button[type=submit]")).to_have_text("Apply to 3 cases")
    page.select_option("#bulk-status", "pending")
    page.click("form.bulk button[type=submit]")
    expect(page.locator("#bulk-result")).to_have_text("Recorded Pending for 3 cases in 2026.4-rc2.")
    tester.check("grid after bulk")

    # Import: a file with a bad status is previewed with the bad cell marked.
    tester.visit("/imports/")
    csv_file = tmp_path / "cases.csv"
    csv_file.write_text(
        "product,suite,key,title,category,task,owner,priority,tags,rc,status,mantis_ids,notes,executed_at,executed_by\n"
        "Web Shop,Checkout,WEB-100,New case,cart,,alice,2,,2026.4-rc2,maybe,,,2026-11-20T10:00:00Z,\n"
    )
    page.set_input_files("#import-file", str(csv_file))
    page.click("#import-upload-form button[type=submit]")
    expect(page.locator("#import-outcome")).to_contain_text("1 problem found")
    expect(page.locator(".import-preview td.cell-error")).to_contain_text("maybe")
    tester.check("import preview")
    for path in ("/dashboard/", "/suites/", "/rcs/", "/delta/", "/flaky/", "/reports/"):
        tester.visit(path)


@pytest.mark.parametrize("size", VIEWPORTS)
def test_the_managers_journey(walk, desk, make_user, size):
    manager = walk(size, make_user("viewer"))
    page = manager.page
    manager.visit("/dashboard/?rc=2026.4-rc2")
    expect(page.locator("section.gate")).to_be_visible()
    assert page.evaluate("getComputedStyle(document.querySelector('section.gate')).borderTopWidth") == "2px"
    assert page.locator("a", has_text="Record runs").count() == 0
    # The count tables fit their column (nothing clipped), the trend carries the gate's line.
    clipped = page.evaluate(
        "[...document.querySelectorAll('.grid-2 > section')].filter(s => s.scrollWidth > s.clientWidth).length"
    )
    assert clipped == 0, page.evaluate(
        "[...document.querySelectorAll('.grid-2 > section')].map(s => [s.scrollWidth, s.clientWidth,"
        " s.querySelector('table').getBoundingClientRect().width, getComputedStyle(s).paddingLeft])"
    )
    page.wait_for_function("() => window.Chart && Chart.getChart('chart-trend') !== undefined")
    assert page.evaluate("Chart.getChart('chart-trend').data.datasets[1].data[0]") == 95.0
    # ... and the coverage line beside the pass rate, one point per RC.
    coverage = page.evaluate(
        "Chart.getChart('chart-trend').data.datasets.filter(d => d.label === 'coverage %').map(d => d.data)"
    )
    assert len(coverage) == 1 and all(isinstance(point, int | float) for point in coverage[0]), coverage
    # An RC without runs: sentences instead of empty axes.
    services.release_candidate_create(name="2026.4-rc3", actor=desk["reviewer"])
    manager.visit("/dashboard/?rc=2026.4-rc3")
    expect(page.locator('.chart-empty[data-empty-for="chart-owner"]')).to_be_visible()
    expect(page.locator("canvas#chart-owner")).to_be_hidden()
    manager.visit("/runs/grid/?rc=2026.4-rc2")
    assert page.locator(".keyboard-hint").count() == 0 and page.locator("form.bulk").count() == 0
    for path in ("/delta/?rc=2026.4-rc2", "/flaky/", "/cases/?sort=-priority", "/reports/", "/ai/usage/"):
        manager.visit(path)
    # The assistant opens on a picker; a failing run is one click away, and the answer streams in.
    manager.visit("/ai/assist/")  # opens on the current RC (rc3, no failures yet); pick rc2 in the picker
    expect(page.locator("#ai-picker")).to_contain_text("No failing runs in 2026.4-rc3.")
    page.select_option("#ai-pick-rc", label="2026.4-rc2")
    page.click("#ai-picker button[type=submit]")
    manager.check("assistant picker")
    page.locator("#ai-picker a").first.click()
    manager.check("assistant with a run")
    page.click("#ai-ask")
    page.wait_for_selector("#ai-answer[data-complete=true]")
    manager.check("assistant answered")


@pytest.mark.parametrize("size", VIEWPORTS)
def test_the_admins_journey(walk, desk, make_user, size):
    admin = make_user("admin")
    make_user("viewer", email="leaving@example.com")
    walker = walk(size, admin)
    page = walker.page
    walker.visit("/account/users/")
    own_row = page.locator("#users tr", has_text=admin.email)
    assert own_row.locator("button", has_text="Deactivate").count() == 0
    page.locator("#users tr", has_text="leaving@example.com").locator("button", has_text="Deactivate").click()
    expect(page.locator("#messages")).to_contain_text("leaving@example.com is now deactivated.")
    walker.check("users after deactivation")
    for path in ("/audit/", "/suites/", "/rcs/", "/imports/", "/cases/"):
        walker.visit(path)
