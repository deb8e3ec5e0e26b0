"""A deliberately broken server for test_fleet_scenarios.py: idempotency is off.

Loaded into the server process through CSDP_SIM_SERVER_PLUGIN. Every batch is
planned as if no event had been decided before, so a repeated proposal is
decided again instead of getting its stored decision back.
"""

from server import ingest
from server.store import postgres, sqlite

_plan_batch = ingest.plan_batch


def plan_without_prior_decisions(events, actor, recorded_at, skew_tolerance, states, prior, *args, **kwargs):
    return _plan_batch(events, actor, recorded_at, skew_tolerance, states, {}, *args, **kwargs)


sqlite.plan_batch = plan_without_prior_decisions
postgres.plan_batch = plan_without_prior_decisions
