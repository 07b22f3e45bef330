"""Numerical edge cases: correct, finite answers or a clear message; never NaN or inf.

A funnel at its limits (nobody arrives, nobody or everybody buys, a variant gets no test
traffic, one variant or twenty, a stage nobody or everybody passes, a queue that cannot
keep up, orders worth nothing) must still give numbers a team can stand behind:
``results.json`` is strict JSON (undefined values such as an uplift over a control with
no conversions are ``null``), the tables print ``n/a`` rather than ``nan`` or ``inf``,
and where an analytic answer exists the simulation matches it. The same seed gives the
same ``results.json`` byte for byte, in one process, on a process pool and on Dask.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funnelsim.analysis.decision import readout
from funnelsim.cli import main

NOT_A_NUMBER = re.compile(r"\b(nan|inf|infinity)\b", re.IGNORECASE)
REPLICATIONS = 3


def scenario_text(
    stages: str = "  - {name: landing, rate: 0.5}\n  - {name: checkout, rate: 0.4}\n",
    variants: str = "  control: {}\n  b: {stages.checkout.rate: 0.45}\n",
    extra: str = "",
    traffic: str = "visitors_per_day: 200, days: 2",
    order_value: str = "{dist: constant, value: 50}",
) -> str:
    return (
        f"name: edge\nseed: 2\ntraffic: {{{traffic}}}\nstages:\n{stages}"
        f"value:\n  order_value: {order_value}\nvariants:\n{variants}{extra}"
    )


def _strict(name: str) -> float:
    raise AssertionError(f"results.json holds {name}")


def run(tmp_path: Path, text: str, *options: str) -> tuple[dict[str, Any], str]:
    """Run a scenario; return results.json (parsed strictly) and the printed tables."""
    path = tmp_path / "edge.yaml"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(path),
            "--replications",
            str(REPLICATIONS),
            "--workers",
            "1",
            "--out",
            str(out),
            "--force",
            *options,
        ],
    )
    assert result.exit_code == 0, result.output + result.stderr
    assert not NOT_A_NUMBER.search(result.output), result.output
    results = json.loads((out / "results.json").read_text(encoding="utf-8"), parse_constant=_strict)
    return results, result.output


def numbers(document: Any) -> list[float]:
    """Every number in a JSON document (nulls left out)."""
    if isinstance(document, dict):
        return [x for value in document.values() for x in numbers(value)]
    if isinstance(document, list):
        return [x for value in document for x in numbers(value)]
    if isinstance(document, bool) or document is None or isinstance(document, str):
        return []
    return [float(document)]


def test_a_variant_without_test_traffic(tmp_path):
    split = "experiment:\n  split: {control: 1.0, b: 0.0}\n"
    results, _ = run(tmp_path, scenario_text(extra=split))
    b = results["variants"]["b"]
    assert all(math.isfinite(x) for x in numbers(results))
    # Nothing is known about b from the test, so no test ever ships it.
    assert b["experiment"]["decision_rates"]["ship"] == 0.0
    # The expected effect does not depend on the split: every variant sees every visitor.
    assert b["conversion"]["mean"] > 0


def test_too_little_traffic_is_refused_with_its_line(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(scenario_text(traffic="visitors_per_day: 0.3, days: 2"), encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{path}:3: traffic.days: 0.3 visitors/day x 2 days "), (
        result.stderr
    )


def test_replications_without_visitors_are_left_out_of_the_means():
    from funnelsim.experiment import run_experiment
    from funnelsim.results import results_json
    from funnelsim.scenario import parse_scenario

    # One visitor expected per replication: Poisson(1) is 0 in about 37% of them.
    scenario = parse_scenario(scenario_text(traffic="visitors_per_day: 1, days: 1"))
    result = run_experiment(scenario, 12)
    visitors = np.array([r.visitors[0] for r in result.replications])
    conversion = np.array([r.conversion[0] for r in result.replications])
    assert 0 < (visitors == 0).sum() < len(visitors)
    assert np.isnan(conversion[visitors == 0]).all()
    assert result.variants[0].metrics["conversion"].mean == pytest.approx(
        conversion[visitors > 0].mean(), abs=1e-15
    )
    json.loads(results_json(result), parse_constant=_strict)


def test_nobody_converts(tmp_path):
    stages = "  - {name: landing, rate: 0.5}\n  - {name: checkout, rate: 0.0}\n"
    results, _ = run(tmp_path, scenario_text(stages=stages, variants="  control: {}\n  b: {}\n"))
    for variant in results["variants"].values():
        assert variant["conversion"] == {"mean": 0.0, "low": 0.0, "high": 0.0}
    uplift = results["variants"]["b"]["uplift_vs_control"]["conversion"]
    undefined = {"mean": None, "low": None, "high": None}  # relative to zero: undefined
    assert {k: uplift[k] for k in undefined} == undefined
    assert {k: uplift["monte_carlo"][k] for k in undefined} == undefined
    prob_best = [v["experiment"]["prob_best"] for v in results["variants"].values()]
    assert sum(prob_best) == pytest.approx(1.0, abs=1e-9)


def test_everybody_converts(tmp_path):
    stages = "  - {name: landing, rate: 1.0}\n  - {name: checkout, rate: 1.0}\n"
    results, _ = run(tmp_path, scenario_text(stages=stages, variants="  control: {}\n  b: {}\n"))
    for variant in results["variants"].values():
        assert variant["conversion"] == {"mean": 1.0, "low": 1.0, "high": 1.0}
        assert variant["bounce_rate"]["mean"] == 0.0
    assert results["variants"]["b"]["uplift_vs_control"]["conversion"]["mean"] == 0.0


def test_a_single_variant(tmp_path):
    results, _ = run(tmp_path, scenario_text(variants="  control: {}\n"))
    control = results["variants"]["control"]
    assert "uplift_vs_control" not in control
    assert control["experiment"]["prob_best"] == 1.0
    assert control["experiment"]["decision_rates"]["keep_testing"] == 1.0  # nothing to compare
    assert all(math.isfinite(x) for x in numbers(results))


def test_twenty_variants(tmp_path):
    variants = "".join(
        f"  v{i}: {{stages.checkout.rate: {0.30 + 0.01 * i:.2f}}}\n" for i in range(20)
    )
    results, _ = run(
        tmp_path, scenario_text(variants=variants, extra="experiment: {control: v0}\n")
    )
    assert len(results["variants"]) == 20
    prob_best = [v["experiment"]["prob_best"] for v in results["variants"].values()]
    # Means over replications of probabilities that sum to one in each replication.
    assert sum(prob_best) == pytest.approx(1.0, abs=1e-9)
    assert all(math.isfinite(x) for x in numbers(results))
    conversion = [v["conversion"]["mean"] for v in results["variants"].values()]
    assert conversion == sorted(conversion)  # common random numbers: monotone in the rate


def test_stages_with_rate_zero_and_one(tmp_path):
    stages = "  - {name: landing, rate: 1.0}\n  - {name: checkout, rate: 0.4}\n"
    results, _ = run(
        tmp_path,
        scenario_text(
            stages=stages, variants="  control: {}\n  closed: {stages.checkout.rate: 0.0}\n"
        ),
    )
    control, closed = results["variants"]["control"], results["variants"]["closed"]
    assert control["stage_rates"]["landing"] == 1.0
    # Conversion is Binomial(n, 0.4) / n over about 400 visitors x 3 replications: within
    # four standard errors, sqrt(0.4 x 0.6 / 1200) = 0.014, of the analytic 0.4.
    assert control["conversion"]["mean"] == pytest.approx(0.4, abs=4 * 0.0142)
    assert closed["conversion"]["mean"] == 0.0
    assert closed["uplift_vs_control"]["conversion"]["mean"] == -1.0


def test_a_stage_nobody_reaches_has_no_rate(tmp_path):
    """Behind a closed stage nobody arrives: the later stage's rate is unknown (null),
    not 0, and the funnel still converts nobody."""
    stages = (
        "  - {name: landing, rate: 0.5}\n  - {name: cart, rate: 0.4}\n"
        "  - {name: checkout, rate: 0.6}\n"
    )
    results, _ = run(
        tmp_path,
        scenario_text(stages=stages, variants="  control: {}\n  closed: {stages.cart.rate: 0.0}\n"),
    )
    control, closed = results["variants"]["control"], results["variants"]["closed"]
    assert closed["stage_rates"]["cart"] == 0.0
    assert closed["stage_rates"]["checkout"] is None
    # about 80 of 400 visitors reach checkout in each of 3 replications: the mean of
    # their rates has SE sqrt(0.6 x 0.4 / 80) / sqrt(3) = 0.032
    assert control["stage_rates"]["checkout"] == pytest.approx(0.6, abs=4 * 0.032)
    assert closed["conversion"]["mean"] == 0.0


@pytest.mark.parametrize(
    "patience",
    ["", "    patience_min: {dist: exponential, mean: 30}\n"],
    ids=["waits-forever", "gives-up"],
)
def test_a_queue_that_cannot_keep_up(tmp_path, patience):
    # About 120 visitors a day reach one agent who needs an hour each: utilisation 5.
    stages = (
        "  - {name: landing, rate: 0.6}\n  - name: call\n    rate: 0.5\n"
        f"    resource: agent\n{patience}"
    )
    extra = "resources:\n  agent: {capacity: 1, service_min: 60}\n"
    results, _ = run(
        tmp_path,
        scenario_text(
            stages=stages,
            variants="  control: {}\n  faster: {resources.agent.service_min: 30}\n",
            extra=extra,
        ),
    )
    assert all(math.isfinite(x) for x in numbers(results))
    queues = results["variants"]["control"]["queues"]["agent"]
    assert queues["utilisation"] >= 0.99  # saturated: the agent never rests
    if patience:
        assert 0.5 < queues["abandonment"] < 1.0
    else:
        assert queues["abandonment"] == 0.0


def test_orders_worth_nothing(tmp_path):
    extra = "  channels:\n    paid: {share: 1.0, cost_per_visit: 1.0}\n"
    text = scenario_text(order_value="0", traffic="visitors_per_day: 200, days: 2").replace(
        "traffic: {visitors_per_day: 200, days: 2}\n",
        f"traffic:\n  visitors_per_day: 200\n  days: 2\n{extra}",
    )
    results, _ = run(tmp_path, text)
    for variant in results["variants"].values():
        assert variant["revenue_per_visitor"]["mean"] == 0.0
        assert variant["clv_per_visitor"]["mean"] == 0.0
    assert all(math.isfinite(x) for x in numbers(results))


# --------------------------------------------------------------------------- the readout


@st.composite
def experiments(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    n = draw(st.integers(1, 6))
    visitors = draw(
        st.lists(st.one_of(st.integers(0, 50), st.integers(0, 10**9)), min_size=n, max_size=n)
    )
    share = st.one_of(st.just(0.0), st.just(1.0), st.floats(0, 1))
    conversions = [int(v * draw(share)) for v in visitors]
    return visitors, conversions


@settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(counts=experiments())
def test_readout_is_finite_for_any_counts(counts):
    visitors, conversions = counts
    names = [f"v{i}" for i in range(len(visitors))]
    result = readout(names, visitors, conversions, control="v0")
    undefined = {"uplift_mean", "uplift_low", "uplift_high", "uplift_median"}
    for variant in result.variants:
        values = [
            x
            for key, x in variant._asdict().items()
            if isinstance(x, float)
            and not (key in undefined and result.decision.reason.startswith("Not enough data"))
        ]
        assert all(math.isfinite(x) for x in values), variant
        for p in (variant.prob_best, variant.prob_beats_control, variant.prob_in_rope):
            assert 0.0 <= p <= 1.0
        assert variant.expected_loss >= 0.0
    assert sum(v.prob_best for v in result.variants) == pytest.approx(1.0, abs=1e-9)
    assert not NOT_A_NUMBER.search(result.decision.reason), result.decision.reason


@pytest.mark.parametrize("converted", ["none", "all"])
def test_readout_of_no_and_all_conversions_is_exact(converted):
    # With Beta(1, k) posteriors (nobody converted), P(X > Y) for X ~ Beta(1, a) and
    # Y ~ Beta(1, b) is b / (a + b); with Beta(k, 1) (everybody converted) it is
    # a / (a + b). Here a = 191 (b's posterior, 190 visitors) and b = 201 (control's).
    visitors = [200, 190]
    conversions = [0, 0] if converted == "none" else visitors
    result = readout(["control", "b"], visitors, conversions, control="control")
    exact = 201 / 392 if converted == "none" else 191 / 392
    assert result.variants[1].prob_beats_control == pytest.approx(exact, abs=1e-6)
    assert result.variants[1].prob_best == pytest.approx(exact, abs=1e-6)
    if converted == "none":  # the uplift has no mean: not enough data to decide
        assert result.decision.reason.startswith("Not enough data: the control control")
        assert math.isnan(result.variants[1].uplift_mean)
        assert math.isfinite(result.variants[1].uplift_median)
    else:
        assert all(math.isfinite(x) for v in result.variants for x in v if isinstance(x, float))


# --------------------------------------------------------------------------- reproducibility


REPRODUCIBLE = scenario_text(
    variants="  control: {}\n  b: {stages.checkout.rate: 0.45}\n  c: {stages.landing.rate: 0.55}\n",
    extra="experiment: {replications: 6}\n",
)


def _results_bytes(tmp_path: Path, name: str, *options: str) -> bytes:
    path = tmp_path / "same.yaml"
    path.write_text(REPRODUCIBLE, encoding="utf-8")
    out = tmp_path / name
    result = CliRunner().invoke(main, ["run", str(path), "-q", "--out", str(out), *options])
    assert result.exit_code == 0, result.output + result.stderr
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    for key in ("created", "timestamp", "finished", "started", "elapsed_s"):
        document.pop(key, None)
    return json.dumps(document, indent=2).encode()


@pytest.fixture(scope="module")
def serial_results(tmp_path_factory) -> tuple[Path, bytes]:
    tmp_path = tmp_path_factory.mktemp("serial")
    return tmp_path, _results_bytes(tmp_path, "serial", "--workers", "1")


def test_same_seed_same_results_in_one_process(serial_results):
    tmp_path, serial = serial_results
    assert _results_bytes(tmp_path, "again", "--workers", "1") == serial


def test_same_seed_same_results_on_a_process_pool(serial_results):
    tmp_path, serial = serial_results
    assert _results_bytes(tmp_path, "pool", "--workers", "2") == serial


def test_same_seed_same_results_on_dask(serial_results):
    pytest.importorskip("distributed")
    tmp_path, serial = serial_results
    assert _results_bytes(tmp_path, "dask", "--workers", "2", "--dask", "local") == serial


def test_no_more_processes_than_replications(monkeypatch, tmp_path):
    import multiprocessing

    from funnelsim import parallel

    sizes: list[int] = []
    real_pool = multiprocessing.Pool

    def recording_pool(processes: int, **kwargs: Any) -> Any:
        sizes.append(processes)
        return real_pool(processes, **kwargs)

    monkeypatch.setattr(parallel.multiprocessing, "Pool", recording_pool)
    path = tmp_path / "two.yaml"
    path.write_text(REPRODUCIBLE, encoding="utf-8")
    result = CliRunner().invoke(
        main, ["run", str(path), "-q", "--replications", "2", "--workers", "64"]
    )
    assert result.exit_code == 0, result.output + result.stderr
    assert sizes == [2]
