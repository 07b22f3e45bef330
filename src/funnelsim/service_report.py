"""The terminal table of a run's service figures (results.json's ``service`` block; the
rep-utilisation heat map is :func:`funnelsim.plots.utilisation_heatmap`).

The figures come from :mod:`funnelsim.engine.service` (one replication) averaged over
replications by :func:`funnelsim.experiment.summarise`; they exist for the resources of
SimPy runs only.
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


def _row(name: str, resource: str, f: dict[str, Any]) -> Row:
    return Row(
        (
            Cell(name),
            Cell(resource),
            Cell(fmt.decimal(f["leads"])),
            Cell(_minutes(f["wait_min"]["mean"])),
            Cell(_minutes(f["wait_min"]["p90"])),
            Cell(_share(f["answered_within"]["5min"])),
            Cell(_share(f["answered_within"]["1h"])),
            Cell(_share(f["answered_out_of_hours"])),
            Cell(fmt.decimal(f["lost_waiting"])),
            Cell(fmt.decimal(f["declined"])),
            Cell(fmt.amount(f["cost_per_lead"])),
            Cell(fmt.amount(f["cost_per_customer"])),
        )
    )


def service_table(variants: Iterable[tuple[str, ServiceFigures]]) -> Table:
    """Per variant (name, figures) and resource: waits, answers within 5 minutes and 1 hour,
    leads lost waiting or declined, cost per lead and per customer (means over
    replications)."""
    headers = ("leads", "wait mean", "wait p90", "answered ≤ 5 min", "≤ 1 h", "out of hours")
    return Table(
        "Service (mean per replication)",
        (
            label("variant"),
            label("resource"),
            *(Column(h) for h in headers),
            Column("lost waiting"),
            Column("declined"),
            Column("cost/lead"),
            Column("cost/cust."),
        ),
        tuple(
            _row(name, resource, f) for name, service in variants for resource, f in service.items()
        ),
    )
