"""Live stream benchmark: many SSE subscribers on loopback, latency from accept to delivery.

    python -m simulators.bench_live [--subscribers 100,500] [--events 200] [--rate 20] [--database-url URL]

For each subscriber count it starts `csdp serve` as a subprocess over a
fresh SQLite file, or over the PostgreSQL database of `--database-url` in a
fresh schema. It opens the subscribers as raw asyncio connections to
`GET /v1/stream` and posts single-event batches at `--rate` per second from
one dispatcher. For every
(subscriber, event) pair it takes the time from the event's `recorded_at`
(the server's clock when it decided the event, before the commit) to the
moment the subscriber has read the whole message. Server and benchmark run on
the same machine, so both sides read the same clock.

The script prints the figures and writes them to the section "Live stream
fan-out" of docs/benchmarks.md, leaving the other sections as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import textwrap
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from server.config import Settings
from server.security import mint_dev_token
from shared_schema import Role

from .bench_report import machine_facts
from .server_process import ServerProcess
from .bench_doc import write_section

SECTION = "## Live stream fan-out"
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
TARGET_P99_MS = 200.0
RECORDED_AT = '"recorded_at":"'
# Every change message starts with {"kind":"change","position":
POSITION_START = len('data: {"kind":"change","position":')


class Subscriber:
    """One SSE connection that records the delivery delay of every change."""

    def __init__(self) -> None:
        self.delays_ms: list[float] = []
        self.positions: list[int] = []
        self.disconnects: list[str] = []

    async def run(self, host: str, port: int, token: str, opened: list[int], target: int, ready: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"GET /v1/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"GET /v1/stream returned {status.decode().strip()}")
        while (await reader.readline()).strip():
            pass
        opened.append(1)
        if len(opened) == target:
            ready.set()
        event = ""
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                text = line.decode().rstrip("\r\n")
                # Chunk-size lines of the chunked encoding carry no colon and are skipped.
                if text.startswith("event: "):
                    event = text[7:]
                elif text.startswith("data: ") and event == "change":
                    received = time.time()
                    # Slicing instead of decoding the JSON keeps the reader's own cost
                    # out of the delay of the subscribers read after it.
                    start = text.index(RECORDED_AT) + len(RECORDED_AT)
                    recorded = dt.datetime.fromisoformat(text[start : text.index('"', start)].replace("Z", "+00:00"))
                    self.delays_ms.append((received - recorded.timestamp()) * 1000)
                    self.positions.append(int(text[POSITION_START : text.index(",", POSITION_START)]))
                elif text.startswith("data: ") and event == "disconnect":
                    self.disconnects.append(json.loads(text[6:])["reason"])
        finally:
            writer.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


async def run_benchmark(server: ServerProcess, token: str, subscribers: int, events: int, rate: float) -> dict:
    host, port = "127.0.0.1", server.port
    ready = asyncio.Event()
    opened: list[int] = []
    clients = [Subscriber() for _ in range(subscribers)]
    tasks = [asyncio.create_task(client.run(host, port, token, opened, subscribers, ready)) for client in clients]
    await asyncio.wait_for(ready.wait(), 60)
    await asyncio.sleep(0.5)

    positions: list[int] = []
    async with httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        started = time.monotonic()
        for index in range(events):
            body = {
                "events": [
                    {
                        "client_event_id": str(uuid.uuid4()),
                        "work_order_id": f"wo-bench-{index}",
                        "type": "created",
                        "payload": {"title": "Spindle alarm", "site_id": "site-1", "priority": "P3"},
                        "occurred_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                        "base_version": 0,
                        "device_id": "bench-live",
                    }
                ]
            }
            response = await http.post("/v1/events", json=body)
            response.raise_for_status()
            decision = response.json()["decisions"][0]
            if decision["status"] != "ACCEPTED":
                raise RuntimeError(f"event {index} was not accepted: {decision}")
            positions.append(decision["global_position"])
            next_at = started + (index + 1) / rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        sending_seconds = time.monotonic() - started

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(len(client.positions) < events for client in clients):
        await asyncio.sleep(0.1)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    delays = [delay for client in clients for delay in client.delays_ms]
    complete = sum(client.positions == positions for client in clients)
    return {
        "subscribers": subscribers,
        "events": events,
        "rate": rate,
        "sending_seconds": round(sending_seconds, 2),
        "deliveries": len(delays),
        "expected_deliveries": subscribers * events,
        "complete_subscribers": complete,
        "disconnects": sum(len(client.disconnects) for client in clients),
        "p50_ms": round(statistics.median(delays), 1) if delays else None,
        "p99_ms": round(percentile(delays, 0.99), 1) if delays else None,
        "max_ms": round(max(delays), 1) if delays else None,
    }


def create_schema(database_url: str) -> str:
    schema = f"bench_live_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(f"CREATE SCHEMA {schema}")
        finally:
            await connection.close()

    asyncio.run(create())
    separator = "&" if "?" in database_url else "?"
    return f"{database_url}{separator}search_path={schema}"


def render_section(runs: list[dict], store: str, command: str, load: tuple[float, float]) -> str:
    facts = machine_facts()
    largest = runs[-1]
    verdict = "met" if largest["p99_ms"] is not None and largest["p99_ms"] < TARGET_P99_MS else "missed"
    paragraphs = [
        f"Generated by `simulators/bench_live.py` on {dt.date.today().isoformat()}: `{command}`.",
        f"Machine: {facts['cores']} cores, {facts['python']}, {facts['os']}. The server ({store}, one uvicorn"
        " worker) and the subscribers run on the same machine and share its cores. The one-minute load average"
        f" was {load[0]} at the start and {load[1]} at the end. Above the number of cores, other processes"
        " were competing for them, and the delays include that wait.",
        "Each run starts a fresh server. The subscribers are raw asyncio connections to `GET /v1/stream` in one"
        f" benchmark process. One dispatcher posts {largest['events']} single-event batches at"
        f" {largest['rate']:g} a second. The delay is measured for every (subscriber, event) pair, from the"
        " event's `recorded_at`, which the server sets before the commit, to the moment the subscriber has"
        " read the message. Both sides read the same clock.",
    ]
    lines = [SECTION, ""]
    for paragraph in paragraphs:
        lines += [textwrap.fill(paragraph, width=100), ""]
    lines += [
        "| subscribers | deliveries | subscribers with every event in order | disconnected | p50 (ms) | p99 (ms) | max (ms) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        lines.append(
            f"| {run['subscribers']} | {run['deliveries']} of {run['expected_deliveries']} | {run['complete_subscribers']} |"
            f" {run['disconnects']} | {run['p50_ms']} | {run['p99_ms']} | {run['max_ms']} |"
        )
    lines += ["", f"Target: p99 under {TARGET_P99_MS:g} ms on loopback with {largest['subscribers']} subscribers, {verdict} in this run.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--subscribers",
        default="100,500",
        help="comma-separated SSE connection counts, one run each, the last one judged against the target (default 100,500)",
    )
    parser.add_argument("--events", type=int, default=200, help="single-event batches to post per run (default 200)")
    parser.add_argument("--rate", type=float, default=20.0, help="batches posted per second (default 20)")
    parser.add_argument("--database-url", default="", help="run the server on this PostgreSQL database, in a new schema per run")
    parser.add_argument("--no-write", action="store_true", help="print the figures without writing docs/benchmarks.md")
    args = parser.parse_args(argv)
    try:
        counts = [int(part) for part in args.subscribers.split(",")]
    except ValueError:
        parser.error(f"--subscribers must be whole numbers separated by commas, got {args.subscribers!r}")
    if any(count < 1 for count in counts):
        parser.error(f"--subscribers must be 1 or more, got {args.subscribers!r}")
    if args.events < 1:
        parser.error(f"--events must be 1 or more, got {args.events}")
    if not 0 < args.rate <= 10_000:
        parser.error(f"--rate must be above 0 and at most 10000 batches a second, got {args.rate}")

    load_before = round(os.getloadavg()[0], 2)
    runs = []
    for count in counts:
        with tempfile.TemporaryDirectory(prefix="bench-live-") as folder:
            var_dir = Path(folder) / "var"
            database_url = create_schema(args.database_url) if args.database_url else None
            environment = {"CSDP_SLA_CLOCK_SECONDS": "0", "CSDP_RATE_LIMIT_PER_MINUTE": "0"}
            with ServerProcess(var_dir, database_url=database_url, environment=environment) as server:
                token = mint_dev_token(Settings(var_dir=var_dir), subject="bench-dispatcher", role=Role.DISPATCHER)
                runs.append(asyncio.run(run_benchmark(server, token, count, args.events, args.rate)))
        print(json.dumps(runs[-1]))
    load = (load_before, round(os.getloadavg()[0], 2))

    store = "PostgreSQL" if args.database_url else "SQLite"
    print(f"store {store}, one-minute load average {load[0]} at the start and {load[1]} at the end")
    if not args.no_write:
        command = " ".join(["python -m simulators.bench_live", *(argv if argv is not None else sys.argv[1:])])
        write_section(DOC, render_section(runs, store, command, load))
        print(f"wrote the section {SECTION[3:]!r} of {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
