"""Catalog commands: the JSON body of `POST /v1/catalog`, decoded and checked strictly.

Every struct forbids unknown fields. Checks that msgspec cannot express
(a valid IANA zone, start before end, a calendar or SLA policy that
`server.sla` accepts) raise `CommandError` with the JSON path and the value.
Instants are converted to UTC, so the stored payloads compare and sort as text.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from typing import Annotated, Any, Union

import msgspec

from shared_schema.payloads import HoldReason, Priority

from ..sla import BusinessCalendar, OpeningInterval, PriorityTargets, ReopenMode, SlaPolicy, TwentyFourSeven

MAX_COMMANDS = 500

EntityId = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]*$")]
ShortText = Annotated[str, msgspec.Meta(max_length=500, pattern=r"^[^\x00]*$")]
Instant = Annotated[dt.datetime, msgspec.Meta(tz=True)]
ConfigurationValue = Union[Annotated[str, msgspec.Meta(max_length=1000, pattern=r"^[^\x00]*$")], int, float, bool, None]


class CommandError(ValueError):
    """A command that cannot be applied, with the JSON path and the value at fault."""

    def __init__(self, message: str, *, field: str, value: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class OpeningHours(Strict, kw_only=True):
    """Opening hours of one weekday in local wall-clock time. An `end` of 00:00 is midnight."""

    start: dt.time
    end: dt.time


class CalendarPayload(Strict, tag_field="type", tag="business", kw_only=True):
    """The JSON shape of `server.sla.BusinessCalendar`: seven weekdays, Monday first."""

    time_zone: str
    weekly_hours: list[list[OpeningHours]]
    holidays: list[dt.date] = []

    def build(self, path: str) -> BusinessCalendar:
        """Build the `BusinessCalendar`, or raise CommandError naming the field at fault."""
        check_time_zone(self.time_zone, f"{path}.time_zone")
        try:
            weekly_hours = tuple(
                tuple(OpeningInterval(interval.start, interval.end) for interval in day) for day in self.weekly_hours
            )
            return BusinessCalendar(time_zone=self.time_zone, weekly_hours=weekly_hours, holidays=frozenset(self.holidays))
        except ValueError as exc:
            field_name = str(exc).split(":", 1)[0]
            value = _value_of(self, field_name.split("[", 1)[0])
            raise CommandError(str(exc), field=f"{path}.{field_name}", value=value) from None


class TwentyFourSevenPayload(Strict, tag_field="type", tag="24x7", kw_only=True):
    pass


# Targets beyond this cannot be a service contract, and adding them to an
# instant could pass the year 9999 that datetime supports.
MAX_TARGET = dt.timedelta(days=3650)


class TargetsPayload(Strict, kw_only=True):
    """Business durations as ISO 8601 durations, such as "PT4H"."""

    response: dt.timedelta
    resolution: dt.timedelta


class PolicyPayload(Strict, kw_only=True):
    """An SLA policy version, built into `server.sla.SlaPolicy` to check it."""

    calendar: Union[CalendarPayload, TwentyFourSevenPayload]
    targets: dict[Priority, TargetsPayload]
    pausing_hold_reasons: list[HoldReason] = msgspec.field(default_factory=lambda: [HoldReason.CUSTOMER, HoldReason.ACCESS])
    warning_thresholds: list[float] = msgspec.field(default_factory=lambda: [0.5, 0.75])
    reopen: ReopenMode = ReopenMode.NEW_CYCLE
    effective_from: Instant | None = None

    def build(self, path: str) -> SlaPolicy:
        """Build the `SlaPolicy`, or raise CommandError naming the field at fault."""
        if isinstance(self.calendar, CalendarPayload):
            calendar: BusinessCalendar | TwentyFourSeven = self.calendar.build(f"{path}.calendar")
        else:
            calendar = TwentyFourSeven()
        targets = {}
        for priority, target in self.targets.items():
            for name in ("response", "resolution"):
                value = getattr(target, name)
                if value > MAX_TARGET:
                    raise CommandError(
                        f"the {name} target is longer than the limit of {MAX_TARGET.days} days",
                        field=f"{path}.targets.{priority.value}.{name}",
                        value=str(value),
                    )
            try:
                targets[priority] = PriorityTargets(response=target.response, resolution=target.resolution)
            except ValueError as exc:
                field_name = str(exc).split(":", 1)[0]
                raise CommandError(
                    str(exc),
                    field=f"{path}.targets.{priority.value}.{field_name}",
                    value=str(getattr(target, field_name, "")),
                ) from None
        try:
            return SlaPolicy(
                calendar=calendar,
                targets=targets,
                pausing_hold_reasons=frozenset(self.pausing_hold_reasons),
                warning_thresholds=tuple(self.warning_thresholds),
                reopen=self.reopen,
                effective_from=self.effective_from,
            )
        except ValueError as exc:
            field_name = str(exc).split(":", 1)[0].split("[", 1)[0]
            raise CommandError(str(exc), field=f"{path}.{field_name}", value=_value_of(self, field_name)) from None


class EngineerPayload(Strict, kw_only=True):
    name: Name
    skills: list[Name] = []
    calendar: Union[CalendarPayload, TwentyFourSevenPayload]
    home_site_id: EntityId | None = None


class AbsencePayload(Strict, kw_only=True):
    start: Instant
    end: Instant
    reason: ShortText = ""


class SitePayload(Strict, kw_only=True):
    name: Name
    time_zone: str


class AssetPayload(Strict, kw_only=True):
    site_id: EntityId
    model: Name
    serial: ShortText = ""


class ConfigurationPayload(Strict, kw_only=True):
    """One configuration snapshot, valid from `valid_from` until the next snapshot's `valid_from`."""

    valid_from: Instant
    configuration: dict[Name, ConfigurationValue]


