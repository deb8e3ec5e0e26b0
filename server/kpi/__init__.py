"""Pure KPI engine: field-service figures per group and window, computed from the accepted event log.

No I/O, clock or logging, so an asynchronous projector or an HTTP endpoint
can call it over any slice of the log.
"""

from .engine import compute_kpis
from .figures import DurationRatio, KpiGroup, KpiReport, MeanDuration, Rate, merge_groups
from .query import GroupBy

__all__ = [
    "DurationRatio",
    "GroupBy",
    "KpiGroup",
    "KpiReport",
    "MeanDuration",
    "Rate",
    "compute_kpis",
    "merge_groups",
]
