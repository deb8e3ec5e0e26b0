"""Request-scoped helpers shared by the route handlers."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from shared_schema import Actor, Role

from ..config import Settings
from ..store import Store, decode_cursor
from .errors import InvalidField


# The verified caller, injected by name into every handler that declares it.
CurrentActor = NamedDependency[Actor]


def store_of(request: Request) -> Store:
    return request.app.state.store


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


async def provide_actor(request: Request) -> Actor:
    """The caller that the `authorize` guard verified from the bearer token; the body never names the actor."""
    actor = request.scope.get("state", {}).get("actor")
    if actor is None:
        # Only a public route lacks a verified actor, and public routes take none.
        raise RuntimeError(f"route {request.url.path} takes an actor but is public; give it a row in ENDPOINT_ROLES")
    return actor


def engineer_scope(actor: Actor) -> str | None:
    """Return the engineer whose orders limit what this actor may read, or None for office roles."""
    return actor.engineer_id if actor.role is Role.ENGINEER else None


# Positions and counts are stored as signed 64-bit integers in both stores.
MAX_INT64 = 2**63 - 1


def int_query(request: Request, name: str, default: int, *, minimum: int, maximum: int = MAX_INT64) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidField(f"query parameter {name} must be a whole number", field=name, value=raw) from None
    if not minimum <= value <= maximum:
        raise InvalidField(f"query parameter {name} must be from {minimum} to {maximum}", field=name, value=value)
    return value


def check_query_names(request: Request, allowed: set[str]) -> None:
    """Reject query parameters the endpoint does not know, and repeated ones, instead of ignoring them."""
    for name in request.query_params:
        if name not in allowed:
            expected = ", ".join(sorted(allowed)) or "none"
            raise InvalidField(
                f"unknown query parameter {name}; this endpoint takes: {expected}",
                field=name,
                value=request.query_params.get(name),
            )
        values = request.query_params.getall(name)
        if any("\x00" in value for value in values):
            raise InvalidField(f"query parameter {name} contains a NUL character", field=name, value=values[0])
        if len(values) > 1:
            raise InvalidField(f"query parameter {name} is given {len(values)} times; give it once", field=name, value=values)


def enum_query(request: Request, name: str, allowed: Any) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    values = [member.value for member in allowed]
    if raw not in values:
        raise InvalidField(f"query parameter {name} must be one of {', '.join(values)}", field=name, value=raw)
    return raw


def cursor_query(request: Request, name: str = "cursor") -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return decode_cursor(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidField(
            f"query parameter {name} is not a cursor returned by this server", field=name, value=raw
        ) from None