class ContractPayload(Strict, kw_only=True):
    name: Name
    policy: PolicyPayload


class ContractUpdatePayload(Strict, kw_only=True):
    """A new name, and optionally a new policy version added to the contract's versions."""

    name: Name
    policy: PolicyPayload | None = None


class Command(Strict, tag_field="type", kw_only=True):
    entity_id: EntityId


class EngineerRegistered(Command, tag="engineer_registered", kw_only=True):
    payload: EngineerPayload


class EngineerUpdated(Command, tag="engineer_updated", kw_only=True):
    payload: EngineerPayload


class EngineerAbsenceRecorded(Command, tag="engineer_absence_recorded", kw_only=True):
    payload: AbsencePayload


class SiteRegistered(Command, tag="site_registered", kw_only=True):
    payload: SitePayload


class SiteUpdated(Command, tag="site_updated", kw_only=True):
    payload: SitePayload


class AssetRegistered(Command, tag="asset_registered", kw_only=True):
    payload: AssetPayload


class AssetUpdated(Command, tag="asset_updated", kw_only=True):
    payload: AssetPayload


class AssetConfigurationRecorded(Command, tag="asset_configuration_recorded", kw_only=True):
    payload: ConfigurationPayload


class ContractRegistered(Command, tag="contract_registered", kw_only=True):
    payload: ContractPayload


class ContractUpdated(Command, tag="contract_updated", kw_only=True):
    payload: ContractUpdatePayload


AnyCommand = Union[
    EngineerRegistered,
    EngineerUpdated,
    EngineerAbsenceRecorded,
    SiteRegistered,
    SiteUpdated,
    AssetRegistered,
    AssetUpdated,
    AssetConfigurationRecorded,
    ContractRegistered,
    ContractUpdated,
]

# The entity each command type changes.
ENTITY_OF_TYPE = {
    "engineer_registered": "engineer",
    "engineer_updated": "engineer",
    "engineer_absence_recorded": "engineer",
    "site_registered": "site",
    "site_updated": "site",
    "asset_registered": "asset",
    "asset_updated": "asset",
    "asset_configuration_recorded": "asset",
    "contract_registered": "contract",
    "contract_updated": "contract",
}


