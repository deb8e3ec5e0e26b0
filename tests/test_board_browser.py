"""The dispatcher board in headless Chromium: live updates over SSE and the review buttons.

It drives Debian's `/usr/bin/chromium` through playwright; `.ci/run` installs
the package when it is missing. Set `CSDP_UPDATE_SCREENSHOT=1` to write the
screenshot to docs/img/board.png instead of the test's temporary folder.
"""

from __future__ import annotations

import datetime as dt
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_helpers import Clients, create_assigned, event, post_batch
from conftest import LiveServer
from sla_helpers import ROUND_THE_CLOCK, history, put_contracts

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "img" / "board.png"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# How long the page may take to show an update; the stream itself is much faster.
UI_TIMEOUT_MS = 5000


@pytest.fixture
def store_kind() -> str:
    """The page reads the API, which both stores serve alike."""
    return "sqlite"


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[Clients]:
    clients = Clients(live_server)
    yield clients
    clients.close()


@pytest.fixture
def page(tmp_path: Path, live_server: LiveServer):
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium package (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        browser_page = context.new_page()
        # The page may talk to the test server only.
        server_host = urllib.parse.urlsplit(live_server.base_url).netloc
        browser_page.route(
            "**/*",
            lambda route: route.continue_()
            if urllib.parse.urlsplit(route.request.url).netloc == server_host
            else route.abort(),
        )
        try:
            yield browser_page
        finally:
            context.close()


def hold_travel_after_reassign(api: Clients, order: str) -> None:
    """Leave a NEEDS_REVIEW `travel_started` of e-17 on `order`, which was reassigned to e-21 meanwhile."""
    dispatcher = api("dispatcher", "d-1")
    engineer = api("engineer", "e-17")
    create_assigned(dispatcher, order, "e-17")
    assert post_batch(engineer, [event(order, "accepted", 2)])[0]["status"] == "ACCEPTED"
    reassign = event(order, "reassigned", 3, {"engineer_id": "e-21", "reason": "closer engineer"})
    assert post_batch(dispatcher, [reassign])[0]["status"] == "ACCEPTED"
    decision = post_batch(engineer, [event(order, "travel_started", 3)])[0]
    assert decision["status"] == "NEEDS_REVIEW"


def open_board(page, live_server: LiveServer) -> None:
    token = live_server.token("dispatcher", "d-1")
    page.goto(f"{live_server.base_url}/board#access_token={token}")
    page.wait_for_selector("#connection[data-state='live']", timeout=UI_TIMEOUT_MS)


@pytest.fixture
def contract(live_server: LiveServer) -> None:
    """Register a 24x7 contract; it runs before `page`, because playwright's loop rules out asyncio.run."""
    put_contracts(live_server.settings, {"ct-24x7": ROUND_THE_CLOCK})


def test_board_shows_live_update_and_resolves_reviews(contract, page, live_server, api, tmp_path):
    admin = api("admin", "admin-1")
    started = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=3, minutes=30)).isoformat()
    history(admin, "wo-risk", [("created", started, {}), ("assigned", started, {"engineer_id": "e-21"})], contract_id="ct-24x7")
    hold_travel_after_reassign(api, "wo-held-1")
    hold_travel_after_reassign(api, "wo-held-2")

    open_board(page, live_server)
    page.wait_for_selector("#at-risk tr[data-work-order-id='wo-risk']", timeout=UI_TIMEOUT_MS)
    assert page.locator("#reviews li[data-client-event-id]").count() == 2

    # An event posted through the API appears on the open page.
    dispatcher = api("dispatcher", "d-1")
    engineer = api("engineer", "e-34")
    create_assigned(dispatcher, "wo-live", "e-34")
    post_batch(engineer, [event("wo-live", "accepted", 2), event("wo-live", "travel_started", 2)])
    page.wait_for_selector("#engineers tr[data-engineer-id='e-34'] .status-en_route", timeout=UI_TIMEOUT_MS)
    page.wait_for_selector("#changes li:has-text('wo-live travel_started')", timeout=UI_TIMEOUT_MS)

    screenshot = SCREENSHOT if os.environ.get("CSDP_UPDATE_SCREENSHOT") == "1" else tmp_path / "board.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000

    reviews = page.locator("#reviews li[data-client-event-id]")
    accept_item = reviews.filter(has_text="wo-held-1")
    accept_item.locator(".review-note").fill("e-17 was on site before the reassignment reached the tablet")
    accept_item.locator(".review-accept").click()
    page.wait_for_selector("#reviews li:has-text('wo-held-1')", state="detached", timeout=UI_TIMEOUT_MS)

    dismiss_item = reviews.filter(has_text="wo-held-2")
    dismiss_item.locator(".review-dismiss").click()
    # Without a note the page sends nothing and shows why.
    assert "Write a note first" in dismiss_item.locator(".review-status").inner_text()
    dismiss_item.locator(".review-note").fill("duplicate of the travel recorded by e-21")
    dismiss_item.locator(".review-dismiss").click()
    page.wait_for_selector("#reviews li:has-text('No events wait for review')", timeout=UI_TIMEOUT_MS)

    resolutions = {}
    for order in ("wo-held-1", "wo-held-2"):
        timeline = dispatcher.get(f"/v1/work-orders/{order}/timeline").json()
        resolutions[order] = [entry for entry in timeline if entry["type"] == "review_resolved"]
    assert [entry["status"] for entry in resolutions["wo-held-1"]] == ["ACCEPTED"]
    assert [entry["status"] for entry in resolutions["wo-held-2"]] == ["ACCEPTED"]
    assert dispatcher.get("/v1/reviews").json()["items"] == []


