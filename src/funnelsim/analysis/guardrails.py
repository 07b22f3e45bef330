"""Several metrics in one readout: secondary metrics, guardrails, and false discoveries.

A test is decided on one primary metric, but a winner that quietly drops retention or
engagement should not ship. Each metric here is summarised per arm from the counts,
sums and sums of squares of its per-visitor column, and each variant's relative change
against the control gets, under a flat prior and the normal approximation (large-sample
posterior ``N(estimate, se^2)`` of the relative change, delta method):

- the probability of *harm beyond the threshold* (a drop worse than ``threshold``, or
  a rise for a metric where lower is better): a guardrail with this probability above
  ``max_harm_probability`` blocks shipping that variant, and the decision names it;
- a two-sided z-test p-value and its Benjamini-Hochberg q-value across *all* metrics
  and variants of the readout, so that among the changes called significant at
  ``fdr`` the expected share of false discoveries is at most ``fdr``.

References:
    Benjamini, Y. & Hochberg, Y. (1995), "Controlling the false discovery rate",
    JRSS B 57(1).
    Deng, A. & Shi, X. (2016), "Data-Driven Metric Development for Online Controlled
    Experiments", KDD (guardrail metrics).
    Kohavi, R., Tang, D. & Xu, Y. (2020), Trustworthy Online Controlled Experiments,
    ch. 7 and 21 (guardrails, overall evaluation criterion).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
from scipy.special import ndtr, ndtri

from funnelsim.analysis.cuped import Estimate
from funnelsim.analysis.decision import Decision
from funnelsim.analysis.moments import Moments, covariances, means

Role = Literal["primary", "secondary", "guardrail"]


class MetricSpec(NamedTuple):
    """One metric of a readout.

    Attributes:
        column: Per-visitor column (a 0/1 flag for a rate).
        role: ``"primary"``, ``"secondary"`` (reported) or ``"guardrail"`` (may block).
        higher_is_better: False for metrics such as refunds or latency.
        threshold: Relative harm tolerated (0.01: a 1% drop is acceptable).
    """

    column: str
    role: Role = "secondary"
    higher_is_better: bool = True
    threshold: float = 0.01


class MetricEffect(NamedTuple):
    """One variant against the control on one metric.

    Attributes:
        metric: The metric's column.
        role: Its role in the readout.
        variant: Variant name.
        control_mean: Control mean per visitor.
        variant_mean: Variant mean per visitor.
        uplift: Relative change with its normal-approximation interval.
        p_value: Two-sided z-test p-value of the difference in means.
        q_value: Benjamini-Hochberg adjusted p-value over the whole readout.
        prob_harm: Posterior probability of harm beyond the metric's threshold.
        blocks: True for a guardrail whose ``prob_harm`` exceeds the allowed risk.
    """

    metric: str
    role: Role
    variant: str
    control_mean: float
    variant_mean: float
    uplift: Estimate
    p_value: float
    q_value: float
    prob_harm: float
    blocks: bool


class MetricsReadout(NamedTuple):
    """Every metric of a readout, one entry per metric and non-control variant.

    Attributes:
        control: Control arm.
        level: Level of the uplift intervals.
        fdr: False discovery rate the q-values are read against.
        max_harm_probability: Risk of harm a guardrail tolerates.
        effects: Metric effects, metrics in the given order.
    """

    control: str
    level: float
    fdr: float
    max_harm_probability: float
    effects: tuple[MetricEffect, ...]

    def significant(self) -> tuple[MetricEffect, ...]:
        """The effects discovered at the false discovery rate ``fdr``."""
        return tuple(e for e in self.effects if e.q_value <= self.fdr)


def _relative_change(
    control: tuple[float, float], variant: tuple[float, float], z: float
) -> Estimate:
    """Relative change of two independent means (value, variance) by the delta method."""
    (a, var_a), (b, var_b) = control, variant
    if a == 0:
        return Estimate(np.nan, np.nan, np.nan, np.nan)
    variance = var_b / a**2 + b**2 * var_a / a**4
    se = float(np.sqrt(variance))
    value = b / a - 1
    return Estimate(value, se, value - z * se, value + z * se)


def _harm_probability(uplift: Estimate, spec: MetricSpec) -> float:
    """``P(true harm > threshold)`` under the posterior ``N(uplift, se^2)``; 1 when the
    change cannot be estimated (a control mean of zero)."""
    if not np.isfinite(uplift.value):
        return 1.0
    harm = -uplift.value if spec.higher_is_better else uplift.value
    if not uplift.se > 0:
        return float(harm > spec.threshold)
    return float(ndtr(-(spec.threshold - harm) / uplift.se))


def metrics_readout(
    moments: Moments,
    specs: Sequence[MetricSpec],
    control: str,
    level: float = 0.95,
    fdr: float = 0.05,
    max_harm_probability: float = 0.05,
) -> MetricsReadout:
    """Read every metric of ``specs`` for every variant against the control.

    >>> from funnelsim.analysis.moments import moments_from_values
    >>> rng = np.random.default_rng(0)
    >>> arm = np.repeat(["A", "B"], 20000)
    >>> bought = rng.random(40000) < np.where(arm == "B", 0.12, 0.10)
    >>> stayed = rng.random(40000) < np.where(arm == "B", 0.30, 0.40)
    >>> m = moments_from_values(arm, np.c_[bought, stayed], ["bought", "retained"])
    >>> specs = [MetricSpec("bought", "primary"), MetricSpec("retained", "guardrail")]
    >>> [(e.metric, e.blocks) for e in metrics_readout(m, specs, "A").effects]
    [('bought', False), ('retained', True)]
    """
    if not all(0 < value < 1 for value in (level, fdr, max_harm_probability)):
        raise ValueError("level, fdr and max_harm_probability must be in (0, 1)")
    selected = moments.select([spec.column for spec in specs])
    ref = selected.arm(control)
    mean, cov = means(selected), covariances(selected)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.diagonal(cov, axis1=1, axis2=2) / selected.count[:, None]
    z = float(ndtri(0.5 + level / 2))
    rows = []
    for m, spec in enumerate(specs):
        for arm, name in enumerate(selected.arms):
            if arm == ref:
                continue
            control_stats = (float(mean[ref, m]), float(variance[ref, m]))
            uplift = _relative_change(control_stats, (float(mean[arm, m]), variance[arm, m]), z)
            se = float(np.sqrt(variance[arm, m] + variance[ref, m]))
            gap = float(mean[arm, m] - mean[ref, m])
            p_value = float(2 * ndtr(-abs(gap) / se)) if se > 0 else float(gap == 0)
            rows.append((spec, name, control_stats[0], float(mean[arm, m]), uplift, p_value))
    p_values = np.array([row[5] for row in rows])
    from scipy.stats import false_discovery_control  # lazy: scipy.stats costs seconds

    q_values = false_discovery_control(np.nan_to_num(p_values, nan=1.0), method="bh")
    effects = []
    for (spec, name, a, b, uplift, p_value), q_value in zip(rows, q_values, strict=True):
        harm = _harm_probability(uplift, spec)
        blocks = spec.role == "guardrail" and harm > max_harm_probability
        effects.append(
            MetricEffect(
                spec.column, spec.role, name, a, b, uplift, p_value, float(q_value), harm, blocks
            )
        )
    return MetricsReadout(control, level, fdr, max_harm_probability, tuple(effects))


def guard(decision: Decision, readout: MetricsReadout) -> Decision:
    """The decision, unless a guardrail blocks shipping the chosen variant.

    Keeping the control is never blocked. A blocked ship becomes ``keep_testing`` and
    the reason names every blocking metric with its probability of harm.
    """
    if decision.action != "ship" or decision.variant in (None, readout.control):
        return decision
    blocking = [e for e in readout.effects if e.variant == decision.variant and e.blocks]
    if not blocking:
        return decision
    names = ", ".join(
        f"{e.metric} (P(harm beyond the threshold) = {e.prob_harm:.2f}, uplift "
        f"{e.uplift.value:+.2%})"
        for e in blocking
    )
    return Decision(
        "keep_testing",
        None,
        f"Ship of {decision.variant} blocked by guardrail {names}: allowed risk "
        f"{readout.max_harm_probability:.0%}. The primary metric alone would say: "
        f"{decision.reason}",
    )
