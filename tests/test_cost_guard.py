"""The cost guard prices every way of asking for work (issue 21).

Each request the outside fuzzer found unpriced (segment x channel cells, a sweep grid,
analyze's variants and draws, plan's simulations, bench's replications, --events and
--orders volumes, an overloaded SimPy queue, an endless input, an alias bomb in
--param) runs once in a process whose address space is capped: it must be refused
with one line and exit 2, the line carrying the estimate, before it allocates what it
would need. The SimPy queue model is checked against its closed form.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from funnelsim import budget
from funnelsim.scenario.loader import parse_scenario

CHECKOUT = ROOT / "scenarios" / "checkout.yaml"
CAP_BYTES = 3 * 1024**3
"""The address-space cap of the refused requests: each would need far more."""


def _one_desk(visitors_per_day: float, priority: bool = False) -> str:
    band = ", priority: {by: score, bands: [0.4]}" if priority else ""
    return textwrap.dedent(
        f"""\
        name: one desk
        seed: 1
        traffic: {{visitors_per_day: {visitors_per_day}, days: 14}}
        resources:
          desk: {{capacity: 1, service_min: {{dist: exponential, mean: 60}}{band}}}
        stages:
          - {{name: ask, rate: 1.0, resource: desk}}
          - {{name: buy, rate: 0.5}}
        value: {{order_value: 10}}
        """
    )


def test_an_overloaded_queue_holds_half_its_final_length() -> None:
    """Arrivals beyond the service rate pile up linearly: the mean queue over the test is
    half of (arrival rate - service rate) x horizon."""
    load = budget.queue_loads(parse_scenario(_one_desk(3000)))[0]
    horizon = 14 * 1440.0
    rate = 3000 * 14 / horizon
    assert load.arrivals == 3000 * 14
    assert load.waiting == pytest.approx((rate - 1 / 60) * horizon / 2, rel=1e-12)


def test_a_sorted_queue_costs_the_square_of_the_traffic() -> None:
    """Twice the traffic on a one-desk priority queue: twice the arrivals, each scanning a
    queue about twice as long (exactly (2r - m) / (r - m) times, m the service rate)."""
    one, two = (
        budget.queue_loads(parse_scenario(_one_desk(v, priority=True)))[0] for v in (3000, 6000)
    )
    rate, served = 3000 / 1440, 1 / 60
    expected = 2 * (2 * rate - served) / (rate - served)
    assert two.scan_seconds / one.scan_seconds == pytest.approx(expected, rel=1e-12)
    no_priority = budget.queue_loads(parse_scenario(_one_desk(3000)))[0]
    assert no_priority.scan_seconds == 0.0  # a first-come queue nobody leaves is not scanned


def test_impatient_visitors_cap_the_queue_by_littles_law() -> None:
    text = _one_desk(3000).replace(
        "resource: desk}", "resource: desk, patience_min: {dist: exponential, mean: 30}}"
    )
    load = budget.queue_loads(parse_scenario(text))[0]
    assert load.waiting == pytest.approx(3000 / 1440 * 30, rel=1e-12)


def test_the_estimate_counts_simpy_events_and_queues() -> None:
    scenario = parse_scenario(_one_desk(60_000, priority=True))
    cost = budget.estimate(scenario, 1, "simpy")
    assert cost.events > cost.steps and cost.queue > 100_000
    assert "SimPy events" in budget.describe(cost)
    assert cost.seconds > 60.0  # a queue of 400,000 inserted into in priority order
    assert budget.refusal(cost, max_seconds=60.0) == "time over the 1 min limit"


def test_the_estimate_prices_the_steps_the_vectorized_engine_walks() -> None:
    """The estimate's steps (visitors x stages x variants) bound the visitor-stage steps the
    vectorized engine walks on checkout.yaml (each visitor walks the stages until they
    leave) and are of the same order of magnitude. ``benchmarks/steps.py`` measures the
    steps per second of ``STEPS_PER_SECOND``; no test times them."""
    from funnelsim.engine import vectorized
    from funnelsim.engine.draws import VisitorDraws, replication_seeds
    from funnelsim.experiment import compile_variants
    from funnelsim.scenario import load_scenario

    scenario = load_scenario(CHECKOUT)
    traffic = scenario.traffic
    draws = VisitorDraws(replication_seeds(3, 1)[0], traffic.visitors_per_day, traffic.days)
    runs = vectorized.simulate_variants(compile_variants(scenario), draws, [0.25] * 4)
    walked = sum(int(o.reached[:-1].sum()) for o in runs.outcomes)
    cost = budget.estimate(scenario, 1, "vectorized")
    assert walked < cost.steps < 10 * walked, (walked, cost.steps)
    assert cost.seconds == pytest.approx(
        cost.steps / budget.STEPS_PER_SECOND["vectorized"]
        + budget.READOUT_SECONDS[0]
        + 4 * budget.READOUT_SECONDS[1]
    )


# --------------------------------------------------------------------------- capped runs


def _scenario_with(tmp: Path, name: str, edit: dict[str, object]) -> str:
    data = yaml.safe_load(CHECKOUT.read_text(encoding="utf-8"))
    for dotted, value in edit.items():
        parent = data
        *path, last = dotted.split(".")
        for key in path:
            parent = parent[key]
        parent[last] = value
    target = tmp / f"{name}.yaml"
    target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return str(target)


def _requests(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """Request -> (its command line, a phrase of its refusal)."""
    n = 3000
    cells = {
        "name": "cells",
        "traffic": {
            "visitors_per_day": 100,
            "days": 2,
            "channels": {f"c{i}": {"share": 1 / n} for i in range(n)},
        },
        "segments": {f"s{i}": {"share": 1 / n} for i in range(n)},
        "stages": [{"name": f"st{i}", "rate": 0.9} for i in range(100)],
        "value": {"order_value": 10},
    }
    big = tmp / "cells.yaml"
    big.write_text(yaml.safe_dump(cells), encoding="utf-8")
    variants = tmp / "variants.csv"
    rows = [f"v{i},1000,{50 + i % 100}" for i in range(1000)]
    variants.write_text("variant,visitors,conversions\n" + "\n".join(rows) + "\n", "utf-8")
    pair = tmp / "pair.csv"
    pair.write_text("variant,visitors,conversions\nA,1000,100\nB,1000,120\n", "utf-8")
    queue = tmp / "queue.yaml"
    queue.write_text(_one_desk(100_000, priority=True), encoding="utf-8")
    repeat = _scenario_with(tmp, "repeat", {"value.retention.repeat_per_month": 1e6})
    checkout = str(CHECKOUT)
    grid = [f"stages.{s}.rate=0.0001:0.9999:0.0001" for s in ("landing", "cart", "checkout")]
    bomb = "[" + ",".join(["&a [1,1,1,1,1,1,1,1,1]"] + ["[*a,*a,*a,*a,*a,*a,*a,*a,*a]"] * 9)
    orders = tmp / "orders.csv"
    arms = (("1", "A"), ("2", "B"))
    days = [f"{c},{v},2024-01-{d:02d},{10 + d}" for c, v in arms for d in (1, 9)]
    orders.write_text("customer,variant,date,amount\n" + "\n".join(days) + "\n", "utf-8")
    return {
        "cells, validate": (["validate", str(big)], "cells"),
        "cells, explain": (["explain", str(big)], "cells"),
        "sweep grid": (
            ["sweep", checkout, *(a for p in grid for a in ("--param", p))],
            "grid points",
        ),
        "analyze variants": (["analyze", str(variants), "-q"], "too large: 1,000 variants"),
        "analyze draws": (
            ["analyze", str(pair), "--model", "funnel", "--draws", "100000000", "-q"],
            "too large: 4 chains x 100,000,000 draws",
        ),
        "plan simulations": (
            ["plan", checkout, "--variant", "guest_checkout", "--simulations", "100000000"],
            "too large: 100,000,000 simulated tests",
        ),
        "bench replications": (
            ["bench", checkout, "--replications", "100000000", "-q"],
            "simulated tests of 14 days",
        ),
        "events": (
            ["run", checkout, "-q", "--visitors-per-day", "200000", "--events", str(tmp / "e")],
            "too large: an event log",
        ),
        "orders": (["run", repeat, "-q", "--orders", str(tmp / "o.csv")], "an order log"),
        "simpy queue": (["run", str(queue), "-q"], "SimPy events"),
        "sensitivity samples": (
            ["sensitivity", checkout, "--samples", str(2**30)],
            "too large: 6,442,450,944 worlds",
        ),
        "transactions draws": (
            ["analyze", str(orders), "--transactions", "--draws", "100000000", "-q"],
            "too large: 4 chains x 100,000,000 draws of 8 BG/NBD parameters",
        ),
        "endless input": (["validate", "/dev/zero"], "/dev/zero"),
        "alias bomb": (["sweep", checkout, "--param", f"seed={bomb}]"], "--param"),
    }


CAPPED = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
from click.testing import CliRunner
from funnelsim.cli import main
answers = {{}}
for name, args in json.loads(sys.argv[1]).items():
    result = CliRunner().invoke(main, args)
    answers[name] = [result.exit_code, result.stderr, repr(result.exception)]
print(json.dumps(answers))
"""


