"""Simulated order logs (`funnelsim run --orders`): repeat orders against their exact
expectation, exact counts for subscriptions, reproducibility, and the round trip into
`funnelsim analyze --transactions`."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from datetime import timedelta

import numpy as np
from click.testing import CliRunner

from conftest import MINIMAL, SCENARIOS
from funnelsim.cli import main
from funnelsim.orders import DAYS_PER_MONTH, START, simulate_order_log
from funnelsim.scenario import load_scenario, parse_scenario

Z = 4.0  # tolerance in standard errors


def _scenario(retention: str, days: int = 10):
    text = MINIMAL.replace(
        "visitors_per_day: 1000\n  days: 2", f"visitors_per_day: 2000\n  days: {days}"
    )
    return parse_scenario(text + f"  retention: {retention}\n")


def _first_days(log) -> dict[str, int]:
    first: dict[str, int] = {}
    for customer, day in zip(log.customer, log.day.tolist(), strict=True):
        first[customer] = min(day, first.get(customer, day))
    return first


def test_repeat_orders_match_their_exact_expectation():
    """Constant churn c, Poisson(lambda) orders per active month: a customer followed W
    whole months is active in month k with probability (1 - c)^k, so its expected repeat
    orders are lambda sum_k (1 - c)^k, with variance lambda E[L] + lambda^2 Var[L] for
    L = min(lifetime, W)."""
    rate, churn = 0.5, 0.2
    log = simulate_order_log(
        _scenario(f"{{repeat_per_month: {rate}, churn_per_month: {churn}}}"), months=12
    )
    first = np.array(list(_first_days(log).values()))
    assert len(first) == log.customers["control"] > 3000
    survive = (1 - churn) ** np.arange(1, 40)
    expected = variance = 0.0
    for window in np.floor((log.last_day - first) / DAYS_PER_MONTH).astype(int):
        mean_life = survive[:window].sum()
        second_moment = ((2 * np.arange(1, window + 1) - 1) * survive[:window]).sum()
        expected += rate * mean_life
        variance += rate * mean_life + rate**2 * (second_moment - mean_life**2)
    repeats = len(log.customer) - len(first)
    assert abs(repeats - expected) < Z * math.sqrt(variance)
    assert np.all(log.amount == 50.0)
    assert log.day.max() <= log.last_day and np.all(np.diff(log.day) >= 0)


def test_a_subscription_without_churn_orders_every_month_it_is_followed():
    """One fixed order a month and no churn: exactly 1 + W orders per customer."""
    log = simulate_order_log(
        _scenario("{repeat_per_month: 1, churn_per_month: 0, repeat_orders: fixed}", days=3),
        months=6,
    )
    first = _first_days(log)
    windows = {c: int((log.last_day - d) // DAYS_PER_MONTH) for c, d in first.items()}
    counts: dict[str, int] = {}
    for customer in log.customer:
        counts[customer] = counts.get(customer, 0) + 1
    assert counts == {c: 1 + w for c, w in windows.items()}
    assert set(windows.values()) == {6}  # a 3-day test followed 6 months: 6 whole months


def test_order_log_follows_the_simulated_test_and_is_reproducible():
    scenario = load_scenario(SCENARIOS / "login_tradeoff.yaml").with_overrides({"traffic.days": 7})
    log = simulate_order_log(scenario, months=3)
    per_variant = {
        v: {c for c, w in zip(log.customer, log.variant, strict=True) if w == v}
        for v in log.visitors
    }
    assert {v: len(c) for v, c in per_variant.items()} == log.customers
    assert all(log.customers[v] < log.visitors[v] for v in log.visitors)
    first, again = io.StringIO(), io.StringIO()
    log.write_csv(first)
    simulate_order_log(scenario, months=3).write_csv(again)
    assert first.getvalue() == again.getvalue()
    dates = [row["date"] for row in csv.DictReader(io.StringIO(first.getvalue()))]
    last = START + timedelta(days=log.last_day)
    assert START.isoformat() <= min(dates) and max(dates) <= last.isoformat()


def test_run_writes_an_order_log_that_analyze_reads(tmp_path):
    """The login wall's customers buy more often: the BG/NBD readout of the simulated log
    finds CLV per customer higher under login_required, as the scenario says (+30%)."""
    orders, out = tmp_path / "orders.csv", tmp_path / "out"
    run = CliRunner().invoke(
        main,
        [
            "run",
            str(SCENARIOS / "login_tradeoff.yaml"),
            "--days",
            "14",
            "--replications",
            "2",
            "--workers",
            "1",
            "--orders",
            str(orders),
            "--orders-months",
            "9",
        ],
    )
    assert run.exit_code == 0, run.output
    command = re.search(r"read it with: funnelsim analyze \S+ (.*)$", run.output, re.M)
    assert command is not None, run.output
    analyze = CliRunner().invoke(
        main,
        [
            "analyze",
            str(orders),
            *command.group(1).split(),
            "--draws",
            "200",
            "--margin",
            "0.35",
            "--out",
            str(out),
            "-q",
        ],
    )
    assert analyze.exit_code == 0, analyze.output
    variants = json.loads((out / "results.json").read_text())["variants"]
    login, control = variants["login_required"], variants["control"]
    assert login["prob_beats_control"] > 0.9
    assert login["clv_per_customer"]["mean"] > control["clv_per_customer"]["mean"]
    assert login["conversion"]["mean"] < control["conversion"]["mean"]
    again = CliRunner().invoke(
        main,
        [
            "run",
            str(SCENARIOS / "login_tradeoff.yaml"),
            "--orders",
            str(orders),
            "-q",
        ],
    )
    assert again.exit_code == 2 and "use --force" in again.output
