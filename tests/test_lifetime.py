"""Order logs and the BG/NBD model: reading transactions, RFM summaries, the likelihood
against its closed form, expected purchases against simulation, and the published CDNOW
fit (Fader, Hardie & Lee 2005: r = 0.243, alpha = 4.414, a = 0.793, b = 2.426).

The CDNOW sample ships inside the ``lifetimes`` package (test extra); only its data
files are read (``lifetimes`` itself is not imported). Tests that need them skip when it
is not installed.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import re
from pathlib import Path

import arviz as az
import numpy as np
import pytest
from numpy.random import default_rng
from scipy.special import beta as beta_fn
from scipy.special import gamma as gamma_fn

from funnelsim.analysis.bgnbd import (
    PRIOR_SCALES,
    bgnbd_loglike,
    bgnbd_map,
    bgnbd_model,
    expected_repeat_purchases,
    fit_bgnbd,
    frequency_loglike,
    probability_alive,
    summed_frequency_loglike,
)
from funnelsim.analysis.conjugate import beta_posteriors, prob_beats
from funnelsim.analysis.data import DataError
from funnelsim.analysis.lifetime import per_visitor_readout, readout_transactions
from funnelsim.analysis.models import ModelFit, SamplerSettings, diagnose
from funnelsim.analysis.order_log import (
    CustomerSummary,
    TransactionError,
    Transactions,
    read_transactions,
    summarise_customers,
)

PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
Z = 4.0  # tolerance in standard errors


def _lifetimes_datasets() -> Path | None:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "datasets"
    return folder if (folder / "CDNOW_sample.txt").exists() else None


DATASETS = _lifetimes_datasets()
needs_cdnow = pytest.mark.skipif(DATASETS is None, reason="lifetimes (CDNOW sample) not installed")


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory) -> CustomerSummary:
    """CDNOW sample as an order log CSV, summarised over the 39-week calibration period."""
    assert DATASETS is not None
    path = tmp_path_factory.mktemp("cdnow") / "cdnow.csv"
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["customer", "variant", "date", "amount"])
        for line in (DATASETS / "CDNOW_sample.txt").read_text().splitlines():
            _, customer, day, _, amount = line.split()
            writer.writerow([customer, "all", day, amount])
    return summarise_customers(read_transactions(path), end="1997-09-30")


# --------------------------------------------------------------------------- reading


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "orders.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "customer,variant,when,amount\n1,a,2024-01-01,5\n",
            "orders.csv:1: column 'date': missing from the header (columns: customer, variant, "
            "when, amount)",
        ),
        (
            "customer,variant,date,amount\n1,a,2024-01-01,5\n2,a,01/02/2024,5\n",
            "orders.csv:3: column 'date': cannot read '01/02/2024' as a date (use YYYY-MM-DD)",
        ),
        (
            "customer,variant,date,amount\n1,a,2024-01-01,-5\n",
            "orders.csv:2: column 'amount': must be a non-negative number, got '-5'",
        ),
        (
            "customer,variant,date,amount\n1,,2024-01-01,5\n",
            "orders.csv:2: column 'variant': empty value",
        ),
        ("customer,variant,date,amount\n", "orders.csv: no orders (only a header)"),
    ],
)
def test_bad_transaction_files_give_one_line_errors(tmp_path, text, message):
    with pytest.raises(TransactionError) as error:
        read_transactions(write(tmp_path, text))
    assert str(error.value).endswith(message)
    assert "\n" not in str(error.value)


def test_missing_file_and_customer_in_two_variants(tmp_path):
    with pytest.raises(DataError, match=r"(?i)no such file"):
        read_transactions(tmp_path / "nope.csv")
    path = write(tmp_path, "customer,variant,date,amount\n7,a,2024-01-01,5\n7,b,2024-01-03,5\n")
    with pytest.raises(
        TransactionError,
        match=rf"^{re.escape(str(path))}:3: column 'variant': customer '7' is under 'b' here "
        r"but under 'a' on line 2$",
    ):
        read_transactions(path)
    log = Transactions(np.array(["7", "7"]), np.array(["a", "b"]), np.array([0, 2]), np.ones(2))
    with pytest.raises(
        TransactionError, match=r"customer '7' appears under two variants \('a' and 'b'\)"
    ):
        summarise_customers(log)  # built by hand, not read: the summary still refuses it
    with pytest.raises(DataError, match=r"(?i)is a directory"):
        read_transactions(tmp_path)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfcustomer,variant,date,amount\n1,a,2024-01-01,5\n")
    assert read_transactions(bom).customer.tolist() == ["1"]  # spreadsheet exports carry a BOM


def test_summary_counts_purchase_days_and_ignores_orders_after_the_end(tmp_path):
    log = read_transactions(
        write(
            tmp_path,
            (
                "customer,variant,date,amount\n"
                "1,a,2024-01-01,10\n1,a,2024-01-01,30\n1,a,2024-01-15,20\n1,a,2024-03-01,99\n"
                "2,b,2024-01-08,5\n"
            ),
        )
    )
    summary = summarise_customers(log, end="2024-01-29")
    assert summary.customer.tolist() == ["1", "2"]
    assert summary.frequency.tolist() == [1.0, 0.0]
    assert summary.recency.tolist() == [2.0, 0.0]
    assert summary.T.tolist() == [4.0, 3.0]
    assert summary.spend.tolist() == [30.0, 5.0]
    assert summary.variants == ["a", "b"]


@needs_cdnow
def test_cdnow_summary_matches_the_published_calibration_data(cdnow):
    """Frequency, recency and T (weeks) as in lifetimes' cdnow_customers_summary.csv
    (given there to two decimals)."""
    assert DATASETS is not None
    reference = np.genfromtxt(DATASETS / "cdnow_customers_summary.csv", delimiter=",", names=True)
    assert len(cdnow.customer) == len(reference) == 2357
    np.testing.assert_array_equal(cdnow.frequency, reference["frequency"])
    np.testing.assert_allclose(cdnow.recency, reference["recency"], atol=0.005)
    np.testing.assert_allclose(cdnow.T, reference["T"], atol=0.005)


# --------------------------------------------------------------------------- the model


def closed_form_likelihood(r, alpha, a, b, x, t_x, age):
    """FHL 2005 eq. 6, term by term and without logs: (alive term, dropped-out term)."""
    common = gamma_fn(r + x) * alpha**r / gamma_fn(r)
    alive = beta_fn(a, b + x) / beta_fn(a, b) * common / (alpha + age) ** (r + x)
    safe = np.where(x > 0, x, 1.0)
    dropped = np.where(
        x > 0, beta_fn(a + 1, b + safe - 1) / beta_fn(a, b) * common / (alpha + t_x) ** (r + x), 0.0
    )
    return alive, dropped


def histories(n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = default_rng(4)
    age = rng.uniform(1.0, 40.0, n)
    x = rng.poisson(2.0, n).astype(float)
    t_x = np.where(x > 0, rng.uniform(0.0, 1.0, n) * age, 0.0)
    return x, t_x, age


def test_loglike_matches_the_closed_form_likelihood():
    x, t_x, age = histories()
    alive, dropped = closed_form_likelihood(*PUBLISHED.values(), x, t_x, age)
    ours = bgnbd_loglike(*PUBLISHED.values(), x, t_x, age)
    np.testing.assert_allclose(ours, np.log(alive + dropped), rtol=1e-10)


def test_summed_frequency_loglike_is_the_sum_of_the_gamma_function_form():
    """Gamma(r + x) / Gamma(r) = r (r + 1) ... (r + x - 1) for whole x: the sum over
    customers from the counts of customers beyond each purchase count is exact."""
    x = default_rng(5).poisson(3.0, 500).astype(float)
    x[:3] = (0.0, 40.0, 41.0)  # none, and long histories (the product has 41 terms)
    beyond = (x[:, None] > np.arange(41)[None, :]).sum(axis=0)
    summed = summed_frequency_loglike(*PUBLISHED.values(), x.size, beyond)
    expected = frequency_loglike(*PUBLISHED.values(), x).sum()
    assert summed == pytest.approx(expected, rel=1e-12)


def test_fractional_frequencies_are_refused():
    summary = CustomerSummary(
        customer=np.array(["c1"]),
        variant=np.array(["a"]),
        frequency=np.array([1.5]),
        recency=np.array([3.0]),
        T=np.array([10.0]),
        spend=np.ones(1),
        unit_days=7.0,
    )
    with pytest.raises(ValueError, match="whole numbers"):
        bgnbd_model(summary)


def test_model_density_is_the_half_normal_prior_times_the_likelihood():
    """The sampled coordinates (log r, log alpha/r, log a, log b/a) change the geometry,
    not the posterior: the model's log density equals the half-normal priors of
    (r, alpha, a, b) plus the likelihood, plus log |J| = log(r alpha a b) when sampling."""
    from scipy.stats import halfnorm

    summary = CustomerSummary(
        customer=np.array(["c1", "c2", "c3"]),
        variant=np.array(["a", "b", "a"]),
        frequency=np.array([0.0, 2.0, 5.0]),
        recency=np.array([0.0, 10.0, 30.0]),
        T=np.array([20.0, 25.0, 38.0]),
        spend=np.ones(3),
        unit_days=7.0,
    )
    values = {
        "r": np.array([0.3, 0.5]),
        "alpha": np.array([4.0, 6.0]),
        "a": np.array([0.8, 1.2]),
        "b": np.array([2.5, 3.0]),
    }
    point = {
        "log_r": np.log(values["r"]),
        "log_alpha_over_r": np.log(values["alpha"] / values["r"]),
        "log_a": np.log(values["a"]),
        "log_b_over_a": np.log(values["b"] / values["a"]),
    }
    prior = sum(
        halfnorm.logpdf(values[name], scale=PRIOR_SCALES[name]).sum() for name in PRIOR_SCALES
    )
    customer_variant = np.array([0, 1, 0])
    loglike = bgnbd_loglike(
        *(values[name][customer_variant] for name in PRIOR_SCALES),
        summary.frequency,
        summary.recency,
        summary.T,
    ).sum()
    log_jacobian = sum(np.log(v).sum() for v in values.values())
    for jacobian, expected in ((False, prior + loglike), (True, prior + loglike + log_jacobian)):
        density = bgnbd_model(summary, jacobian=jacobian).compile_logp()(point)
        # PyMC rounds the half-normal's log normalising constant (3.2e-8 per value, 8 here)
        assert float(density) == pytest.approx(expected, abs=1e-6)


def test_probability_alive_is_the_alive_share_of_the_likelihood():
    x, t_x, age = histories()
    alive, dropped = closed_form_likelihood(*PUBLISHED.values(), x, t_x, age)
    np.testing.assert_allclose(
        probability_alive(*PUBLISHED.values(), x, t_x, age), alive / (alive + dropped), rtol=1e-10
    )


def test_expected_repeat_purchases_match_simulation():
    """Simulate the BG/NBD story: rate ~ Gamma(r, alpha), dropout ~ Beta(a, b); repeat
    purchases by t are min(Poisson(rate t), purchases until dropout ~ Geometric(p))."""
    r, alpha, a, b = PUBLISHED.values()
    rng, n, t = default_rng(12), 400_000, 39.0
    rate = rng.gamma(r, 1.0 / alpha, n)
    dropout = rng.beta(a, b, n)
    counts = np.minimum(rng.poisson(rate * t), rng.geometric(dropout))
    se = counts.std() / math.sqrt(n)
    assert abs(counts.mean() - expected_repeat_purchases(r, alpha, a, b, t)) < Z * se


@needs_cdnow
def test_cdnow_fit_reproduces_the_published_parameters(cdnow):
    """Posterior mode within a quarter of a posterior sd of the published maximum-likelihood
    fit (weak priors: the mode is the MLE up to prior effects far below the sd), and the
    posterior mean within one sd (the posterior of a and b is right-skewed)."""
    fit = fit_bgnbd(cdnow, SamplerSettings(draws=300, tune=300, chains=4, seed=3))
    idata = fit.idata
    mode = bgnbd_map(cdnow)
    assert fit.diagnostics.r_hat_max < 1.05 and fit.diagnostics.divergences == 0
    for name, published in PUBLISHED.items():
        draws = idata.posterior[name].values.reshape(-1)
        sd = draws.std()
        assert abs(mode[name][0] - published) < 0.25 * sd, (name, mode[name], sd)
        assert abs(draws.mean() - published) < sd, (name, draws.mean(), sd)


def fake_posterior(params: dict[str, list[float]], draws: int = 400) -> ModelFit:
    """Posterior draws spread tightly around given (r, alpha, a, b) per variant."""
    rng = default_rng(8)
    posterior = {
        name: np.array(values) * rng.lognormal(0.0, 0.01, (1, draws, len(values)))
        for name, values in params.items()
    }
    idata = az.from_dict(
        posterior=posterior,
        sample_stats={"diverging": np.zeros((1, draws))},
        coords={"variant": ["a", "b"]},
        dims={k: ["variant"] for k in params},
    )
    return ModelFit(idata, diagnose(idata, "test", 0.0))


def two_variant_readout(seed: int, n: int):
    """The readout of ``n`` random customers per variant (a, b) under a posterior in which
    b's customers buy twice as often (r 0.48 against 0.24)."""
    rng = default_rng(seed)
    summary = CustomerSummary(
        customer=np.arange(2 * n).astype(str),
        variant=np.repeat(["a", "b"], n),
        frequency=rng.poisson(1.0, 2 * n).astype(float),
        recency=np.full(2 * n, 10.0),
        T=np.full(2 * n, 20.0),
        spend=rng.gamma(4.0, 10.0, 2 * n),
        unit_days=7.0,
    )
    fit = fake_posterior({"r": [0.24, 0.48], "alpha": [4.4, 4.4], "a": [0.8, 0.8], "b": [2.4, 2.4]})
    return readout_transactions(summary, fit, control="a", horizon_months=12)


