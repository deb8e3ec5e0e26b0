"""Stores for the event log, decisions, projections and reference data.

Both stores offer the same async methods and pass the same contract tests:
`SQLiteStore` for the embedded default, `PostgresStore` for production.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from .errors import SchemaOutdated, StoreError, StoreUnavailable
from .postgres import PostgresStore
from .cursors import decode_cursor, encode_cursor
from .sqlite import SQLiteStore

if TYPE_CHECKING:
    from ..config import Settings

Store = Union[SQLiteStore, PostgresStore]


def create_store(settings: Settings) -> Store:
    """Build the store that `settings.database_url` selects; it still has to be opened."""
    if settings.store_kind == "postgresql":
        return PostgresStore(
            settings.effective_database_url,
            min_pool_size=settings.db_pool_min_size,
            max_pool_size=settings.db_pool_max_size,
        )
    return SQLiteStore(settings.sqlite_path)


__all__ = [
    "PostgresStore",
    "SQLiteStore",
    "SchemaOutdated",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "create_store",
    "decode_cursor",
    "encode_cursor",
]
