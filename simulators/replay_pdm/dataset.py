"""Reading the fleet maintenance log: machines, failures, planned replacements and machine errors.

The four CSV files and their columns are described in
`simulators/data/pdm/README.md`. Times have no zone and are read as UTC.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
from pathlib import Path

UTC = dt.timezone.utc
DATA_FOLDER = Path(__file__).resolve().parent.parent / "data" / "pdm"

MACHINES_FILE = "PdM_machines.csv"
FAILURES_FILE = "PdM_failures.csv"
MAINTENANCE_FILE = "PdM_maint.csv"
ERRORS_FILE = "PdM_errors.csv"


class DatasetError(ValueError):
    """A file of the log is missing, lacks a column or has a value that cannot be read."""


@dataclasses.dataclass(frozen=True)
class Machine:
    machine_id: int
    model: str
    age_years: int

    @property
    def asset_id(self) -> str:
        return asset_id(self.machine_id)


@dataclasses.dataclass(frozen=True)
class Failure:
    """A component failed and was replaced: one corrective work order."""

    time: dt.datetime
    machine_id: int
    component: str


@dataclasses.dataclass(frozen=True)
class PlannedReplacement:
    """A component replacement that repaired no failure: one preventive work order."""

    time: dt.datetime
    machine_id: int
    component: str


@dataclasses.dataclass(frozen=True)
class MachineError:
    """A machine error that did not stop the machine."""

    time: dt.datetime
    machine_id: int
    error_id: str


@dataclasses.dataclass(frozen=True)
class FleetLog:
    machines: dict[int, Machine]
    failures: list[Failure]
    replacements: list[PlannedReplacement]
    errors: list[MachineError]

    def span(self) -> tuple[dt.datetime, dt.datetime] | None:
        """Return the midnight before the first record and the midnight after the last, or None for an empty log."""
        times = [row.time for rows in (self.failures, self.replacements, self.errors) for row in rows]
        if not times:
            return None
        first, last = min(times), max(times)
        start = first.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, last.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)

    def window(self, start: dt.datetime, end: dt.datetime) -> FleetLog:
        """Return the log with only the failures, replacements and errors in [start, end)."""
        return FleetLog(
            machines=self.machines,
            failures=[row for row in self.failures if start <= row.time < end],
            replacements=[row for row in self.replacements if start <= row.time < end],
            errors=[row for row in self.errors if start <= row.time < end],
        )


def asset_id(machine_id: int) -> str:
    return f"machine-{machine_id:03d}"


def _rows(folder: Path, name: str, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    path = folder / name
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [column for column in columns if column not in (reader.fieldnames or [])]
            if missing:
                raise DatasetError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(columns)}")
            return [(number, row) for number, row in enumerate(reader, start=2)]
    except FileNotFoundError:
        raise DatasetError(f"{path} not found; --data must name the folder with the four PdM_*.csv files") from None


def _time(path: str, line: int, raw: str) -> dt.datetime:
    try:
        value = dt.datetime.strptime(raw, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise DatasetError(f"{path} line {line}: datetime {raw!r} is invalid, expected YYYY-MM-DD HH:MM:SS") from None
    return value.replace(tzinfo=UTC)


def _machine(path: str, line: int, raw: str, machines: dict[int, Machine] | None = None) -> int:
    try:
        machine_id = int(raw)
    except ValueError:
        raise DatasetError(f"{path} line {line}: machineID {raw!r} is not a whole number") from None
    if machines is not None and machine_id not in machines:
        raise DatasetError(f"{path} line {line}: machineID {machine_id} is not in {MACHINES_FILE}")
    return machine_id


def _label(path: str, line: int, column: str, raw: str, prefix: str) -> str:
    if not raw.startswith(prefix) or not raw[len(prefix) :].isdigit():
        raise DatasetError(f"{path} line {line}: {column} {raw!r} is invalid, expected {prefix}N")
    return raw


def load_fleet_log(folder: Path = DATA_FOLDER) -> FleetLog:
    """Read and check the four files, raising DatasetError with the file, line and value at fault."""
    machines: dict[int, Machine] = {}
    for line, row in _rows(folder, MACHINES_FILE, ("machineID", "model", "age")):
        machine_id = _machine(MACHINES_FILE, line, row["machineID"])
        if machine_id in machines:
            raise DatasetError(f"{MACHINES_FILE} line {line}: machineID {machine_id} appears twice")
        model = _label(MACHINES_FILE, line, "model", row["model"], "model")
        try:
            age = int(row["age"])
        except ValueError:
            raise DatasetError(f"{MACHINES_FILE} line {line}: age {row['age']!r} is not a whole number") from None
        if age < 0:
            raise DatasetError(f"{MACHINES_FILE} line {line}: age {age} is negative")
        machines[machine_id] = Machine(machine_id, model, age)
    if not machines:
        raise DatasetError(f"{folder / MACHINES_FILE} has no machines")

    failures = [
        Failure(
            _time(FAILURES_FILE, line, row["datetime"]),
            _machine(FAILURES_FILE, line, row["machineID"], machines),
            _label(FAILURES_FILE, line, "failure", row["failure"], "comp"),
        )
        for line, row in _rows(folder, FAILURES_FILE, ("datetime", "machineID", "failure"))
    ]
    repaired = {(failure.time, failure.machine_id, failure.component) for failure in failures}
    replacements = []
    for line, row in _rows(folder, MAINTENANCE_FILE, ("datetime", "machineID", "comp")):
        key = (
            _time(MAINTENANCE_FILE, line, row["datetime"]),
            _machine(MAINTENANCE_FILE, line, row["machineID"], machines),
            _label(MAINTENANCE_FILE, line, "comp", row["comp"], "comp"),
        )
        # The replacement that repaired a failure has the failure's time, machine and component.
        if key not in repaired:
            replacements.append(PlannedReplacement(*key))
    errors = [
        MachineError(
            _time(ERRORS_FILE, line, row["datetime"]),
            _machine(ERRORS_FILE, line, row["machineID"], machines),
            _label(ERRORS_FILE, line, "errorID", row["errorID"], "error"),
        )
        for line, row in _rows(folder, ERRORS_FILE, ("datetime", "machineID", "errorID"))
    ]
    return FleetLog(
        machines=machines,
        failures=sorted(failures, key=lambda row: (row.time, row.machine_id, row.component)),
        replacements=sorted(replacements, key=lambda row: (row.time, row.machine_id, row.component)),
        errors=sorted(errors, key=lambda row: (row.time, row.machine_id, row.error_id)),
    )
