"""Per-variant Bayesian readout and ship / stop / keep-testing decision for A/B tests.

:func:`readout` summarises a conversion experiment from aggregated counts with the exact
Beta-Binomial computations of :mod:`funnelsim.analysis.conjugate`, applies an
expected-loss and region-of-practical-equivalence rule, and checks the sample ratio.
:func:`revenue_readout` gives the Monte Carlo counterpart for revenue per visitor.
"""

from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from funnelsim.analysis.conjugate import (
    BetaPosterior,
    RevenueStats,
    beta_posteriors,
    credible_interval,
    exact_readout,
    expected_loss,
    expected_loss_draws,
    posterior_mean,
    prob_beats_draws,
    prob_best_draws,
    prob_in_rope,
    revenue_per_visitor_draws,
    rope_probability_bound,
    uplift_interval,
    uplift_interval_draws,
)
from funnelsim.formatting import points

Action = Literal["ship", "stop", "keep_testing"]

RATE_LEVEL = 0.95
"""Credible level of the per-variant conversion and revenue-per-visitor intervals."""
UPLIFT_LEVEL = 0.95
"""Credible level of the relative uplift intervals."""


class DecisionRule(NamedTuple):
    """Thresholds of the ship / stop / keep-testing rule of :func:`readout`.

    The defaults follow GrowthBook-style relative risk thresholds: the risk (expected
    loss) a team accepts is stated as a fraction of the control's conversion rate, so
    the same rule works for a 1% and a 40% baseline.

    Attributes:
        loss_threshold: Expected loss allowed when shipping, relative to the control's
            posterior mean conversion rate (0.005 = 0.5% of the control rate, i.e.
            0.05 percentage points for a 10% baseline).
        rope: Half-width of the region of practical equivalence on the relative uplift:
            variants with ``|uplift| < rope`` (1%) count as practically identical.
        equivalence_probability: Posterior probability of lying in the ROPE that every
            non-control variant needs before the test stops for lack of a practical
            difference.
    """

    loss_threshold: float = 0.005
    rope: float = 0.01
    equivalence_probability: float = 0.95


DEFAULT_RULE = DecisionRule()


class VariantReadout(NamedTuple):
    """Posterior summary of one variant of a conversion experiment.

    Attributes:
        name: Variant name.
        visitors: Visitors in the variant.
        conversions: Converting visitors in the variant.
        conversion_mean: Posterior mean conversion rate.
        conversion_low: Lower bound of the 95% equal-tailed credible interval of the rate.
        conversion_high: Upper bound of the 95% equal-tailed credible interval.
        prob_best: Posterior probability that this variant has the highest rate.
        prob_beats_control: ``P(rate > control rate)``; 0.5 for the control itself.
        expected_loss: ``E[max rate - this rate]`` in absolute conversion points (rate
            units: 0.001 is 0.1 percentage points).
        uplift_mean: Posterior mean of the relative uplift over the control.
        uplift_low: Lower bound of the 95% credible interval of the relative uplift.
        uplift_high: Upper bound of the 95% credible interval of the relative uplift.
        prob_in_rope: Posterior probability that ``|relative uplift| < rule.rope``; 1 for
            the control.
        uplift_median: Posterior median of the relative uplift (the mean does not exist
            when the control has no conversions; then ``uplift_mean`` is NaN).
    """

    name: str
    visitors: float
    conversions: float
    conversion_mean: float
    conversion_low: float
    conversion_high: float
    prob_best: float
    prob_beats_control: float
    expected_loss: float
    uplift_mean: float
    uplift_low: float
    uplift_high: float
    prob_in_rope: float
    uplift_median: float = float("nan")


class Decision(NamedTuple):
    """Outcome of the decision rule.

    Attributes:
        action: ``"ship"`` (ship ``variant``; shipping the control means keeping it),
            ``"stop"`` (no practical difference) or ``"keep_testing"``.
        variant: Name of the variant to ship, or None unless ``action == "ship"``.
        reason: One readable sentence with the numbers behind the action.
        index: Position of ``variant`` among the variants, or None.
    """

    action: Action
    variant: str | None
    reason: str
    index: int | None = None


class SampleRatioCheck(NamedTuple):
    """Chi-square goodness-of-fit test of the visitor split.

    Attributes:
        chi2: Pearson chi-square statistic of observed vs expected visitors.
        p_value: Upper tail probability with ``n_variants - 1`` degrees of freedom.
        mismatch: True when ``p_value < alpha``: the split is unlikely under the design.
        message: One readable sentence summarising the check.
    """

    chi2: float
    p_value: float
    mismatch: bool
    message: str


