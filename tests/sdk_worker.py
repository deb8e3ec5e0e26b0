"""A tablet app in its own process, for the tests that kill it or run two at once on one SQLite file.

Usage: python sdk_worker.py FILE BASE_URL DEVICE_ID ENGINEER COMMAND [COUNT]

The bearer token comes from the CSDP_WORKER_TOKEN environment variable.
COMMAND is `sync` (one sync of what the file holds) or `record-with-loop`
(record COUNT notes on wo-1001 from the main thread while a SyncLoop
syncs in the background, then wait until nothing is pending). The process
prints one JSON line with its figures and exits 0, or exits 1 on failure.
"""

from __future__ import annotations

import json
import os
import sys
import time

from client_sdk import SyncClient, SyncLoop, engineer_actor

ORDER = "wo-1001"


def main(argv: list[str]) -> int:
    path, base_url, device_id, engineer, command, *rest = argv
    client = SyncClient(
        path,
        base_url,
        os.environ["CSDP_WORKER_TOKEN"],
        device_id=device_id,
        actor=engineer_actor(engineer),
        batch_size=2,
        max_attempts=3,
        initial_backoff=0.05,
        max_backoff=0.2,
    )
    try:
        if command == "sync":
            report = client.sync()
            print(json.dumps({"pushed": report.pushed, "pulled": report.pulled}))
            return 0
        if command == "record-with-loop":
            return record_with_loop(client, int(rest[0]))
        print(f"unknown command {command!r}; expected sync or record-with-loop", file=sys.stderr)
        return 2
    finally:
        client.close()


def record_with_loop(client: SyncClient, count: int) -> int:
    loop = SyncLoop(client, interval=0.05, initial_backoff=0.05, max_backoff=0.2, record_delay=0.01)
    loop.start()
    ids = []
    for number in range(count):
        entry = client.record(ORDER, "note_added", {"text": f"note {number} from process {os.getpid()}"})
        ids.append(str(entry.event.client_event_id))
        time.sleep(0.005)
    deadline = time.monotonic() + 60
    while client.pending_count() and time.monotonic() < deadline:
        loop.trigger()
        time.sleep(0.05)
    stopped = loop.stop(timeout=30)
    print(json.dumps({"ids": ids, "pending": client.pending_count(), "attempts": loop.attempts, "stopped": stopped}))
    return 0 if stopped and client.pending_count() == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
