"""Work-order states and actor roles."""

from __future__ import annotations

import enum


class WorkOrderStatus(str, enum.Enum):
    """Lifecycle state of a work order."""

    NEW = "new"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"
    COMPLETED = "completed"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class Role(str, enum.Enum):
    """Role carried by the caller's token."""

    ENGINEER = "engineer"
    DISPATCHER = "dispatcher"
    MANAGER = "manager"
    ADMIN = "admin"
    SYSTEM = "system"
    """The server itself, for events it records (SLA warnings and breaches); no token carries it."""


# Roles a verified token can carry. The verifier maps no claim to Role.SYSTEM.
HUMAN_ROLES = (Role.ENGINEER, Role.DISPATCHER, Role.MANAGER, Role.ADMIN)


# States before work starts: a dispatcher may still reassign, unassign or cancel.
PRE_WORK_STATES = (
    WorkOrderStatus.ASSIGNED,
    WorkOrderStatus.ACCEPTED,
    WorkOrderStatus.EN_ROUTE,
    WorkOrderStatus.ON_SITE,
)

# States in which the assigned engineer records field work (notes, parts, time...).
ACTIVE_STATES = (
    WorkOrderStatus.ACCEPTED,
    WorkOrderStatus.EN_ROUTE,
    WorkOrderStatus.ON_SITE,
    WorkOrderStatus.IN_PROGRESS,
    WorkOrderStatus.ON_HOLD,
)

OPEN_STATES = (WorkOrderStatus.NEW, *PRE_WORK_STATES, WorkOrderStatus.IN_PROGRESS, WorkOrderStatus.ON_HOLD)

TERMINAL_STATES = (WorkOrderStatus.CLOSED, WorkOrderStatus.CANCELLED)
