"""The terminal table of a run's service figures (results.json's ``service`` block; the
rep-utilisation heat map is :func:`funnelsim.plots.utilisation_heatmap`).

The figures come from :mod:`funnelsim.engine.service` (one replication), summarised over
replications by :func:`funnelsim.engine.service.summarise_runs` (waits pooled, the
other figures averaged); they exist for the resources of SimPy runs only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from funnelsim import formatting as fmt
from funnelsim.tables import Cell, Column, Row, Table, label

ServiceFigures = dict[str, dict[str, Any]]  # per resource, as engine.service computes them


def _minutes(value: float) -> str:
    if not math.isfinite(value):
        return fmt.NOT_AVAILABLE
    return f"{fmt.decimal(value)} min" if value < 120 else f"{fmt.decimal(value / 60)} h"


def _share(value: float) -> str:
    return fmt.percent(value, digits=0)


def _wait_row(name: str, resource: str, f: dict[str, Any]) -> Row:
    return Row(
        (
            Cell(name),
            Cell(resource),
            Cell(fmt.decimal(f["leads"])),
            Cell(_minutes(f["wait_min"]["mean"]), f"p90 {_minutes(f['wait_min']['p90'])}"),
            Cell(
                _share(f["answered_within"]["5min"]),
                f"≤ 1 h {_share(f['answered_within']['1h'])}",
            ),
            Cell(_share(f["answered_out_of_hours"])),
        )
    )


def _cost_row(name: str, resource: str, f: dict[str, Any]) -> Row:
    return Row(
        (
            Cell(name),
            Cell(resource),
            Cell(fmt.decimal(f["lost_waiting"])),
            Cell(fmt.decimal(f["declined"])),
            Cell(fmt.amount(f["cost_per_lead"])),
            Cell(fmt.amount(f["cost_per_customer"])),
        )
    )


def service_tables(variants: Iterable[tuple[str, ServiceFigures]]) -> list[Table]:
    """Per variant (name, figures) and resource: waits (pooled over replications) and
    answers within 5 minutes and 1 hour; then leads lost waiting or declined and the cost
    per lead and per customer (means per replication)."""
    figures = [(name, resource, f) for name, service in variants for resource, f in service.items()]
    keys = (label("variant"), label("resource"))
    waits = Table(
        "Service: waits and answers",
        (*keys, *(Column(h) for h in ("leads", "wait", "answered ≤ 5 min", "out of hours"))),
        tuple(_wait_row(*row) for row in figures),
        caption="Leads: mean per replication. Wait of the leads served, over all "
        "replications: the mean, below it the 90th percentile. Below the share answered "
        "within 5 minutes the share within 1 hour.",
    )
    costs = Table(
        "Service: losses and cost (mean per replication)",
        (*keys, *(Column(h) for h in ("lost waiting", "declined", "cost/lead", "cost/cust."))),
        tuple(_cost_row(*row) for row in figures),
    )
    return [waits, costs]
