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
    ScenarioError,
    parse_scenario,
)

ONE_STAGE = """\
name: one stage
traffic: {{visitors_per_day: 50000, days: 2}}
segments:
  all: {{share: 1.0, page_load_s: {load}}}
stages:
  - name: checkout
    rate: {rate}
    response_delay_min: {{dist: constant, value: {delay}}}
    friction: {friction}
value:
  order_value: 10
"""


def conversion(
    friction_yaml: str = "{}", load: float = 1.0, delay: float = 0.0, rate: float = 0.8
) -> tuple[float, int]:
    scenario = parse_scenario(
        ONE_STAGE.format(friction=friction_yaml, load=load, delay=delay, rate=rate)
    )
    draws = VisitorDraws(replication_seeds(8, 1)[0], 50_000, 2)
    outcome = vectorized.simulate(compile_funnel(scenario), draws).outcome
    return outcome.conversion, outcome.visitors


COEF = Coefficients()
CASES = {
    "form fields 12": ("{form_fields: 12}", 1.0, 0.0, 0.8 * (1 - 0.0401) ** 4),
    "form fields 8 (free)": ("{form_fields: 8}", 1.0, 0.0, 0.8),
    "login required": ("{login_wall: required}", 1.0, 0.0, 0.8 * (1 - 0.1334)),
    "login optional": ("{login_wall: optional}", 1.0, 0.0, 0.8),
    "page load 3 s": ("{page_load: true}", 3.0, 0.0, 1 - 0.2 * 1.31899),
    "page load 10 s": ("{page_load: true}", 10.0, 0.0, 1 - 0.2 * 2.23068),
    "card only": ("{payment_methods: [card]}", 1.0, 0.0, 0.8 * (1 - 0.30 * 0.75)),
    "card and paypal": ("{payment_methods: [card, paypal]}", 1.0, 0.0, 0.8 * (1 - 0.085 * 0.75)),
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


# Google / SOASTA (Think with Google, 2017): bounce probability at t s over that at 1 s.
GOOGLE_SOASTA_BOUNCE_RATIOS = {3.0: 1.32, 5.0: 1.90, 6.0: 2.06, 7.0: 2.13, 10.0: 2.23}
HILL_FIT_TOLERANCE = 0.01  # the least-squares curve's largest miss of a published ratio


def test_bounce_curve_reproduces_google_soasta_points():
    published = GOOGLE_SOASTA_BOUNCE_RATIOS
    fitted = friction.bounce_multiplier(np.array(list(published)), PageLoadCoefficients())
    np.testing.assert_allclose(fitted, list(published.values()), atol=HILL_FIT_TOLERANCE)
    assert np.all(
        np.diff(friction.bounce_multiplier(np.linspace(0, 30, 300), PageLoadCoefficients())) >= 0
    )


@pytest.mark.parametrize("bounce_at_1s", [0.05, 0.2, 0.4, 1 / 2.3])
def test_page_load_multiplies_the_bounce_probability_itself(bounce_at_1s):
    """The published figures are ratios of bounce probabilities, whatever the bounce at 1 s."""
    coef = PageLoadCoefficients()
    loads = np.array(list(GOOGLE_SOASTA_BOUNCE_RATIOS))
    rate = 1 - bounce_at_1s
    bounce = 1 - rate * friction.page_load_factor(rate, loads, coef)
    np.testing.assert_allclose(bounce / bounce_at_1s, friction.bounce_multiplier(loads, coef))


@pytest.mark.parametrize("load", list(GOOGLE_SOASTA_BOUNCE_RATIOS))
def test_simulated_landing_bounce_reproduces_google_soasta(load):
    """One landing page, bounce 30% at 1 s: the engine's bounce at ``load`` is the
    published ratio times 30%, within the fit's miss and Monte Carlo error."""
    rate = 0.7
    got, n = conversion("{page_load: true}", load=load, rate=rate)
    expected_bounce = (1 - rate) * GOOGLE_SOASTA_BOUNCE_RATIOS[load]
    se = math.sqrt(expected_bounce * (1 - expected_bounce) / n)
    tolerance = (1 - rate) * HILL_FIT_TOLERANCE + 4 * se
    assert abs((1 - got) - expected_bounce) < tolerance, (1 - got, expected_bounce, tolerance)


def test_page_load_on_a_second_stage_is_refused():
    """Google / SOASTA measured the bounce on the landing page: it is not compounded."""
    text = """\
name: two pages
traffic: {visitors_per_day: 100, days: 1}
stages:
  - {name: landing, rate: 0.6, friction: {page_load: true}}
  - {name: product, rate: 0.3, friction: {page_load: true}}
value: {order_value: 10}
"""
    with pytest.raises(
        ScenarioError, match=r"<string>:5: stages\[1\]\.friction\.page_load: .*'landing'"
    ):
        parse_scenario(text)


# Baymard Institute: average cart abandonment (2025) and reasons given by abandoners (2024).
CART_ABANDONMENT = 0.7022
TOO_LONG_CHECKOUT_SHARE = 0.18
FORCED_ACCOUNT_SHARE = 0.19
TOO_FEW_PAYMENT_METHODS_SHARE = 0.09
AVERAGE_CHECKOUT_FIELDS, ACHIEVABLE_FIELDS = 11.3, 8


def odds(p: float) -> float:
    return p / (1 - p)


def test_form_field_hazard_reproduces_baymard_too_long_checkout():
    """The 3.3 avoidable fields of the average checkout lose what 18% of its abandoners cite."""
    coef = FormFieldCoefficients()
    assert coef.free_fields == ACHIEVABLE_FIELDS
    lost_at_average_checkout = 1 - (1 - coef.hazard_per_field) ** (
        AVERAGE_CHECKOUT_FIELDS - coef.free_fields
    )
    assert lost_at_average_checkout == pytest.approx(
        TOO_LONG_CHECKOUT_SHARE * CART_ABANDONMENT, abs=5e-4
    )


def test_login_wall_hazard_reproduces_baymard_forced_account():
    """Several answers are allowed, so an independent hazard h is cited by h / abandonment."""
    hazard = COEF.login_wall.required
    assert hazard / CART_ABANDONMENT == pytest.approx(FORCED_ACCOUNT_SHARE, abs=5e-4)


def test_payment_default_lies_between_baymard_and_stripe():
    """Both sources fix one product (preference x abandonment), and disagree by 0.6 points:
    Baymard's 9% of abandoners, and Stripe's +7.4% from one more method (2025)."""
    pay = COEF.payment
    lost = pay.preferences["wallet"] * pay.abandon_if_missing
    baymard_loss = TOO_FEW_PAYMENT_METHODS_SHARE * CART_ABANDONMENT
    stripe_loss = 1 - 1 / 1.074
    assert baymard_loss < lost < stripe_loss


def test_response_slopes_reproduce_each_study():
    """MIT / InsideSales (2007): odds of qualifying 21x at 5 vs 30 min; Oldroyd et al.
    (HBR 2011): 60x within 1 h vs 24 h. Each study fixes its own slope of the log-odds
    decay; the default lies between them."""
    mit_slope = math.log(21) / math.log(30 / 5)
    hbr_slope = math.log(60) / math.log(24 * 60 / 60)
    for slope, (early, late), ratio in (
        (mit_slope, (5.0, 30.0), 21),
        (hbr_slope, (60.0, 1440.0), 60),
    ):
        coef = ResponseCoefficients(slope=slope)
        p_early, p_late = friction.response_continue(0.3, [early, late], coef)
        assert odds(p_early) / odds(p_late) == pytest.approx(ratio)
    assert hbr_slope < ResponseCoefficients().slope < mit_slope
    p5, p30 = friction.response_continue(0.3, [5.0, 30.0], ResponseCoefficients())
    assert odds(p5) / odds(p30) == pytest.approx(6**1.5)


def test_half_life_option():
    coef = ResponseCoefficients(model="half_life", half_life_min=60)
    assert friction.response_continue(0.4, 65.0, coef) == pytest.approx(0.2)


# --------------------------------------------------------------------------- ranges


def test_every_calibrated_default_is_the_mode_of_its_range():
    ranges = friction.default_ranges()
    assert set(ranges) == {
        "coefficients.form_fields.hazard_per_field",
        "coefficients.login_wall.required",
        "coefficients.page_load.max_extra",
        "coefficients.payment.abandon_if_missing",
        "coefficients.contact.abandon_if_missing",
        "coefficients.response.slope",
        "coefficients.response.half_life_min",
    }
    for path, calibrated in ranges.items():
        _, group, field = path.split(".")
        spec = calibrated.spec
        assert spec["uncertain"] == "triangular"
        assert spec["mode"] == getattr(getattr(COEF, group), field), path
        assert 0 <= spec["low"] < spec["mode"] < spec["high"], path


def spec(path: str) -> dict:
    return friction.default_ranges()[f"coefficients.{path}"].spec


def hazard_over_avoidable_fields(lost: float) -> float:
    return 1 - (1 - lost) ** (1 / (AVERAGE_CHECKOUT_FIELDS - ACHIEVABLE_FIELDS))


def test_form_field_range_is_the_spread_of_baymard_figures():
    """Shares 17-22% (survey years), abandonment 55-84% (single studies); at the low end
    only half of a stated reason is taken to be its cause."""
    low, high = (
        spec("form_fields.hazard_per_field")["low"],
        spec("form_fields.hazard_per_field")["high"],
    )
    assert low == pytest.approx(hazard_over_avoidable_fields(0.5 * 0.17 * 0.55), abs=5e-5)
    assert high == pytest.approx(hazard_over_avoidable_fields(0.22 * 0.84), abs=5e-5)
    for share in (0.17, 0.18, 0.22):
        assert low < hazard_over_avoidable_fields(share * CART_ABANDONMENT) < high


def test_login_range_is_the_spread_of_baymard_figures():
    low, high = spec("login_wall.required")["low"], spec("login_wall.required")["high"]
    assert low == pytest.approx(0.5 * 0.18 * 0.55)
    assert high == pytest.approx(0.26 * 0.84)
    for share in (0.18, 0.19, 0.24, 0.26):  # 2024 and the 2021-23 surveys
        assert low < share * CART_ABANDONMENT < high


def test_payment_range_holds_baymard_and_stripe():
    wallet = COEF.payment.preferences["wallet"]
    low, high = (
        spec("payment.abandon_if_missing")["low"],
        spec("payment.abandon_if_missing")["high"],
    )
    assert low == pytest.approx(TOO_FEW_PAYMENT_METHODS_SHARE * 0.55 / wallet, abs=0.005)
    assert high == pytest.approx(TOO_FEW_PAYMENT_METHODS_SHARE * 0.84 / wallet, abs=0.005)
    assert low < (1 - 1 / 1.074) / wallet < high  # Stripe 2025


def test_response_ranges_are_the_two_studies():
    slope = spec("response.slope")
    assert slope["low"] == pytest.approx(math.log(60) / math.log(24), abs=0.005)  # HBR 2011
    assert slope["high"] == pytest.approx(math.log(21) / math.log(6), abs=0.005)  # MIT 2007
    half_life = spec("response.half_life_min")
    assert half_life["low"] == pytest.approx(25 / math.log2(21), abs=0.05)
    assert half_life["high"] == pytest.approx((1440 - 60) / math.log2(60), abs=0.5)


def test_page_load_range_reaches_akamai():
    """At the top of the range, 1 -> 3 s costs a landing page bouncing 40% at 1 s what
    Akamai measured for 2 s of delay on desktop (-36.5%); phones (-26.2%) and tablets
    (-25.1%) lie inside; the bottom halves the fitted extra bounce."""
    extra = spec("page_load.max_extra")
    assert extra["low"] == pytest.approx(extra["mode"] / 2, abs=0.001)

    def conversion_change(max_extra: float) -> float:
        coef = PageLoadCoefficients(max_extra=max_extra)
        return float(friction.page_load_factor(0.6, 3.0, coef)) - 1

    assert conversion_change(extra["high"]) == pytest.approx(-0.365, abs=0.001)
    for akamai in (-0.262, -0.251):
        assert conversion_change(extra["low"]) > akamai > conversion_change(extra["high"])


# --------------------------------------------------------------------------- per-stage settings

RATE_AT = """\
name: rate at today's response time
traffic: {{visitors_per_day: 50000, days: 2}}
stages:
  - name: call
    {rate}
    response_delay_min: {{dist: constant, value: 60}}
    friction: {{response_decay: {decay}}}
value: {{order_value: 10}}
"""


def test_rate_at_reproduces_todays_rate_at_todays_response_time():
    scenario = parse_scenario(
        RATE_AT.format(rate="rate_at: {rate: 0.3, response_min: 60}", decay="true")
    )
    implied = scenario.base_rate(scenario.stages[0])
    odds_ratio = 12**1.5  # (60 / 5) ^ slope
    assert odds(implied) == pytest.approx(odds(0.3) * odds_ratio)
    draws = VisitorDraws(replication_seeds(8, 1)[0], 50_000, 2)
    outcome = vectorized.simulate(compile_funnel(scenario), draws).outcome
    se = math.sqrt(0.3 * 0.7 / outcome.visitors)
    assert abs(outcome.conversion - 0.3) < 4 * se


@pytest.mark.parametrize(
    ("rate", "decay", "message"),
    [
        ("rate: 0.3\n    rate_at: {rate: 0.3, response_min: 60}", "true", "not both"),
        ("rate_at: {rate: 0.3, response_min: 60}", "false", "needs friction.response_decay"),
        ("dwell_min: 0", "true", "required"),
    ],
)
def test_rate_and_rate_at_are_checked(rate, decay, message):
    with pytest.raises(ScenarioError, match=rf"<string>:\d+: stages\[0\]\.rate.*{message}"):
        parse_scenario(RATE_AT.format(rate=rate, decay=decay))


def test_rate_at_that_no_rate_can_give_is_refused():
    text = RATE_AT.format(rate="rate_at: {rate: 0.6, response_min: 60}", decay="true")
    text += "coefficients: {response: {model: half_life, half_life_min: 30}}\n"
    with pytest.raises(ScenarioError, match=r"stages\[0\]\.rate_at: 0.6 at 60 min implies"):
        parse_scenario(text)


def test_free_fields_per_stage():
    got, n = conversion("{form_fields: 9, free_fields: 4}")
    expected = 0.8 * (1 - COEF.form_fields.hazard_per_field) ** 5
    assert abs(got - expected) < 4 * math.sqrt(expected * (1 - expected) / n)
    assert friction.form_fields_factor(9, COEF.form_fields) == pytest.approx(
        1 - COEF.form_fields.hazard_per_field
    )