def test_readout_prefers_the_variant_with_more_repeat_purchases():
    out = two_variant_readout(1, 400)
    assert out.variants == ["a", "b"]
    horizon = 12 * (365.25 / 12) / 7.0
    assert out.repeat_purchases[1] == pytest.approx(
        expected_repeat_purchases(0.48, 4.4, 0.8, 2.4, horizon), rel=0.02
    )
    assert out.repeat_purchases[1] > 1.5 * out.repeat_purchases[0]
    assert out.prob_beats_control[1] > 0.95 and math.isnan(out.prob_beats_control[0])
    assert out.clv_low[0] < out.clv_per_customer[0] < out.clv_high[0]


def test_clv_per_visitor_is_conversion_times_clv_per_customer():
    """With CLV per customer known exactly (constant draws), CLV per visitor is that value
    times the conversion posterior: its mean is value x (1 + k) / (2 + n) and P(beats
    control) is the exact Beta-Binomial P(beats), both within Monte Carlo error."""
    draws, value = 20_000, 80.0
    customers, visitors = np.array([50, 62]), np.array([1000, 1000])
    clv = np.full((2, draws), value)
    out = per_visitor_readout(clv, customers, visitors, default_rng(4))
    alpha, beta = 1.0 + customers, 1.0 + visitors - customers
    mean = alpha / (alpha + beta)
    sd = np.sqrt(mean * (1 - mean) / (alpha + beta + 1))
    assert np.all(np.abs(out.conversion - mean) < Z * sd / math.sqrt(draws))
    assert np.all(np.abs(out.clv.mean - value * mean) < Z * value * sd / math.sqrt(draws))
    exact = prob_beats(beta_posteriors(visitors, customers), reference=0)[1]
    assert abs(out.clv.prob_beats_control[1] - exact) < Z * math.sqrt(exact * (1 - exact) / draws)
    assert math.isnan(out.clv.prob_beats_control[0])
    assert out.clv.prob_best.sum() == pytest.approx(1.0)


