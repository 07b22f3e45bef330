"""Variants x replications with common random numbers, and the simulated A/B test.

The package by job: :mod:`~funnelsim.experiment.engines` (which engine, variants
compiled once), :mod:`~funnelsim.experiment.economics` (lifetime economics of a
replication), :mod:`~funnelsim.experiment.readout` (the simulated test's Bayesian
readout) and :mod:`~funnelsim.experiment.runner` (replications, summaries, the run).
The results types live in :mod:`funnelsim.results`.
"""

from funnelsim.experiment.economics import Economics, lifetime_economics
from funnelsim.experiment.engines import (
    EngineName,
    choose_engine,
    compile_variants,
    simulate_variants,
)
from funnelsim.experiment.readout import SplitReadout, decision_rule, draws_readout, split_readout
from funnelsim.experiment.runner import (
    defined_means,
    replicate,
    run_experiment,
    summarise,
)
from funnelsim.intervals import Interval, mean_interval, relative_uplift
from funnelsim.results import (
    METRICS,
    ChannelEconomics,
    CLVTest,
    ExperimentResult,
    LeadQuality,
    Replication,
    VariantSummary,
)

__all__ = [
    "METRICS",
    "CLVTest",
    "ChannelEconomics",
    "Economics",
    "EngineName",
    "ExperimentResult",
    "Interval",
    "LeadQuality",
    "Replication",
    "SplitReadout",
    "VariantSummary",
    "choose_engine",
    "compile_variants",
    "decision_rule",
    "defined_means",
    "draws_readout",
    "lifetime_economics",
    "mean_interval",
    "relative_uplift",
    "replicate",
    "run_experiment",
    "simulate_variants",
    "split_readout",
    "summarise",
]
