"""Input checks shared by the SLA modules; each error names the field and the value."""

from __future__ import annotations

import datetime as dt


def require_aware(field: str, value: object) -> dt.datetime:
    """Return `value` converted to UTC, or raise ValueError unless it is an aware datetime."""
    if not isinstance(value, dt.datetime):
        raise ValueError(f"{field}: expected an aware datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{field}: naive datetime {value.isoformat()} is not an instant; "
            "pass an aware datetime, for example with tzinfo=datetime.UTC"
        )
    return value.astimezone(dt.UTC)


def require_positive_duration(field: str, value: object) -> dt.timedelta:
    """Return `value`, or raise ValueError unless it is a timedelta greater than zero."""
    if not isinstance(value, dt.timedelta):
        raise ValueError(f"{field}: expected a datetime.timedelta, got {value!r}")
    if value <= dt.timedelta(0):
        raise ValueError(f"{field}: must be a positive duration, got {value.total_seconds():g} seconds")
    return value
