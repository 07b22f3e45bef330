"""Scenario loading: the shipped files, variants, and one-line errors with file and line."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from conftest import MINIMAL, SCENARIOS
from funnelsim.cli import main
from funnelsim.scenario import ScenarioError, load_scenario, parse_scenario

ERROR_LINE = re.compile(r"^error: (?P<file>[^:]+):(?P<line>\d+): (?P<rest>.+)$")


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_validate(path):
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{path}: ok:")


def test_variant_overrides_change_only_their_path():
    scenario = load_scenario(SCENARIOS / "checkout.yaml")
    short = scenario.variant("short_form")
    assert short.stages[3].friction.form_fields == 6
    assert scenario.stages[3].friction.form_fields == 12
    assert short.stages[3].friction.login_wall == scenario.stages[3].friction.login_wall
    assert scenario.variant_names[0] == "control"


def _run_validate(path):
    result = CliRunner().invoke(main, ["validate", str(path)])
    return result.exit_code, result.output.strip()


def _error(path, text):
    exit_code, output = _run_validate(path)
    assert exit_code == 2
    assert output.count("\n") == 0, "one line only"
    assert "Traceback" not in output
    match = re.match(r"^(?P<file>.+?):(?P<line>\d+): (?P<rest>.+)$", output)
    assert match, output
    assert match["file"] == str(path)
    return int(match["line"]), match["rest"]


BAD_FILES = {
    "unknown key": (
        MINIMAL.replace("  days: 2\n", "  days: 2\n  vistors: 3\n"),
        6,
        "traffic.vistors: unknown field 'vistors'",
    ),
    "rate 1.7": (
        MINIMAL.replace("rate: 0.4", "rate: 1.7"),
        10,
        "stages[1].rate: must be between 0 and 1, got 1.7",
    ),
    "shares": (
        MINIMAL.replace(
            "  days: 2\n", "  days: 2\n  channels:\n    a: {share: 0.5}\n    b: {share: 0.4}\n"
        ),
        6,
        "traffic.channels: channel shares must sum to 1, got 0.9",
    ),
    "override path": (
        MINIMAL + "variants:\n  control: {}\n  short: {stages.checkout.friction.form_fieldz: 6}\n",
        15,
        "variants.short.stages.checkout.friction.form_fieldz: unknown field 'form_fieldz' "
        "(did you mean 'form_fields'?)",
    ),
    "override stage": (
        MINIMAL + "variants:\n  control: {}\n  short: {stages.chekout.rate: 0.5}\n",
        15,
        "variants.short.stages.chekout.rate: unknown name 'chekout' (did you mean 'checkout'?)",
    ),
    "override value": (
        MINIMAL + "variants:\n  control: {}\n  v2:\n    stages.checkout.rate: 2\n",
        16,
        "variants.v2: stages[1].rate: must be between 0 and 1, got 2",
    ),
    "yaml syntax": (MINIMAL.replace("rate: 0.5", "rate: [0.5"), 9, "YAML syntax error"),
    "duplicate key": (
        MINIMAL.replace("  days: 2\n", "  days: 2\n  days: 3\n"),
        6,
        "traffic.days: duplicate key",
    ),
    "missing": (
        MINIMAL.replace("  visitors_per_day: 1000\n", ""),
        3,
        "traffic.visitors_per_day: required field is missing",
    ),
    "bad dist": (
        MINIMAL.replace("dist: constant, value: 50", "dist: normal, mean: 50"),
        12,
        "value.order_value: unknown dist 'normal' (did you mean 'lognormal'?)",
    ),
    "unknown resource": (
        MINIMAL.replace("    rate: 0.4", "    rate: 0.4\n    resource: reps"),
        11,
        "stages[1].resource: unknown resource 'reps'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_bad_files_give_one_line_with_file_line_and_field(case, write_scenario):
    text, line, message = BAD_FILES[case]
    got_line, got = _error(write_scenario(text), text)
    assert got_line == line
    assert got.startswith(message)


def test_did_you_mean_on_top_level(write_scenario):
    _, message = _error(write_scenario(MINIMAL + "experimnt: {replications: 3}\n"), "")
    assert message == "experimnt: unknown field 'experimnt' (did you mean 'experiment'?)"


def test_several_files_one_summary_each(write_scenario):
    good = write_scenario(MINIMAL, "good.yaml")
    bad = write_scenario(MINIMAL.replace("rate: 0.4", "rate: -1"), "bad.yaml")
    result = CliRunner().invoke(main, ["validate", str(good), str(bad)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f"{good}: ok:")
    assert lines[1].startswith(f"{bad}:10: stages[1].rate:")


def test_missing_file_and_empty_file(tmp_path, write_scenario):
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(ScenarioError, match="empty"):
        load_scenario(write_scenario(""))


def test_alias_bomb_is_refused():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        bomb += (
            f"{level}: &{level} [*{previous}, *{previous}, *{previous}, *{previous}, "
            f"*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"
        )
    with pytest.raises(ScenarioError, match="too large or too deeply aliased"):
        parse_scenario(bomb, "bomb.yaml")


def test_with_overrides_revalidates():
    scenario = load_scenario(SCENARIOS / "checkout.yaml")
    longer = scenario.with_overrides({"traffic.days": 3})
    assert longer.traffic.days == 3
    assert longer.variant("short_form").traffic.days == 3
    with pytest.raises(ScenarioError, match="must be greater than or equal to 1"):
        scenario.with_overrides({"traffic.days": 0})


DELAYED = """\
name: delayed
traffic: {{visitors_per_day: 100, days: 2}}
stages:
  - {{name: ask, rate: 0.5, response_delay_min: {delay}, friction: {{response_decay: true}}}}
value: {{order_value: 10}}
"""


@pytest.mark.parametrize(
    ("delay", "minutes"),
    [("4h", 240.0), ("30min", 30.0), ("2 days", 2880.0), ("90s", 1.5), ("45", 45.0)],
)
def test_durations_take_a_unit(delay: str, minutes: float) -> None:
    stage = parse_scenario(DELAYED.format(delay=delay)).stages[0]
    assert stage.response_delay_min.mean_value == pytest.approx(minutes)
    spread = parse_scenario(DELAYED.format(delay=f"{{dist: exponential, mean: {delay}}}"))
    assert spread.stages[0].response_delay_min.mean_value == pytest.approx(minutes)


def test_a_duration_without_a_known_unit_says_how_to_write_one() -> None:
    with pytest.raises(ScenarioError) as error:
        parse_scenario(DELAYED.format(delay="4 fortnights"))
    assert error.value.field == "stages[0].response_delay_min"
    assert "30min, 4h, 2d" in error.value.message and "\n" not in str(error.value)


def test_a_field_in_the_wrong_section_names_its_section() -> None:
    with pytest.raises(ScenarioError, match=r"did you mean 'experiment.replications'\?"):
        parse_scenario(MINIMAL + "replications: 40\n")


def test_response_decay_without_a_wait_is_refused() -> None:
    text = DELAYED.format(delay=1).replace(", response_delay_min: 1", "")
    with pytest.raises(ScenarioError, match="response_delay_min to wait for"):
        parse_scenario(text)


def test_a_reach_metric_names_a_stage_after_the_first() -> None:
    text = MINIMAL + "experiment: {metric: 'reached:chekout'}\n"
    with pytest.raises(ScenarioError, match=r"did you mean 'checkout'\?") as error:
        parse_scenario(text)
    assert error.value.field == "experiment.metric"
    with pytest.raises(ScenarioError, match="conversion, clv_per_visitor or reached:STAGE"):
        parse_scenario(MINIMAL + "experiment: {metric: revenue}\n")
