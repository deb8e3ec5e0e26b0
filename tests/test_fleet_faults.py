"""The simulator's fault layer on its own, with a counting transport in place of the server."""

from __future__ import annotations

import random

import httpx
import pytest

from simulators.faults import FlakyNetwork, NetworkFaults


class CountingTransport(httpx.BaseTransport):
    """Return 200 to every request and record the method of each one that reached it."""

    def __init__(self) -> None:
        self.received: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.received.append(request.method)
        return httpx.Response(200, json={"ok": True}, request=request)


def client_with(faults: NetworkFaults, seed: int = 1) -> tuple[httpx.Client, FlakyNetwork, CountingTransport]:
    server = CountingTransport()
    network = FlakyNetwork(random.Random(seed), faults, inner=server)
    return httpx.Client(base_url="http://127.0.0.1:9", transport=network), network, server


def test_burst_503_not_sent():
    client, network, server = client_with(NetworkFaults(burst_503_rate=1.0, burst_503_length=3))

    statuses = [client.get("/v1/work-orders").status_code for _ in range(3)]

    assert statuses == [503, 503, 503]
    assert server.received == []
    assert network.counts.injected_503 == 3


def test_burst_503_has_retry_after():
    client, _, _ = client_with(NetworkFaults(burst_503_rate=1.0, burst_503_length=1))

    response = client.get("/v1/work-orders")

    assert response.headers["Retry-After"] == "0"
    assert response.json()["error"] == "unavailable"


def test_connection_reset_not_sent():
    client, network, server = client_with(NetworkFaults(connection_reset_rate=1.0))

    with pytest.raises(httpx.ConnectError, match="connection reset"):
        client.post("/v1/events", json={})

    assert server.received == []
    assert network.counts.connection_resets == 1


def test_lost_response_after_commit():
    client, network, server = client_with(NetworkFaults(lost_response_rate=1.0))

    with pytest.raises(httpx.ReadError, match="response lost after the server committed"):
        client.post("/v1/events", json={})
    reads = client.get("/v1/sync/changes")

    assert server.received == ["POST", "GET"]
    assert reads.status_code == 200
    assert network.counts.lost_responses == 1


def test_offline_fails_every_request():
    client, network, server = client_with(NetworkFaults())
    network.offline = True

    with pytest.raises(httpx.ConnectError, match="device is offline"):
        client.get("/health")

    assert server.received == []
    assert network.counts.failed_while_offline == 1


def test_calm_turns_faults_off():
    client, network, server = client_with(
        NetworkFaults(lost_response_rate=1.0, connection_reset_rate=1.0, burst_503_rate=1.0, burst_503_length=50)
    )
    assert client.get("/health").status_code == 503
    network.offline = True

    network.calm()

    assert client.post("/v1/events", json={}).status_code == 200
    assert network.offline is False
    assert server.received == ["POST"]


def test_same_seed_same_faults():
    faults = NetworkFaults(lost_response_rate=0.3, connection_reset_rate=0.3, burst_503_rate=0.1, burst_503_length=2)

    def outcomes(seed: int) -> list[str]:
        client, _, _ = client_with(faults, seed)
        results = []
        for _ in range(60):
            try:
                results.append(str(client.post("/v1/events", json={}).status_code))
            except httpx.TransportError as exc:
                results.append(type(exc).__name__)
        return results

    assert outcomes(7) == outcomes(7)
    assert outcomes(7) != outcomes(8)
    assert {"200", "503", "ConnectError", "ReadError"} <= set(outcomes(7))
