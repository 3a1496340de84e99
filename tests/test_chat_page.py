"""The chat page in a real browser: Debian's chromium driven by playwright, against the real app
in a real uvicorn server on loopback, over a real embedded store with the real model and the
extractive generator (deterministic, no LLM).

One browser and one server per module; each test gets a fresh browser context (empty
sessionStorage). Every test ends with no uncaught script error and no Content-Security-Policy
or Trusted Types violation in the page (checked when its page closes).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, expect, sync_playwright
from playwright.sync_api import Request as BrowserRequest

from api.assembly import build_ingester, build_store
from api.keys import KeyStore, Role
from api.ratelimit import RateLimiter
from api.settings import Settings
from assistant.service import Event, Token
from index.embedding import SentenceTransformerEmbedder
from index.errors import StoreError
from tests.conftest import write
from tests.samples import write_service_base
from tests.serving import serving

pytestmark = pytest.mark.slow  # a browser (see pyproject's markers)

CHROMIUM = Path("/usr/bin/chromium")  # Debian's: scripts/install_browser.sh (make test)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # without these, chromium waits on its own update and sync calls on a closed network
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000

DEFLECT = "What share of contacts does the Ask Kestrel chatbot deflect?"
GATEWAY = "How long does the KAIG gateway keep prompts?"
UNKNOWN = "What is on the Gdansk canteen menu this week?"
NEARBY = "How much did the Ask Kestrel project cost?"  # refused, naming Ask Kestrel
ZEPHYR = "How well did the Zephyr OCR engine read the scanned invoices?"
HOSTILE_TITLE = 'Zephyr <img src=x onerror="window.__pwned=1"> notes'
HOSTILE_BODY = (
    "The Zephyr OCR engine read <script>window.__pwned=2</script> 97 percent of the scanned "
    'invoices <img src=x onerror="window.__pwned=3"> correctly in our trial.'
)


def build_corpus(root: Path) -> Path:
    write_service_base(root)  # with a document only the finance group reads
    # A text file whose title, owner and body are markup that must never become markup.
    front = {
        "id": "zephyr",
        "doc_type": "vendor_evaluation",
        "owner": "'<b>Mallory</b>'",
        "title": f"'{HOSTILE_TITLE}'",
        "last_reviewed": "2024-01-10",
    }
    lines = ["---", *(f"{k}: {v}" for k, v in front.items()), "---", "Zephyr evaluation", ""]
    write(root / "it" / "zephyr.txt", "\n".join([*lines, HOSTILE_BODY, ""]))
    return root


@dataclass(frozen=True)
class Server:
    app: FastAPI
    url: str
    settings: Settings

    @property
    def assistant(self) -> Any:
        return self.app.state.services.assistant

    def query_log(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        path = self.settings.query_log_path
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute(sql, params).fetchall()


def knowledge_base(
    tmp: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder, **overrides: Any
) -> Settings:
    settings = Settings(
        data_dir=tmp.mktemp("data"),
        today="2026-11-28",
        generator="extractive",
        serve_threads=2,  # torch threads are process-wide: leave the other tests theirs
        rate_limit_per_minute=0,
        **overrides,
    )
    corpus = build_corpus(tmp.mktemp("corpus"))
    report = build_ingester(settings, build_store(settings), embedder).sync(corpus)
    assert not report.failed, report.failed
    return settings


@pytest.fixture(scope="module")
def dev_server(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Iterator[Server]:
    """`make run`'s mode: KB_AUTH=dev, no keys."""
    with serving(knowledge_base(tmp_path_factory, embedder, auth="dev")) as live:
        yield Server(live.app, live.origin, live.settings)


@dataclass(frozen=True)
class KeyedServer:
    server: Server
    key: str


