"""Errors raised by every store, whatever database is behind it."""


class StoreError(Exception):
    """The store failed; the request may be retried."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or is locked for longer than the timeout."""


class SchemaOutdated(StoreError):
    """The database schema is older or newer than this server's."""


class InvalidValue(StoreError):
    """The database rejected a value sent by the client (for example a character it cannot store)."""


def schema_mismatch(database: str, found: int, expected: int) -> str:
    """Describe a schema version mismatch with the step that fixes it."""
    if found > expected:
        return (
            f"database {database} has schema version {found}, newer than this server's {expected}; "
            "upgrade the server to the release that wrote it"
        )
    return (
        f"database {database} has schema version {found}, this server needs {expected}; "
        "run `csdp migrate` with the same database URL"
    )

