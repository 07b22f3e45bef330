"""The experiment package: the run loop's reproducibility, one replication's counts,
and variants compiled once per scenario."""

from __future__ import annotations

import numpy as np

from conftest import SCENARIOS
from funnelsim.engine.draws import replication_seeds
from funnelsim.experiment import compile_variants, replicate, run_experiment
from funnelsim.results import results_dict
from funnelsim.scenario import load_scenario


def test_same_seed_same_results_whatever_the_workers():
    scenario = load_scenario(SCENARIOS / "checkout.yaml").with_overrides({"traffic.days": 2})
    serial = results_dict(run_experiment(scenario, replications=6, workers=1))
    pooled = results_dict(run_experiment(scenario, replications=6, workers=2))
    again = results_dict(run_experiment(scenario, replications=6, workers=1))
    assert serial == pooled == again
    other = results_dict(run_experiment(scenario, replications=6, seed=1, workers=1))
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
