"""KPI engine: hand-computed cases, bad input, and a generated history checked against simulators/kpi_reference.py."""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from typing import Any

import msgspec
import pytest

from simulators.kpi_reference import reference_kpis
from server.kpi import GroupBy, KpiGroup, KpiReport, compute_kpis, merge_groups
from shared_schema import Actor, DecisionStatus, ProposedEvent, RecordedEvent, Role, WorkOrderState, decide

UTC = dt.timezone.utc
DAY1 = dt.datetime(2024, 5, 6, tzinfo=UTC)
HOUR = 3600.0


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """Return an instant on the `day`-th day counted from DAY1 (day 1 is DAY1)."""
    return DAY1 + dt.timedelta(days=day - 1, hours=hour, minutes=minute)


class LogBuilder:
    """Build a valid accepted-event log by hand, one event at a time, in global order."""

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []
        self.versions: dict[str, int] = {}

    def add(self, work_order_id: str, event_type: str, when: dt.datetime, **payload: Any) -> LogBuilder:
        version = self.versions.get(work_order_id, 0) + 1
        self.versions[work_order_id] = version
        position = len(self.events) + 1
        self.events.append(
            RecordedEvent(
                event_id=uuid.UUID(int=position),
                global_position=position,
                stream_version=version,
                client_event_id=uuid.UUID(int=10**6 + position),
                work_order_id=work_order_id,
                type=event_type,
                payload=payload,
                occurred_at=when,
                effective_time=when,
                recorded_at=when,
                base_version=version - 1,
                device_id="tablet-test",
                actor="tester",
                actor_role="admin",
            )
        )
        return self

    def create(
        self, work_order_id: str, when: dt.datetime, asset_id: str | None = "asset-1", **extra: Any
    ) -> LogBuilder:
        payload = {"title": "Spindle alarm", "site_id": "site-1", "priority": "P2", **extra}
        if asset_id is not None:
            payload["asset_id"] = asset_id
        return self.add(work_order_id, "created", when, **payload)

    def assign(self, work_order_id: str, engineer_id: str, when: dt.datetime) -> LogBuilder:
        return self.add(work_order_id, "assigned", when, engineer_id=engineer_id).add(work_order_id, "accepted", when)

    def visit(
        self,
        work_order_id: str,
        travel: dt.datetime,
        arrive: dt.datetime,
        start: dt.datetime,
        end: dt.datetime,
        end_type: str,
    ) -> LogBuilder:
        """Travel, arrive, start work, then end the work with `end_type` (completed or hold_started)."""
        self.add(work_order_id, "travel_started", travel)
        self.add(work_order_id, "arrived", arrive)
        self.add(work_order_id, "work_started", start)
        payload = {"reason": "parts"} if end_type == "hold_started" else {}
        return self.add(work_order_id, end_type, end, **payload)


def report(
    events: list[RecordedEvent],
    group_by: str,
    start: dt.datetime = DAY1,
    end: dt.datetime | None = None,
    **options: Any,
) -> dict[str | None, KpiGroup]:
    result = compute_kpis(events, window_start=start, window_end=end or at(60, 0), group_by=group_by, **options)
    return {group.key: group for group in result.groups}


def two_visit_log() -> LogBuilder:
    """One order, two visits by e-1, with a parts hold between them."""
    log = LogBuilder().create("wo-1", at(1, 8))
    log.assign("wo-1", "e-1", at(1, 8, 10))
    log.visit("wo-1", at(1, 9), at(1, 10), at(1, 10, 15), at(1, 11, 15), "hold_started")
    log.add("wo-1", "travel_started", at(2, 9))
    log.add("wo-1", "arrived", at(2, 10))
    log.add("wo-1", "work_started", at(2, 10, 30))
    log.add("wo-1", "completed", at(2, 12), summary="fan replaced")
    return log


# --- Hand-computed cases ------------------------------------------------------------


def test_two_visit_order_by_engineer() -> None:
    group = report(two_visit_log().events, "engineer")["e-1"]

    assert group.time_to_restoration.count == 1
    assert group.time_to_restoration.mean_seconds == 28 * HOUR
    assert group.active_repair_time.total_seconds == 150 * 60
    assert group.reaction_time.mean_seconds == 2 * HOUR
    assert group.first_time_fix.hits == 0
    assert group.first_time_fix.count == 1
    assert group.first_time_fix.rate == 0.0
    assert group.travel_share.numerator_seconds == 120 * 60
    assert group.travel_share.denominator_seconds == (120 + 195) * 60
    assert group.travel_share.ratio == pytest.approx(120 / 315, rel=1e-12)
    # Available time is the span of engaged time per day: 09:00-11:15 and 09:00-12:00.
    assert group.utilisation is not None
    assert group.utilisation.numerator_seconds == 150 * 60
    assert group.utilisation.denominator_seconds == (135 + 180) * 60


