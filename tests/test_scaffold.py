"""init / list / explain: templates, the expected funnel against closed forms, and warnings."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from conftest import MINIMAL, SCENARIOS
from funnelsim import cli, friction, scaffold
from funnelsim.scenario import (
    FormFieldCoefficients,
    LoginWallCoefficients,
    PageLoadCoefficients,
    PaymentCoefficients,
    load_scenario,
    parse_scenario,
)

QUEUE = """\
name: queue
traffic: {{visitors_per_day: 1440, days: 1}}
resources:
  desk: {{capacity: 2, service_min: {service}}}
stages:
  - {{name: ask, rate: 1.0, resource: desk, friction: {{form_fields: 9}}}}
value: {{order_value: 10}}
"""


def test_cli_template_names_match_the_package() -> None:
    assert cli.TEMPLATE_NAMES == scaffold.TEMPLATES


@pytest.mark.parametrize("name", scaffold.TEMPLATES)
def test_every_template_is_a_valid_commented_scenario(name: str) -> None:
    text = scaffold.template_text(name)
    assert text.startswith("# ")
    scenario = parse_scenario(text, f"{name}.yaml")
    assert len(scenario.variants) >= 2


def test_unknown_template_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="checkout, leads, rean, page_speed"):
        scaffold.template_text("nope")


def test_init_writes_a_loadable_scenario_named_after_the_file(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli.main, ["init", "my_shop", "--template", "leads"])
    assert result.exit_code == 0, result.output
    assert "wrote my_shop.yaml" in result.output
    scenario = load_scenario(tmp_path / "my_shop.yaml")
    assert scenario.name == "my_shop"
    assert scenario.resources  # the leads template has a sales team
    again = runner.invoke(cli.main, ["init", "my_shop"])
    assert again.exit_code == 2
    assert again.output.startswith("error: my_shop.yaml: exists; use --force")
    forced = runner.invoke(cli.main, ["init", "my_shop", "--force", "--template", "rean"])
    assert forced.exit_code == 0
    assert load_scenario(tmp_path / "my_shop.yaml").stage_names == ["reach", "engage", "activate"]


def test_init_quotes_names_that_yaml_would_misread(tmp_path) -> None:
    text = scaffold.scenario_from_template("checkout", 'shop: "new" #1')
    assert parse_scenario(text).name == 'shop: "new" #1'
    assert scaffold.init_path(str(tmp_path / "x.yml")).name == "x.yml"
    assert scaffold.init_path("x").name == "x.yaml"


def test_list_prints_one_line_per_template() -> None:
    result = CliRunner().invoke(cli.main, ["list"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    for name in scaffold.TEMPLATES:
        assert sum(line.startswith(name + " ") for line in lines) == 1
    assert "funnelsim init NAME --template" in result.output


# --------------------------------------------------------------------------- expectations


def test_expected_funnel_multiplies_rates_and_friction_exactly() -> None:
    scenario = parse_scenario(
        MINIMAL.replace(
            "rate: 0.4", "rate: 0.4\n    friction: {form_fields: 12, login_wall: required}"
        )
    )
    expected = scaffold.expected_funnel(scenario)
    form = friction.form_fields_factor(12, FormFieldCoefficients())
    wall = friction.login_wall_factor("required", LoginWallCoefficients())
    assert [s.continue_rate for s in expected.stages] == pytest.approx([0.5, 0.4 * form * wall])
    assert [s.reaching for s in expected.stages] == pytest.approx([1.0, 0.5])
    assert expected.conversion == pytest.approx(0.5 * 0.4 * form * wall)


def test_page_load_and_payment_factors_are_per_segment_and_preference() -> None:
    scenario = load_scenario(SCENARIOS / "checkout.yaml")
    expected = scaffold.expected_funnel(scenario)
    landing, checkout = expected.stages[0], expected.stages[3]
    page = next(f for f in landing.frictions if f.kind == "page_load")
    # Intent differs by channel, so the factor is the channel-weighted mean of rate^(m-1).
    channels = scenario.traffic.channels.values()
    for segment, load_s in (("mobile", 3.5), ("desktop", 1.8)):
        factor = sum(
            c.share
            * float(
                friction.page_load_factor(
                    friction.scale_odds(0.60, c.intent), load_s, PageLoadCoefficients()
                )
            )
            for c in channels
        )
        assert page.factor_by_segment[segment] == pytest.approx(factor, rel=1e-12)
    payment = next(f for f in checkout.frictions if f.kind == "payment")
    prefs, keep = PaymentCoefficients().preferences, 1 - PaymentCoefficients().abandon_if_missing
    assert payment.factor_by_segment["mobile"] == pytest.approx(
        prefs["card"] + prefs["paypal"] + prefs["wallet"] * keep
    )


def test_expected_conversion_matches_the_simulation() -> None:
    from funnelsim.experiment import run_experiment

    scenario = load_scenario(SCENARIOS / "checkout.yaml")
    result = run_experiment(scenario, replications=4)
    reps = result.replications
    visitors = sum(int(r.visitors[0]) for r in reps)
    simulated = sum(float(r.conversion[0]) * int(r.visitors[0]) for r in reps) / visitors
    expected = scaffold.expected_funnel(scenario).conversion
    # Binomial standard error of the pooled conversion over ~112,000 visitors; 4 SE.
    se = math.sqrt(expected * (1 - expected) / visitors)
    assert abs(simulated - expected) < 4 * se


def test_utilisation_is_arrivals_times_service_over_capacity() -> None:
    scenario = parse_scenario(QUEUE.format(service=1.5))
    load = scaffold.expected_funnel(scenario).resources[0]
    passed = friction.form_fields_factor(9, FormFieldCoefficients())
    assert load.arrivals_per_hour == pytest.approx(60 * passed)
    assert load.utilisation == pytest.approx(1.0 * passed * 1.5 / 2)
    assert not [w for w in scaffold.expected_funnel(scenario).warnings if "utilisation" in w]


def test_overloaded_resource_is_warned_about() -> None:
    scenario = parse_scenario(QUEUE.format(service="{dist: exponential, mean: 3}"))
    warnings = scaffold.expected_funnel(scenario).warnings
    assert any("resources.desk: utilisation 144% >= 100%" in w for w in warnings)


def test_explain_draws_the_funnel_with_load_and_warnings(write_scenario) -> None:
    path = write_scenario(QUEUE.format(service=3))
    result = CliRunner().invoke(cli.main, ["explain", str(path)])
    assert result.exit_code == 0, result.output
    assert "reach ask" in result.output
    assert "form fields (9 form fields, 8 free): x0.960" in result.output
    assert "utilisation 144%" in result.output
    assert "warning: resources.desk" in result.output


def test_explain_shows_segments_and_variants() -> None:
    result = CliRunner().invoke(cli.main, ["explain", str(SCENARIOS / "checkout.yaml")])
    assert result.exit_code == 0
    assert "mobile x0.663, desktop x0.979" in result.output
    assert "guest_checkout: stages.checkout.friction.login_wall = optional" in result.output
    assert "conversion 2.94%" in result.output


def test_explain_reports_a_bad_file_in_one_line(write_scenario) -> None:
    path = write_scenario(MINIMAL.replace("rate: 0.5", "rate: 1.5"))
    result = CliRunner().invoke(cli.main, ["explain", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "stages[0].rate: must be between 0 and 1" in result.output


LEAD_FORM = """\
name: lead form
traffic: {visitors_per_day: 100, days: 1}
stages:
  - {name: form, rate: 0.5, friction: {form_fields: 9, free_fields: 4}}
  - name: call
    rate_at: {rate: 0.3, response_min: 60}
    response_delay_min: 60
    friction: {response_decay: true}
