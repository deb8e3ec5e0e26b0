"""HTTP transports that make a device offline or lose responses, on a seeded schedule."""

from __future__ import annotations

import random

import httpx


class FlakyNetwork(httpx.BaseTransport):
    """Forwards requests to a real transport, failing some on purpose.

    While `offline` is set every request fails with a connection error before
    reaching the server. Otherwise, with probability `lost_response_rate`, the
    request reaches the server and commits, but the response is dropped, as
    happens to a tablet when the network breaks mid-request.
    """

    def __init__(self, rng: random.Random, lost_response_rate: float) -> None:
        self._inner = httpx.HTTPTransport()
        self._rng = rng
        self.lost_response_rate = lost_response_rate
        self.offline = False
        self.lost_responses = 0
        self.refused_while_offline = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.offline:
            self.refused_while_offline += 1
            raise httpx.ConnectError("simulated: device is offline", request=request)
        response = self._inner.handle_request(request)
        if request.method == "POST" and self._rng.random() < self.lost_response_rate:
            response.read()
            response.close()
            self.lost_responses += 1
            raise httpx.ReadError("simulated: response lost after the server committed", request=request)
        return response

    def close(self) -> None:
        self._inner.close()