def test_two_visit_order_by_day() -> None:
    groups = report(two_visit_log().events, "day")
    first, second = groups["2024-05-06"], groups["2024-05-07"]

    assert first.reaction_time.count == 1
    assert first.time_to_restoration.count == 0
    assert first.time_to_restoration.mean_seconds is None
    assert first.travel_share.numerator_seconds == 60 * 60
    assert first.travel_share.denominator_seconds == (60 + 75) * 60
    assert first.utilisation is not None
    assert first.utilisation.ratio == pytest.approx(60 / 135, rel=1e-12)

    assert second.reaction_time.count == 0
    assert second.time_to_restoration.total_seconds == 28 * HOUR
    assert second.utilisation is not None
    assert second.utilisation.numerator_seconds == 90 * 60
    assert second.utilisation.denominator_seconds == 180 * 60


def test_first_visit_fix_counts() -> None:
    log = LogBuilder().create("wo-1", at(1, 8))
    log.assign("wo-1", "e-1", at(1, 8))
    log.visit("wo-1", at(1, 9), at(1, 9, 30), at(1, 9, 40), at(1, 10, 40), "completed")
    log.create("wo-2", at(1, 8))
    log.assign("wo-2", "e-1", at(1, 8))
    log.visit("wo-2", at(1, 11), at(1, 11, 30), at(1, 11, 40), at(1, 12), "completed")
    log.events[-1].payload["fixed"] = False

    group = report(log.events, "engineer")["e-1"]

    assert group.first_time_fix.hits == 1
    assert group.first_time_fix.count == 2
    assert group.first_time_fix.rate == 0.5
    assert group.time_to_restoration.total_seconds == (2 * HOUR + 40 * 60) + 4 * HOUR


def test_reopened_order_restores_at_last_completion() -> None:
    log = LogBuilder().create("wo-1", at(1, 8))
    log.assign("wo-1", "e-1", at(1, 8))
    log.visit("wo-1", at(1, 9), at(1, 10), at(1, 10), at(1, 11), "completed")
    log.add("wo-1", "closed", at(1, 12))
    log.add("wo-1", "reopened", at(3, 8), reason="alarm is back", engineer_id="e-2")
    log.add("wo-1", "accepted", at(3, 8))
    log.visit("wo-1", at(3, 9), at(3, 10), at(3, 10), at(3, 13), "completed")

    by_day = report(log.events, "day")
    by_engineer = report(log.events, "engineer")

    assert by_day["2024-05-06"].time_to_restoration.count == 0
    assert by_day["2024-05-08"].time_to_restoration.total_seconds == 53 * HOUR
    assert by_day["2024-05-08"].active_repair_time.total_seconds == 4 * HOUR
    assert by_day["2024-05-08"].first_time_fix.rate == 0.0
    assert by_engineer["e-2"].time_to_restoration.count == 1
    assert by_engineer["e-1"].time_to_restoration.count == 0
    assert by_engineer["e-1"].reaction_time.mean_seconds == 2 * HOUR


def test_reopened_order_still_open_not_restored() -> None:
    log = LogBuilder().create("wo-1", at(1, 8))
    log.assign("wo-1", "e-1", at(1, 8))
    log.visit("wo-1", at(1, 9), at(1, 10), at(1, 10), at(1, 11), "completed")
    log.add("wo-1", "reopened", at(2, 8), reason="alarm is back")

    group = report(log.events, "engineer")["e-1"]

    assert group.time_to_restoration.count == 0
    assert group.time_to_restoration.mean_seconds is None
    assert group.reaction_time.count == 1


def test_cancelled_order_excluded_from_restoration() -> None:
    log = LogBuilder().create("wo-1", at(1, 8))
    log.assign("wo-1", "e-1", at(1, 8))
    log.visit("wo-1", at(1, 9), at(1, 10), at(1, 10), at(1, 11), "hold_started")
    log.add("wo-1", "cancelled", at(1, 15), reason="customer replaced the machine")

    group = report(log.events, "engineer")["e-1"]

    assert group.time_to_restoration.count == 0
    assert group.first_time_fix.rate is None
    assert group.sla_compliance.rate is None
    assert group.reaction_time.mean_seconds == 2 * HOUR
    assert group.travel_share.numerator_seconds == HOUR
    assert group.utilisation is not None
    assert group.utilisation.numerator_seconds == HOUR


