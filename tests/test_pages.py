"""The search, review and health pages in a real browser: Debian's chromium driven by
playwright, against the real app in a real uvicorn server on loopback, over part of the shipped
corpus (tests/project_corpus.py: documents only one group reads, stale documents) in a real
embedded store with the real model, and API keys of several roles and groups.

One server per module; each test gets a fresh browser context (empty sessionStorage). Every
page ends with no uncaught script error, no Content-Security-Policy or Trusted Types violation
and no console error but the refusals (401/403) the test expects (checked when it closes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, expect
from playwright.sync_api import Request as BrowserRequest

from index.embedding import SentenceTransformerEmbedder
from tests.project_corpus import copy_corpus, ingest_with_keys, kb_settings
from tests.serving import serving
from tests.test_chat_page import WAIT_MS, browser  # noqa: F401 (the module's browser)
from tests.test_kb_health import eval_run

pytestmark = pytest.mark.slow  # a browser (see pyproject's markers)

PHONE = {"width": 375, "height": 740}
FINANCE_ONLY = "AP automation fraud and payment controls (finance only)"
FRAUD = "AP automation fraud and payment controls"
RECEIPTS = "expense receipt OCR"
STALE_DOC = "vector-search-vendor-evaluation"  # reviewed 2025-02-26, every 180 days: overdue


@dataclass(frozen=True)
class Site:
    url: str
    keys: dict[str, str]  # tests/project_corpus.py ROLES: admin, finance_reader, hr_reader, ...

    def api(self, method: str, path: str, who: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.keys[who]}"}
        response = httpx.request(method, self.url + path, headers=headers, timeout=60, **kwargs)
        assert response.status_code < 300, response.text
        return response.json()


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Iterator[Site]:
    folder = copy_corpus(tmp_path_factory.mktemp("space") / "corpus")
    settings = kb_settings(folder, tmp_path_factory.mktemp("data"))
    keys = ingest_with_keys(settings, folder, embedder)
    eval_run(
        settings.data_dir / "evals" / "golden-20261120-090000",
        "golden",
        "complete",
        "2026-11-20T09:10:00+00:00",
        0.95,
    )
    with serving(settings) as live:
        yield Site(live.origin, keys)


@dataclass
class Tab:
    """A page as a user drives it, and what the browser saw meanwhile."""

    page: Page
    site: Site
    refusals: set[int] = field(default_factory=set)  # statuses the test expects the API to send
    problems: list[str] = field(default_factory=list)
    searched: list[BrowserRequest] = field(default_factory=list)  # POST /v1/search

    def __post_init__(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))
        self.page.on(
            "request",
            lambda r: self.searched.append(r) if r.url.endswith("/v1/search") else None,
        )

    def _console(self, message: ConsoleMessage) -> None:
        text = message.text
        expected = any(f"status of {s} " in text for s in self.refusals)
        violation = "Content Security Policy" in text or "Trusted Type" in text
        if violation or (message.type == "error" and not expected):
            self.problems.append(text)

    def open(self, path: str, who: str | None = None) -> Any:
        """Open /search, paste `who`'s key there, then go to `path` through the header."""
        response = self.page.goto(self.site.url + "/search")
        self.ready()
        if who:
            self.page.locator("summary", has_text="API key").click()
            self.page.get_by_label("API key").fill(self.site.keys[who])
            self.page.get_by_role("button", name="Use key").click()
        if path != "/search":
            nav = self.page.get_by_role("navigation", name="Pages")
            with self.page.expect_navigation():
                nav.get_by_role("link", name=path.strip("/").capitalize()).click()
            self.ready()
        return response

    def ready(self) -> None:
        expect(self.page.locator("html[data-ready=true]")).to_have_count(1)

    def search(self, query: str) -> Locator:
        self.page.get_by_label("Search for").fill(query)
        self.page.get_by_label("Search for").press("Enter")
        return self.settled()

    def settled(self) -> Locator:
        expect(self.page.locator("#results[aria-busy=false]")).to_have_count(1)
        return self.page.locator("#results article.card")

    def last_search(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.searched[-1].post_data or "{}")
        return body

    def facet_options(self, facet: str) -> list[dict[str, Any]]:
        """A filter's choices as the page shows them: value and document count."""
        options = self.page.locator(f"select[data-facet={facet}] option[data-count]")
        found = []
        for option in options.all():
            value = option.get_attribute("value") or ""
            count = int(option.get_attribute("data-count") or "-1")
            assert option.inner_text().endswith(f"({count})")  # shown beside the value
            found.append({"value": int(value) if facet == "year" else value, "count": count})
        return found

    def fits(self, width: int) -> None:
        scroll = self.page.evaluate("() => document.documentElement.scrollWidth")
        assert scroll <= width  # nothing makes the page scroll sideways


