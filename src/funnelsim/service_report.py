"""The terminal table of a run's service figures (results.json's ``service`` block; the
rep-utilisation heat map is :func:`funnelsim.plots.utilisation_heatmap`).

The figures come from :mod:`funnelsim.engine.service` (one replication) averaged over
replications by :func:`funnelsim.experiment.summarise`; they exist for the resources of
SimPy runs only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

ServiceFigures = dict[str, dict[str, Any]]  # per resource, as engine.service computes them


def _minutes(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:,.1f} min" if value < 120 else f"{value / 60:,.1f} h"


def _share(value: float) -> str:
    return f"{value:.0%}" if math.isfinite(value) else "n/a"


def service_table(variants: Iterable[tuple[str, ServiceFigures]]) -> Table:
    """Per variant (name, figures) and resource: waits, answers within 5 minutes and 1 hour,
    leads lost waiting or declined, cost per lead and per customer (means over
    replications)."""
    from rich import box
    from rich.table import Table

    table = Table(title="Service (mean per replication)", box=box.SIMPLE_HEAD)
    columns = ("variant", "resource", "leads", "wait mean", "wait p90", "answered ≤ 5 min", "≤ 1 h")
    for column in (*columns, "out of hours", "lost waiting", "declined", "cost/lead", "cost/cust."):
        table.add_column(column, justify="left" if column in columns[:2] else "right")
    for name, service in variants:
        for resource, f in service.items():
            table.add_row(
                name,
                resource,
                f"{f['leads']:,.1f}",
                _minutes(f["wait_min"]["mean"]),
                _minutes(f["wait_min"]["p90"]),
                _share(f["answered_within"]["5min"]),
                _share(f["answered_within"]["1h"]),
                _share(f["answered_out_of_hours"]),
                f"{f['lost_waiting']:,.1f}",
                f"{f['declined']:,.1f}",
                f"{f['cost_per_lead']:,.2f}",
                f"{f['cost_per_customer']:,.2f}",
            )
    return table
