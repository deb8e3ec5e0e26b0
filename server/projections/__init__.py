"""Rebuilding and verifying the projections from the event log and the decisions.

The modules here import no store, so `server.ingest` can share `fold` with
the rebuild. `names` lists the projections and `fold` contains the pure
folding steps. `replay` turns log rows into projection rows, and `compare`
checks two copies of a projection row by row. `run` drives a rebuild or a
verify through a store's projection tables, and `console` implements the
`csdp projections` commands.
"""