@pytest.fixture
def tabs(browser: Browser, site: Site) -> Iterator[Callable[..., Tab]]:  # noqa: F811
    made: list[Tab] = []

    def make(**context_options: Any) -> Tab:
        context = browser.new_context(**context_options)
        context.set_default_timeout(WAIT_MS)
        tab = Tab(context.new_page(), site)
        made.append(tab)
        return tab

    expect.set_options(timeout=WAIT_MS)
    yield make
    for tab in made:
        problems = list(tab.problems)
        tab.page.context.close()
        assert not problems, problems


# -- search ----------------------------------------------------------------------------------


def test_search_shows_cards_and_a_facet_narrows_them_with_the_apis_counts(
    tabs: Callable[..., Tab], site: Site
) -> None:
    tab = tabs()
    tab.open("/search", "finance_spoke")
    cards = tab.search("invoice processing vendor evaluation")
    expect(cards.first).to_be_visible()
    everything = cards.count()
    body = tab.last_search()
    assert body["filters"] == {}
    served = site.api("POST", "/v1/search", "finance_spoke", json=body)
    assert {c.get_attribute("data-doc-id") for c in cards.all()} == {
        h["doc_id"] for h in served["hits"]
    }
    for facet in ("department", "doc_type", "vendor", "year"):
        assert tab.facet_options(facet) == served["facets"][facet], facet
    first = cards.first
    hit = served["hits"][0]
    expect(first.locator("h3 a.source-link")).to_have_text(hit["title"])
    expect(first.locator("[data-field=department]")).to_have_text(hit["department"])
    expect(first.locator("[data-field=owner]")).to_have_text(f"Owner: {hit['owner']}")
    expect(first.locator("a.source-link").first).to_have_attribute(
        "href", re.compile(f"^/v1/documents/{hit['doc_id']}/source")
    )

    narrowed = [c for c in served["facets"]["doc_type"] if c["value"] == "vendor_evaluation"]
    assert narrowed, "the query no longer finds vendor evaluations: pick another"
    tab.page.get_by_label("Document type").select_option("vendor_evaluation")
    expect(tab.page.locator("#results[aria-busy=false]")).to_have_count(1)
    expect(cards.first).to_be_visible()
    assert tab.last_search()["filters"] == {"doc_type": "vendor_evaluation"}
    cards = tab.settled()
    assert 0 < cards.count() < everything
    types = {c.get_attribute("data-doc-type") for c in cards.all()}
    assert types == {"vendor_evaluation"}
    filtered = site.api("POST", "/v1/search", "finance_spoke", json=tab.last_search())
    assert tab.facet_options("department") == filtered["facets"]["department"]
    assert tab.facet_options("doc_type") == filtered["facets"]["doc_type"]
    assert len({h["doc_id"] for h in filtered["hits"]}) == cards.count()

    tab.page.get_by_label("Past its review date only").check()  # the stale filter is sent
    tab.settled()
    expect(tab.page.locator("#search-status")).not_to_have_text("Searching…")
    assert tab.last_search()["filters"] == {"doc_type": "vendor_evaluation", "stale": True}
    for card in tab.settled().all():
        expect(card.locator(".badge.stale")).to_have_text("Review overdue")
        expect(card.locator(".stale-note")).to_contain_text(re.compile(r"\d{4}-\d\d-\d\d"))


def test_a_reader_never_sees_a_document_of_another_group(tabs: Callable[..., Tab]) -> None:
    finance = tabs()
    finance.open("/search", "finance_reader")
    found = finance.search(FRAUD)
    expect(found.filter(has_text=FINANCE_ONLY)).to_have_count(1)  # the query finds it

    hr = tabs()
    hr.open("/search", "hr_reader")
    others = hr.search(FRAUD)
    expect(others.first).to_be_visible()  # the search ran and found other documents
    assert FINANCE_ONLY not in (hr.page.locator("body").text_content() or "")
    assert hr.page.locator("[data-doc-id=ap-fraud-controls-internal]").count() == 0