@pytest.fixture(scope="module")
def keys_server(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Iterator[KeyedServer]:
    settings = knowledge_base(tmp_path_factory, embedder, auth="keys")
    keys = KeyStore(settings.keys_path)
    key = keys.create("chat page", Role.READER)
    keys.close()
    with serving(settings) as live:
        server = Server(live.app, live.origin, live.settings)
        yield KeyedServer(server, key)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():  # never a silent skip: the install step is missing
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install_browser.sh (make test does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class ChatPage:
    """The page as a user drives it, and what the browser saw meanwhile."""

    page: Page
    url: str
    problems: list[str] = field(default_factory=list)  # uncaught errors, CSP violations
    asked: list[BrowserRequest] = field(default_factory=list)  # POST /v1/ask/stream

    def __post_init__(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))
        self.page.on("request", self._request)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Trusted Type" in message.text:
            self.problems.append(message.text)

    def _request(self, request: BrowserRequest) -> None:
        if request.url.endswith("/v1/ask/stream"):
            self.asked.append(request)

    def open(self) -> Any:
        response = self.page.goto(self.url + "/")
        expect(self.page.locator("html[data-ready=true]")).to_have_count(1)
        return response

    def ask(self, question: str, *, wait: bool = True) -> Locator:
        """Type the question, press Enter; the exchange once its answer is final."""
        before = self.exchanges.count()
        self.page.get_by_label("Your question").fill(question)
        self.page.get_by_label("Your question").press("Enter")
        exchange = self.exchanges.nth(before)
        if wait:
            expect(exchange.locator('.answer[aria-busy="false"]')).to_have_count(1)
            expect(self.page.get_by_role("button", name="Ask")).to_be_enabled()
        return exchange

    @property
    def exchanges(self) -> Locator:
        return self.page.locator("#log article.exchange")

    def sent_bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.post_data or "{}") for r in self.asked]


@pytest.fixture
def chat_factory(browser: Browser) -> Iterator[Callable[..., ChatPage]]:
    pages: list[ChatPage] = []

    def make(url: str, **context_options: Any) -> ChatPage:
        context = browser.new_context(**context_options)
        context.set_default_timeout(WAIT_MS)
        chat = ChatPage(context.new_page(), url)
        pages.append(chat)
        return chat

    expect.set_options(timeout=WAIT_MS)
    yield make
    for chat in pages:
        problems = list(chat.problems)
        chat.page.context.close()
        assert not problems, problems


@pytest.fixture
def chat(chat_factory: Callable[..., ChatPage], dev_server: Server) -> ChatPage:
    page = chat_factory(dev_server.url)
    page.open()
    return page


