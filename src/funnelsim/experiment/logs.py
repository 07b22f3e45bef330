"""The first replication's logs as CSV files: every visitor's path, every order.

The event log replays each variant on the first replication's visitors with the SimPy
engine, which follows visitors one by one: one row per visitor and stage reached (when
they entered and left it, how long they waited, the outcome, the order value on the
row of a purchase), and one row, outcome ``replied``, per lead the business answered
(from the enquiry to the first answer; see ``simpy_engine.EventLog``). The order log
is :func:`funnelsim.orders.simulate_order_log`. Both files are written atomically: an
interrupted write leaves no partial file.
"""

from __future__ import annotations

from pathlib import Path

from funnelsim.engine import simpy_engine
from funnelsim.engine.draws import VisitorDraws, replication_seeds
from funnelsim.execution import EngineName
from funnelsim.experiment.engines import compile_variants
from funnelsim.files import atomic_writer
from funnelsim.orders import OrderLog, simulate_order_log
from funnelsim.scenario.schema import Scenario


def write_event_log(scenario: Scenario, path: Path) -> Path:
    """Write every variant's per-visitor, per-stage events of the first replication to
    ``path`` (CSV: variant, visitor, segment, channel, stage, times, outcome, revenue)."""
    seed = replication_seeds(scenario.seed, 1)[0]
    draws = VisitorDraws(seed, scenario.traffic.visitors_per_day, scenario.traffic.days)
    funnels = compile_variants(scenario)
    with atomic_writer(path) as stream:
        for i, (name, funnel) in enumerate(zip(scenario.variant_names, funnels, strict=True)):
            log = simpy_engine.EventLog(name)
            simpy_engine.simulate(funnel, draws, log)
            log.write_csv(stream, header=i == 0)
    return path


def write_order_log(
    scenario: Scenario, path: Path, months: int = 12, engine: EngineName = "auto"
) -> OrderLog:
    """Write the order log of the first replication's simulated test, followed
    ``months`` months after it, to ``path`` (CSV: customer, variant, date, amount)."""
    log = simulate_order_log(scenario, months, engine)
    with atomic_writer(path) as stream:
        log.write_csv(stream)
    return log
