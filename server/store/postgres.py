"""Event store on PostgreSQL through an asyncpg pool.

A batch is one transaction. Transaction-level advisory locks serialise
appends per stream, taken in key order so the stream locks never deadlock.
Then states and earlier decisions are read in one query, the batch is
decided in Python, and each table is written with one `INSERT ... SELECT
FROM unnest(...)` statement.

Global positions come from a one-row counter that is updated after the
projection upsert and stays locked until commit, so positions are assigned
in commit order. A reader of `global_position > cursor` therefore never
skips an event that commits late, and a rolled-back batch leaves no hole.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import asyncpg
import msgspec
import structlog

from shared_schema import (
    Actor,
    ChangesPage,
    DecisionStatus,
    EventDecision,
    ProposedEvent,
    TimelineEntry,
    WorkOrderState,
)

from ..config import redact_url
from ..upcasting import decode_recorded_event
from ..ingest import StoredDecision, causation_ids, plan_batch, renumber_positions, review_keys
from .errors import InvalidValue, SchemaOutdated, StoreError, StoreUnavailable, schema_mismatch
from .audit import AuditPage, AuditQuery, DeniedRequest, audit_page, audit_select, audit_where
from .migrations import latest_version, postgres_migrations
from .pages import changes_page, work_order_filters, work_order_page
from .reviews import ReviewPage, ReviewQuery, held_review, held_reviews_sql, review_page, review_queue_sql

log = structlog.get_logger("csdp.store")
T = TypeVar("T")

_encode_text = msgspec.json.Encoder().encode
_decode_decision = msgspec.json.Decoder(EventDecision).decode
_decode_state = msgspec.json.Decoder(WorkOrderState).decode
_decode_event = decode_recorded_event
_decode_timeline = msgspec.json.Decoder(TimelineEntry).decode

# Connection-level failures: the database is down, restarting, or dropped the connection.
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.TooManyConnectionsError,
    # A pooled connection that got the server's termination notice while idle
    # stays open until the event loop processes the closed socket. asyncpg 0.32
    # raises this for a query sent in that window ("cannot switch to state ...").
    # NOTE: any other unexpected asyncpg client state also becomes a 503.
    asyncpg.InternalClientError,
)
# Conflicts that a new attempt of the whole transaction resolves.
_RETRYABLE = (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
MAX_TRANSACTION_ATTEMPTS = 3


def _text(value: object) -> str:
    return _encode_text(value).decode()


class PostgresStore:
    """Event store, decisions, projections and reference data in PostgreSQL."""

    def __init__(self, dsn: str, *, min_pool_size: int = 1, max_pool_size: int = 10, command_timeout: float = 30) -> None:
        self.dsn = dsn
        self._min_pool_size = min_pool_size
        self._max_pool_size = max_pool_size
        self._command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None

    @property
    def description(self) -> str:
        return redact_url(self.dsn)

    def connection_use(self) -> tuple[int, int, int]:
        """Return (in use, idle, maximum) connections of the pool; (0, 0, maximum) while it is closed."""
        pool = self._pool
        if pool is None:
            return 0, 0, self._max_pool_size
        size = pool.get_size()
        idle = pool.get_idle_size()
        return size - idle, idle, pool.get_max_size()

    # -- lifecycle -----------------------------------------------------------

    async def open(self, *, migrate: bool = False) -> None:
        """Open the pool and check the schema; with `migrate`, apply pending migrations first."""
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self._min_pool_size,
                max_size=self._max_pool_size,
                command_timeout=self._command_timeout,
            )
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
            # A PostgresError here means PostgreSQL rejected the connection, for example a missing database.
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {self.description}: {exc}") from exc
        except (ValueError, OverflowError) as exc:
            # asyncpg parses the URL only now: a port that is not a number or out of range, a broken host.
            raise StoreError(f"CSDP_DATABASE_URL {self.description} is invalid: {exc}") from exc
        try:
            if migrate:
                await self.migrate()
            version = await self.schema_version()
            if version != latest_version():
                raise SchemaOutdated(schema_mismatch(self.description, version, latest_version()))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def expected_schema_version(self) -> int:
        return latest_version()

    async def schema_version(self) -> int:
        async def read(connection: asyncpg.Connection) -> int:
            exists = await connection.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
            if not exists:
                return 0
            return int(await connection.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))

        return await self._with_connection(read)

    async def migrate(self) -> list[int]:
        """Apply pending migrations, each in its own transaction; return the versions applied."""

        async def apply(connection: asyncpg.Connection) -> list[int]:
            applied: list[int] = []
            async with connection.transaction():
                # One migrator at a time, whichever process runs it.
                await connection.execute("SELECT pg_advisory_xact_lock(hashtext('csdp_migrate'))")
                await connection.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
                )
                current = await connection.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
                for version, script in postgres_migrations():
                    if version <= current:
                        continue
                    await connection.execute(script)
                    await connection.execute(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())", version
                    )
                    applied.append(version)
            return applied

        applied = await self._with_connection(apply)
        log.info("migrations_applied", database=self.description, versions=applied)
        return applied

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool
        if pool is None:
            raise StoreUnavailable(f"the store {self.description} is closed")
        try:
            connection = await pool.acquire()
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
            # Any error here comes from opening a connection, for example a
            # database that does not accept connections (SQLSTATE 55000).
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {self.description}: {exc}") from exc
        try:
            yield connection
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL at {self.description} is unavailable: {exc}") from exc
        except asyncpg.DataError as exc:
            # SQLSTATE class 22: a value the database cannot take, such as a NUL character in text.
            raise InvalidValue(f"{exc} (SQLSTATE {exc.sqlstate})") from exc
        except asyncpg.PostgresError as exc:
            raise StoreError(f"PostgreSQL failed with SQLSTATE {exc.sqlstate}: {exc}") from exc
        finally:
            await self._release(pool, connection)

    async def _release(self, pool: asyncpg.Pool, connection: asyncpg.Connection) -> None:
        """Return a connection to the pool, logging a failed reset instead of raising it.

        asyncpg terminates a connection whose reset fails and then raises. The
        work done on the connection is already committed, so a batch committed
        just before PostgreSQL dropped the connection is still reported as decided.
        """
        try:
            await pool.release(connection)
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
            log.warning("connection_release_failed", database=self.description, error=repr(exc))

    async def _with_connection(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        async with self._connection() as connection:
            return await work(connection)

    # -- command side --------------------------------------------------------

    async def append_batch(
        self,
        actor: Actor,
        events: list[ProposedEvent],
        recorded_at: dt.datetime,
        skew_tolerance: dt.timedelta,
    ) -> list[EventDecision]:
        """Decide and record a batch in one transaction; return one decision per event, in order.

        A unique violation (the same `client_event_id` committed by a parallel
        request of the same subject) or a deadlock reruns the whole
        transaction, which then finds the committed decision and replays it.
        A conflict is never reported as success without a stored decision.
        """
        for attempt in range(1, MAX_TRANSACTION_ATTEMPTS + 1):
            try:
                async with self._connection() as connection:
                    return await self._append_batch(connection, actor, events, recorded_at, skew_tolerance)
            except StoreError as exc:
                cause = exc.__cause__
                if not isinstance(cause, _RETRYABLE) or attempt == MAX_TRANSACTION_ATTEMPTS:
                    raise
                log.info("append_retried", attempt=attempt, subject=actor.subject, error=str(cause))
        raise AssertionError("unreachable")

    async def _append_batch(
        self,
        db: asyncpg.Connection,
        actor: Actor,
        events: list[ProposedEvent],
        recorded_at: dt.datetime,
        skew_tolerance: dt.timedelta,
    ) -> list[EventDecision]:
        stream_ids = sorted({event.work_order_id for event in events})
        async with db.transaction():
            # Appends to one stream are serialised; keys are locked in a fixed order.
            await db.execute(
                "SELECT pg_advisory_xact_lock(key) FROM"
                " (SELECT DISTINCT hashtextextended(id, 0) AS key FROM unnest($1::text[]) AS id ORDER BY key) AS keys",
                stream_ids,
            )
            states = await self._load_states(db, stream_ids)
            # One read for the batch's own ids (replays), the ids its events follow,
            # and the held events its review_resolved proposals name.
            batch_ids = {event.client_event_id for event in events}
            lookup_ids = list(batch_ids | set(causation_ids(events)))
            keys = review_keys(events)
            sql = (
                "SELECT 'own' AS kind, client_event_id, fingerprint, status, decision::text AS decision,"
                " NULL::text AS subject, NULL::text AS work_order_id, NULL::text AS resolution"
                " FROM decisions WHERE subject = $1 AND client_event_id = ANY($2::uuid[])"
            )
            params: list[object] = [actor.subject, lookup_ids]
            if keys:
                held = held_reviews_sql("postgres", "unnest($3::text[], $4::uuid[]) AS ref(subject, client_event_id)")
                sql += (
                    " UNION ALL SELECT 'held', held.client_event_id, NULL, held.status, NULL, held.subject,"
                    f" held.work_order_id, held.resolution FROM ({held}) AS held"
                )
                params += [[subject for subject, _ in keys], [key for _, key in keys]]
            rows = await db.fetch(sql, *params)
            own = [row for row in rows if row[0] == "own"]
            prior = {
                row[1]: StoredDecision(fingerprint=bytes(row[2]), decision=_decode_decision(row[4]))
                for row in own
                if row[1] in batch_ids
            }
            causations = {row[1]: DecisionStatus(row[3]) for row in own}
            reviews = dict(
                held_review((row[5], row[1], row[6], row[3], row[7])) for row in rows if row[0] == "held"
            )

            placeholders = iter(range(1, len(events) + 1))
            plan = plan_batch(
                events, actor, recorded_at, skew_tolerance, states, prior, causations, lambda: next(placeholders), reviews
            )
            if not plan.decisions:
                return plan.responses

            # The projection needs no position, so it is written before the position lock is taken.
            if plan.states:
                states_written = list(plan.states.values())
                await db.execute(upsert_current_sql("work_orders_current"), *current_state_columns(states_written))
            if plan.events:
                # The counter row stays locked until commit: this is what orders positions by commit.
                last = await db.fetchval(
                    "UPDATE position_counter SET last_position = last_position + $1 RETURNING last_position",
                    len(plan.events),
                )
                renumber_positions(plan, last - len(plan.events) + 1)
                recorded = [item.event for item in plan.events]
                await db.execute(
                    "INSERT INTO events (global_position, event_id, work_order_id, stream_version, type,"
                    " client_event_id, actor, actor_role, device_id, occurred_at, effective_time, recorded_at, event)"
                    " SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::uuid[],"
                    " $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[],"
                    " $13::json[])",
                    [event.global_position for event in recorded],
                    [event.event_id for event in recorded],
                    [event.work_order_id for event in recorded],
                    [event.stream_version for event in recorded],
                    [event.type for event in recorded],
                    [event.client_event_id for event in recorded],
                    [event.actor for event in recorded],
                    [event.actor_role for event in recorded],
                    [event.device_id for event in recorded],
                    [event.occurred_at for event in recorded],
                    [event.effective_time for event in recorded],
                    [event.recorded_at for event in recorded],
                    [_text(event) for event in recorded],
                )
                audience = [
                    (engineer_id, item.event.global_position) for item in plan.events for engineer_id in item.audience
                ]
                if audience:
                    await db.executemany(
                        "INSERT INTO event_audience (engineer_id, global_position) VALUES ($1, $2)", audience
                    )
            decided = plan.decisions
            await db.execute(
                "INSERT INTO decisions (subject, client_event_id, fingerprint, work_order_id, type, status,"
                " reason_code, actor_role, device_id, correlation_id, global_position, decided_at, proposal, decision)"
                " SELECT * FROM unnest($1::text[], $2::uuid[], $3::bytea[], $4::text[], $5::text[], $6::text[],"
                " $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::timestamptz[], $13::json[],"
                " $14::json[])",
                [item.actor.subject for item in decided],
                [item.proposal.client_event_id for item in decided],
                [item.fingerprint for item in decided],
                [item.proposal.work_order_id for item in decided],
                [item.proposal.type for item in decided],
                [item.decision.status.value for item in decided],
                [item.decision.reason_code.value for item in decided],
                [item.actor.role.value for item in decided],
                [item.proposal.device_id for item in decided],
                [item.proposal.correlation_id for item in decided],
                [item.decision.global_position for item in decided],
                [item.decision.decided_at for item in decided],
                [_text(item.proposal) for item in decided],
                [_text(item.decision) for item in decided],
            )
            await db.execute(
                "INSERT INTO work_order_timeline (work_order_id, entry) SELECT * FROM unnest($1::text[], $2::json[])",
                [entry.work_order_id for entry in plan.timeline],
                [_text(entry) for entry in plan.timeline],
            )
        return plan.responses

    @staticmethod
    async def _load_states(db: asyncpg.Connection, stream_ids: list[str]) -> dict[str, WorkOrderState]:
        rows = await db.fetch(
            "SELECT state::text FROM work_orders_current WHERE work_order_id = ANY($1::text[])", stream_ids
        )
        states = [_decode_state(row[0]) for row in rows]
        return {state.work_order_id: state for state in states}

    # -- query side ----------------------------------------------------------

    async def get_work_order(self, work_order_id: str) -> WorkOrderState | None:
        async def read(db: asyncpg.Connection) -> WorkOrderState | None:
            raw = await db.fetchval("SELECT state::text FROM work_orders_current WHERE work_order_id = $1", work_order_id)
            return _decode_state(raw) if raw else None

        return await self._with_connection(read)

    async def list_work_orders(
        self,
        *,
        status: str | None = None,
        engineer_id: str | None = None,
        priority: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> tuple[list[WorkOrderState], str | None]:
        """Page through orders sorted by id; the second value is the cursor of the next page."""
        where, params = work_order_filters(
            lambda number: f"${number}", status=status, engineer_id=engineer_id, priority=priority, after=after
        )
        params.append(limit + 1)
        sql = f"SELECT state::text FROM work_orders_current {where} ORDER BY work_order_id LIMIT ${len(params)}"

        async def read(db: asyncpg.Connection) -> list[WorkOrderState]:
            return [_decode_state(row[0]) for row in await db.fetch(sql, *params)]

        return work_order_page(await self._with_connection(read), limit)

    async def timeline(self, work_order_id: str) -> list[TimelineEntry]:
        async def read(db: asyncpg.Connection) -> list[TimelineEntry]:
            rows = await db.fetch(
                "SELECT entry::text FROM work_order_timeline WHERE work_order_id = $1 ORDER BY entry_id", work_order_id
            )
            return [_decode_timeline(row[0]) for row in rows]

        return await self._with_connection(read)

    async def changes_since(self, position: int, *, engineer_id: str | None, limit: int) -> ChangesPage:
        """Return accepted events after `position` in global order, with the states of their orders.

        `engineer_id` limits the feed to events that engineer may see; None
        returns every event.
        """

        async def read(db: asyncpg.Connection) -> ChangesPage:
            async with db.transaction(isolation="repeatable_read", readonly=True):
                if engineer_id is None:
                    rows = await db.fetch(
                        "SELECT global_position, event::text FROM events WHERE global_position > $1"
                        " ORDER BY global_position LIMIT $2",
                        position,
                        limit + 1,
                    )
                else:
                    rows = await db.fetch(
                        "SELECT e.global_position, e.event::text FROM event_audience a"
                        " JOIN events e ON e.global_position = a.global_position"
                        " WHERE a.engineer_id = $1 AND a.global_position > $2 ORDER BY a.global_position LIMIT $3",
                        engineer_id,
                        position,
                        limit + 1,
                    )
                events = [(row[0], _decode_event(row[1])) for row in rows]
                states = await self._load_states(db, sorted({event.work_order_id for _, event in events}))
            return changes_page(events, states, position=position, limit=limit, engineer_id=engineer_id)

        return await self._with_connection(read)

    # -- audit ---------------------------------------------------------------

    async def record_denied_requests(self, denied: list[DeniedRequest]) -> None:
        """Append denied requests with one statement."""
        if not denied:
            return
        columns = [
            [getattr(item, name) for item in denied]
            for name in (
                "denied_at", "subject", "subject_verified", "role", "device_id", "correlation_id",
                "method", "path", "status_code", "reason", "message",
            )
        ]
        await self._with_connection(
            lambda db: db.execute(
                "INSERT INTO denied_requests (denied_at, subject, subject_verified, role, device_id, correlation_id,"
                " method, path, status_code, reason, message)"
                " SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::boolean[], $4::text[], $5::text[],"
                " $6::text[], $7::text[], $8::text[], $9::integer[], $10::text[], $11::text[])",
                *columns,
            )
        )

    async def audit(self, query: AuditQuery) -> AuditPage:
        """Page through decisions and denied requests in time order."""
        where, params = audit_where(query, lambda n: f"${n}", lambda value: value)
        select = audit_select(true="TRUE", text_of=lambda column: f"{column}::text")
        sql = f"SELECT * FROM ({select}) AS audit {where} ORDER BY at, kind, id LIMIT ${len(params) + 1}"

        async def read(db: asyncpg.Connection) -> list[asyncpg.Record]:
            return await db.fetch(sql, *params, query.limit + 1)

        return audit_page(await self._with_connection(read), query.limit)

    async def list_reviews(self, query: ReviewQuery) -> ReviewPage:
        """Page through the unresolved NEEDS_REVIEW decisions, oldest first."""
        sql, params = review_queue_sql("postgres", query, lambda number: f"${number}", lambda value: value)

        async def read(db: asyncpg.Connection) -> list[asyncpg.Record]:
            return await db.fetch(sql, *params, query.limit + 1)

        return review_page(await self._with_connection(read), query.limit)

    async def head_position(self) -> int:
        """Return the global position of the last stored event, 0 for an empty log."""
        return await self._with_connection(lambda db: db.fetchval("SELECT coalesce(max(global_position), 0) FROM events"))

    async def log_identity(self) -> tuple[str, int]:
        """Return the log's epoch and the last position it shares with the copy it was restored from."""
        row = await self._with_connection(lambda db: db.fetchrow("SELECT epoch, base_position FROM log_identity"))
        return row["epoch"], int(row["base_position"])

    async def count_events(self) -> int:
        return await self._with_connection(lambda db: db.fetchval("SELECT count(*) FROM events"))

    async def count_decisions(self) -> int:
        return await self._with_connection(lambda db: db.fetchval("SELECT count(*) FROM decisions"))


def upsert_current_sql(table: str) -> str:
    """Return the statement that upserts `current_state_columns` into a table shaped like `work_orders_current`."""
    return (
        f"INSERT INTO {table} (work_order_id, status, version, engineer_id, priority, site_id, updated_at, state)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[],"
        " $7::timestamptz[], $8::json[])"
        " ON CONFLICT (work_order_id) DO UPDATE SET status = excluded.status, version = excluded.version,"
        " engineer_id = excluded.engineer_id, priority = excluded.priority, site_id = excluded.site_id,"
        " updated_at = excluded.updated_at, state = excluded.state"
    )


def current_state_columns(states: list[WorkOrderState]) -> list[list[object]]:
    """Turn states into one list per column of `work_orders_current`, for `upsert_current_sql`."""
    return [
        [state.work_order_id for state in states],
        [state.status.value for state in states],
        [state.version for state in states],
        [state.engineer_id for state in states],
        [state.priority.value for state in states],
        [state.site_id for state in states],
        [state.updated_at for state in states],
        [_text(state) for state in states],
    ]
