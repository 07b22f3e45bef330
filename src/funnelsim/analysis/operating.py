"""What a decision rule does at a planned size: its operating characteristics, measured
by simulation, and a threshold calibrated to a target false-ship rate.

An expected-loss rule has no error rate of its own: at 14 days of a checkout test the
default thresholds ship one of two *identical* arms far more often than the 5% a z-test
allows. Before trusting a rule, a team needs three numbers at the size it plans to run:

- ``P(ship | A/A)``: a variant identical to the control is shipped (false ship);
- ``P(ship worse)``: a variant worse than the control by more than the ROPE is shipped;
- ``P(ship best)``: a variant better by the planned effect is shipped.

:func:`operating_characteristics` measures them over simulated experiments (binomial
conversions at the planned visitors per arm, the rule applied once at that size), each
with a Wilson interval for the Monte Carlo error. :func:`calibrate_loss_threshold`
chooses the loss threshold whose A/A false-ship rate is at most a target (5% by default)
on simulated A/A experiments: whether the rule ships is monotone in the threshold, so
the largest such threshold is read off the simulated losses exactly.

References:
    Stucchio, C. (2015), "Bayesian A/B Testing at VWO" (the expected-loss rule).
    Deng, A., Lu, J. & Chen, S. (2016), "Continuous monitoring of A/B tests without
    pain: Optional stopping in Bayesian testing", DSAA (frequentist properties of
    Bayesian rules must be checked, not assumed).
    Wilson, E. B. (1927), "Probable inference, the law of succession, and statistical
    inference", JASA 22 (the interval of a simulated rate, via scipy's binomtest).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from funnelsim.analysis.decision import DEFAULT_RULE, DecisionRule
from funnelsim.analysis.two_arm import SHIP_VARIANT, two_arm_decisions, variant_loss_ratios

FloatArray = npt.NDArray[np.float64]


class Rate(NamedTuple):
    """A simulated probability with its Wilson interval."""

    value: float
    low: float
    high: float


class RiskRequest(NamedTuple):
    """What a readout states about its rule's risks (``analyze --risks``).

    Attributes:
        target: Calibrate the loss threshold to this A/A false-ship rate first (None:
            keep the rule's threshold).
        effect: Relative improvement of the "best" variant in ``P(ship best)``.
        replications: Simulated experiments per scenario (Wilson intervals show the
            Monte Carlo error; the calibration uses eight times as many A/A runs, so
            that the calibrated rule's false-ship rate on fresh runs stays near the target).
        measure: Measure the (calibrated) rule's operating characteristics; False only
            calibrates.
    """

    target: float | None = None
    effect: float = 0.05
    replications: int = 500
    measure: bool = True


DEFAULT_RISKS = RiskRequest(target=0.05)
"""What ``analyze`` states by default for a conversion decision: the loss threshold
calibrated to P(ship | A/A) <= 5% at the experiment's size, and the rule's risks there."""


class OperatingCharacteristics(NamedTuple):
    """The rule's risks at one planned size (two arms, one look at that size).

    Attributes:
        rule: The decision rule measured.
        baseline: Control conversion rate.
        visitors_per_arm: Planned visitors per arm.
        worse_by: Relative deficit of the "worse" variant (more than the ROPE).
        effect: Relative improvement of the "best" variant.
        replications: Simulated experiments per scenario.
        level: Level of the Wilson intervals.
        false_ship: ``P(ship the variant | A/A)``.
        ship_worse: ``P(ship the variant | it is worse by worse_by)``.
        ship_best: ``P(ship the variant | it is better by effect)``.
        target: The A/A false-ship rate the rule's threshold was calibrated to (None:
            the rule as given).
    """

    rule: DecisionRule
    baseline: float
    visitors_per_arm: int
    worse_by: float
    effect: float
    replications: int
    level: float
    false_ship: Rate
    ship_worse: Rate
    ship_best: Rate
    target: float | None = None


def wilson(successes: int, trials: int, level: float = 0.95) -> Rate:
    """Share ``successes / trials`` with its Wilson score interval (scipy).

    >>> r = wilson(50, 1000)
    >>> round(r.value, 3), round(r.low, 4), round(r.high, 4)
    (0.05, 0.0381, 0.0653)
    """
    from scipy.stats import binomtest  # lazy: scipy.stats takes seconds to import

    interval = binomtest(successes, trials).proportion_ci(level, method="wilson")
    return Rate(successes / trials, float(interval.low), float(interval.high))


def _simulated_conversions(
    baseline: float, relative: float, visitors: int, replications: int, seed: int
) -> npt.NDArray[np.int64]:
    """Conversions of (control, variant), shape ``(replications, 2)``."""
    rng = np.random.default_rng(seed)
    rates = np.array([baseline, baseline * (1 + relative)])
    if not np.all((rates > 0) & (rates < 1)):
        raise ValueError(f"conversion rates must stay in (0, 1), got {rates.tolist()}")
    return rng.binomial(visitors, rates, size=(replications, 2))


def ship_rate(
    rule: DecisionRule,
    baseline: float,
    relative: float,
    visitors_per_arm: int,
    replications: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    prior: tuple[float, float] = (1.0, 1.0),
) -> Rate:
    """Share of simulated experiments in which ``rule`` ships the variant.

    The variant converts at ``baseline * (1 + relative)``; each experiment has
    ``visitors_per_arm`` visitors per arm and the rule is applied once at that size, on
    Beta posteriors with the Beta ``prior``.
    """
    conversions = _simulated_conversions(baseline, relative, visitors_per_arm, replications, seed)
    visitors = np.full_like(conversions, visitors_per_arm)
    shipped = two_arm_decisions(visitors, conversions, rule, prior) == SHIP_VARIANT
    return wilson(int(shipped.sum()), replications, level)


def operating_characteristics(
    rule: DecisionRule = DEFAULT_RULE,
    *,
    baseline: float,
    visitors_per_arm: int,
    effect: float,
    worse_by: float | None = None,
    replications: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    prior: tuple[float, float] = (1.0, 1.0),
) -> OperatingCharacteristics:
    """``P(ship)`` under A/A, for a variant worse by more than the ROPE, and for one
    better by ``effect``, at ``visitors_per_arm`` (see the module docstring), on Beta
    posteriors with the Beta ``prior``.

    ``worse_by`` defaults to twice the rule's ROPE. The three scenarios use independent
    seeds derived from ``seed``.

    >>> oc = operating_characteristics(
    ...     baseline=0.1, visitors_per_arm=5000, effect=0.1, replications=200)
    >>> oc.ship_best.value > oc.false_ship.value > oc.ship_worse.value
    True
    """
    worse = 2 * rule.rope if worse_by is None else worse_by
    if worse <= rule.rope:
        raise ValueError(f"worse_by must exceed the ROPE ({rule.rope}), got {worse}")
    seeds = np.random.SeedSequence(seed).generate_state(3)
    common = (visitors_per_arm, replications)
    return OperatingCharacteristics(
        rule,
        baseline,
        visitors_per_arm,
        worse,
        effect,
        replications,
        level,
        ship_rate(rule, baseline, 0.0, *common, int(seeds[0]), level, prior),
        ship_rate(rule, baseline, -worse, *common, int(seeds[1]), level, prior),
        ship_rate(rule, baseline, effect, *common, int(seeds[2]), level, prior),
    )


def calibrate_loss_threshold(
    rule: DecisionRule = DEFAULT_RULE,
    *,
    baseline: float,
    visitors_per_arm: int,
    target: float = 0.05,
    replications: int = 4000,
    seed: int = 0,
) -> DecisionRule:
    """``rule`` with the largest loss threshold whose simulated A/A false-ship rate is at
    most ``target`` at ``visitors_per_arm`` (the ROPE and equivalence settings kept).

    The rule ships the variant of an experiment when it does not stop for equivalence,
    the variant has the smaller expected loss, and that loss divided by the control's
    posterior mean is below the threshold: so the threshold is the
    ``floor(target * replications) + 1``-th smallest such ratio over the A/A runs.

    >>> calibrated = calibrate_loss_threshold(
    ...     baseline=0.1, visitors_per_arm=5000, replications=400)
    >>> calibrated.loss_threshold < DecisionRule().loss_threshold
    True
    """
    if not 0 < target < 1:
        raise ValueError(f"target must be in (0, 1), got {target}")
    conversions = _simulated_conversions(baseline, 0.0, visitors_per_arm, replications, seed)
    ratios = variant_loss_ratios(np.full_like(conversions, visitors_per_arm), conversions, rule)
    allowed = math.floor(target * replications)
    ratio = np.sort(ratios)[allowed]
    return rule if np.isinf(ratio) else rule._replace(loss_threshold=float(ratio))


def stated_risks(
    rule: DecisionRule,
    request: RiskRequest,
    baseline: float,
    visitors_per_arm: int,
    seed: int = 0,
) -> tuple[DecisionRule, OperatingCharacteristics | None]:
    """The rule (calibrated first when ``request.target`` is set) and, when
    ``request.measure``, its operating characteristics at the experiment's own size and
    control rate."""
    if request.target is not None:
        rule = calibrate_loss_threshold(
            rule,
            baseline=baseline,
            visitors_per_arm=visitors_per_arm,
            target=request.target,
            replications=8 * request.replications,
            seed=seed,
        )
    if not request.measure:
        return rule, None
    found = operating_characteristics(
        rule,
        baseline=baseline,
        visitors_per_arm=visitors_per_arm,
        effect=request.effect,
        replications=request.replications,
        seed=seed + 1,
    )
    return rule, found._replace(target=request.target)


def risk_rates(found: OperatingCharacteristics) -> str:
    """The three simulated ship rates with their intervals, in words."""

    def rate(value: Rate) -> str:
        return f"{value.value:.1%} [{value.low:.1%}, {value.high:.1%}]"

    return (
        f"P(ship | A/A) {rate(found.false_ship)}, P(ship a variant {found.worse_by:.0%} "
        f"worse) {rate(found.ship_worse)}, P(ship a +{found.effect:.0%} variant) "
        f"{rate(found.ship_best)}"
    )


def risk_line(found: OperatingCharacteristics) -> str:
    """One terminal line stating the rule's risks at this size."""
    calibrated = "" if found.target is None else f", calibrated to {found.target:.0%} under A/A"
    return (
        f"Risks of this rule (loss threshold {found.rule.loss_threshold:.2%} of the control's "
        f"rate{calibrated}) at "
        f"{found.visitors_per_arm:,} visitors per arm, simulated: {risk_rates(found)}."
    )


def operating_dict(found: OperatingCharacteristics) -> dict[str, Any]:
    """The operating characteristics as plain data (``results.json``, ``plan.json``)."""
    return {
        "method": f"simulation: {found.replications} two-arm experiments per scenario at "
        f"visitors_per_arm, the rule applied once; {found.level:.0%} Wilson intervals",
        "visitors_per_arm": found.visitors_per_arm,
        "baseline": found.baseline,
        "worse_by": found.worse_by,
        "effect": found.effect,
        "loss_threshold": found.rule.loss_threshold,
        "calibrated_to": found.target,
        "false_ship": found.false_ship._asdict(),
        "ship_worse": found.ship_worse._asdict(),
        "ship_best": found.ship_best._asdict(),
    }
