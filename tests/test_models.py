"""Tests of the PyMC funnel and revenue models against known truths and exact posteriors.

Recovery tests simulate counts from known rates (fixed seeds) and require the posterior
mean within four posterior standard deviations of the truth: the posterior sd is the
estimate's standard error, so a correct model fails such a check with probability about
6e-5. Agreement with the exact Beta-Binomial posterior allows four Monte Carlo standard
errors, ``sd / sqrt(ESS)``, of the PyMC posterior mean. Chains and draws are kept small.
"""

import doctest

import arviz as az
import numpy as np
import pytest

from funnelsim.analysis import models
from funnelsim.analysis.api import analyze
from funnelsim.analysis.conjugate import beta_posteriors, posterior_mean
from funnelsim.analysis.data import (
    ExperimentData,
    OrderStats,
    experiment_from_counts,
    experiment_from_rates,
)

SETTINGS = models.SamplerSettings(chains=4, seed=7)  # 4 x 1,000 draws: nutpie samples in ~1 s
TOLERANCE_SD = 4.0

# Three variants, three stages; "b" changes checkout only, "c" changes cart only.
STAGES = ("cart", "checkout")
TRUE_RATES = np.array(
    [
        [0.40, 0.50, 0.70],
        [0.40, 0.58, 0.70],
        [0.44, 0.50, 0.70],
    ]
)


def _simulated_funnel(visitors: int, seed: int) -> ExperimentData:
    """Counts of a funnel whose stage continue rates are ``TRUE_RATES``."""
    return experiment_from_rates(
        ["a", "b", "c"], TRUE_RATES, visitors, STAGES, np.random.default_rng(seed)
    )


def _flat(fit: models.ModelFit, name: str) -> np.ndarray:
    values = fit.idata.posterior[name].values
    return values.reshape(-1, *values.shape[2:])


@pytest.fixture(scope="module")
def funnel_fit() -> models.ModelFit:
    data = _simulated_funnel(visitors=20_000, seed=11)
    return models.sample(models.funnel_model(data, "a"), SETTINGS)


def test_funnel_model_recovers_known_stage_rates(funnel_fit: models.ModelFit) -> None:
    rates = _flat(funnel_fit, "stage_rate")
    mean, sd = rates.mean(axis=0), rates.std(axis=0)
    assert np.all(np.abs(mean - TRUE_RATES) < TOLERANCE_SD * sd), (mean, sd)
    conversion = _flat(funnel_fit, "conversion")
    true_conversion = TRUE_RATES.prod(axis=1)
    assert np.all(
        np.abs(conversion.mean(axis=0) - true_conversion) < TOLERANCE_SD * conversion.std(axis=0)
    )


def test_funnel_model_is_labelled_by_variant_and_stage(funnel_fit: models.ModelFit) -> None:
    posterior = funnel_fit.idata.posterior
    assert posterior["stage_rate"].dims == ("chain", "draw", "variant", "stage")
    assert list(posterior["variant"].values) == ["a", "b", "c"]
    assert list(posterior["stage"].values) == ["cart", "checkout", "conversions"]
    # The control's difference from itself is exactly zero in every draw.
    assert float(np.abs(posterior["stage_difference"].sel(variant="a")).max()) == 0.0


