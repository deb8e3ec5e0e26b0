"""A technician's day with the client SDK against a local server.

Without options it starts `csdp serve` on a free loopback port over a fresh
SQLite file in a temporary folder. With `--server-url URL --var-dir DIR` it
uses a running server whose development key is in DIR (its CSDP_VAR_DIR).

    .venv/bin/python examples/technician_day.py

The dispatcher creates and assigns two orders. The engineer syncs in the
morning, works the first order through a hold for parts, records work on
the second order while offline as the dispatcher cancels it, and syncs
with a background loop. The script prints each step and exits 1 when the
tablet and the server disagree at the end of the day.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from client_sdk import RequestRejected, Rollback, ServerUnreachable, SyncClient, SyncLoop, engineer_actor  # noqa: E402
from server.config import Settings  # noqa: E402
from server.security import mint_dev_token  # noqa: E402
from shared_schema import Role  # noqa: E402
from simulators.server_process import ServerProcess  # noqa: E402

ENGINEER = "e-40"
SITE = "site-stuttgart"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", help="Base URL of a running server, such as http://127.0.0.1:8080.")
    parser.add_argument("--var-dir", type=Path, help="CSDP_VAR_DIR of the server at --server-url, for its development key.")
    parser.add_argument("--workdir", type=Path, help="Folder for the tablet's SQLite file (default: a temporary folder).")
    args = parser.parse_args(argv)
    if args.server_url and not args.server_url.startswith(("http://", "https://")):
        parser.error(f"--server-url {args.server_url!r} must start with http:// or https://")
    if args.server_url and args.var_dir is None:
        parser.error("--server-url needs --var-dir, the server's CSDP_VAR_DIR, to mint development tokens")
    if args.var_dir is not None and not (args.var_dir / "dev-jwt-key").is_file():
        parser.error(f"--var-dir {args.var_dir} has no dev-jwt-key; give the CSDP_VAR_DIR of the server")
    return args


class Dispatcher:
    """The office side, posting events over plain HTTP as a dispatcher."""

    def __init__(self, base_url: str, token: str) -> None:
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def post(self, work_order_id: str, event_type: str, payload: dict, base_version: int) -> dict:
        event = {
            "client_event_id": str(uuid.uuid4()),
            "work_order_id": work_order_id,
            "type": event_type,
            "payload": payload,
            "occurred_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "base_version": base_version,
            "device_id": "dispatch-console",
        }
        response = self.http.post("/v1/events", json={"events": [event]})
        response.raise_for_status()
        decision = response.json()["decisions"][0]
        print(f"  dispatcher: {event_type} on {work_order_id} -> {decision['status']} ({decision['reason_code']})")
        return decision

    def state(self, work_order_id: str) -> dict:
        response = self.http.get(f"/v1/work-orders/{work_order_id}")
        response.raise_for_status()
        return response.json()


def run_day(base_url: str, settings: Settings, workdir: Path) -> bool:
    suffix = uuid.uuid4().hex[:6]
    first, second = f"wo-day-{suffix}-1", f"wo-day-{suffix}-2"
    dispatcher = Dispatcher(base_url, mint_dev_token(settings, subject="d-day", role=Role.DISPATCHER))
    engineer_token = mint_dev_token(settings, subject=ENGINEER, role=Role.ENGINEER)

    print("07:30 the dispatcher plans the day")
    for work_order_id, title in ((first, "Spindle vibration above limit"), (second, "Coolant pump leaking")):
        dispatcher.post(work_order_id, "created", {"title": title, "site_id": SITE, "priority": "P2"}, 0)
        dispatcher.post(work_order_id, "assigned", {"engineer_id": ENGINEER}, 1)

    tablet = SyncClient(
        workdir / f"tablet-{suffix}.sqlite3",
        base_url,
        engineer_token,
        device_id=f"tablet-{ENGINEER}",
        actor=engineer_actor(ENGINEER),
        max_attempts=3,
    )
    tablet.on_rollback(
        lambda rollback: print(
            f"  tablet: {rollback.event_type} on {rollback.work_order_id} rolled back: {rollback.reason_code}."
            f" {rollback.message} The order is {rollback.server_status.value if rollback.server_status else 'gone'}."
        )
    )
    try:
        print("08:00 morning sync on the tablet")
        tablet.sync()
        print(f"  tablet: {len(tablet.my_work_orders())} orders assigned")

        print("08:10 first order: accept, drive, arrive, start work (offline in the basement)")
        for event_type in ("accepted", "travel_started", "arrived", "work_started"):
            tablet.record(first, event_type)
        tablet.record(first, "checklist_updated", {"item": "spindle bearings inspected", "status": "done"})
        tablet.record(first, "hold_started", {"reason": "parts", "note": "bearing 6204 out of stock"})
        print(f"  tablet: {first} is {tablet.work_order(first).status.value} locally, {tablet.pending_count()} pending")

        print("10:30 back in signal: sync")
        report = tablet.sync()
        print(f"  tablet: {report.accepted} accepted, {report.rejected} rejected, {tablet.pending_count()} pending")

        print("11:00 second order, recorded offline while the office cancels it")
        tablet.record(second, "accepted")
        dispatcher.post(second, "cancelled", {"reason": "customer replaced the pump"}, 2)
        tablet.sync()

        print("13:00 parts arrived: resume and finish the first order with a background sync loop")
        loop = SyncLoop(tablet, interval=0.5, record_delay=0.05)
        loop.start()
        tablet.record(first, "work_resumed")
        tablet.record(first, "parts_used", {"part_number": "6204-2RS", "quantity": 2})
        tablet.record(first, "time_logged", {"minutes": 95, "activity": "repair"})
        tablet.record(first, "completed", {"summary": "Bearings replaced, vibration within limits", "fixed": True})
        deadline = time.monotonic() + 30
        while tablet.pending_count() and time.monotonic() < deadline:
            time.sleep(0.05)
        loop.stop()

        print("17:00 the dispatcher closes the first order")
        closed_at = dispatcher.state(first)["version"]
        dispatcher.post(first, "closed", {"note": "checked with the customer"}, closed_at)
        tablet.sync()

        status = tablet.status()
        print(
            f"17:05 end of day: pending {status.pending_count}, rejected {status.rejected_count},"
            f" last sync {status.last_successful_sync}"
        )
        agree = True
        for work_order_id in (first, second):
            server = dispatcher.state(work_order_id)
            local = tablet.work_order(work_order_id)
            same = local is not None and local.version == server["version"] and local.status.value == server["status"]
            print(f"  {work_order_id}: server {server['status']} v{server['version']}, tablet {'agrees' if same else 'DIFFERS'}")
            agree = agree and same
        return agree and status.pending_count == 0
    finally:
        tablet.close()
        dispatcher.http.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="csdp-day-") as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        if args.server_url:
            try:
                ok = run_day(args.server_url, Settings(var_dir=args.var_dir), workdir)
            except (httpx.TransportError, ServerUnreachable) as exc:
                print(
                    f"error: the server at {args.server_url} is not reachable ({_one_line(exc)});"
                    " start it or check --server-url",
                    file=sys.stderr,
                )
                return 2
            except (httpx.HTTPStatusError, RequestRejected) as exc:
                print(
                    f"error: the server at {args.server_url} rejected a request ({_one_line(exc)});"
                    " check that --server-url is a CSDP server and --var-dir is its CSDP_VAR_DIR",
                    file=sys.stderr,
                )
                return 2
        else:
            var_dir = Path(temporary) / "server"
            with ServerProcess(var_dir) as server:
                print(f"started a server at {server.base_url} over {var_dir}")
                ok = run_day(server.base_url, Settings(var_dir=var_dir), workdir)
    print("the tablet and the server agree" if ok else "the tablet and the server DISAGREE")
    return 0 if ok else 1


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
