"""funnelsim: simulate funnel changes, read experiments the Bayesian way.

>>> import funnelsim
>>> scenario = funnelsim.load_scenario("scenarios/checkout.yaml")  # doctest: +SKIP
>>> result = funnelsim.run(scenario, replications=20)  # doctest: +SKIP
"""

from funnelsim.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario", "parse_scenario", "run"]


def __getattr__(name: str) -> object:
    """Import the heavier entry points on first use (keeps ``import funnelsim`` light)."""
    if name == "run":
        from funnelsim.experiment import run_experiment

        return run_experiment
    raise AttributeError(name)