class CatalogRequest(Strict, kw_only=True):
    commands: Annotated[list[AnyCommand], msgspec.Meta(min_length=1, max_length=MAX_COMMANDS)]


class CheckedCommand(msgspec.Struct, frozen=True, kw_only=True):
    """A command that passed every check that needs no stored data, with its payload as JSON values."""

    index: int
    type: str
    entity: str
    entity_id: str
    payload: dict[str, Any]


# Files in the system's zoneinfo folder that are not IANA zone names.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@functools.cache
def _iana_zones() -> frozenset[str]:
    return frozenset(
        name
        for name in zoneinfo.available_timezones()
        if name not in _NOT_ZONES and not name.startswith(("posix/", "right/"))
    )


def check_time_zone(key: str, field: str) -> None:
    # Names outside the IANA list, such as "localtime", resolve to files whose
    # meaning depends on the host, so only listed names are accepted.
    try:
        if key not in _iana_zones():
            raise ValueError(key)
        zoneinfo.ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CommandError(
            f"{key!r} is not an IANA time zone known to this server; use a name such as Europe/Berlin",
            field=field,
            value=key,
        ) from None


def check_commands(request: CatalogRequest) -> list[CheckedCommand]:
    """Run the checks that need no stored data and convert each command's payload to JSON values."""
    checked = []
    for index, command in enumerate(request.commands):
        path = f"$.commands[{index}].payload"
        payload = command.payload
        if isinstance(payload, EngineerPayload) and isinstance(payload.calendar, CalendarPayload):
            payload.calendar.build(f"{path}.calendar")
        elif isinstance(payload, SitePayload):
            check_time_zone(payload.time_zone, f"{path}.time_zone")
        elif isinstance(payload, AbsencePayload):
            payload.start = _utc(payload.start, f"{path}.start")
            payload.end = _utc(payload.end, f"{path}.end")
            if payload.start >= payload.end:
                raise CommandError(
                    f"end {payload.end.isoformat()} is not after start {payload.start.isoformat()}; "
                    "an absence needs start < end",
                    field=f"{path}.end",
                    value=msgspec.to_builtins(payload.end),
                )
        elif isinstance(payload, ConfigurationPayload):
            payload.valid_from = _utc(payload.valid_from, f"{path}.valid_from")
        elif isinstance(payload, (ContractPayload, ContractUpdatePayload)) and payload.policy is not None:
            if payload.policy.effective_from is not None:
                payload.policy.effective_from = _utc(payload.policy.effective_from, f"{path}.policy.effective_from")
            payload.policy.build(f"{path}.policy")
        tag = type(command).__struct_config__.tag
        assert isinstance(tag, str)
        checked.append(
            CheckedCommand(
                index=index,
                type=tag,
                entity=ENTITY_OF_TYPE[tag],
                entity_id=command.entity_id,
                payload=msgspec.to_builtins(payload),
            )
        )
    return checked


def build_policy(document: dict[str, Any]) -> SlaPolicy:
    """Build an `SlaPolicy` from a policy version stored in a contract document."""
    return msgspec.convert(document, PolicyPayload).build("$")


def _utc(value: dt.datetime, field: str) -> dt.datetime:
    try:
        return value.astimezone(dt.timezone.utc)
    except OverflowError:
        raise CommandError(
            "the instant falls outside the years 1 to 9999 once converted to UTC", field=field, value=value.isoformat()
        ) from None


def _value_of(payload: msgspec.Struct, field_name: str) -> Any:
    value = getattr(payload, field_name, None)
    builtins = msgspec.to_builtins(value)
    if isinstance(builtins, (list, dict)):
        return f"<{type(builtins).__name__} of {len(builtins)} items>"
    return builtins
