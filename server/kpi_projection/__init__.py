"""The KPI projector: a per-order history of the events the KPI engine reads, kept by an asyncio task.

`rows` turns recorded events into history rows and back, `sqlite` and
`postgres` read and write the history and the checkpoint on each store, and
`projector` is the task that the app starts and stops. `GET /v1/kpi` loads
the histories a window needs and runs `server.kpi.compute_kpis` on them.
"""