class ABReadout(NamedTuple):
    """Full readout of a conversion experiment.

    Attributes:
        variants: Per-variant summaries, in input order.
        control: Name of the control variant.
        decision: Ship / stop / keep-testing decision.
        srm: Sample ratio mismatch check of the visitor split.
    """

    variants: tuple[VariantReadout, ...]
    control: str
    decision: Decision
    srm: SampleRatioCheck


class RevenueReadout(NamedTuple):
    """Monte Carlo posterior summary of one variant's revenue per visitor.

    Attributes:
        name: Variant name.
        rpv_mean: Posterior mean revenue per visitor.
        rpv_low: Lower bound of the 95% credible interval of revenue per visitor.
        rpv_high: Upper bound of the 95% credible interval of revenue per visitor.
        prob_best: Probability of the highest revenue per visitor.
        prob_beats_control: ``P(rpv > control rpv)``; 0.5 for the control itself.
        expected_loss: ``E[max rpv - this rpv]`` in currency per visitor.
        uplift_mean: Posterior mean relative uplift of revenue per visitor over control.
        uplift_low: Lower bound of the 95% credible interval of the relative uplift.
        uplift_high: Upper bound of the 95% credible interval of the relative uplift.
    """

    name: str
    rpv_mean: float
    rpv_low: float
    rpv_high: float
    prob_best: float
    prob_beats_control: float
    expected_loss: float
    uplift_mean: float
    uplift_low: float
    uplift_high: float


def _control_index(names: Sequence[str], control: str, n_variants: int) -> int:
    if len(names) != n_variants:
        raise ValueError(f"expected {n_variants} names, got {len(names)}")
    if len(set(names)) != len(names):
        raise ValueError(f"variant names must be unique, got {list(names)}")
    if control not in names:
        raise ValueError(f"control {control!r} is not one of {list(names)}")
    return list(names).index(control)


def _check_rule(rule: DecisionRule) -> None:
    if not (np.isfinite(rule.loss_threshold) and rule.loss_threshold > 0):
        raise ValueError(f"loss_threshold must be positive, got {rule.loss_threshold}")
    if not 0 < rule.rope < 1:
        raise ValueError(f"rope must be in (0, 1), got {rule.rope}")
    if not 0 < rule.equivalence_probability < 1:
        raise ValueError(
            f"equivalence_probability must be in (0, 1), got {rule.equivalence_probability}"
        )


def sample_ratio_mismatch(
    visitors: npt.ArrayLike,
    expected_shares: npt.ArrayLike | None = None,
    alpha: float = 0.001,
) -> SampleRatioCheck:
    """Pearson chi-square test of the observed visitor split against the designed one.

    Args:
        visitors: Visitors per variant.
        expected_shares: Designed traffic shares (positive, normalised here); None means
            an even split.
        alpha: Significance level; the default 0.001 is strict because the check runs on
            every readout and a mismatch invalidates the experiment.

    Example:
        >>> check = sample_ratio_mismatch([10000, 10300], alpha=0.05)
        >>> round(check.chi2, 3), round(check.p_value, 4), check.mismatch
        (4.433, 0.0352, True)

    References:
        Fabijan, A. et al. (2019), "Diagnosing Sample Ratio Mismatch in Online Controlled
        Experiments", KDD.
    """
    from scipy.stats import chisquare

    observed = np.asarray(visitors, dtype=np.float64)
    if observed.ndim != 1 or observed.size == 0:
        raise ValueError("visitors must be a non-empty one-dimensional sequence")
    if not np.all(np.isfinite(observed)) or np.any(observed < 0):
        raise ValueError(f"visitors must be finite and non-negative, got {observed.tolist()}")
    shares = (
        np.ones_like(observed)
        if expected_shares is None
        else np.asarray(expected_shares, dtype=np.float64)
    )
    if shares.shape != observed.shape:
        raise ValueError("expected_shares must have one entry per variant")
    if not np.all(np.isfinite(shares)) or np.any(shares <= 0):
        raise ValueError("expected_shares must be finite and positive")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    total = observed.sum()
    if observed.size == 1 or total == 0:
        return SampleRatioCheck(0.0, 1.0, False, "Sample ratio not testable: nothing to split.")
    expected = total * shares / shares.sum()
    chi2, p_value = (float(v) for v in chisquare(observed, expected))
    mismatch = p_value < alpha
    verdict = "Sample ratio mismatch" if mismatch else "No sample ratio mismatch"
    message = (
        f"{verdict}: observed visitors {observed.round().astype(int).tolist()} vs expected "
        f"{expected.round().astype(int).tolist()} (chi2 = {chi2:.2f}, p = {p_value:.2g}, "
        f"alpha = {alpha:g})."
    )
    return SampleRatioCheck(chi2, p_value, mismatch, message)