@pytest.fixture
def gate(dev_server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The real answer, held after its first token until the test sets the event."""
    assistant = dev_server.assistant
    real = assistant.stream
    release = threading.Event()

    def held(*args: Any, **kwargs: Any) -> Iterator[Event]:
        first = True
        for event in real(*args, **kwargs):
            yield event
            if first and isinstance(event, Token):
                first = False
                release.wait(timeout=WAIT_MS / 1000)

    monkeypatch.setattr(assistant, "stream", held)
    yield release
    release.set()  # never leave a server thread waiting


def test_an_answer_streams_then_becomes_the_checked_answer_with_sources(
    chat: ChatPage, gate: threading.Event
) -> None:
    exchange = chat.ask(DEFLECT, wait=False)
    streaming = exchange.locator(".streaming")
    expect(streaming).to_contain_text("deflected 34% of contacts")  # the first token, unchecked
    expect(exchange.locator(".answer")).to_have_attribute("aria-busy", "true")
    expect(chat.page.locator("#log")).to_have_attribute("aria-live", "polite")
    reading = exchange.locator(".reading")  # the sources, shown before the answer is checked
    expect(reading.locator("a.source-link").first).to_have_text("Ask Kestrel")
    expect(chat.page.get_by_role("button", name="Stop")).to_be_enabled()
    expect(chat.page.get_by_role("button", name="Ask")).to_be_disabled()

    gate.set()
    expect(exchange.locator(".answer")).to_have_attribute("aria-busy", "false")
    expect(streaming).to_have_count(0)  # replaced by the checked answer
    expect(reading).to_have_count(0)
    expect(exchange.locator(".answer-text")).to_contain_text("deflected 34% of contacts")
    marker = exchange.locator(".answer-text a.marker")
    expect(marker).to_have_text("[1]")
    source = exchange.locator(".sources li")
    expect(source).to_have_count(1)
    expect(source).to_have_attribute("value", "1")
    expect(source.locator("a.source-link")).to_have_text("Ask Kestrel")
    expect(source).to_contain_text("Results")  # the section
    expect(chat.page.get_by_role("button", name="Stop")).to_be_disabled()

    marker.click()  # the marker leads to its numbered source
    expect(chat.page).to_have_url(re.compile(f"#{source.get_attribute('id')}$"))
    with chat.page.expect_popup() as opened:  # in a new tab: the conversation stays
        source.locator("a.source-link").click()
    assert source.locator("a.source-link").get_attribute("href") == (
        "/v1/documents/ask-kestrel/source"
    )
    expect(opened.value.locator("body")).to_contain_text("deflected 34% of contacts")
    opened.value.close()
    expect(exchange.locator(".answer-text")).to_contain_text("deflected 34% of contacts")


def test_stop_aborts_a_running_answer(chat: ChatPage, gate: threading.Event) -> None:
    exchange = chat.ask(DEFLECT, wait=False)
    expect(exchange.locator(".streaming")).to_contain_text("34%")
    chat.page.get_by_role("button", name="Stop").click()
    expect(exchange.locator(".stopped")).to_contain_text("Stopped")
    expect(exchange.locator(".stopped")).to_contain_text("not checked")
    expect(chat.page.get_by_role("button", name="Ask")).to_be_enabled()
    expect(chat.page.get_by_role("button", name="Stop")).to_be_disabled()
    gate.set()
    follow_up = chat.ask(GATEWAY)  # the page works on, and a stopped answer is no history
    expect(follow_up.locator(".answer-text")).to_contain_text("90 days")
    assert chat.sent_bodies()[-1]["history"] == []


def test_a_stale_source_is_impossible_to_miss(chat: ChatPage) -> None:
    exchange = chat.ask(GATEWAY)
    warning = exchange.locator(".warnings")
    expect(warning).to_have_attribute("role", "alert")
    expect(warning).to_contain_text("past its review date (2025-02-28)")
    expect(warning).to_contain_text("Nadia Haddad")
    expect(warning).to_be_in_viewport()
    first = exchange.locator(".answer > *").first
    expect(first).to_have_class("warnings")  # above the answer, not after it
    source = exchange.locator(".sources li")
    expect(source.locator(".badge.stale")).to_have_text("Review overdue")
    expect(source).to_contain_text("owner: Nadia Haddad")
    expect(source).to_contain_text("2025-02-28")
    fresh = chat.ask(DEFLECT)
    expect(fresh.locator(".warnings, .badge.stale")).to_have_count(0)


def test_an_unanswerable_question_is_refused_distinctly(chat: ChatPage) -> None:
    exchange = chat.ask(UNKNOWN)
    expect(exchange).to_have_class("exchange refused")
    refusal = exchange.locator(".refusal")
    expect(refusal).to_contain_text("No answer in the knowledge base")
    expect(refusal).to_contain_text("I don't know")
    expect(exchange.locator(".sources, .answer-text")).to_have_count(0)
    expect(exchange.locator(".nearby")).to_have_count(0)


def test_a_refusal_names_the_related_documents(chat: ChatPage, dev_server: Server) -> None:
    served = httpx.post(f"{dev_server.url}/v1/ask", json={"question": NEARBY}).json()
    assert served["refused"], "the corpus now answers NEARBY: pick a question it refuses"
    assert served["nearby"], "NEARBY no longer has related documents: pick another question"
    exchange = chat.ask(NEARBY)
    expect(exchange.locator(".refusal")).to_contain_text("I don't know")
    links = exchange.locator(".nearby a.source-link")
    expect(links).to_have_text([d["title"] for d in served["nearby"]])
    expect(links.first).to_have_attribute(
        "href", f"/v1/documents/{served['nearby'][0]['doc_id']}/source"
    )


def test_a_follow_up_sends_the_conversation_and_new_conversation_clears_it(
    chat: ChatPage, dev_server: Server
) -> None:
    first = chat.ask(GATEWAY)
    assert chat.sent_bodies()[0]["history"] == []
    follow_up = chat.ask("Who owns it?")
    history = chat.sent_bodies()[1]["history"]
    assert [t["role"] for t in history] == ["user", "assistant"]
    assert history[0]["content"] == GATEWAY
    assert "90 days" in history[1]["content"]
    answer_id = follow_up.get_attribute("data-answer-id")
    [(standalone,)] = dev_server.query_log(
        "SELECT standalone FROM answers WHERE answer_id = ?", answer_id
    )
    earlier = GATEWAY.rstrip("?")
    assert earlier in standalone  # the server read the follow-up with the earlier turn
    expect(follow_up.locator(".standalone")).to_contain_text(earlier)
    expect(first).to_be_visible()

    chat.page.get_by_role("button", name="New conversation").click()
    expect(chat.exchanges).to_have_count(0)
    fresh = chat.ask("Who owns it?")
    assert chat.sent_bodies()[2]["history"] == []
    fresh_id = fresh.get_attribute("data-answer-id")
    [(alone,)] = dev_server.query_log(
        "SELECT standalone FROM answers WHERE answer_id = ?", fresh_id
    )
    assert alone == "Who owns it?"


def _thumbs_down(server: Server, doc_id: str) -> int:
    """The review queue's thumbs-down count of a stale document (dev mode: as an admin)."""
    queue = httpx.get(f"{server.url}/v1/documents/stale").json()
    return int(
        next(d for q in queue for d in q["documents"] if d["doc_id"] == doc_id)["thumbs_down"]
    )


def test_thumbs_down_with_a_reason_is_recorded(chat: ChatPage, dev_server: Server) -> None:
    before = _thumbs_down(dev_server, "kaig-faq")  # the server's query log is the module's
    exchange = chat.ask(GATEWAY)
    answer_id = exchange.get_attribute("data-answer-id")
    assert answer_id
    exchange.get_by_label("Reason").select_option("outdated")
    exchange.get_by_role("button", name="Not helpful").click()
    expect(exchange.locator(".feedback-status")).to_contain_text("feedback was recorded")
    expect(exchange.get_by_role("button", name="Not helpful")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(exchange.get_by_role("button", name="Helpful", exact=True)).to_be_disabled()
    stored = dev_server.query_log(
        "SELECT rating, reason FROM feedback WHERE answer_id = ?", answer_id
    )
    assert stored == [("down", "outdated")]
    assert _thumbs_down(dev_server, "kaig-faq") == before + 1


def test_filters_are_sent_and_restrict_the_sources(chat: ChatPage) -> None:
    chat.page.get_by_text("API key and filters").click()
    expect(chat.page.locator("#department option")).to_contain_text(
        ["Any department", "customer_service", "it", "legal"]
    )
    chat.page.get_by_label("Department").select_option("it")
    chat.page.get_by_label("Document type").select_option("faq")
    cited = chat.ask(GATEWAY)
    assert chat.sent_bodies()[-1]["filters"] == {"department": "it", "doc_type": "faq"}
    expect(cited.locator(".sources a.source-link")).to_have_text(["KAIG FAQ"])
    chat.page.get_by_label("Department").select_option("legal")
    chat.page.get_by_label("Document type").select_option("")
    elsewhere = chat.ask(GATEWAY)
    assert chat.sent_bodies()[-1]["filters"] == {"department": "legal"}
    expect(elsewhere.get_by_text("KAIG FAQ")).to_have_count(0)


def test_document_markup_is_shown_as_text_and_never_runs(chat: ChatPage) -> None:
    exchange = chat.ask(ZEPHYR)
    text = exchange.locator(".answer-text")
    expect(text).to_contain_text("<script>window.__pwned=2</script>")
    expect(text).to_contain_text('<img src=x onerror="window.__pwned=3">')
    expect(exchange.locator(".sources a.source-link")).to_have_text(HOSTILE_TITLE)
    expect(exchange.locator(".warnings")).to_contain_text("owner: <b>Mallory</b>")
    made = exchange.locator(".answer-text, .sources, .warnings").locator("img, script, b")
    assert made.count() == 0  # no element was made from the text
    assert chat.page.evaluate("() => window.__pwned") is None


def test_the_page_has_a_strict_content_security_policy(
    chat_factory: Callable[..., ChatPage], dev_server: Server
) -> None:
    for path in ("/", "/chat"):
        response = httpx.get(dev_server.url + path)
        assert response.status_code == 200
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "default-src 'none'" in policy
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        # no inline script or handler for the policy to forbid
        assert not re.search(r"<script(?![^>]*\bsrc=)|\son[a-z]+=", response.text)
    page = chat_factory(dev_server.url)
    response = page.open()  # the page runs under it (its fixture fails on any violation)
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.ask(DEFLECT).locator(".answer-text")).to_contain_text("34%")


def test_enter_sends_and_shift_enter_starts_a_new_line(chat: ChatPage) -> None:
    box = chat.page.get_by_label("Your question")
    box.fill("first line")
    box.press("Shift+Enter")
    box.press_sequentially("second line")
    expect(box).to_have_value("first line\nsecond line")
    expect(chat.exchanges).to_have_count(0)
    box.press("Enter")
    expect(chat.exchanges).to_have_count(1)
    expect(box).to_have_value("")


def _fails_before_the_stream(*args: Any, **kwargs: Any) -> Iterator[Event]:
    raise StoreError("the vector store is unreachable")
    yield  # a generator, like the real one


def _fails_mid_stream(*args: Any, **kwargs: Any) -> Iterator[Event]:
    yield Token("The gateway keeps")
    raise RuntimeError("boom: internal detail")


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        ("before", "unreachable"),
        ("mid-stream", "The service failed (500"),
        ("network", "Could not reach the service"),
    ],
)
def test_errors_are_shown_in_plain_words_and_the_page_recovers(
    chat: ChatPage,
    dev_server: Server,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
    message: str,
) -> None:
    if failure == "before":
        monkeypatch.setattr(dev_server.assistant, "stream", _fails_before_the_stream)
    elif failure == "mid-stream":
        monkeypatch.setattr(dev_server.assistant, "stream", _fails_mid_stream)
    else:
        chat.page.route("**/v1/ask/stream", lambda route: route.abort("connectionreset"))
    exchange = chat.ask(GATEWAY)
    error = exchange.locator(".error")
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_contain_text(message)
    expect(exchange.locator(".streaming")).to_have_count(0)  # no unchecked text left standing
    assert "boom" not in (exchange.text_content() or "")
    expect(chat.page.get_by_label("Your question")).to_have_value(GATEWAY)  # to send again
    expect(chat.page.get_by_role("button", name="Stop")).to_be_disabled()