def test_every_unpriced_request_is_refused_under_a_memory_cap(tmp_path: Path) -> None:
    """Each request, in one process capped at 3 GB of address space: exit 2, one line
    with the estimate (or the reason), and no MemoryError or traceback."""
    requests = _requests(tmp_path)
    script = CAPPED.format(cap=CAP_BYTES)
    argument = json.dumps({name: args for name, (args, _) in requests.items()})
    done = subprocess.run(
        [sys.executable, "-c", script, argument],
        capture_output=True,
        text=True,
        env={"OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answers = json.loads(done.stdout.splitlines()[-1])
    for name, (_, phrase) in requests.items():
        code, stderr, exception = answers[name]
        lines = stderr.splitlines()
        assert code == 2, (name, stderr, exception)
        assert len(lines) == 1 and phrase in lines[0] and len(lines[0]) < 400, (name, stderr)
        assert "out of memory" not in lines[0] and "Traceback" not in stderr, (name, stderr)


def test_the_event_log_price_counts_the_reply_rows(tmp_path: Path) -> None:
    """Everybody goes on and every lead is answered: the log has the most rows the price
    allows, one per visitor and stage plus one per reply at the two answering stages."""
    import funnelsim

    scenario = parse_scenario(
        textwrap.dedent(
            """\
            name: every lead answered
            traffic: {visitors_per_day: 50, days: 1}
            stages:
              - {name: enquiry, rate: 1.0}
              - {name: call, rate: 1.0, response_delay_min: {dist: exponential, mean: 30}}
              - {name: visit, rate: 1.0, response_delay_min: 60}
            value: {order_value: 100}
            """
        )
    )
    path = funnelsim.write_event_log(scenario, tmp_path / "events.csv")
    rows = [line.split(",") for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    visitors = len({row[1] for row in rows})  # arrivals are random: about 50
    assert len(rows) == visitors * (3 + 2)
    assert budget.event_log_work(scenario).what == f"an event log of up to {50 * 5:.3g} rows"
