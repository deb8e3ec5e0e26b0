"""The simulator's fault layer: an HTTP transport that takes devices offline and breaks requests on a seeded schedule."""

from __future__ import annotations

import dataclasses
import random

import httpx


@dataclasses.dataclass
class NetworkFaults:
    """Rates of the injected network faults, with the meaning given in `simulators.scenario.Faults`."""

    lost_response_rate: float = 0.0
    connection_reset_rate: float = 0.0
    burst_503_rate: float = 0.0
    burst_503_length: int = 5


@dataclasses.dataclass
class FaultCounts:
    lost_responses: int = 0
    connection_resets: int = 0
    injected_503: int = 0
    failed_while_offline: int = 0


class FlakyNetwork(httpx.BaseTransport):
    """Forward requests to a real transport, failing some on purpose.

    While `offline` is set every request fails with a connection error before
    reaching the server. Otherwise the faults apply in this order. A running
    503 burst returns 503 with Retry-After 0 without sending the request. A
    connection reset fails the request before it is sent. A lost response lets
    a POST reach the server and commit, then drops the response, as happens
    to a tablet when the network breaks mid-request.
    """

    def __init__(self, rng: random.Random, faults: NetworkFaults, inner: httpx.BaseTransport | None = None) -> None:
        self._inner = inner or httpx.HTTPTransport()
        self._rng = rng
        self.faults = faults
        self.offline = False
        self.counts = FaultCounts()
        self._burst_left = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.offline:
            self.counts.failed_while_offline += 1
            raise httpx.ConnectError("simulated: device is offline", request=request)

        # One draw per fault and request, whether or not the fault is on, keeps the
        # random sequence of a seed the same when a scenario changes one rate.
        burst_roll, reset_roll, lost_roll = self._rng.random(), self._rng.random(), self._rng.random()
        if self._burst_left == 0 and burst_roll < self.faults.burst_503_rate:
            self._burst_left = self.faults.burst_503_length
        if self._burst_left > 0:
            self._burst_left -= 1
            self.counts.injected_503 += 1
            return httpx.Response(
                503,
                headers={"Retry-After": "0", "Content-Type": "application/json"},
                content=b'{"error": "unavailable", "message": "simulated: 503 burst"}',
                request=request,
            )
        if reset_roll < self.faults.connection_reset_rate:
            self.counts.connection_resets += 1
            raise httpx.ConnectError("simulated: connection reset by peer", request=request)

        response = self._inner.handle_request(request)
        if request.method == "POST" and lost_roll < self.faults.lost_response_rate:
            response.read()
            response.close()
            self.counts.lost_responses += 1
            raise httpx.ReadError("simulated: response lost after the server committed", request=request)
        return response

    def calm(self) -> None:
        """Turn every fault off, for the final pull that brings each tablet up to date."""
        self.faults = NetworkFaults()
        self._burst_left = 0
        self.offline = False

    def close(self) -> None:
        self._inner.close()