value: {order_value: 10}
"""


def test_explain_shows_free_fields_the_implied_rate_and_the_calibrated_ranges(
    write_scenario,
) -> None:
    result = CliRunner().invoke(cli.main, ["explain", str(write_scenario(LEAD_FORM))])
    assert result.exit_code == 0, result.output
    lost_to_form = 1 - (1 - FormFieldCoefficients().hazard_per_field) ** 5
    assert f"form fields (9 form fields, 4 free): x{1 - lost_to_form:.3f}" in result.output
    implied = friction.scale_odds(0.3, 12**1.5)
    assert f"base rate {implied:.0%} if answered within 5 min, implied by 30% at 60 min" in (
        result.output
    )
    assert "continue 30.0%" in result.output  # today's rate at today's response time
    assert (
        "coefficients.form_fields.hazard_per_field 0.0401 (default): "
        "triangular(low 0.0144, mode 0.0401, high 0.06)"
    ) in result.output
    assert "coefficients.response.slope 1.5 (default)" in result.output
    assert "coefficients.login_wall.required" not in result.output  # no login wall here


def test_explain_shows_what_a_rate_with_response_decay_gives_at_the_scenarios_delay(
    write_scenario,
) -> None:
    text = LEAD_FORM.replace("rate_at: {rate: 0.3, response_min: 60}", "rate: 0.5")
    result = CliRunner().invoke(cli.main, ["explain", str(write_scenario(text))])
    assert result.exit_code == 0, result.output
    at_60_min = friction.scale_odds(0.5, 12**-1.5)
    assert (
        f"base rate 50% if answered within 5 min, {at_60_min:.1%} after its response_delay_min"
        in " ".join(result.output.split())
    )


def test_report_friction_description_shows_free_fields() -> None:
    scenario = parse_scenario(LEAD_FORM)
    assert scaffold.describe_friction(scenario.stages[0], scenario.coefficients) == (
        "9 form fields, 4 free"
    )


def test_explain_warns_when_the_bounce_ratio_would_pass_100_percent(write_scenario) -> None:
    text = MINIMAL.replace("stages:", "segments:\n  all: {share: 1.0, page_load_s: 10}\nstages:")
    text = text.replace("rate: 0.5\n", "rate: 0.5\n    friction: {page_load: true}\n", 1)
    result = CliRunner().invoke(cli.main, ["explain", str(write_scenario(text))])
    assert result.exit_code == 0, result.output
    ratio = float(friction.bounce_multiplier(10.0, PageLoadCoefficients()))
    assert f"a 50% bounce at 1 s times {ratio:.2f} at 10 s (all) reaches 100%" in (
        " ".join(result.output.split())
    )


def test_explain_shows_every_variants_expected_conversion() -> None:
    result = CliRunner().invoke(cli.main, ["explain", str(SCENARIOS / "checkout.yaml")])
    assert result.exit_code == 0, result.output
    scenario = load_scenario(SCENARIOS / "checkout.yaml")
    control = scaffold.expected_funnel(scenario).conversion
    for name in scenario.variant_names[1:]:
        expected = scaffold.expected_funnel(scenario.variant(name)).conversion
        uplift = expected / control - 1
        assert f"conversion {expected:.2%} ({uplift:+.1%} vs control)" in result.output