def test_with_keys_the_page_asks_for_one_and_works_with_it(
    chat_factory: Callable[..., ChatPage], keys_server: KeyedServer
) -> None:
    chat = chat_factory(keys_server.server.url)
    chat.open()
    expect(chat.page.locator("#key-status")).to_contain_text("needs an API key")
    refused = chat.ask(DEFLECT)
    expect(refused.locator(".error")).to_contain_text("needs a valid API key")
    expect(refused.locator(".error")).to_contain_text("no API key")  # the service's detail

    chat.page.get_by_label("API key").fill("kb_00000000_notarealkeynotarealkeynotarealkey")
    chat.page.get_by_role("button", name="Use key").click()
    expect(chat.page.locator("#key-status")).to_contain_text("unknown or revoked")

    chat.page.get_by_label("API key").fill(keys_server.key)
    chat.page.get_by_role("button", name="Use key").click()
    answered = chat.ask(DEFLECT)
    expect(answered.locator(".answer-text")).to_contain_text("34%")
    assert chat.asked[-1].all_headers()["authorization"] == f"Bearer {keys_server.key}"
    assert keys_server.key not in chat.page.url
    assert all(keys_server.key not in r.url for r in chat.asked)
    # a link cannot carry the key: the page fetches the source with it
    with chat.page.expect_download() as download:
        answered.locator("a.source-link").click()
    assert "deflected 34% of contacts" in Path(download.value.path()).read_text()
    # department choices come from the documents the key may read
    expect(chat.page.locator("#department option")).to_contain_text(
        ["Any department", "customer_service", "it", "legal"]
    )


