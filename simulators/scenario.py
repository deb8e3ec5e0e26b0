"""Fleet scenarios as data: one TOML or JSON file per scenario, validated with msgspec.

A scenario fixes the fleet, the behaviour of the dispatcher and the engineers,
the device clocks and the faults. With its seed it determines a run: the same
file and seed give the same proposals and the same decisions.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import msgspec

PRESET_FOLDER = Path(__file__).parent / "scenarios"

Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]

# Upper bounds stop a mistyped number before it fills the machine's memory. Each bound is well above the
# soak preset (60 engineers, 200 orders a day for 14 days, 1,376 ticks).
MAX_ENGINEERS = 1000
MAX_ORDERS_PER_DAY = 10_000
MAX_DAYS = 365
MAX_ORDERS = 50_000
MAX_TICKS = 100_000
MINUTES_PER_DAY = 24 * 60
MAX_FAULT_TICKS = 1000

Engineers = Annotated[int, msgspec.Meta(ge=1, le=MAX_ENGINEERS)]
OrdersPerDay = Annotated[int, msgspec.Meta(ge=1, le=MAX_ORDERS_PER_DAY)]
Days = Annotated[int, msgspec.Meta(ge=1, le=MAX_DAYS)]
MinutesPerTick = Annotated[int, msgspec.Meta(ge=1, le=MINUTES_PER_DAY)]
Ticks = Annotated[int, msgspec.Meta(ge=1, le=MAX_TICKS)]
TickCount = Annotated[int, msgspec.Meta(ge=0, le=MAX_TICKS)]
SkewMinutes = Annotated[int, msgspec.Meta(ge=0, le=7 * MINUTES_PER_DAY)]
BurstLength = Annotated[int, msgspec.Meta(ge=1, le=MAX_FAULT_TICKS)]
FaultTicks = Annotated[list[Ticks], msgspec.Meta(max_length=MAX_FAULT_TICKS)]
Seed = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
# The name becomes part of the replay file's name, so it is a safe file name part.
ScenarioName = Annotated[str, msgspec.Meta(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_-]+$")]
Description = Annotated[str, msgspec.Meta(max_length=2000)]


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of the scenario tables: an unknown key is an error, so a misspelt option never passes silently."""


class Fleet(Strict):
    """Size and pace of the simulated fleet. One tick is `minutes_per_tick` of simulated time."""

    engineers: Engineers = 8
    orders_per_day: OrdersPerDay = 60
    days: Days = 1
    minutes_per_tick: MinutesPerTick = 10
    max_ticks: Ticks = 3000

    def __post_init__(self) -> None:
        if self.orders > MAX_ORDERS:
            raise msgspec.ValidationError(
                f"orders_per_day * days must be at most {MAX_ORDERS}; got {self.orders_per_day} * {self.days} = "
                f"{self.orders} - at `$.fleet.orders_per_day`"
            )

    @property
    def orders(self) -> int:
        return self.orders_per_day * self.days


class Connectivity(Strict):
    """Offline windows of each tablet: a chance per tick to go offline, for 1 to `max_offline_ticks` ticks."""

    offline_probability: Probability = 0.05
    max_offline_ticks: Ticks = 12


class Dispatcher(Strict):
    """Chances per tick and open order that the dispatcher changes an order it does not have to touch."""

    reassign_probability: Probability = 0.03
    cancel_probability: Probability = 0.01
    reprioritise_probability: Probability = 0.02
    unassign_probability: Probability = 0.0


class Technician(Strict):
    """Engineer behaviour: how often a tablet acts, declines, waits for parts and leaves a site between visits."""

    act_probability: Probability = 0.6
    decline_probability: Probability = 0.05
    hold_probability: Probability = 0.15
    leave_on_hold_probability: Probability = 0.4
    parts_probability: Probability = 0.5


class ClockSkew(Strict):
    """Device clock offsets: each tablet gets a fixed offset drawn uniformly from [-max, +max] minutes."""

    max_skew_minutes: SkewMinutes = 0


class Faults(Strict):
    """Faults injected into the run.

    Network faults hit every device's HTTP transport: `lost_response_rate` drops
    a POST's response after the server committed it, `connection_reset_rate`
    resets a request before it reaches the server, and `burst_503_rate` starts
    a burst in which the fault layer returns 503 to `burst_503_length` requests.
    `server_kill_ticks` lists the ticks at which the server gets SIGKILL; it
    restarts after `server_down_ticks` ticks. `postgres_restart_ticks` lists
    the ticks at which the simulator's private PostgreSQL cluster restarts,
    which needs `store = "postgres-private"`.
    """

    lost_response_rate: Probability = 0.0
    connection_reset_rate: Probability = 0.0
    burst_503_rate: Probability = 0.0
    burst_503_length: BurstLength = 5
    server_kill_ticks: FaultTicks = []
    server_down_ticks: TickCount = 2
    postgres_restart_ticks: FaultTicks = []


StoreName = Literal["sqlite", "postgres", "postgres-private"]


class Scenario(Strict):
    """A whole scenario. `store` is overridden by `--store` on the command line."""

    name: ScenarioName
    description: Description = ""
    seed: Seed = 1
    store: StoreName = "sqlite"
    fleet: Fleet = msgspec.field(default_factory=Fleet)
    connectivity: Connectivity = msgspec.field(default_factory=Connectivity)
    dispatcher: Dispatcher = msgspec.field(default_factory=Dispatcher)
    technician: Technician = msgspec.field(default_factory=Technician)
    clock: ClockSkew = msgspec.field(default_factory=ClockSkew)
    faults: Faults = msgspec.field(default_factory=Faults)

    def __post_init__(self) -> None:
        if self.faults.postgres_restart_ticks and self.store != "postgres-private":
            raise msgspec.ValidationError(
                'faults.postgres_restart_ticks needs store = "postgres-private", because the simulator restarts '
                f"only a PostgreSQL cluster it started itself; got store = {self.store!r} - at `$.store`"
            )


class ScenarioError(ValueError):
    """A scenario file that is missing, unreadable or invalid; the message names the file and the field."""


def decode_scenario(data: dict, source: str) -> Scenario:
    try:
        return msgspec.convert(data, Scenario)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"scenario {source} is invalid: {exc}") from None


def load_scenario(path: Path) -> Scenario:
    """Read a scenario from a .toml or .json file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"scenario {path} cannot be read: {exc}") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ScenarioError(f"scenario {path} has an unknown suffix; use .toml or .json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"scenario {path} is not valid {path.suffix[1:].upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"scenario {path} must hold a table (object) at the top, got {type(data).__name__}")
    return decode_scenario(data, str(path))


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESET_FOLDER.glob("*.toml"))


def load_preset(name: str) -> Scenario:
    path = PRESET_FOLDER / f"{name}.toml"
    if not path.is_file():
        raise ScenarioError(f"preset {name!r} not found; presets: {', '.join(preset_names())}")
    return load_scenario(path)

