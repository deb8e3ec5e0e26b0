"""The catalog operations of a store, whichever kind it is."""

from __future__ import annotations

from . import PostgresStore, Store
from .postgres_catalog import PostgresCatalog
from .sqlite_catalog import SQLiteCatalog

Catalog = SQLiteCatalog | PostgresCatalog


def catalog_of(store: Store) -> Catalog:
    return PostgresCatalog(store) if isinstance(store, PostgresStore) else SQLiteCatalog(store)