def test_reassigned_travel_stays_with_first_engineer() -> None:
    log = LogBuilder().create("wo-1", at(1, 8))
    log.assign("wo-1", "e-1", at(1, 8))
    log.add("wo-1", "travel_started", at(1, 9))
    log.add("wo-1", "reassigned", at(1, 9, 30), engineer_id="e-2", reason="closer engineer")
    log.add("wo-1", "accepted", at(1, 9, 35))
    log.visit("wo-1", at(1, 10), at(1, 10, 20), at(1, 10, 30), at(1, 11, 30), "completed")

    groups = report(log.events, "engineer")

    assert groups["e-1"].travel_share.numerator_seconds == 30 * 60
    assert groups["e-1"].travel_share.ratio == 1.0
    assert groups["e-1"].time_to_restoration.count == 0
    assert groups["e-1"].reaction_time.count == 0
    assert groups["e-2"].travel_share.numerator_seconds == 20 * 60
    assert groups["e-2"].travel_share.denominator_seconds == 90 * 60
    assert groups["e-2"].reaction_time.mean_seconds == 2 * HOUR + 20 * 60
    assert groups["e-2"].first_time_fix.rate == 1.0


def repeat_log(second_order_cancelled: bool) -> LogBuilder:
    log = LogBuilder().create("wo-1", at(1, 8), asset_id="cnc-7")
    log.assign("wo-1", "e-1", at(1, 8))
    log.visit("wo-1", at(1, 9), at(1, 10), at(1, 10), at(1, 12), "completed")
    log.create("wo-2", at(5, 9), asset_id="cnc-7")
    if second_order_cancelled:
        log.add("wo-2", "cancelled", at(5, 10), reason="duplicate call")
    return log


def test_repeat_visit_within_window_days() -> None:
    events = repeat_log(second_order_cancelled=False).events

    within_seven = report(events, "asset", repeat_window_days=7)["cnc-7"].repeat_visit
    within_three = report(events, "asset", repeat_window_days=3)["cnc-7"].repeat_visit

    assert (within_seven.hits, within_seven.count, within_seven.rate) == (1, 1, 1.0)
    assert (within_three.hits, within_three.count, within_three.rate) == (0, 1, 0.0)


def test_repeat_visit_ignores_cancelled_order() -> None:
    events = repeat_log(second_order_cancelled=True).events

    figure = report(events, "asset", repeat_window_days=7)["cnc-7"].repeat_visit

    assert (figure.hits, figure.count) == (0, 1)


def test_repeat_visit_needs_asset() -> None:
    log = LogBuilder().create("wo-1", at(1, 8), asset_id=None)
    log.assign("wo-1", "e-1", at(1, 8))
    log.visit("wo-1", at(1, 9), at(1, 10), at(1, 10), at(1, 12), "completed")

    groups = report(log.events, "asset")

    assert list(groups) == [None]
    assert groups[None].repeat_visit.count == 0
    assert groups[None].repeat_visit.rate is None
    assert groups[None].time_to_restoration.count == 1


def three_completed_orders() -> LogBuilder:
    log = LogBuilder()
    for number, asset in ((1, "cnc-1"), (2, "cnc-2"), (3, "cnc-3")):
        order = f"wo-{number}"
        log.create(order, at(1, 8), asset_id=asset)
        log.assign(order, "e-1", at(1, 8))
        log.visit(order, at(1, 8 + number), at(1, 9 + number), at(1, 9 + number), at(1, 9 + number, 30), "completed")
    return log


def test_sla_share_of_flagged_orders() -> None:
    sla = {"wo-1": True, "wo-2": False}

    group = report(three_completed_orders().events, "engineer", sla_met=sla)["e-1"]

    assert (group.sla_compliance.hits, group.sla_compliance.count) == (1, 2)
    assert group.sla_compliance.rate == 0.5
    assert group.sla_unknown == 1


def test_contract_from_payload_then_mapping() -> None:
    log = three_completed_orders()
    log.events[0].payload["contract_id"] = "ct-direct"

    groups = report(log.events, "contract", asset_contracts={"cnc-1": "ct-mapped", "cnc-2": "ct-mapped"})

    assert set(groups) == {None, "ct-direct", "ct-mapped"}
    assert groups["ct-direct"].time_to_restoration.count == 1
    assert groups["ct-mapped"].time_to_restoration.count == 1
    assert groups[None].time_to_restoration.count == 1
    assert groups["ct-mapped"].utilisation is None


