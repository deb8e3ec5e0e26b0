"""Ingestion, replay and pull throughput of a real server subprocess, by batch size.

    python -m simulators.bench_ingest [--events 2000] [--output docs/benchmarks.md]

Every figure comes from one run on one machine. Compare the ratios between
batch sizes (against batches of one event, the per-event baseline) across
changes, because absolute numbers depend on the disk and CPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import msgspec

from server.auth import mint_dev_token
from server.config import Settings
from shared_schema import EventBatch, ProposedEvent, Role

from .server_process import ServerProcess

BATCH_SIZES = (1, 10, 100, 500)


def _note(work_order_id: str, base_version: int) -> ProposedEvent:
    return ProposedEvent(
        client_event_id=uuid.uuid4(),
        work_order_id=work_order_id,
        type="note_added",
        payload={"text": "benchmark note"},
        occurred_at=dt.datetime.now(dt.timezone.utc),
        base_version=base_version,
        device_id="bench",
    )


def _post(client: httpx.Client, events: list[ProposedEvent]) -> float:
    body = msgspec.json.encode(EventBatch(events=events))
    started = time.perf_counter()
    response = client.post("/v1/events", content=body, headers={"Content-Type": "application/json"})
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def measure(client: httpx.Client, total_events: int, batch_size: int, stream_count: int) -> dict[str, float]:
    streams = [f"bench-{batch_size}-{index}" for index in range(stream_count)]
    created = [
        ProposedEvent(
            client_event_id=uuid.uuid4(),
            work_order_id=stream,
            type="created",
            payload={"title": "benchmark order", "site_id": "site-bench"},
            occurred_at=dt.datetime.now(dt.timezone.utc),
            base_version=0,
            device_id="bench",
        )
        for stream in streams
    ]
    _post(client, created)
    events = [_note(streams[index % stream_count], 1) for index in range(total_events)]
    batches = [events[start : start + batch_size] for start in range(0, total_events, batch_size)]

    latencies = [_post(client, batch) for batch in batches]
    replay_started = time.perf_counter()
    for batch in batches:
        _post(client, batch)
    replay_seconds = time.perf_counter() - replay_started
    return {
        "events_per_second": total_events / sum(latencies),
        "median_batch_ms": statistics.median(latencies) * 1000,
        "replay_events_per_second": total_events / replay_seconds,
    }


def measure_pull(client: httpx.Client) -> tuple[int, float]:
    cursor, pulled = "0", 0
    started = time.perf_counter()
    while True:
        page = client.get("/v1/sync/changes", params={"since": cursor, "limit": 500}).json()
        pulled += len(page["events"])
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return pulled, pulled / (time.perf_counter() - started)


def render(results: dict[int, dict[str, float]], pulled: int, pull_rate: float, total_events: int) -> str:
    baseline = results[1]["events_per_second"]
    lines = [
        "# Benchmarks",
        "",
        "## Ingestion by batch size (embedded SQLite store)",
        "",
        f"Command: `python -m simulators.bench_ingest --events {total_events}`. Machine: "
        f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}; client and server on the same machine over loopback, "
        "`synchronous=FULL`. One run; compare the ratios, not the absolute figures.",
        "",
        "| batch size | events/s | ratio to batch of 1 | median batch latency (ms) | replay events/s |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, figures in results.items():
        lines.append(
            f"| {size} | {figures['events_per_second']:.0f} | {figures['events_per_second'] / baseline:.1f}x "
            f"| {figures['median_batch_ms']:.1f} | {figures['replay_events_per_second']:.0f} |"
        )
    lines += [
        "",
        "## Pull feed",
        "",
        f"`GET /v1/sync/changes` in pages of 500 as a dispatcher: {pulled} events at {pull_rate:.0f} events/s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators.bench_ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="events sent per batch size (default 2000)")
    parser.add_argument("--streams", type=int, default=50, help="work orders the events spread over (default 50)")
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"), help="Markdown file to write")
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="csdp-bench-"))
    with ServerProcess(var_dir) as server:
        token = mint_dev_token(Settings(var_dir=var_dir), subject="bench", role=Role.DISPATCHER)
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
            results = {}
            for size in BATCH_SIZES:
                results[size] = measure(client, args.events, size, args.streams)
                print(f"batch {size:>3}: {results[size]['events_per_second']:.0f} events/s", flush=True)
            pulled, pull_rate = measure_pull(client)
    report = render(results, pulled, pull_rate, args.events)
    args.output.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
