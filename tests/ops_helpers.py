"""Helpers for the operations tests: a real server around an app the test built, and Prometheus parsing."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn
from conftest import SHARED_SSL_CONTEXT, free_port
from litestar import Litestar
from prometheus_client.parser import text_string_to_metric_families

# A scrape token long enough for the settings check.
SCRAPE_TOKEN = "scrape-" + "0123456789abcdef" * 2


@contextlib.contextmanager
def serve(app: Litestar) -> Iterator[str]:
    """Run `app` with uvicorn on a free loopback port in a thread; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the test server did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def scrape(base_url: str, token: str = SCRAPE_TOKEN) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics and return every sample as {(name, sorted labels): value}."""
    response = httpx.get(
        f"{base_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30, verify=SHARED_SSL_CONTEXT
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def sample(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"no sample {name}{labels}; names present: {sorted({n for n, _ in samples})}"
    return samples[key]