def parse_split(text: str, variants: int | None = None) -> tuple[float, ...]:
    """Planned traffic shares from text such as ``"90,10"`` or ``"1,1,2"``, normalised.

    Raises ValueError (one readable sentence) for anything but positive numbers, or
    for a count different from ``variants`` when given.

    >>> parse_split("90,10")
    (0.9, 0.1)
    """
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(
            f"split {text!r}: give one positive number per variant, like 50,50"
        ) from None
    if not all(np.isfinite(w) and w > 0 for w in weights):
        raise ValueError(f"split {text!r}: every share must be a positive number")
    if variants is not None and len(weights) != variants:
        raise ValueError(f"split {text!r}: {len(weights)} shares for {variants} variants")
    total = sum(weights)
    return tuple(w / total for w in weights)


def withhold_on_mismatch(decision: Decision, srm: SampleRatioCheck) -> Decision:
    """No decision on a sample ratio mismatch: the rule's verdict is kept only as text.

    A split far from the design means the arms are not comparable (broken assignment,
    logging loss, bots), so no ship or stop verdict is trustworthy.
    """
    if not srm.mismatch:
        return decision
    return Decision(
        "keep_testing",
        None,
        f"Decision withheld: {srm.message} Find the cause before reading this test "
        f"(the rule alone would say: {decision.reason})",
    )


def not_enough_data(
    names: Sequence[str], visitors: npt.ArrayLike, conversions: npt.ArrayLike, control: int
) -> str | None:
    """Why the data cannot support a decision yet, or None.

    A variant without visitors has only its prior; a control without conversions leaves
    the relative uplift without a posterior mean.

    >>> not_enough_data(["A", "B"], [1000, 0], [10, 0], 0)
    'Not enough data: B has no visitors yet.'
    """
    n, x = np.asarray(visitors, dtype=np.float64), np.asarray(conversions, dtype=np.float64)
    empty = [name for name, count in zip(names, n, strict=True) if count == 0]
    if empty:
        return (
            f"Not enough data: {', '.join(empty)} {'has' if len(empty) == 1 else 'have'} "
            "no visitors yet."
        )
    if x[control] == 0:
        return (
            f"Not enough data: the control {names[control]} has no conversions yet, so the "
            "relative uplift has no mean (read its median and interval)."
        )
    return None


def _equivalence(
    post: BetaPosterior, control: int, rule: DecisionRule
) -> tuple[npt.NDArray[np.float64], bool]:
    """Per variant P(|relative uplift| < rope), exact when it can matter.

    The cheap upper bound of :func:`rope_probability_bound` settles most cases: when it
    already falls short of the required probability for some variant, the bound is
    returned (``exact`` False) and the quadrature is skipped.
    """
    bound = rope_probability_bound(post, rule.rope)
    ceiling = np.minimum(bound, bound[control])
    ceiling[control] = 1.0
    if np.any(ceiling < rule.equivalence_probability):
        return ceiling, False
    return prob_in_rope(post, control, rule.rope), True


def decide(
    post: BetaPosterior,
    control: int,
    rule: DecisionRule = DEFAULT_RULE,
    names: Sequence[str] | None = None,
    loss: npt.NDArray[np.float64] | None = None,
) -> Decision:
    """The decision rule on Beta posteriors: stop, ship or keep testing.

    Stop when every non-control variant has ``P(|relative uplift| < rule.rope) >=
    rule.equivalence_probability`` (no practical difference). Otherwise ship the
    variant of least expected loss when that loss is below ``rule.loss_threshold``
    times the control's posterior mean (shipping the control means keeping it).
    Otherwise keep testing. A single variant always keeps testing. This is the rule
    :func:`readout` reports; it computes only what the rule needs, so simulations
    can call it at every look.

    Example:
        >>> decide(beta_posteriors([10000, 10000], [1000, 1200]), 0, names=["A", "B"]).variant
        'B'

    References:
        Stucchio, C. (2015), "Bayesian A/B Testing at VWO", VWO whitepaper (expected
        loss stopping rule); Kruschke, J. K. (2018), "Rejecting or accepting parameter
        values in Bayesian estimation", AMPPS 1(2) (ROPE).
    """
    n_variants = post.alpha.size
    labels = list(names) if names is not None else [str(i) for i in range(n_variants)]
    if n_variants == 1:
        return Decision(
            "keep_testing", None, f"Nothing to compare: {labels[0]} is the only variant."
        )
    loss = expected_loss(post) if loss is None else loss
    control_mean = float(posterior_mean(post)[control])
    in_rope, exact = _equivalence(post, control, rule)
    return apply_rule(
        labels, control, control_mean, loss, in_rope, rule, in_rope_is_bound=not exact
    )