def test_funnel_model_says_which_stage_each_variant_changed(
    funnel_fit: models.ModelFit, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _simulated_funnel(visitors=20_000, seed=11)
    monkeypatch.setattr(models, "sample", lambda model, settings: funnel_fit)
    result = analyze(data, "a", "funnel")
    changed = {v.name: v.changed_stage for v in result.variants}
    assert changed["a"] is None
    assert changed["b"].stage == "checkout" and changed["b"].prob_increase > 0.99
    assert changed["c"].stage == "cart" and changed["c"].prob_increase > 0.99
    assert result.reliable == funnel_fit.diagnostics.reliable


def test_funnel_model_samples_in_few_gradient_evaluations(funnel_fit: models.ModelFit) -> None:
    # Whitened log-odds with the pooling scale integrated out: NUTS takes short
    # trajectories (the pooled logit parametrisation needed over a hundred per draw).
    assert float(funnel_fit.idata.sample_stats["n_steps"].mean()) <= 20.0


def test_pooled_prior_integrates_the_pooling_scale_exactly() -> None:
    # log of  int N(x; 0, tau^2 I + 1.5^2 J) LogNormal(tau; log 0.2, 0.5) dtau, by quadpack
    from scipy import integrate, stats

    column = np.array([0.3, 1.1, -0.4])
    spread = models.STAGE_MEAN_SD**2 * np.ones((3, 3))

    def integrand(log_sd: float) -> float:
        covariance = np.exp(2 * log_sd) * np.eye(3) + spread
        prior = stats.norm(np.log(models.POOLING_SD_MEDIAN), models.POOLING_SD_LOG_SD)
        return stats.multivariate_normal(np.zeros(3), covariance).pdf(column) * prior.pdf(log_sd)

    exact = np.log(integrate.quad(integrand, -7.0, 4.0, epsabs=0, epsrel=1e-12, limit=200)[0])
    found = models.pooled_log_prior(column[:, None], 3).eval()
    assert found.shape == (1,)
    assert abs(found[0] - exact) < 1e-9


def test_stage_posterior_gradient_and_curvature_match_finite_differences() -> None:
    logit, reached, continued = (
        np.array([1.0, 2.5]),
        np.array([2874.0, 3127.0]),
        np.array([2874.0, 2134.0]),
    )
    _, gradient, hessian = models._stage_log_posterior(logit, reached, continued)
    step = 1e-5
    for i, unit in enumerate(np.eye(2)):
        up = models._stage_log_posterior(logit + step * unit, reached, continued)
        down = models._stage_log_posterior(logit - step * unit, reached, continued)
        assert abs((up[0] - down[0]) / (2 * step) - gradient[i]) < 1e-5 * abs(gradient[i])
        np.testing.assert_allclose((up[1] - down[1]) / (2 * step), hessian[i], rtol=1e-6)


def test_diagnostics_are_reported_and_pass_on_a_well_posed_fit(funnel_fit: models.ModelFit) -> None:
    found = funnel_fit.diagnostics
    assert found.sampler == models.resolve_sampler("auto")
    assert (found.chains, found.draws) == (SETTINGS.chains, SETTINGS.draws)
    assert 1.0 - 1e-3 < found.r_hat_max <= models.R_HAT_MAX
    assert found.ess_bulk_min >= models.ESS_MIN and found.ess_tail_min >= models.ESS_MIN
    assert found.divergences == 0 and found.reliable and found.problems == ()


def test_failed_diagnostics_mark_the_result_unreliable() -> None:
    rng = np.random.default_rng(0)
    stuck = rng.normal(size=(2, 300)) * 0.01 + np.array([[0.0], [1.0]])  # chains disagree
    diverging = np.zeros((2, 300), dtype=bool)
    diverging[0, :3] = True
    idata = az.from_dict(posterior={"x": stuck}, sample_stats={"diverging": diverging})
    found = models.diagnose(idata, "pymc", 1.0)
    assert not found.reliable
    assert found.r_hat_max > 1.5 and found.divergences == 3
    assert len(found.problems) == 3  # r_hat, ESS and divergences each named


def test_conjugate_and_pymc_conversion_agree_within_monte_carlo_error() -> None:
    # The revenue model's conversion part is the conjugate model (Beta(1, 1) prior,
    # binomial likelihood), so the exact posterior mean is the target; PyMC's own NUTS.
    visitors, conversions = np.array([2000.0, 2100.0]), np.array([180.0, 231.0])
    orders = OrderStats(
        conversions,
        conversions * 40.0,
        conversions * 2000.0,
        conversions * np.log(40.0),
        conversions * np.log(40.0) ** 2 + 50.0,
    )
    data = experiment_from_counts(["A", "B"], visitors, conversions)._replace(orders=orders)
    settings = SETTINGS._replace(sampler="pymc", cores=1)
    fit = models.sample(models.revenue_model(data, "A"), settings)
    exact = posterior_mean(beta_posteriors(visitors, conversions))
    draws = _flat(fit, "conversion")
    ess = az.ess(fit.idata, var_names=["conversion"])["conversion"].values
    monte_carlo_error = draws.std(axis=0) / np.sqrt(ess)
    assert fit.diagnostics.sampler == "pymc"
    assert np.all(np.abs(draws.mean(axis=0) - exact) < TOLERANCE_SD * monte_carlo_error)


def _lognormal_orders(
    visitors: int, rate: float, mu: float, sigma: float, rng: np.random.Generator
) -> tuple[float, OrderStats]:
    """Simulated per-visitor revenue reduced to sufficient statistics."""
    values = rng.lognormal(mu, sigma, size=rng.binomial(visitors, rate))
    logs = np.log(values)
    stats = OrderStats(
        np.array([values.size]),
        np.array([values.sum()]),
        np.array([(values**2).sum()]),
        np.array([logs.sum()]),
        np.array([(logs**2).sum()]),
    )
    return float(values.size), stats


def _stack(parts: list[OrderStats]) -> OrderStats:
    return OrderStats(*(np.concatenate([getattr(p, f) for p in parts]) for f in OrderStats._fields))


def test_revenue_model_recovers_known_revenue_per_visitor() -> None:
    rng = np.random.default_rng(5)
    visitors = 20_000
    truth = {"A": (0.05, 3.5, 0.6), "B": (0.06, 3.4, 0.7)}  # rate, log-mean, log-sd
    simulated = [_lognormal_orders(visitors, *params, rng) for params in truth.values()]
    orders = _stack([stats for _, stats in simulated])
    data = experiment_from_counts(list(truth), [visitors] * 2, [n for n, _ in simulated])
    data = data._replace(orders=orders)
    fit = models.sample(models.revenue_model(data, "A"), SETTINGS)
    true_rpv = np.array([rate * np.exp(mu + sigma**2 / 2) for rate, mu, sigma in truth.values()])
    rpv = _flat(fit, "revenue_per_visitor")
    assert np.all(np.abs(rpv.mean(axis=0) - true_rpv) < TOLERANCE_SD * rpv.std(axis=0))
    uplift = _flat(fit, "revenue_uplift")[:, 1]
    true_uplift = true_rpv[1] / true_rpv[0] - 1
    assert abs(uplift.mean() - true_uplift) < TOLERANCE_SD * uplift.std()
    assert fit.diagnostics.reliable, fit.diagnostics.problems


def test_gamma_revenue_model_works_from_revenue_totals_alone() -> None:
    rng = np.random.default_rng(9)
    visitors, rates, shape, means = 20_000, np.array([0.05, 0.06]), 2.0, np.array([40.0, 40.0])
    conversions = rng.binomial(visitors, rates).astype(float)
    totals = rng.gamma(conversions * shape, means / shape)  # sum of Gamma(shape) orders
    data = experiment_from_counts(["A", "B"], [visitors] * 2, conversions, revenue=totals)
    assert models.order_value_family(data.orders, "auto") == "gamma"
    with pytest.raises(ValueError, match="LogNormal order value needs per-visitor"):
        models.revenue_model(data, "A", order_value="lognormal")
    fit = models.sample(models.revenue_model(data, "A"), SETTINGS)
    rpv = _flat(fit, "revenue_per_visitor")
    assert np.all(np.abs(rpv.mean(axis=0) - rates * means) < TOLERANCE_SD * rpv.std(axis=0))


def test_funnel_counts_drop_a_last_stage_that_is_the_conversion() -> None:
    data = experiment_from_counts(
        ["a", "b"], [100, 100], [20, 30], ["s1", "s2"], [[60, 20], [70, 30]]
    )
    counts = models.funnel_counts(data)
    assert counts.stages == ("s1", "s2")
    assert counts.reached.tolist() == [[100, 60], [100, 70]]


def test_sampler_choice() -> None:
    assert models.resolve_sampler("pymc") == "pymc"
    assert models.resolve_sampler("auto") in ("nutpie", "pymc")
    with pytest.raises(ValueError, match="target_accept"):
        models.sample(
            models.funnel_model(_simulated_funnel(100, 1), "a"),
            SETTINGS._replace(target_accept=1.5),
        )


def test_docstring_examples_run() -> None:
    assert doctest.testmod(models).failed == 0


class _RecordedProgress:
    """Stands in for rich's Progress: records what a fit displays."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.completed = 0

    def add_task(self, description: str, total: int | None) -> int:
        self.events.append((description, total))
        return 0

    def reset(self, _task: int, total: int, description: str) -> None:
        self.events.append((description, total))

    def advance(self, _task: int, draws: int) -> None:
        self.completed += draws

    def update(self, _task: int, completed: int) -> None:
        self.completed = completed


@pytest.mark.parametrize("sampler", ["nutpie", "pymc"])
def test_a_fit_says_compiling_then_counts_every_draw(sampler: str) -> None:
    if sampler == "nutpie" and models.resolve_sampler("auto") != "nutpie":
        pytest.skip("nutpie is not installed")
    data = experiment_from_counts(["A", "B"], [1000, 1000], [100, 120])
    settings = models.SamplerSettings(sampler, draws=100, tune=100, chains=2, cores=1, seed=3)
    recorded = _RecordedProgress()
    display = models.SamplingProgress(recorded)
    run = models._sample_nutpie if sampler == "nutpie" else models._sample_pymc
    idata = run(models.funnel_model(data, "A"), settings, display)
    assert recorded.events == [("compiling the model", None), ("sampling 2 chains", 400)]
    assert recorded.completed == 400
    assert idata.posterior.sizes["draw"] == 100
    if sampler == "nutpie":
        assert idata.observed_data["continued"].dims == ("variant", "stage")


def test_the_user_hears_once_how_to_get_nutpie(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "resolve_sampler", lambda name: "pymc")
    assert "pip install nutpie" in (models.nutpie_hint("auto") or "")
    assert models.nutpie_hint("pymc") is None