def test_available_hours_override_span() -> None:
    group = report(two_visit_log().events, "engineer", available_hours_per_day={"e-1": 8})["e-1"]

    assert group.utilisation is not None
    assert group.utilisation.denominator_seconds == 2 * 8 * HOUR
    assert group.utilisation.ratio == pytest.approx(150 / 960, rel=1e-12)


def test_interval_clipped_to_window() -> None:
    events = two_visit_log().events

    groups = report(events, "engineer", start=at(1, 10, 45), end=at(2, 10, 15))
    group = groups["e-1"]

    # Work 10:45-11:15 on day 1; travel 09:00-10:00 and on site 10:00-10:15 on day 2.
    assert group.travel_share.numerator_seconds == HOUR
    assert group.travel_share.denominator_seconds == HOUR + 45 * 60
    assert group.utilisation is not None
    assert group.utilisation.numerator_seconds == 30 * 60
    assert group.utilisation.denominator_seconds == 30 * 60 + 75 * 60
    assert group.time_to_restoration.count == 0
    assert group.reaction_time.count == 0


# --- Edge cases -------------------------------------------------------------------------


def test_no_events_no_groups() -> None:
    for group_by in GroupBy:
        result = compute_kpis([], window_start=DAY1, window_end=at(2, 0), group_by=group_by)
        assert isinstance(result, KpiReport)
        assert result.groups == []


def test_window_without_completions_gives_none() -> None:
    log = LogBuilder().create("wo-1", at(1, 8))
    log.assign("wo-1", "e-1", at(1, 8))
    log.add("wo-1", "travel_started", at(1, 9))
    log.add("wo-1", "arrived", at(1, 10))
    log.add("wo-1", "work_started", at(1, 10, 30))

    group = report(log.events, "day")["2024-05-06"]

    assert group.time_to_restoration.count == 0
    assert group.time_to_restoration.mean_seconds is None
    assert group.active_repair_time.mean_seconds is None
    assert group.first_time_fix.rate is None
    assert group.repeat_visit.rate is None
    assert group.sla_compliance.rate is None
    assert group.reaction_time.mean_seconds == 2 * HOUR
    # Work still in progress at the end of the log is not counted until it ends.
    assert group.utilisation is not None
    assert group.utilisation.numerator_seconds == 0
    assert group.travel_share.denominator_seconds == HOUR + 30 * 60


def test_empty_window_has_no_groups() -> None:
    result = compute_kpis(two_visit_log().events, window_start=at(10, 0), window_end=at(11, 0), group_by="asset")

    assert result.groups == []


def test_shuffled_events_same_result() -> None:
    events = two_visit_log().events + three_completed_orders_renamed()
    shuffled = list(events)
    random.Random(7).shuffle(shuffled)

    for group_by in GroupBy:
        ordered = compute_kpis(events, window_start=DAY1, window_end=at(9, 0), group_by=group_by)
        unordered = compute_kpis(shuffled, window_start=DAY1, window_end=at(9, 0), group_by=group_by)
        assert ordered == unordered


def three_completed_orders_renamed() -> list[RecordedEvent]:
    """Return the three-order log with ids and positions that do not clash with two_visit_log."""
    events = three_completed_orders().events
    return [
        RecordedEvent(
            **{
                **_fields(event),
                "work_order_id": "x" + event.work_order_id,
                "global_position": 100 + event.global_position,
            }
        )
        for event in events
    ]


def _fields(event: RecordedEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__struct_fields__}


def test_merged_days_equal_merged_engineers() -> None:
    events = two_visit_log().events + three_completed_orders_renamed()
    options = {"window_start": DAY1, "window_end": at(9, 0), "sla_met": {"wo-1": True}}

    by_day = merge_groups(compute_kpis(events, group_by="day", **options).groups, None)
    by_engineer = merge_groups(compute_kpis(events, group_by="engineer", **options).groups, None)
    no_failures = {"failures": 0, "time_between_failures": by_engineer.time_between_failures}

    assert msgspec.structs.replace(by_day, **no_failures) == by_engineer
    assert by_day.failures == 4
    assert by_engineer.failures == 0
    assert by_day.time_to_restoration.count == 4
    assert by_day.sla_compliance.count == 1


