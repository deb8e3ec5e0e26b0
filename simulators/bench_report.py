"""Figures of an ingestion benchmark run: targets, ratios, and the console, JSON and Markdown output."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import importlib.metadata
import os
import platform
import pstats
import shlex
import sqlite3
import sys
from typing import Any

from .bench_baselines import PhaseResult

BENCH_PACKAGES = ("asyncpg", "eventsourcing", "psycopg", "httpx", "litestar", "uvicorn", "msgspec")

# The two ratios the product needs, as (numerator phase, denominator phase, minimum).
TARGETS = {
    "http_postgres_vs_eventsourcing": ("http_postgres", "eventsourcing_postgres", 2.0),
    "service_postgres_vs_asyncpg": ("service_postgres", "asyncpg_executemany", 0.5),
}
# Further ratios printed for context, without a threshold.
CONTEXT_RATIOS = {
    "http_postgres_vs_asyncpg": ("http_postgres", "asyncpg_executemany"),
    "http_postgres_vs_service_postgres": ("http_postgres", "service_postgres"),
    "service_postgres_vs_eventsourcing": ("service_postgres", "eventsourcing_postgres"),
    "http_sqlite_vs_sqlite3": ("http_sqlite", "sqlite3_executemany"),
    "service_sqlite_vs_sqlite3": ("service_sqlite", "sqlite3_executemany"),
    "http_sqlite_vs_service_sqlite": ("http_sqlite", "service_sqlite"),
}
TARGET_TITLES = {
    "http_postgres_vs_eventsourcing": "HTTP ingestion on PostgreSQL / `eventsourcing` recorder",
    "service_postgres_vs_asyncpg": "service layer on PostgreSQL / raw asyncpg `executemany`",
}
PHASE_TITLES = {
    "http_postgres": ("`POST /v1/events`, server subprocess", "PostgreSQL"),
    "http_sqlite": ("`POST /v1/events`, server subprocess", "SQLite"),
    "service_postgres": ("service layer: `append_batch` in process", "PostgreSQL"),
    "service_sqlite": ("service layer: `append_batch` in process", "SQLite"),
    "asyncpg_executemany": ("baseline: asyncpg `executemany`, plain table", "PostgreSQL"),
    "sqlite3_executemany": ("baseline: sqlite3 `executemany`, plain table", "SQLite"),
    "eventsourcing_postgres": ("baseline: `eventsourcing` application recorder", "PostgreSQL"),
}


@dataclasses.dataclass
class Run:
    """Figures of one benchmark run, for the console, `--json` and the Markdown report."""

    args: argparse.Namespace
    workload_events: int
    phases: dict[str, PhaseResult] = dataclasses.field(default_factory=dict)
    sweeps: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    postgres: dict[str, str] = dataclasses.field(default_factory=dict)
    profile: str = ""
    # One-minute load averages at the start and the end, which show whether other work shared the CPU.
    load_before: float = 0.0
    load_after: float = 0.0

    def ratio(self, numerator: str, denominator: str) -> float:
        return self.phases[numerator].events_per_second / self.phases[denominator].events_per_second

    def targets(self) -> dict[str, dict[str, Any]]:
        results = {}
        for name, (numerator, denominator, minimum) in TARGETS.items():
            value = self.ratio(numerator, denominator)
            results[name] = {"ratio": round(value, 3), "minimum": minimum, "passed": value >= minimum}
        return results

    def context_ratios(self) -> dict[str, float]:
        return {name: round(self.ratio(*pair), 3) for name, pair in CONTEXT_RATIOS.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": command_line(),
            "machine": machine_facts(),
            "load_average": {"before": self.load_before, "after": self.load_after},
            "packages": package_versions(),
            "postgres": self.postgres,
            "sqlite_version": sqlite3.sqlite_version,
            "config": {
                "events": self.workload_events,
                "clients": self.args.clients,
                "batch_size": self.args.batch_size,
                "orders_per_client": self.args.orders_per_client,
                "sweep_events": self.args.sweep_events,
            },
            "phases": {name: result.as_dict() for name, result in self.phases.items()},
            "targets": self.targets(),
            "ratios": self.context_ratios(),
            "sweeps": {
                store: {
                    **figures,
                    "batch_sizes": {str(size): values for size, values in figures["batch_sizes"].items()},
                }
                for store, figures in self.sweeps.items()
            },
        }


def command_line() -> str:
    return shlex.join(["python", "-m", "simulators.bench_ingest", *sys.argv[1:]])


def machine_facts() -> dict[str, Any]:
    os_name = platform.system()
    with contextlib.suppress(OSError):
        os_name = platform.freedesktop_os_release().get("PRETTY_NAME", os_name)
    return {
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": f"{os_name}, kernel {platform.release()}, {platform.machine()}",
    }


def package_versions() -> dict[str, str]:
    import psycopg  # only installed with the `bench` extra, which `main` checks first

    versions = {name: importlib.metadata.version(name) for name in BENCH_PACKAGES}
    # "python" is psycopg's ctypes wrapper of libpq, "c" and "binary" are its compiled builds.
    versions["psycopg implementation"] = psycopg.pq.__impl__
    return versions


def profile_summary(stats: pstats.Stats) -> str:
    """Return the shares of the profiled time spent waiting for sockets, in `plan_batch` and in `append_batch`."""
    total = stats.total_tt  # type: ignore[attr-defined]
    waiting = planning = appending = 0.0
    for (filename, _line, function), (_calls, _primitive, own, cumulative, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if function == "<method 'poll' of 'select.epoll' objects>":
            waiting += own
        elif function == "plan_batch" and filename.endswith("ingest.py"):
            planning += cumulative
        elif function == "append_batch" and filename.endswith("postgres.py"):
            appending += cumulative
    return (
        f"Of {total:.2f} s profiled: waiting in epoll for the database {waiting / total:.0%},"
        f" PostgresStore.append_batch {appending / total:.0%} (cumulative), of which plan_batch"
        f" (deciding in Python) {planning / total:.0%}."
    )


def render_console(run: Run) -> str:
    lines = [f"{'phase':<24} {'events/s':>10} {'p50 ms':>9} {'p99 ms':>9}"]
    for name, result in run.phases.items():
        lines.append(
            f"{name:<24} {result.events_per_second:>10.0f}"
            f" {result.latency_ms(0.5):>9.1f} {result.latency_ms(0.99):>9.1f}"
        )
    lines.append("")
    for name, target in run.targets().items():
        verdict = "PASS" if target["passed"] else "FAIL"
        lines.append(f"{name}: {target['ratio']:.2f}x (minimum {target['minimum']}x) {verdict}")
    for name, value in run.context_ratios().items():
        lines.append(f"{name}: {value:.2f}x")
    return "\n".join(lines)


def render_markdown(run: Run) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `simulators/bench_ingest.py`. All figures come from one run on one machine, where the clients,"
        " the server and the database share the cores. Compare the ratios, not the absolute figures.",
    ]
    lines += _markdown_machine(run)
    lines += _markdown_phases(run)
    lines += _markdown_targets(run)
    if run.sweeps:
        lines += _markdown_sweeps(run)
    if run.profile:
        lines += [
            "",
            "## Profile of the service layer on PostgreSQL",
            "",
            "cProfile of one more service-layer pass with the same workload on a fresh database, after the timed"
            " phases. cProfile slows Python code down several times, so the shares of Python functions are"
            " overstated. The table is sorted by the time spent in each function itself.",
            "",
            "```",
            run.profile.strip("\n"),
            "```",
        ]
    lines.append("")
    return "\n".join(lines)


def _markdown_machine(run: Run) -> list[str]:
    machine, postgres = machine_facts(), run.postgres
    packages = package_versions()
    implementation = packages.pop("psycopg implementation")
    return [
        "",
        "## Machine and command",
        "",
        f"- Machine: {machine['cores']} cores, {machine['python']}, {machine['os']}.",
        f"- PostgreSQL {postgres['version']} on the same machine over loopback, `fsync={postgres['fsync']}`,"
        f" `synchronous_commit={postgres['synchronous_commit']}`, `shared_buffers={postgres['shared_buffers']}`."
        " Each PostgreSQL phase has a fresh database.",
        f"- SQLite {sqlite3.sqlite_version} in WAL mode with `synchronous=FULL`, a fresh file per phase.",
        f"- Packages: {', '.join(f'{name} {version}' for name, version in packages.items())}"
        f" (psycopg's `{implementation}` libpq wrapper).",
        f"- One-minute load average: {run.load_before:.2f} at the start and {run.load_after:.2f} at the end."
        " A load above about 0.5 means that other processes were using the cores.",
        f"- Command: `{command_line()}`",
        f"- Date: {dt.date.today().isoformat()}.",
    ]


def _markdown_phases(run: Run) -> list[str]:
    args = run.args
    batches_per_client = run.workload_events // (args.clients * args.batch_size)
    lines = [
        "",
        "## Ingestion from concurrent clients",
        "",
        f"{args.clients} concurrent clients send {run.workload_events} `note_added` events in batches of"
        f" {args.batch_size}, {batches_per_client} batches each. Each client is a dispatcher with its own"
        f" {args.orders_per_client} work orders, which are created before the clock starts, and spreads every batch"
        " over them. Every phase sends the same events, and the script checks that each one is accepted."
        " Throughput is the events divided by the wall time of the phase. Latency is the time of one batch:"
        " one request over HTTP, one `append_batch` call in the service layer, one transaction in the baselines.",
        "",
        "- HTTP: `POST /v1/events` against a `csdp serve` subprocess (one uvicorn worker), with one httpx"
        " connection per client.",
        "- Service layer: the store's `append_batch` called from one asyncio task per client in the benchmark"
        " process, as the HTTP handler calls it, without HTTP, authentication or request parsing.",
        "- asyncpg `executemany`: the same event rows, with the columns and types of `events`, inserted into a"
        " plain table (primary key only, no triggers) from a pool of one connection per client, one transaction"
        " per batch. This baseline writes only the event rows. `append_batch` also takes stream locks, reads"
        " states and earlier decisions, decides every event in Python, and writes decisions, projections and the"
        " timeline.",
        "- sqlite3 `executemany`: the same rows into a plain SQLite table, one thread per client sharing one"
        " connection behind a lock, as `SQLiteStore` does.",
        "- `eventsourcing` recorder: `PostgresApplicationRecorder.insert_events` of the `eventsourcing` library,"
        " one thread per client. The same events become `StoredEvent` rows with the work order id as a text"
        " originator id, the stream version, the event type as the topic and the event JSON as the state.",
        "",
        "| phase | store | events/s | p50 batch (ms) | p99 batch (ms) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for name, result in run.phases.items():
        title, store = PHASE_TITLES[name]
        lines.append(
            f"| {title} | {store} | {result.events_per_second:.0f} | {result.latency_ms(0.5):.1f}"
            f" | {result.latency_ms(0.99):.1f} |"
        )
    return lines


def _markdown_targets(run: Run) -> list[str]:
    lines = ["", "## Targets", "", "| target | ratio of events/s | minimum | result |", "| --- | ---: | ---: | --- |"]
    for name, target in run.targets().items():
        verdict = "PASS" if target["passed"] else "FAIL"
        lines.append(f"| {TARGET_TITLES[name]} | {target['ratio']:.2f}x | {target['minimum']}x | {verdict} |")

    lines += ["", "Other ratios of events/s, for context:", ""]
    ratios = run.context_ratios()
    for name, (numerator, denominator) in CONTEXT_RATIOS.items():
        lines.append(f"- `{numerator}` / `{denominator}`: {ratios[name]:.2f}x")
    return lines


def _markdown_sweeps(run: Run) -> list[str]:
    args = run.args
    lines = [
        "",
        "## Ingestion by batch size, one client",
        "",
        f"After its concurrent phase, each server gets {args.sweep_events} more events per batch size from one"
        f" client, one request at a time, spread over {args.sweep_streams} new work orders. The client then posts"
        " the same batches again (replay: the server finds every decision and returns it). Last, a dispatcher"
        " reads the whole pull feed, `GET /v1/sync/changes`, in pages of 500.",
    ]
    for store, figures in run.sweeps.items():
        lines += render_sweep(store, figures)
    return lines


def render_sweep(store: str, figures: dict[str, Any]) -> list[str]:
    sizes = figures["batch_sizes"]
    baseline = sizes[1]["events_per_second"]
    lines = [
        "",
        f"### {store}",
        "",
        "| batch size | events/s | ratio to batch of 1 | median batch latency (ms) | replay events/s |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, values in sizes.items():
        lines.append(
            f"| {size} | {values['events_per_second']:.0f} | {values['events_per_second'] / baseline:.1f}x "
            f"| {values['median_batch_ms']:.1f} | {values['replay_events_per_second']:.0f} |"
        )
    lines += [
        "",
        f"Pull feed: {figures['pulled_events']} events at {figures['pull_events_per_second']:.0f} events/s.",
    ]
    return lines