def test_board_without_token_asks_for_one(page, live_server):
    page.goto(f"{live_server.base_url}/board")

    assert page.locator("#sign-in").is_visible()
    assert page.locator("#board").is_hidden()


def test_board_with_engineer_token_shows_error(page, live_server):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    token = live_server.token("engineer", "e-17")
    page.goto(f"{live_server.base_url}/board#access_token={token}")

    page.wait_for_selector("#error:has-text('role engineer may not call')", timeout=UI_TIMEOUT_MS)
    # The token left the address bar, so it is not kept in the history.
    assert "access_token" not in page.url
    assert "needs the token of a dispatcher, manager or admin" in page.locator("#error").inner_text()
    badge = page.locator("#connection")
    assert badge.inner_text() == "no access"
    # The stream would accept the engineer's token; the page must not open it and claim "live".
    page.wait_for_timeout(1000)
    assert badge.inner_text() == "no access"
    assert not any("/v1/stream" in url for url in requested)


def test_board_with_bad_token_shows_no_access(page, live_server):
    page.goto(f"{live_server.base_url}/board#access_token=not-a-jwt")

    page.wait_for_selector("#connection:has-text('no access')", timeout=UI_TIMEOUT_MS)
    assert "needs the token of a dispatcher, manager or admin" in page.locator("#error").inner_text()


def test_board_console_has_no_errors(page, live_server):
    failures: list[str] = []
    page.on("console", lambda message: failures.append(message.text) if message.type == "error" else None)
    page.on("response", lambda response: failures.append(f"{response.status} {response.url}") if response.status >= 400 else None)
    icon_statuses: list[int] = []
    page.on("response", lambda response: icon_statuses.append(response.status) if response.url.endswith("/favicon.svg") else None)

    open_board(page, live_server)
    page.wait_for_selector("#connection:has-text('live')", timeout=UI_TIMEOUT_MS)
    page.wait_for_timeout(1000)

    assert failures == []
    assert icon_statuses == [200]


def test_board_files_need_no_token(live_server):
    for path, media_type in (("/board", "text/html"), ("/board/board.js", "text/javascript"), ("/board/board.css", "text/css"), ("/board/favicon.svg", "image/svg+xml")):
        response = httpx.get(live_server.base_url + path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media_type)
        assert "script-src 'self'" in response.headers["content-security-policy"]
