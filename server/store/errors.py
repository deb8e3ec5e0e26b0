"""Errors raised by every store, whatever database is behind it."""


class StoreError(Exception):
    """The store failed; the request may be retried."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or is locked for longer than the timeout."""


class SchemaOutdated(StoreError):
    """The database schema is older or newer than this server's."""