# --- Bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "field", "value"),
    [
        ({"window_start": dt.datetime(2024, 5, 6)}, "window_start", "2024-05-06T00:00:00"),
        ({"window_end": dt.datetime(2024, 6, 1)}, "window_end", "2024-06-01T00:00:00"),
        ({"window_end": DAY1}, "window_start", "2024-05-06T00:00:00+00:00"),
        ({"window_end": DAY1 - dt.timedelta(days=1)}, "window_end", "2024-05-05T00:00:00+00:00"),
        ({"group_by": "site"}, "group_by", "'site'"),
        ({"repeat_window_days": 0}, "repeat_window_days", "0"),
        ({"repeat_window_days": -3}, "repeat_window_days", "-3"),
        ({"repeat_window_days": 2.5}, "repeat_window_days", "2.5"),
        ({"repeat_window_days": True}, "repeat_window_days", "True"),
        ({"available_hours_per_day": {"e-1": 25}}, "available_hours_per_day['e-1']", "25"),
        ({"available_hours_per_day": {"e-1": -1}}, "available_hours_per_day['e-1']", "-1"),
        ({"available_hours_per_day": {"e-1": float("nan")}}, "available_hours_per_day['e-1']", "nan"),
    ],
)
def test_invalid_parameter_names_field(options: dict[str, Any], field: str, value: str) -> None:
    arguments: dict[str, Any] = {"window_start": DAY1, "window_end": at(30, 0), "group_by": "engineer", **options}

    with pytest.raises(ValueError) as raised:
        compute_kpis([], **arguments)

    assert field in str(raised.value)
    assert value in str(raised.value)


def test_naive_effective_time_rejected() -> None:
    log = LogBuilder().create("wo-1", dt.datetime(2024, 5, 6, 8))

    with pytest.raises(ValueError, match="effective_time .* naive 2024-05-06T08:00:00"):
        compute_kpis(log.events, window_start=DAY1, window_end=at(2, 0), group_by="day")


def test_duplicate_position_rejected() -> None:
    events = two_visit_log().events
    clash = RecordedEvent(**{**_fields(events[1]), "event_id": uuid.UUID(int=999)})

    with pytest.raises(ValueError, match="global_position 2 appears twice"):
        compute_kpis([*events, clash], window_start=DAY1, window_end=at(2, 0), group_by="day")


def test_stream_without_created_rejected() -> None:
    events = two_visit_log().events[1:]

    with pytest.raises(ValueError, match="'wo-1' starts with 'assigned'"):
        compute_kpis(events, window_start=DAY1, window_end=at(2, 0), group_by="day")


def test_invalid_transition_rejected() -> None:
    log = LogBuilder().create("wo-1", at(1, 8)).add("wo-1", "completed", at(1, 9))

    with pytest.raises(ValueError, match="'completed' at global_position 2 .* status 'new'"):
        compute_kpis(log.events, window_start=DAY1, window_end=at(2, 0), group_by="day")


def test_time_going_backwards_rejected() -> None:
    log = LogBuilder().create("wo-1", at(1, 8)).add("wo-1", "assigned", at(1, 7), engineer_id="e-1")

    with pytest.raises(ValueError, match="earlier than the stream's previous event"):
        compute_kpis(log.events, window_start=DAY1, window_end=at(2, 0), group_by="day")


# --- Generated history against the reference ----------------------------------------------

HISTORY_START = dt.datetime(2024, 1, 1, tzinfo=UTC)
ENGINEERS = [f"e-{number}" for number in range(1, 9)]
ASSETS = [f"cnc-{number}" for number in range(1, 51)]
CONTRACTS = ["ct-gold", "ct-silver", "ct-bronze"]
COMPONENTS = ["spindle", "axis-drive", "controller"]
# Assets 41 to 50 have no model, so some orders fall in the None asset_model group.
ASSET_MODELS = {asset: f"model-{index % 4 + 1}" for index, asset in enumerate(ASSETS) if index < 40}
# Every fifth asset has no contract mapping, so some orders fall in the None group.
ASSET_CONTRACTS = {asset: CONTRACTS[index % 3] for index, asset in enumerate(ASSETS) if index % 5 != 4}
DISPATCHER = Actor(subject="d-1", role=Role.DISPATCHER)
MANAGER = Actor(subject="m-1", role=Role.MANAGER)

