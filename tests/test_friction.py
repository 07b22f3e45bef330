"""Each friction moves conversion in the documented direction and by the documented amount."""

from __future__ import annotations

import math

import numpy as np
import pytest

from funnelsim import friction
from funnelsim.engine import vectorized
from funnelsim.engine.draws import VisitorDraws, replication_seeds
from funnelsim.engine.model import compile_funnel
from funnelsim.scenario import (
    Coefficients,
    FormFieldCoefficients,
    PageLoadCoefficients,
    ResponseCoefficients,
    parse_scenario,
)

ONE_STAGE = """\
name: one stage
traffic: {{visitors_per_day: 50000, days: 2}}
segments:
  all: {{share: 1.0, page_load_s: {load}}}
stages:
  - name: checkout
    rate: 0.8
    response_delay_min: {{dist: constant, value: {delay}}}
    friction: {friction}
value:
  order_value: 10
"""


def conversion(
    friction_yaml: str = "{}", load: float = 1.0, delay: float = 0.0
) -> tuple[float, int]:
    scenario = parse_scenario(ONE_STAGE.format(friction=friction_yaml, load=load, delay=delay))
    draws = VisitorDraws(replication_seeds(8, 1)[0], 50_000, 2)
    outcome = vectorized.simulate(compile_funnel(scenario), draws).outcome
    return outcome.conversion, outcome.visitors


COEF = Coefficients()
CASES = {
    "form fields 12": ("{form_fields: 12}", 1.0, 0.0, 0.8 * (1 - 0.0401) ** 4),
    "form fields 8 (free)": ("{form_fields: 8}", 1.0, 0.0, 0.8),
    "login required": ("{login_wall: required}", 1.0, 0.0, 0.8 * (1 - 0.1334)),
    "login optional": ("{login_wall: optional}", 1.0, 0.0, 0.8),
    "page load 3 s": ("{page_load: true}", 3.0, 0.0, 0.8**1.319),
    "page load 10 s": ("{page_load: true}", 10.0, 0.0, 0.8**2.2307),
    "card only": ("{payment_methods: [card]}", 1.0, 0.0, 0.8 * (1 - 0.30 * 0.75)),
    "phone only": ("{contact_options: [phone]}", 1.0, 0.0, 0.8 * (1 - 0.65 * 0.75)),
    "answer in 30 min": (
        "{response_decay: true}",
        1.0,
        30.0,
        0.8 * 6**-1.5 / (0.2 + 0.8 * 6**-1.5),
    ),
    "answer in 3 min": ("{response_decay: true}", 1.0, 3.0, 0.8),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_friction_direction_and_magnitude(case):
    friction_yaml, load, delay, expected = CASES[case]
    got, n = conversion(friction_yaml, load, delay)
    se = math.sqrt(expected * (1 - expected) / n)
    assert abs(got - expected) < 4 * se, (got, expected, se)
    assert expected <= 0.8 + 1e-12  # friction never helps


def test_bounce_curve_reproduces_google_soasta_points():
    published = {3: 1.32, 5: 1.90, 6: 2.06, 7: 2.13, 10: 2.23}
    fitted = friction.bounce_multiplier(np.array(list(published)), PageLoadCoefficients())
    np.testing.assert_allclose(fitted, list(published.values()), atol=0.02)
    assert np.all(
        np.diff(friction.bounce_multiplier(np.linspace(0, 30, 300), PageLoadCoefficients())) >= 0
    )


def test_page_load_never_pushes_a_probability_out_of_range():
    rates = np.linspace(0, 1, 101)
    for load in (0.5, 3, 10, 60):
        p = rates * friction.page_load_factor(rates, load, PageLoadCoefficients())
        assert np.all((p >= 0) & (p <= rates + 1e-12))


def test_form_field_hazard_matches_its_calibration():
    coef = FormFieldCoefficients()
    lost_at_average_checkout = 1 - (1 - coef.hazard_per_field) ** (11.3 - coef.free_fields)
    assert lost_at_average_checkout == pytest.approx(0.18 * 0.7022, abs=5e-4)


def test_response_slope_lies_between_the_two_studies():
    mit_slope = math.log(21) / math.log(30 / 5)
    hbr_slope = math.log(60) / math.log(24 * 60 / 60)
    assert hbr_slope < ResponseCoefficients().slope < mit_slope
    coef = ResponseCoefficients()
    odds = lambda p: p / (1 - p)  # noqa: E731
    p5, p30 = friction.response_continue(0.3, [5.0, 30.0], coef)
    assert odds(p5) / odds(p30) == pytest.approx(6**1.5)


def test_half_life_option():
    coef = ResponseCoefficients(model="half_life", half_life_min=60)
    assert friction.response_continue(0.4, 65.0, coef) == pytest.approx(0.2)


def test_default_payment_calibration_matches_baymard_and_stripe():
    pay = COEF.payment
    lost = pay.preferences["wallet"] * pay.abandon_if_missing
    assert lost == pytest.approx(0.09 * 0.7022, abs=0.002)  # Baymard 2024
    assert 1 / (1 - lost) - 1 == pytest.approx(0.074, abs=0.01)  # Stripe 2025