def test_a_rate_limited_key_is_told_to_wait(
    chat_factory: Callable[..., ChatPage], keys_server: KeyedServer
) -> None:
    services = keys_server.server.app.state.services
    kept = services.limiter
    services.limiter = RateLimiter(per_minute=1, burst=1)
    try:
        chat = chat_factory(keys_server.server.url)
        chat.open()
        chat.page.get_by_label("API key").fill(keys_server.key)
        chat.page.get_by_role("button", name="Use key").click()
        # the departments are loaded with the key: its one request this minute
        expect(chat.page.locator("#department option")).to_have_count(4)
        exchange = chat.ask(DEFLECT)
        expect(exchange.locator(".error")).to_contain_text("Too many requests")
        expect(exchange.locator(".error")).to_contain_text("seconds")
    finally:
        services.limiter = kept


def test_the_page_fits_a_phone_screen(
    chat_factory: Callable[..., ChatPage], dev_server: Server
) -> None:
    chat = chat_factory(dev_server.url, viewport={"width": 360, "height": 740})
    chat.open()
    exchange = chat.ask(GATEWAY)
    expect(exchange.locator(".sources li")).to_be_visible()
    expect(chat.page.get_by_role("button", name="Ask")).to_be_in_viewport()
    overflow = chat.page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0  # nothing makes the page scroll sideways