def apply_rule(
    names: Sequence[str],
    control: int,
    control_mean: float,
    loss: npt.NDArray[np.float64],
    in_rope: npt.NDArray[np.float64],
    rule: DecisionRule,
    *,
    in_rope_is_bound: bool = False,
    describe: Callable[[float], str] = points,
    metric: str = "conversion rate",
) -> Decision:
    """The decision rule on computed quantities of any metric (exact or from draws).

    ``loss`` is each variant's expected loss, ``in_rope`` each variant's probability of
    a relative uplift within ``rule.rope`` of the control (an upper bound when
    ``in_rope_is_bound``), ``control_mean`` the control's posterior mean; ``describe``
    formats a loss for the reason. See :func:`decide` for the rule.
    """
    others = np.delete(in_rope, control)
    equivalence_text = (
        f"the lowest probability of a relative uplift within ±{rule.rope:.1%} is "
        f"{'at most ' if in_rope_is_bound else ''}{others.min():.1%} "
        f"(needed {rule.equivalence_probability:.0%})"
    )
    if np.all(others >= rule.equivalence_probability):
        return Decision("stop", None, f"Stop, no practical difference: {equivalence_text}.")
    best = int(np.argmin(loss))
    threshold = rule.loss_threshold * control_mean
    share = f", {loss[best] / threshold:.0%} of" if threshold > 0 else " vs"
    loss_text = (
        f"expected loss {describe(float(loss[best]))}{share} the threshold "
        f"{describe(threshold)} ({rule.loss_threshold:.2%} of the control's {metric})"
    )
    if loss[best] < threshold:
        verb = "Keep" if best == control else "Ship"
        return Decision("ship", names[best], f"{verb} {names[best]}: {loss_text}.", best)
    return Decision(
        "keep_testing",
        None,
        f"Keep testing: best {names[best]} has {loss_text}, and {equivalence_text}.",
    )


def decide_on_draws(
    names: Sequence[str],
    control: int,
    draws: npt.NDArray[np.float64],
    rule: DecisionRule,
    loss: npt.NDArray[np.float64] | None = None,
    *,
    describe: Callable[[float], str] = points,
    metric: str = "conversion rate",
) -> Decision:
    """The decision rule on joint posterior draws ``(draws, variants)`` of any metric.

    The probability of a relative uplift within the ROPE is counted over the draws (the
    control's own is 1); ``loss`` is the expected loss if already computed.

    >>> draws = np.array([[1.0, 1.5], [1.1, 1.6], [0.9, 1.4], [1.0, 1.7]])
    >>> decide_on_draws(["a", "b"], 0, draws, DecisionRule(loss_threshold=0.01)).variant
    'b'
    """
    loss = expected_loss_draws(draws) if loss is None else loss
    reference = draws[:, [control]]
    ratio = np.divide(draws, reference, out=np.ones_like(draws), where=reference > 0)
    in_rope = (np.abs(ratio - 1) < rule.rope).mean(axis=0)
    control_mean = float(draws[:, control].mean())
    return apply_rule(
        names, control, control_mean, loss, in_rope, rule, describe=describe, metric=metric
    )