def test_clv_per_visitor_carries_the_spread_of_both_posteriors():
    """Independent draws: Var(p c) = E[p^2] E[c^2] - E[p]^2 E[c]^2, checked against the
    spread of the per-visitor draws through the interval width of a normal-ish posterior."""
    draws = 40_000
    rng = default_rng(5)
    clv = rng.normal(100.0, 10.0, (1, draws))
    out = per_visitor_readout(clv, np.array([400]), np.array([4000]), default_rng(6))
    alpha, beta = 401.0, 3601.0
    p_mean = alpha / (alpha + beta)
    p_sq = p_mean * (alpha + 1) / (alpha + beta + 1)
    sd = math.sqrt(p_sq * (100.0**2 + 10.0**2) - (p_mean * 100.0) ** 2)
    width = (out.clv.high[0] - out.clv.low[0]) / (2 * 1.959964)
    # the product of two near-normal posteriors is near normal: the 95% interval spans
    # about 2 x 1.96 sd (its sampling error is a few per cent of sd at this many draws)
    assert width == pytest.approx(sd, rel=0.05)


def test_a_stated_currency_is_shown_with_clv_in_tables_and_json():
    """An order log carries no currency: with ``currency`` the CLV cells, the caption and
    results.json name it; without, the caption says how to name it."""
    from dataclasses import replace

    from funnelsim.analysis.lifetime import transactions_dict
    from funnelsim.report import transactions_table
    from funnelsim.tables import to_html

    plain = two_variant_readout(2, 50)
    euros = replace(plain, currency="EUR")
    clv = f"€{euros.clv_per_customer[0]:,.2f}"
    assert clv in to_html(transactions_table(euros)) and "CLV in EUR" in to_html(
        transactions_table(euros)
    )
    assert clv not in to_html(transactions_table(plain))
    assert "name it with --currency" in to_html(transactions_table(plain))
    assert transactions_dict(euros)["currency"] == "EUR"
    assert transactions_dict(plain)["currency"] is None
