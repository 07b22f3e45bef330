"""Which assumption drives the decision: Sobol indices of scenario quantities."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from conftest import in_process_dask
from funnelsim.execution import Execution
from funnelsim.scenario import parse_scenario
from funnelsim.sensitivities import sensitivity
from funnelsim.sobol import IndexEstimate

RATES = {
    "visit": "{uncertain: uniform, low: 0.4, high: 0.8}",
    "cart": "{uncertain: beta, mean: 0.3, sd: 0.06}",
    "buy": "{uncertain: triangular, low: 0.5, mode: 0.6, high: 0.9}",
}
PRODUCT = (
    "name: product\ntraffic: {visitors_per_day: 100, days: 1}\nstages:\n"
    + "".join(f"  - {{name: {name}, rate: {rate}}}\n" for name, rate in RATES.items())
    + "value: {order_value: 50}\n"
)

CHECKOUT = """\
name: checkout
seed: 4
traffic:
  visitors_per_day: 2000
  days: 14
  channels:
    organic: {share: 0.6}
    paid: {share: 0.4, intent: {uncertain: uniform, low: 0.9, high: 1.3}}
segments:
  mobile: {share: 0.6, page_load_s: {uncertain: triangular, low: 2.5, mode: 3.5, high: 5}}
  desktop: {share: 0.4, page_load_s: 1.8}
stages:
  - {name: landing, rate: {uncertain: beta, mean: 0.6, sd: 0.05}, friction: {page_load: true}}
  - {name: product, rate: 0.22}
  - name: checkout
    rate: 0.75
    friction: {form_fields: 12, login_wall: required, payment_methods: [card, paypal]}
value: {order_value: {dist: lognormal, mean: 62, sd: 35}, margin: 0.35}
coefficients:
  form_fields: {hazard_per_field: {uncertain: normal, mean: 0.0401, sd: 0.015}}
  login_wall: {required: {uncertain: uniform, low: 0.05, high: 0.2}}
variants:
  control: {}
  guest_checkout: {stages.checkout.friction.login_wall: optional}
  short_form: {stages.checkout.friction.form_fields: 6}
"""


def inside(estimate: IndexEstimate, value: float) -> bool:
    return estimate.low <= value <= estimate.high


def test_conversion_as_a_product_of_independent_rates_has_the_closed_form_indices() -> None:
    scenario = parse_scenario(PRODUCT)
    result = sensitivity(
        scenario, "control", "conversion", base_samples=4096, execution=Execution(seed=2)
    )
    dists = {a.key: a.spec.distribution(a.bounds) for a in result.assumptions}
    assert list(dists) == ["stages.visit.rate", "stages.cart.rate", "stages.buy.rate"]
    means = np.array([d.mean() for d in dists.values()])
    second = np.array([d.var() for d in dists.values()]) + means**2
    variance = np.prod(second) - np.prod(means**2)
    for i, key in enumerate(dists):
        first, total = result.indices.of(key)
        others_mean_sq = np.prod(np.delete(means, i) ** 2)
        others_second = np.prod(np.delete(second, i))
        assert inside(first, (second[i] - means[i] ** 2) * others_mean_sq / variance)
        assert inside(total, (second[i] - means[i] ** 2) * others_second / variance)
    assert result.central == pytest.approx(np.prod([0.6, 0.3, 0.6]))


@pytest.fixture(scope="module")
def checkout_result():
    return sensitivity(
        parse_scenario(CHECKOUT), "short_form", base_samples=512, execution=Execution(seed=1)
    )


def test_assumptions_that_do_not_enter_the_uplift_have_no_total_index(checkout_result) -> None:
    # Shortening the form scales the checkout stage of every cell alike: the page load,
    # the landing rate, the channel's intent and the login wall cancel in the uplift.
    for key in (
        "segments.mobile.page_load_s",
        "stages.landing.rate",
        "traffic.channels.paid.intent",
        "coefficients.login_wall.required",
    ):
        total = checkout_result.indices.of(key)[1]
        assert inside(total, 0.0) and abs(total.mean) < 1e-9
    leading = checkout_result.indices.ranked()[0]
    assert leading == "coefficients.form_fields.hazard_per_field"
    assert checkout_result.indices.of(leading)[1].low > 0.9


def test_what_flips_the_decision(checkout_result) -> None:
    (flip,) = checkout_result.flips
    assert flip.assumption == "coefficients.form_fields.hazard_per_field"
    assert (flip.best, flip.becomes) == ("short_form", "guest_checkout")
    # Removing 4 fields beyond the 8 free ones multiplies conversion by (1 - h)^-4, guest
    # checkout by 1 / (1 - 0.125) (login_wall.required at its central value): equal at
    # h = 1 - 0.875^(1/4).
    assert flip.value == pytest.approx(1 - 0.875**0.25, rel=1e-9)
    hazard = stats.truncnorm(-0.0401 / 0.015, (1 - 0.0401) / 0.015, 0.0401, 0.015)
    assert flip.quantile == pytest.approx(hazard.cdf(flip.value))


def test_the_result_reads_as_a_table_a_document_and_a_frame(checkout_result) -> None:
    document = checkout_result.to_dict()
    assert list(document)[:4] == ["metric", "variant", "indices", "flips"]
    assert document["metric"] == "conversion" and document["variant"] == "short_form"
    entry = document["indices"]["coefficients.form_fields.hazard_per_field"]
    assert set(entry) == {"first", "total"} and set(entry["total"]) == {"mean", "low", "high"}
    frame = checkout_result.to_frame()
    assert frame.index[0] == "coefficients.form_fields.hazard_per_field"
    assert list(frame.columns) == [
        "total",
        "total_low",
        "total_high",
        "first",
        "first_low",
        "first_high",
    ]
    assert "uplift in conversion of short_form over control" in repr(checkout_result)


def test_same_seed_same_indices_serial_pool_and_dask() -> None:
    scenario = parse_scenario(CHECKOUT)
    serial = sensitivity(
        scenario, "guest_checkout", base_samples=64, execution=Execution(seed=3)
    ).to_dict()
    assert (
        sensitivity(
            scenario, "guest_checkout", base_samples=64, execution=Execution(seed=3, workers=2)
        ).to_dict()
        == serial
    )
    with in_process_dask() as client:
        on_dask = sensitivity(
            scenario, "guest_checkout", base_samples=64, execution=Execution(seed=3, dask=client)
        )
    assert on_dask.to_dict() == serial


def test_a_scenario_without_uncertain_assumptions_is_refused() -> None:
    fixed = PRODUCT.replace(
        "value: {order_value: 50}", "value: {order_value: 50}\nexperiment: {assumptions: fixed}"
    )
    with pytest.raises(
        ValueError, match=r"no uncertain assumption: experiment\.assumptions is fixed"
    ):
        sensitivity(parse_scenario(fixed), "control")


def test_funnels_with_queues_are_refused() -> None:
    queue = PRODUCT.replace(
        "  - {name: buy, rate: {uncertain: triangular, low: 0.5, mode: 0.6, high: 0.9}}\n",
        "  - {name: buy, rate: 0.6, resource: reps}\n",
    ).replace("\nvalue:", "\nresources: {reps: {capacity: 1, service_min: 5}}\nvalue:")
    with pytest.raises(ValueError, match="queues or referrals"):
        sensitivity(parse_scenario(queue), "control")
