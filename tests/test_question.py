"""A scenario's question, answered in the first lines of ``funnelsim run`` (issue 17)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from funnelsim.cli import main
from funnelsim.experiment import run_experiment
from funnelsim.scenario import ScenarioError, parse_scenario

ASKED = """\
name: asked
seed: 1
question:
  text: Does a shorter checkout sell more?
  metric: conversion
  goal: 0.225
traffic:
  visitors_per_day: 1000
  days: 2
  channels: {ads: {share: 1.0, cost_per_visit: 0.2}}
stages:
  - name: landing
    rate: 0.5
  - name: checkout
    rate: 0.4
value:
  order_value: {dist: constant, value: 50}
variants:
  control: {}
  shorter: {stages.checkout.rate: 0.5}
experiment: {replications: 4, assumptions: fixed}
"""
# conversion 0.20 (control) and 0.25 (shorter); the goal lies 5 standard errors of the
# mean over 4 x 2,000 visitors from each


def test_run_prints_the_question_and_its_answer_first(write_scenario):
    path = write_scenario(ASKED)
    printed = CliRunner().invoke(main, ["run", str(path)])
    assert printed.exit_code == 0, printed.output
    words = " ".join(printed.output.split())
    assert words.startswith("Question: Does a shorter checkout sell more? Answer: shorter,")
    assert "goal conversion at least 22.50%: met by shorter." in words
    assert words.index("Answer:") < words.index("Expected effect")
    data = json.loads(CliRunner().invoke(main, ["run", str(path), "--json", "-q"]).output)
    asked = data["question"]
    assert asked["best"] == "shorter"
    assert asked["meets_goal"] == {"control": False, "shorter": True}
    means = {name: v["conversion"]["mean"] for name, v in data["variants"].items()}
    assert asked["answer"].startswith(
        f"Answer: shorter, conversion {means['shorter']:.2%} against {means['control']:.2%}"
    )


def test_a_lower_cac_answers_a_cac_question_and_meets_a_ceiling():
    """CAC is 0.2 a visit over conversion: 1.0 for control, 0.8 for shorter."""
    scenario = parse_scenario(ASKED).with_overrides(
        {"question.metric": "cac", "question.goal": 0.9}
    )
    result = run_experiment(scenario)
    from funnelsim.question import answer

    found = answer(result.scenario, result.variants)
    assert found is not None
    assert found.best == "shorter" and found.meets_goal == {"control": False, "shorter": True}
    assert found.values["control"].mean == pytest.approx(1.0, rel=0.05)
    assert "goal CAC at most $0.90: met by shorter." in found.words


def test_html_report_opens_with_the_answer_and_no_question_means_none():
    from funnelsim.html_report import experiment_report
    from funnelsim.results import results_dict

    result = run_experiment(parse_scenario(ASKED))
    first = experiment_report(result).sections[0].body
    assert first.index("Question: Does a shorter checkout sell more?") < first.index(
        "Answer: shorter"
    )
    question = "question:\n  text: Does a shorter checkout sell more?\n  metric: conversion\n"
    plain = parse_scenario(ASKED.replace(question + "  goal: 0.225\n", ""))
    assert plain.question is None
    assert results_dict(run_experiment(plain))["question"] is None


def test_question_mistakes_are_located():
    with pytest.raises(ScenarioError, match="metric") as error:
        parse_scenario(ASKED.replace("metric: conversion", "metric: profit"), "asked.yaml")
    assert error.value.line == 5


def test_the_answer_carries_the_interval_over_the_assumptions(write_scenario):
    """With an uncertain assumption the answer adds the best variant's uplift over what
    we do not know, as the assumptions table gives it; fixed assumptions add nothing."""
    uncertain = ASKED.replace(
        "    rate: 0.4\n", "    rate: {uncertain: uniform, low: 0.35, high: 0.45}\n"
    ).replace("assumptions: fixed", "assumptions: uncertain")
    result = run_experiment(parse_scenario(uncertain))
    effect = result.assumptions.effects["shorter"]["conversion"]
    data = json.loads(
        CliRunner().invoke(main, ["run", str(write_scenario(uncertain)), "--json", "-q"]).output
    )
    expected = f"); {effect.low:+.0%} to {effect.high:+.0%} over what we do not know (90%); goal"
    assert expected in data["question"]["answer"]
    fixed = json.loads(
        CliRunner().invoke(main, ["run", str(write_scenario(ASKED)), "--json", "-q"]).output
    )
    assert "over what we do not know" not in fixed["question"]["answer"]