def test_similar_projects_lists_other_departments_projects(
    tabs: Callable[..., Tab], site: Site
) -> None:
    tab = tabs()
    tab.open("/search", "finance_spoke")
    cards = tab.search(RECEIPTS)
    card = cards.filter(has=tab.page.locator("[data-field=department]", has_text="finance")).filter(
        has=tab.page.get_by_role("button", name="Similar projects")
    )
    expect(card.first).to_be_visible()
    card = card.first
    doc_id = card.get_attribute("data-doc-id")
    button = card.get_by_role("button", name="Similar projects")
    expect(button).to_have_attribute("aria-expanded", "false")
    button.press("Enter")  # by keyboard
    expect(button).to_have_attribute("aria-expanded", "true")
    items = card.locator(".similar li")
    served = site.api("GET", f"/v1/projects/similar?doc_id={doc_id}", "finance_spoke")
    assert served["projects"], "no similar projects for this document: pick another"
    expect(items).to_have_count(len(served["projects"]))
    expect(items.locator("a.source-link")).to_have_text([p["title"] for p in served["projects"]])
    departments = [i.get_attribute("data-department") for i in items.all()]
    assert "finance" not in departments
    first = served["projects"][0]
    facts = [first["department"], first["vendor"], first["outcome"], first["year"]]
    for fact in filter(None, facts):
        expect(items.first.locator(".project-facts")).to_contain_text(str(fact))
    if first["lesson"]:
        expect(items.first.locator(".lesson")).to_contain_text(first["lesson"])
    button.click()
    expect(card.locator(".similar")).to_be_hidden()


# -- review ----------------------------------------------------------------------------------


def test_an_admin_marks_a_document_reviewed_from_the_queue(
    tabs: Callable[..., Tab], site: Site
) -> None:
    queue = site.api("GET", "/v1/documents/stale", "admin")
    tab = tabs()
    tab.open("/review", "admin")
    owners = tab.page.locator("section.owner-queue")
    expect(owners).to_have_count(len(queue))
    assert [o.get_attribute("data-owner") for o in owners.all()] == [q["owner"] for q in queue]
    queued = next(d for q in queue for d in q["documents"] if d["doc_id"] == STALE_DOC)
    row = tab.page.locator(f"li.queued[data-doc-id={STALE_DOC}]")
    expect(row.locator("[data-field=days_overdue]")).to_have_text(
        f"{queued['days_overdue']} days overdue"
    )
    expect(row.locator("[data-field=cited]")).to_have_attribute("data-value", str(queued["cited"]))

    row.get_by_label("Note (optional)").fill("checked against the 2026 vendor list")
    row.get_by_role("button", name="Mark reviewed").click()
    status = row.locator(".row-status")
    expect(status).to_contain_text("due again after")
    shown = status.get_attribute("data-review-date")
    document = site.api("GET", f"/v1/documents/{STALE_DOC}", "admin")
    assert document["review_date"] == shown
    assert document["stale"] is False
    expect(status).to_have_text(f"Reviewed: due again after {shown}.")
    expect(row.get_by_role("button", name="Mark reviewed")).to_have_count(0)
    after = site.api("GET", "/v1/documents/stale", "admin")
    assert STALE_DOC not in {d["doc_id"] for q in after for d in q["documents"]}
    audit = site.api("GET", "/v1/audit?action=review", "admin")
    assert audit[0]["target"] == STALE_DOC


def test_a_reader_is_told_the_review_queue_and_health_are_not_for_its_key(
    tabs: Callable[..., Tab],
) -> None:
    tab = tabs()
    tab.refusals = {403}
    tab.open("/review", "finance_reader")
    message = tab.page.locator("#queue-body .error")
    expect(message).to_have_attribute("role", "alert")
    expect(message).to_contain_text("Your key may not see the review queue")
    expect(tab.page.locator("li.queued")).to_have_count(0)
    tab.page.get_by_role("navigation", name="Pages").get_by_role("link", name="Health").click()
    tab.ready()
    expect(tab.page.locator("#dashboard .error")).to_contain_text(
        "Your key may not see the knowledge base"
    )


# -- health ----------------------------------------------------------------------------------


def _at(report: Any, path: str) -> Any:
    node = report
    for part in path.split("."):
        if isinstance(node, list):  # [{value, count}] or [{dataset, scores}]
            match = [e for e in node if str(e.get("value", e.get("dataset"))) == part]
            assert len(match) == 1, (path, part)
            node = match[0].get("count", match[0].get("scores"))
        elif part == "without_owner":
            return len(node[part])
        else:
            node = node[part]
    return node