def readout(
    names: Sequence[str],
    visitors: npt.ArrayLike,
    conversions: npt.ArrayLike,
    control: str,
    rule: DecisionRule = DEFAULT_RULE,
    prior_alpha: float = 1.0,
    prior_beta: float = 1.0,
    expected_shares: npt.ArrayLike | None = None,
) -> ABReadout:
    """Bayesian readout and decision for a conversion experiment from aggregated counts.

    The decision is :func:`decide`'s: stop when every variant is practically
    equivalent to the control, else ship the variant of least expected loss when that
    loss is small enough, else keep testing.

    Example:
        >>> r = readout(["A", "B"], [10000, 10000], [1000, 1200], control="A")
        >>> r.decision.action, r.decision.variant
        ('ship', 'B')
        >>> round(r.variants[1].prob_beats_control, 4)
        1.0

    References:
        Stucchio, C. (2015), "Bayesian A/B Testing at VWO", VWO whitepaper (expected
        loss stopping rule); Kruschke, J. K. (2018), "Rejecting or accepting parameter
        values in Bayesian estimation", AMPPS 1(2) (ROPE); GrowthBook, "Statistical
        Details", https://docs.growthbook.io/statistics/details (relative risk).
    """
    post = beta_posteriors(visitors, conversions, prior_alpha, prior_beta)
    ref = _control_index(names, control, post.alpha.size)
    _check_rule(rule)
    mean = posterior_mean(post)
    low, high = credible_interval(post, RATE_LEVEL)
    best, beats, loss = exact_readout(post, ref)
    uplift = uplift_interval(post, ref, UPLIFT_LEVEL)
    in_rope = prob_in_rope(post, ref, rule.rope)
    n, x = np.asarray(visitors, dtype=np.float64), np.asarray(conversions, dtype=np.float64)
    variants = tuple(
        VariantReadout(
            name=name,
            visitors=float(n[i]),
            conversions=float(x[i]),
            conversion_mean=float(mean[i]),
            conversion_low=float(low[i]),
            conversion_high=float(high[i]),
            prob_best=float(best[i]),
            prob_beats_control=float(beats[i]),
            expected_loss=float(loss[i]),
            uplift_mean=float(uplift.mean[i]),
            uplift_low=float(uplift.low[i]),
            uplift_high=float(uplift.high[i]),
            prob_in_rope=float(in_rope[i]),
            uplift_median=float(uplift.median[i]) if uplift.median is not None else np.nan,
        )
        for i, name in enumerate(names)
    )
    variants = tuple(
        v._replace(uplift_mean=np.nan, uplift_low=np.nan, uplift_high=np.nan, uplift_median=np.nan)
        if v.visitors == 0
        else v
        for v in variants
    )
    srm = sample_ratio_mismatch(n, expected_shares)
    shortage = not_enough_data(names, n, x, ref)
    if shortage is not None:
        return ABReadout(variants, control, Decision("keep_testing", None, shortage), srm)
    decision = withhold_on_mismatch(decide(post, ref, rule, names, loss), srm)
    return ABReadout(variants, control, decision, srm)


def revenue_readout(
    names: Sequence[str],
    stats: RevenueStats,
    control: str,
    draws: int = 20_000,
    seed: int = 0,
) -> tuple[RevenueReadout, ...]:
    """Monte Carlo readout of revenue per visitor, one entry per variant.

    Uses :func:`funnelsim.analysis.conjugate.revenue_per_visitor_draws` (uniform Beta
    prior on conversion, normal approximation for the mean order value). Probabilities
    carry a Monte Carlo standard error of at most ``0.5 / sqrt(draws)`` (0.0035 for the
    default 20,000 draws).

    Example:
        >>> s = RevenueStats([1000, 1000], [100, 120], [5000.0, 6000.0], [3e5, 3.6e5])
        >>> control, variant = revenue_readout(["A", "B"], s, control="A")
        >>> round(control.rpv_mean, 1), round(variant.rpv_mean, 1)
        (5.0, 6.0)

    References:
        Stucchio, C. (2015), "Bayesian A/B Testing at VWO", VWO whitepaper (revenue as
        conversion rate times order value, expected loss).
    """
    rpv = revenue_per_visitor_draws(stats, draws=draws, seed=seed)
    ref = _control_index(names, control, rpv.shape[1])
    tail = (1 - RATE_LEVEL) / 2
    low, high = np.quantile(rpv, [tail, 1 - tail], axis=0)
    mean = rpv.mean(axis=0)
    best = prob_best_draws(rpv)
    beats = prob_beats_draws(rpv, ref)
    loss = expected_loss_draws(rpv)
    uplift = uplift_interval_draws(rpv, ref, UPLIFT_LEVEL)
    return tuple(
        RevenueReadout(
            name=name,
            rpv_mean=float(mean[i]),
            rpv_low=float(low[i]),
            rpv_high=float(high[i]),
            prob_best=float(best[i]),
            prob_beats_control=float(beats[i]),
            expected_loss=float(loss[i]),
            uplift_mean=float(uplift.mean[i]),
            uplift_low=float(uplift.low[i]),
            uplift_high=float(uplift.high[i]),
        )
        for i, name in enumerate(names)
    )


def variant_outcomes(action: str, shipped: str | None, names: Sequence[str]) -> dict[str, str]:
    """What a decision means for each variant: ``"ship"`` for the one shipped (the control
    when it is kept) and ``"reject"`` for the others; the decision itself (``"stop"``,
    ``"keep_testing"``) for every variant when nothing ships.

    >>> variant_outcomes("ship", "b", ["a", "b"])
    {'a': 'reject', 'b': 'ship'}
    """
    if action != "ship":
        return {name: action for name in names}
    return {name: "ship" if name == shipped else "reject" for name in names}
