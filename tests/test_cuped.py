"""CUPED: the adjusted difference is the ANCOVA treatment coefficient, the interval
narrows by sqrt(1 - rho^2), and the adjusted intervals keep their coverage."""

import math

import numpy as np
import pytest

from funnelsim.analysis.cuped import cuped
from funnelsim.analysis.moments import moments_from_values

N = 20_000  # visitors per arm


def _experiment(rho: float, effect: float, seed: int, n: int = N):
    """Metric with unit variance and correlation rho with a standard normal covariate."""
    rng = np.random.default_rng(seed)
    arm = np.repeat(["control", "b"], n)
    pre = rng.normal(0, 1, 2 * n)
    y = 10 + rho * pre + math.sqrt(1 - rho**2) * rng.normal(0, 1, 2 * n)
    y += np.where(arm == "b", effect, 0.0)
    return arm, y, pre


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_interval_width_shrinks_by_sqrt_one_minus_rho_squared(rho: float) -> None:
    arm, y, pre = _experiment(rho, 0.05, seed=int(rho * 10))
    m = moments_from_values(arm, np.c_[y, pre], ["y", "pre"])
    effect = cuped(m, "y", ["pre"], "control").effects[0]
    adjusted = effect.difference.high - effect.difference.low
    plain = effect.unadjusted_difference.high - effect.unadjusted_difference.low
    # The ratio estimates sqrt(1 - r^2); r has standard error (1 - rho^2) / sqrt(2N).
    se = rho * math.sqrt(1 - rho**2) / math.sqrt(2 * N)
    assert adjusted / plain == pytest.approx(math.sqrt(1 - rho**2), abs=4 * se)
    assert effect.variance_reduction == pytest.approx(rho**2, abs=8 * se)


def test_adjusted_difference_is_the_ancova_treatment_coefficient() -> None:
    arm, y, pre = _experiment(0.7, 0.1, seed=5, n=3000)
    rng = np.random.default_rng(6)
    second = rng.normal(0, 1, y.size)
    y = y + 0.3 * second
    m = moments_from_values(arm, np.c_[y, pre, second], ["y", "pre", "second"])
    result = cuped(m, "y", ["pre", "second"], "control")
    design = np.c_[np.ones(y.size), arm == "b", pre, second]
    coefficients = np.linalg.lstsq(design, y, rcond=None)[0]
    assert result.effects[0].difference.value == pytest.approx(coefficients[1], rel=1e-9)
    assert result.theta == pytest.approx(coefficients[2:], rel=1e-9)


def test_adjusted_intervals_cover_at_their_nominal_rate() -> None:
    rng = np.random.default_rng(42)
    experiments, n, effect = 1000, 400, 0.2
    hits = 0
    arm = np.repeat(["control", "b"], n)
    for _ in range(experiments):
        pre = rng.normal(0, 1, 2 * n)
        y = 0.8 * pre + 0.6 * rng.normal(0, 1, 2 * n) + np.where(arm == "b", effect, 0)
        m = moments_from_values(arm, np.c_[y, pre], ["y", "pre"])
        d = cuped(m, "y", ["pre"], "control").effects[0].difference
        hits += d.low <= effect <= d.high
    se = math.sqrt(0.95 * 0.05 / experiments)
    assert hits / experiments == pytest.approx(0.95, abs=4 * se)


def test_conversion_flag_is_adjusted_too() -> None:
    """A 0/1 conversion predicted by past purchases: same effect, smaller interval."""
    rng = np.random.default_rng(9)
    arm = np.repeat(["control", "b"], N)
    past = rng.binomial(1, 0.3, 2 * N).astype(float)
    converted = (rng.random(2 * N) < 0.05 + 0.15 * past).astype(float)
    m = moments_from_values(arm, np.c_[converted, past], ["converted", "past_buyer"])
    effect = cuped(m, "converted", ["past_buyer"], "control").effects[0]
    assert effect.variance_reduction > 0.05
    assert abs(effect.difference.value - effect.unadjusted_difference.value) < 3 * (
        effect.unadjusted_difference.se
    )


def test_constant_covariate_is_refused() -> None:
    m = moments_from_values(list("aabb"), np.c_[[1.0, 2, 3, 4], [1.0, 1, 1, 1]], ["y", "x"])
    with pytest.raises(ValueError, match="constant or collinear"):
        cuped(m, "y", ["x"], "a")