# Next event type by status, with weights; "stop" leaves the order where it is.
NEXT_STEPS: dict[str, list[tuple[str, int]]] = {
    "new": [("assigned", 88), ("cancelled", 7), ("stop", 5)],
    "assigned": [("accepted", 80), ("declined", 6), ("reassigned", 8), ("unassigned", 3), ("cancelled", 3)],
    "accepted": [("travel_started", 85), ("reassigned", 7), ("cancelled", 5), ("stop", 3)],
    "en_route": [("arrived", 88), ("reassigned", 5), ("cancelled", 4), ("stop", 3)],
    "on_site": [("work_started", 90), ("reassigned", 4), ("unassigned", 2), ("cancelled", 4)],
    "in_progress": [
        ("completed", 52),
        ("hold_started", 30),
        ("time_logged", 6),
        ("parts_used", 5),
        ("cancelled", 4),
        ("stop", 3),
    ],
    "on_hold": [("work_resumed", 40), ("travel_started", 45), ("cancelled", 8), ("stop", 7)],
    "completed": [("closed", 55), ("reopened", 12), ("stop", 33)],
    "closed": [("reopened", 7), ("stop", 93)],
}
# Range of minutes before each event type, from the previous event of the order.
DELAY_MINUTES: dict[str, tuple[int, int]] = {
    "assigned": (1, 240),
    "reassigned": (5, 120),
    "unassigned": (5, 120),
    "declined": (5, 90),
    "cancelled": (5, 600),
    "accepted": (1, 60),
    "travel_started": (10, 900),
    "arrived": (10, 180),
    "work_started": (0, 30),
    "hold_started": (15, 300),
    "work_resumed": (20, 2000),
    "completed": (15, 480),
    "closed": (30, 2880),
    "reopened": (60, 14400),
    "time_logged": (5, 60),
    "parts_used": (5, 60),
}


