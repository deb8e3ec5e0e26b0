"""Working calendars of the replay's engineers and the contract's SLA policy, as catalog JSON and as code.

All calendars are in UTC, the zone the log's times are read in. The
simulation uses `next_working_time` to start travel only within an
engineer's hours. The same hours go to the catalog, so the server stores the
calendars the engineers follow.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

# Weekly shifts as (first weekday, last weekday, start hour, end hour), Monday = 0.
SHIFTS = {
    "early": (0, 4, 6, 14),
    "late": (0, 4, 14, 22),
    "weekend": (3, 6, 6, 18),
}
# Shift of engineer number i (from 0) is SHIFT_ROTATION[i % 4], so every team has all three.
SHIFT_ROTATION = ("early", "early", "late", "weekend")


@dataclasses.dataclass(frozen=True)
class Shift:
    name: str
    first_day: int
    last_day: int
    start_hour: int
    end_hour: int

    def working_at(self, instant: dt.datetime) -> bool:
        return self.first_day <= instant.weekday() <= self.last_day and self.start_hour <= instant.hour < self.end_hour

    def next_working_time(self, instant: dt.datetime) -> dt.datetime:
        """Return `instant` when it is within the shift, else the start of the next shift."""
        if self.working_at(instant):
            return instant
        day = instant.replace(hour=0, minute=0, second=0, microsecond=0)
        for _ in range(8):
            start = day.replace(hour=self.start_hour)
            if self.first_day <= day.weekday() <= self.last_day and start >= instant:
                return start
            day += dt.timedelta(days=1)
        raise AssertionError(f"shift {self.name} has no working hour in a week")

    def catalog_calendar(self) -> dict[str, object]:
        hours = {"start": f"{self.start_hour:02d}:00:00", "end": f"{self.end_hour:02d}:00:00"}
        weekly = [[hours] if self.first_day <= day <= self.last_day else [] for day in range(7)]
        return {"type": "business", "time_zone": "UTC", "weekly_hours": weekly, "holidays": []}


def shift_of(index: int) -> Shift:
    name = SHIFT_ROTATION[index % len(SHIFT_ROTATION)]
    return Shift(name, *SHIFTS[name])


def contract_policy() -> dict[str, object]:
    """Return the fleet contract's SLA policy: service hours 06:00-22:00 UTC from Monday to Saturday."""
    hours = [{"start": "06:00:00", "end": "22:00:00"}]
    return {
        "calendar": {
            "type": "business",
            "time_zone": "UTC",
            "weekly_hours": [hours, hours, hours, hours, hours, hours, []],
            "holidays": [],
        },
        "targets": {
            "P1": {"response": "PT4H", "resolution": "PT12H"},
            "P2": {"response": "PT8H", "resolution": "PT24H"},
            "P3": {"response": "PT24H", "resolution": "PT72H"},
            "P4": {"response": "PT72H", "resolution": "PT240H"},
        },
        "pausing_hold_reasons": ["customer", "access"],
        "warning_thresholds": [0.5, 0.75],
        "reopen": "new_cycle",
    }