def test_the_health_page_shows_the_apis_numbers_and_a_bar_a_day(
    tabs: Callable[..., Tab], site: Site
) -> None:
    site.api("POST", "/v1/ask", "admin", json={"question": "What did DocuSift do for AP?"})
    site.api("POST", "/v1/ask", "admin", json={"question": "Which band plays at the party?"})
    tab = tabs()
    tab.open("/health", "admin")
    report = site.api("GET", "/v1/health/kb?days=30", "admin")
    numbers = tab.page.locator("[data-key]")
    expect(numbers.first).to_be_visible()
    keys = [n.get_attribute("data-key") or "" for n in numbers.all()]
    for needed in ("documents", "stale.share", "stale.target", "usage.questions"):
        assert needed in keys
    assert len([k for k in keys if k.startswith("by_department.")]) == len(report["by_department"])
    assert len([k for k in keys if k.startswith("by_type.")]) == len(report["by_type"])
    assert "evaluations.golden.hit_at_5" in keys
    for number in numbers.all():
        path = number.get_attribute("data-key") or ""
        expected = _at(report, path)
        raw = number.get_attribute("data-value")
        if isinstance(expected, bool):
            assert raw == str(expected).lower(), path
        elif expected is None:
            assert raw == "", path
        else:
            assert float(raw or "nan") == pytest.approx(expected), path
    expect(tab.page.locator("[data-key=documents]")).to_have_text(str(report["documents"]))
    assert report["usage"]["questions"] >= 2  # the two asked above
    days = tab.page.locator("ol.day-bars li.day")
    per_day = report["usage"]["per_day"]
    expect(days).to_have_count(len(per_day))
    assert [d.get_attribute("data-day") for d in days.all()] == [d["day"] for d in per_day]
    assert [int(d.get_attribute("data-value") or -1) for d in days.all()] == [
        d["questions"] for d in per_day
    ]
    busiest = max(per_day, key=lambda d: d["questions"])
    bar = tab.page.locator(f"li.day[data-day='{busiest['day']}'] .day-fill")
    assert bar.bounding_box()["height"] > 50  # type: ignore[index]  # the tallest bar is drawn
    over = report["stale"]["over_target"]
    expect(tab.page.locator(".stale-share .flag")).to_have_count(1 if over else 0)
    if report["top_gaps"]:
        expect(tab.page.locator("ol.gaps li").first).to_contain_text(
            report["top_gaps"][0]["question"]
        )

    tab.page.get_by_label("Usage over").select_option("7")
    expect(days).to_have_count(7)


# -- every page ------------------------------------------------------------------------------

CONTROLS = {  # what Tab must reach on each page, in the order a user meets them
    "/search": ["#query", "#search-button", "#f-department", "#f-doc_type", "#f-stale"],
    "/review": ["#reload", "li.queued input.note", "li.queued button.primary"],
    "/health": ["#days", "#reload"],
}


@pytest.mark.parametrize("path", list(CONTROLS))
def test_each_page_is_strict_fits_a_phone_and_works_by_keyboard(
    tabs: Callable[..., Tab], site: Site, path: str, tmp_path: Path
) -> None:
    response = httpx.get(site.url + path)
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "require-trusted-types-for 'script'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r"<script(?![^>]*\bsrc=)|\son[a-z]+=|\sstyle=|<style", response.text)
    assert not re.search(r"(src|href)=\"(https?:)?//", response.text)  # nothing from outside

    tab = tabs(viewport=PHONE)
    tab.open(path, "admin")
    if path == "/search":
        tab.search(RECEIPTS)
        tab.page.get_by_role("button", name="Similar projects").first.click()
        expect(tab.page.locator(".similar li").first).to_be_visible()
    tab.fits(PHONE["width"])
    tab.page.screenshot(path=str(tmp_path / f"{path.strip('/')}-375.png"), full_page=True)

    tab.page.evaluate("() => document.activeElement && document.activeElement.blur()")
    tab.page.locator("body").focus()
    reached: list[bool] = [False] * len(CONTROLS[path])
    nav_reached = False
    for _ in range(60):
        tab.page.keyboard.press("Tab")
        for i, selector in enumerate(CONTROLS[path]):
            reached[i] |= tab.page.evaluate(
                "(s) => document.activeElement === document.querySelector(s)", selector
            )
        nav_reached |= tab.page.evaluate(
            "() => document.activeElement.matches('nav.site-nav a[href=\"/chat\"]')"
        )
        if all(reached) and nav_reached:
            break
    assert nav_reached
    assert all(reached), dict(zip(CONTROLS[path], reached, strict=True))
    outline = tab.page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # focus is visible