class HistoryGenerator:
    """Generate a valid multi-order history with `decide`, so every event is one the server accepts."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        # Maintenance type and component come from a second stream, so the rest of the history stays as before.
        self.maintenance_rng = random.Random(seed + 1)
        self.drafts: list[tuple[dt.datetime, str, int, str, dict[str, Any], Actor, dt.datetime]] = []

    def engineer_actor(self, engineer_id: str) -> Actor:
        # The token subject differs from the engineer id, as with an external identity provider.
        return Actor(subject=f"user-{engineer_id}", role=Role.ENGINEER, engineer_id=engineer_id)

    def payload_for(self, event_type: str, state: WorkOrderState) -> dict[str, Any]:
        others = [engineer for engineer in ENGINEERS if engineer != state.engineer_id]
        if event_type in ("assigned", "reassigned"):
            return {"engineer_id": self.rng.choice(others)}
        if event_type in ("unassigned",):
            return {"reason": "engineer needed elsewhere"}
        if event_type == "declined":
            return {"reason": "no skill for this control"}
        if event_type == "cancelled":
            return {"reason": "customer cancelled"}
        if event_type == "hold_started":
            return {"reason": self.rng.choice(["parts", "customer", "access", "other"])}
        if event_type == "completed":
            return {"summary": "done", "fixed": self.rng.random() < 0.9}
        if event_type == "reopened":
            payload: dict[str, Any] = {"reason": "fault returned"}
            if self.rng.random() < 0.5:
                payload["engineer_id"] = self.rng.choice(ENGINEERS)
            return payload
        if event_type == "time_logged":
            return {"minutes": self.rng.randint(5, 120)}
        if event_type == "parts_used":
            return {"part_number": "BRG-6205", "quantity": 2}
        return {}

    def actor_for(self, event_type: str, state: WorkOrderState) -> Actor:
        if event_type in ("assigned", "reassigned", "unassigned", "closed"):
            return DISPATCHER
        if event_type in ("cancelled", "reopened"):
            return MANAGER
        assert state.engineer_id is not None
        return self.engineer_actor(state.engineer_id)

    def created_payload(self) -> dict[str, Any]:
        priority = self.rng.choice(["P1", "P2", "P3", "P4"])
        payload: dict[str, Any] = {"title": "Axis drive fault", "site_id": "site-1", "priority": priority}
        if self.rng.random() < 0.95:
            # A few busy machines get most orders, so repeat visits occur.
            payload["asset_id"] = self.rng.choice(ASSETS[:10] if self.rng.random() < 0.5 else ASSETS)
        if self.rng.random() < 0.2:
            payload["contract_id"] = self.rng.choice(CONTRACTS)
        roll = self.maintenance_rng.random()
        if roll < 0.15:
            payload["maintenance_type"] = "preventive"
        elif roll < 0.3:
            payload["maintenance_type"] = "corrective"
        if self.maintenance_rng.random() < 0.8:
            payload["component"] = self.maintenance_rng.choice(COMPONENTS)
        return payload

    def propose(
        self,
        state: WorkOrderState | None,
        order_id: str,
        event_type: str,
        payload: dict[str, Any],
        actor: Actor,
        when: dt.datetime,
    ) -> WorkOrderState:
        proposal = ProposedEvent(
            client_event_id=uuid.UUID(int=self.rng.getrandbits(128)),
            work_order_id=order_id,
            type=event_type,
            payload=payload,
            occurred_at=when,
            base_version=state.version if state else 0,
            device_id="generator",
        )
        outcome = decide(state, proposal, actor, when)
        assert outcome.status is DecisionStatus.ACCEPTED, outcome.message
        assert outcome.state is not None
        draft = (when, order_id, outcome.state.version, event_type, payload, actor, proposal.client_event_id)
        self.drafts.append(draft)
        return outcome.state

    def generate_order(self, order_id: str) -> None:
        when = HISTORY_START + dt.timedelta(seconds=self.rng.randint(0, 90 * 86400))
        state = self.propose(None, order_id, "created", self.created_payload(), DISPATCHER, when)
        for _ in range(60):
            steps = NEXT_STEPS.get(state.status.value)
            if steps is None:
                break
            event_type = self.rng.choices([name for name, _ in steps], [weight for _, weight in steps])[0]
            if event_type == "stop":
                break
            low, high = DELAY_MINUTES[event_type]
            when = when + dt.timedelta(minutes=self.rng.randint(low, high), seconds=self.rng.randint(0, 59))
            payload = self.payload_for(event_type, state)
            state = self.propose(state, order_id, event_type, payload, self.actor_for(event_type, state), when)

    def recorded_events(self) -> list[RecordedEvent]:
        """Turn the drafts into recorded events, in an upload order that differs from effective time."""
        last_recorded: dict[str, dt.datetime] = {}
        uploads = []
        for when, order_id, version, event_type, payload, actor, client_event_id in self.drafts:
            # Tablets sync late, some by days, but a stream is recorded in order.
            delay = dt.timedelta(minutes=self.rng.choice([0, 1, 5, 60, 600, 3000]))
            recorded_at = max(last_recorded.get(order_id, when), when + delay)
            last_recorded[order_id] = recorded_at
            uploads.append((recorded_at, order_id, version, event_type, payload, actor, client_event_id, when))
        uploads.sort(key=lambda upload: (upload[0], upload[1], upload[2]))
        events = []
        for position, upload in enumerate(uploads, start=1):
            recorded_at, order_id, version, event_type, payload, actor, client_event_id, when = upload
            event = RecordedEvent(
                event_id=uuid.UUID(int=self.rng.getrandbits(128)),
                global_position=position,
                stream_version=version,
                client_event_id=client_event_id,
                work_order_id=order_id,
                type=event_type,
                payload=payload,
                occurred_at=when,
                effective_time=when,
                recorded_at=recorded_at,
                base_version=version - 1,
                device_id="generator",
                actor=actor.subject,
                actor_role=actor.role.value,
            )
            events.append(event)
        return events


@pytest.fixture(scope="module")
def history() -> list[RecordedEvent]:
    generator = HistoryGenerator(seed=20240501)
    for number in range(1, 1201):
        generator.generate_order(f"wo-{number:05d}")
    return generator.recorded_events()


def test_generated_history_covers_cases(history: list[RecordedEvent]) -> None:
    orders = {event.work_order_id for event in history}
    types_per_order: dict[str, list[str]] = {}
    for event in sorted(history, key=lambda e: e.global_position):
        types_per_order.setdefault(event.work_order_id, []).append(event.type)
    upload_order_differs = any(a.effective_time > b.effective_time for a, b in zip(history, history[1:]))

    assert len(orders) >= 1000
    assert sum(types.count("arrived") >= 2 for types in types_per_order.values()) >= 50
    assert sum("hold_started" in types for types in types_per_order.values()) >= 100
    assert sum("reassigned" in types for types in types_per_order.values()) >= 50
    assert sum("cancelled" in types for types in types_per_order.values()) >= 50
    assert sum("reopened" in types for types in types_per_order.values()) >= 30
    assert len({event.payload["engineer_id"] for event in history if event.type == "assigned"}) == len(ENGINEERS)
    assert upload_order_differs


WINDOWS = {
    "whole history": (dt.datetime(2023, 12, 1, tzinfo=UTC), dt.datetime(2024, 7, 1, tzinfo=UTC)),
    "february": (dt.datetime(2024, 2, 1, tzinfo=UTC), dt.datetime(2024, 3, 1, tzinfo=UTC)),
    "odd week": (dt.datetime(2024, 1, 17, 10, 30, tzinfo=UTC), dt.datetime(2024, 1, 24, 17, 15, 20, tzinfo=UTC)),
    "one day": (dt.datetime(2024, 3, 10, tzinfo=UTC), dt.datetime(2024, 3, 11, tzinfo=UTC)),
}


def engine_figures(group: KpiGroup) -> dict[str, Any]:
    """Flatten an engine group into the names the reference uses."""
    utilisation = group.utilisation
    return {
        "restored": group.time_to_restoration.count,
        "restoration_seconds": group.time_to_restoration.total_seconds,
        "mttr_seconds": group.time_to_restoration.mean_seconds,
        "repair_seconds": group.active_repair_time.total_seconds,
        "mean_repair_seconds": group.active_repair_time.mean_seconds,
        "reacted": group.reaction_time.count,
        "reaction_seconds": group.reaction_time.total_seconds,
        "mean_reaction_seconds": group.reaction_time.mean_seconds,
        "first_time_fixes": group.first_time_fix.hits,
        "first_time_fix_rate": group.first_time_fix.rate,
        "repeat_base": group.repeat_visit.count,
        "repeats": group.repeat_visit.hits,
        "repeat_rate": group.repeat_visit.rate,
        "sla_met": group.sla_compliance.hits,
        "sla_flagged": group.sla_compliance.count,
        "sla_unknown": group.sla_unknown,
        "sla_rate": group.sla_compliance.rate,
        "travel_seconds": group.travel_share.numerator_seconds,
        "on_site_seconds": group.travel_share.denominator_seconds - group.travel_share.numerator_seconds,
        "travel_share": group.travel_share.ratio,
        "working_seconds": utilisation.numerator_seconds if utilisation else None,
        "available_seconds": utilisation.denominator_seconds if utilisation else None,
        "utilisation": utilisation.ratio if utilisation else None,
        "failures": group.failures,
        "failure_gaps": group.time_between_failures.count,
        "failure_gap_seconds": group.time_between_failures.total_seconds,
        "mtbf_seconds": group.time_between_failures.mean_seconds,
    }


COUNTS = {
    "restored",
    "reacted",
    "first_time_fixes",
    "repeat_base",
    "repeats",
    "sla_met",
    "sla_flagged",
    "sla_unknown",
    "failures",
    "failure_gaps",
}


def assert_same_figures(key: str | None, engine: dict[str, Any], reference: dict[str, Any]) -> None:
    for name, value in engine.items():
        expected = reference[name]
        if name in COUNTS:
            assert value == expected, f"group {key!r}: {name} is {value}, reference {expected}"
        elif expected is None or value is None:
            assert value is expected, f"group {key!r}: {name} is {value}, reference {expected}"
        else:
            close = math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-9)
            assert close, f"group {key!r}: {name} is {value}, reference {expected}"


def order_models_of(events: list[RecordedEvent]) -> dict[str, str]:
    """Map each order created on an asset of ASSET_MODELS to that asset's model."""
    return {
        event.work_order_id: ASSET_MODELS[event.payload["asset_id"]]
        for event in events
        if event.type == "created" and event.payload.get("asset_id") in ASSET_MODELS
    }


@pytest.mark.parametrize("group_by", [member.value for member in GroupBy])
@pytest.mark.parametrize("window", list(WINDOWS))
@pytest.mark.parametrize("repeat_window_days", [7, 30])
def test_engine_matches_reference(
    history: list[RecordedEvent], group_by: str, window: str, repeat_window_days: int
) -> None:
    rng = random.Random(5)
    orders = sorted({event.work_order_id for event in history})
    sla = {order: rng.random() < 0.8 for order in orders if rng.random() < 0.9}
    hours = {"e-1": 8.0, "e-2": 7.5}
    start, end = WINDOWS[window]
    options = {
        "repeat_window_days": repeat_window_days,
        "asset_contracts": ASSET_CONTRACTS,
        "order_models": order_models_of(history),
        "sla_met": sla,
        "available_hours_per_day": hours,
    }

    result = compute_kpis(history, window_start=start, window_end=end, group_by=group_by, **options)
    expected = reference_kpis(history, start, end, group_by, **options)

    engine_groups = {group.key: engine_figures(group) for group in result.groups}
    assert set(engine_groups) == set(expected)
    assert len(engine_groups) > 0
    for key, figures in engine_groups.items():
        assert_same_figures(key, figures, expected[key])
