"""`GET /metrics`: every named series present, parsed with prometheus_client's parser, and its access rule."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import httpx
import pytest
from api_helpers import assigned, created, event, post_batch
from conftest import SHARED_SSL_CONTEXT, LiveServer
from ops_helpers import SCRAPE_TOKEN, sample, scrape, serve
from sla_helpers import ROUND_THE_CLOCK, history, put_contracts

from server.app import create_app
from server.config import Settings
from shared_schema import Role

UTC = dt.timezone.utc


@pytest.fixture
def metrics_server(settings: Settings) -> Iterator[LiveServer]:
    settings = Settings(
        var_dir=settings.var_dir,
        database_url=settings.database_url,
        metrics_token=SCRAPE_TOKEN,
        sla_clock_seconds=0.2,
    )
    put_contracts(settings, {"ct-24x7": ROUND_THE_CLOCK})
    app = create_app(settings)
    with serve(app) as base_url:
        yield LiveServer(base_url=base_url, settings=settings)


def open_order(client: httpx.Client, work_order_id: str, hours_ago: float) -> None:
    """Create and assign a P1 order on the 24x7 contract: response due after 4 hours, resolution after 8."""
    start = (dt.datetime.now(UTC) - dt.timedelta(hours=hours_ago)).isoformat()
    history(client, work_order_id, [("created", start, {}), ("assigned", start, {"engineer_id": "e-1"})], contract_id="ct-24x7")


def wait_for(check, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.1)


def test_metrics_expose_every_named_series(metrics_server):
    admin = metrics_server.client(Role.ADMIN, "admin-1")
    # wo-late: response breached (5 h of 4), resolution at risk (5 h of 8).
    # wo-warn: response at risk (3 h of 4, past the 0.75 warning).
    open_order(admin, "wo-late", hours_ago=5)
    open_order(admin, "wo-warn", hours_ago=3)
    # The rejection goes to an order without a contract, whose version the SLA clock never moves.
    post_batch(admin, [created("wo-plain"), assigned("wo-plain", "e-1")])
    decisions = post_batch(admin, [event("wo-plain", "assigned", 2, {"engineer_id": "e-2"})])
    assert decisions[0]["status"] == "REJECTED", decisions
    assert decisions[0]["reason_code"] == "invalid_transition", decisions

    def clocks_counted() -> bool:
        samples = scrape(metrics_server.base_url)
        return sample(samples, "csdp_sla_clocks", state="breached") == 1

    wait_for(clocks_counted)
    # One dispatcher follows the live feed while the figures are read.
    token = metrics_server.token(Role.DISPATCHER, "dispatcher-1")
    with httpx.stream("GET", metrics_server.base_url + "/v1/stream", headers={"Authorization": f"Bearer {token}"}, timeout=30):
        wait_for(lambda: sample(scrape(metrics_server.base_url), "csdp_live_feed_subscribers") == 1)
        samples = scrape(metrics_server.base_url)

    assert sample(samples, "csdp_ingest_batch_seconds_count") == 4
    assert sample(samples, "csdp_ingest_event_seconds_count") == 7
    assert sample(samples, "csdp_ingest_batch_events_sum") == 7
    assert sample(samples, "csdp_ingest_batch_seconds_bucket", le="+Inf") == 4
    assert sample(samples, "csdp_decisions_total", status="ACCEPTED", reason_code="applied") == 6
    assert sample(samples, "csdp_decisions_total", status="REJECTED", reason_code="invalid_transition") == 1
    assert sample(samples, "csdp_decision_replays_total") == 0
    assert sample(samples, "csdp_sla_clocks", state="at_risk") == 2
    assert sample(samples, "csdp_sla_clocks", state="breached") == 1
    assert sample(samples, "csdp_sla_clock_last_run_timestamp_seconds") > time.time() - 60
    # wo-late crossed the response warnings at 0.5 and 0.75, the response breach and the resolution warning
    # at 0.5; wo-warn crossed the response warnings at 0.5 and 0.75.
    assert sample(samples, "csdp_sla_crossings_total", kind="breach", clock="response") == 1
    assert sample(samples, "csdp_sla_crossings_total", kind="warning", clock="response") == 4
    assert sample(samples, "csdp_sla_crossings_total", kind="warning", clock="resolution") == 1
    assert sample(samples, "csdp_projection_lag_positions", projector="kpi") >= 0
    assert sample(samples, "csdp_projection_lag_seconds", projector="kpi") >= 0
    assert sample(samples, "csdp_projector_running", projector="kpi") == 1
    assert sample(samples, "csdp_live_feed_subscribers") == 1
    assert sample(samples, "csdp_db_pool_connections", state="max") >= 1
    assert sample(samples, "csdp_db_pool_connections", state="in_use") >= 0
    assert sample(samples, "csdp_db_pool_connections", state="idle") >= 0
    assert sample(samples, "csdp_http_requests_total", route="events.post", method="POST", status="200") == 4
    assert sample(samples, "csdp_http_request_seconds_count", route="events.post") == 4
    assert sample(samples, "csdp_metrics_refresh_errors_total") == 0


def test_metrics_count_bad_correlation_id(metrics_server):
    before = scrape(metrics_server.base_url)
    key = ("csdp_http_requests_total", (("method", "GET"), ("route", "health"), ("status", "400")))

    response = httpx.get(f"{metrics_server.base_url}/health", headers={"X-Correlation-ID": "bad id"}, timeout=10)
    after = scrape(metrics_server.base_url)

    assert response.status_code == 400
    assert after[key] == before.get(key, 0) + 1


def test_metrics_projection_lag_drains(metrics_server):
    admin = metrics_server.client(Role.ADMIN, "admin-1")
    post_batch(admin, [event(f"wo-{index}", "created", 0, {"title": "t", "site_id": "s", "priority": "P3"}) for index in range(5)])

    wait_for(lambda: sample(scrape(metrics_server.base_url), "csdp_projection_lag_positions", projector="kpi") == 0)

    samples = scrape(metrics_server.base_url)
    assert sample(samples, "csdp_projection_lag_seconds", projector="kpi") == 0


def test_metrics_counts_replays_apart(metrics_server):
    admin = metrics_server.client(Role.ADMIN, "admin-1")
    batch = [event("wo-r", "created", 0, {"title": "t", "site_id": "s", "priority": "P3"})]
    post_batch(admin, batch)
    post_batch(admin, batch)

    samples = scrape(metrics_server.base_url)

    assert sample(samples, "csdp_decision_replays_total") == 1
    assert sample(samples, "csdp_decisions_total", status="ACCEPTED", reason_code="applied") == 1


def test_metrics_without_subscribers_reports_zero(live_server):
    admin_token = live_server.token(Role.ADMIN, "admin-1")

    samples = scrape(live_server.base_url, token=admin_token)

    assert sample(samples, "csdp_live_feed_subscribers") == 0


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer " + SCRAPE_TOKEN[:-1] + "x", 401),
        ("Basic " + SCRAPE_TOKEN, 401),
        ("Bearer", 401),
        ("Bearer " + SCRAPE_TOKEN + "0", 401),
    ],
    ids=["missing", "wrong-token", "wrong-scheme", "no-token", "longer-token"],
)
def test_metrics_rejects_bad_credentials(metrics_server, authorization, status):
    headers = {"Authorization": authorization} if authorization else {}

    response = httpx.get(f"{metrics_server.base_url}/metrics", headers=headers, verify=SHARED_SSL_CONTEXT)

    assert response.status_code == status
    assert "csdp_" not in response.text


def test_scrape_token_opens_only_metrics(metrics_server):
    headers = {"Authorization": f"Bearer {SCRAPE_TOKEN}"}

    response = httpx.get(f"{metrics_server.base_url}/v1/work-orders", headers=headers, verify=SHARED_SSL_CONTEXT)

    assert response.status_code == 401


@pytest.mark.parametrize("role", [Role.ENGINEER, Role.DISPATCHER, Role.MANAGER])
def test_metrics_forbidden_to_other_roles(metrics_server, role):
    with metrics_server.client(role, f"{role.value}-1") as client:
        response = client.get("/metrics")

    assert response.status_code == 403
    assert response.json()["reason"] == "role_not_permitted"
