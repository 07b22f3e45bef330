"""The experiment package: the run loop's reproducibility, one replication's counts,
and variants compiled once per scenario."""

from __future__ import annotations

import numpy as np

from conftest import SCENARIOS
from funnelsim.engine.draws import replication_seeds
from funnelsim.execution import Execution
from funnelsim.experiment import compile_variants, replicate, run_experiment
from funnelsim.results import results_dict
from funnelsim.scenario import load_scenario


def test_same_seed_same_results_whatever_the_workers():
    scenario = load_scenario(SCENARIOS / "checkout.yaml").with_overrides({"traffic.days": 2})
    serial = results_dict(run_experiment(scenario, 6))
    pooled = results_dict(run_experiment(scenario, 6, Execution(workers=2)))
    again = results_dict(run_experiment(scenario, 6))
    assert serial == pooled == again
    other = results_dict(run_experiment(scenario, 6, Execution(seed=1)))
    assert other != serial


def test_replication_counts_are_consistent():
    scenario = load_scenario(SCENARIOS / "lead_response.yaml").with_overrides({"traffic.days": 5})
    rep = replicate(scenario, replication_seeds(1, 1)[0])
    assert rep.test_visitors.sum() == rep.visitors[0]
    assert (rep.test_conversions <= rep.test_visitors).all()
    assert np.isclose(rep.prob_best.sum(), 1.0)
    assert rep.queue_abandonment.shape == (3, 1)


def test_variants_are_compiled_once_per_scenario():
    scenario = load_scenario(SCENARIOS / "checkout.yaml")
    first, again = compile_variants(scenario), compile_variants(scenario)
    assert [f.scenario.name for f in first] == [
        scenario.variant(v).name for v in scenario.variant_names
    ]
    assert all(a is b for a, b in zip(first, again, strict=True))
    other = compile_variants(load_scenario(SCENARIOS / "checkout.yaml"))
    assert not any(a is b for a, b in zip(first, other, strict=True))


LEADS = """\
name: lead form
traffic: {visitors_per_day: 2000, days: 14}
stages:
  - {name: landing, rate: 0.5}
  - {name: form, rate: 0.3}
  - {name: demo_request, rate: 0.4}
  - {name: contract, rate: 0.1}
value: {order_value: 5000}
variants:
  control: {}
  short_form: {stages.form.rate: 0.36}
experiment: {metric: "reached:demo_request", replications: 12}
"""


def test_a_test_judged_on_a_stages_reach_reads_that_reach() -> None:
    from funnelsim.scenario import parse_scenario

    scenario = parse_scenario(LEADS)
    result = run_experiment(scenario, execution=Execution(seed=3))
    visitors = 2000 * 14
    for summary, reach in zip(result.variants, (0.5 * 0.3, 0.5 * 0.36), strict=True):
        judged = summary.metrics["reached:demo_request"]
        standard_error = (reach * (1 - reach) / visitors / 12) ** 0.5
        assert abs(judged.mean - reach) < 4 * standard_error
    assert result.true_best == "short_form"
    # +20% on a 15% reach with ~14,000 visitors per arm: the test finds it
    assert result.test_outcomes["ship_best"] > 0.9


def test_planning_on_a_stages_reach_answers_in_days() -> None:
    import funnelsim
    from funnelsim.scenario import parse_scenario

    by_reach = parse_scenario(LEADS)
    by_sale = by_reach.with_overrides({"experiment.metric": "conversion"})
    settings = {"simulations": 40, "truth_replications": 2, "execution": Execution(seed=1)}
    reach_plan = funnelsim.plan(by_reach, "short_form", max_days=20, **settings)
    sale_plan = funnelsim.plan(by_sale, "short_form", max_days=20, **settings)
    assert reach_plan.truth.metric == "reached:demo_request"
    assert abs(reach_plan.truth.conversion[0] - 0.15) < 0.01
    assert reach_plan.days_needed is not None and reach_plan.days_needed <= 20
    assert reach_plan.frequentist_days < sale_plan.frequentist_days / 10
