"""One way to write each kind of number, and decision words that say what to do."""

from __future__ import annotations

import doctest
import json
import math
import re

import pytest
from click.testing import CliRunner

from conftest import SCENARIOS
from funnelsim import formatting as fmt
from funnelsim import plots, tables
from funnelsim.analysis import decision
from funnelsim.cli import main


def test_docstring_examples() -> None:
    for module in (fmt, tables, plots, decision):
        assert doctest.testmod(module).failed == 0, module.__name__


@pytest.mark.parametrize("value", [2.47e-10, 1e-7, 3.3e-6, 0.0, 0.5, 0.0123456, -4e-9])
def test_points_never_use_scientific_notation(value: float) -> None:
    shown = fmt.points(value)
    assert shown.endswith(" pp") and "e-" not in shown and "e+" not in shown
    if abs(value) * 100 >= fmt.SMALLEST_POINTS or value == 0:
        assert float(shown.removesuffix(" pp")) == pytest.approx(value * 100, abs=5e-4)


@pytest.mark.parametrize("value", [450.3, 0.4, 1_234_567.5, 12.0])
def test_counts_are_whole(value: float) -> None:
    assert re.fullmatch(r"\d{1,3}(,\d{3})*", fmt.count(value))
    assert int(fmt.count(value).replace(",", "")) == round(value)


def test_payback_says_first_order_and_beyond_the_horizon() -> None:
    assert fmt.payback(0.0, 24) == fmt.payback(0.49, 24) == "first order"
    assert fmt.payback(3.2, 24) == "3 mo"
    assert fmt.payback(math.inf, 24) == "> 24 mo"
    assert fmt.payback(math.nan, 24) == "n/a"


def test_money_carries_its_currency() -> None:
    assert fmt.money(6715.123, "EUR") == "€6,715.12"
    assert fmt.money(2.5, "SEK") == "2.50 SEK"
    assert fmt.small_money(0.0004, "USD") == "$0.0004"
    assert fmt.small_money(0.25, "USD") == "$0.25"


def test_a_loss_has_its_sign_before_the_symbol() -> None:
    assert fmt.money(-1234.5, "EUR", 0) == "-€1,234"
    assert fmt.money(-0.001, "USD") == "$0.00"  # rounds to nothing: no sign
    assert fmt.money(-0.2, "GBP", 0) == "£0"
    assert fmt.money(-5.0, "SEK", 0) == "-5 SEK"


def test_uplift_digits_follow_its_size() -> None:
    assert (fmt.uplift(2.78, 1.7, 3.86), fmt.uplift_bounds(2.78, 1.7, 3.86)) == (
        "+278%",
        "[+170, +386]",
    )
    assert fmt.uplift(math.nan, 0, 1) == "n/a" and fmt.uplift_bounds(math.nan, 0, 1) == ""


def test_decision_words_say_what_to_do() -> None:
    assert fmt.decision_words("ship", "control", "control") == "keep control"
    assert fmt.decision_words("ship", "b", "control") == "ship b"
    assert fmt.decision_words("stop", None, "control") == "no difference"
    assert fmt.decision_words("keep_testing", None, "control") == "keep testing"
    assert fmt.outcome_words("reject", "b", False) == "not best"
    assert fmt.outcome_words("ship", "a", True) == "keep control"


def test_the_ship_reject_mapping_is_one_function() -> None:
    assert decision.variant_outcomes("ship", "a", ["a", "b"]) == {"a": "ship", "b": "reject"}
    assert decision.variant_outcomes("stop", None, ["a", "b"]) == {"a": "stop", "b": "stop"}


def test_run_output_uses_the_same_words_in_terminal_and_json(tmp_path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(SCENARIOS / "checkout.yaml"),
            "--replications",
            "3",
            "--days",
            "1",
            "--workers",
            "1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    for name, variant in data["variants"].items():
        words = variant["experiment"]["decision_words"]
        assert words == fmt.outcome_words(
            variant["experiment"]["decision"], name, name == "control"
        )
        assert words in result.output
    assert "control (control)" not in result.output
    assert " pts" not in result.output and "reject" not in result.output


def test_analyze_json_carries_the_decision_words() -> None:
    from funnelsim.analysis.api import analyze, results_dict
    from funnelsim.analysis.data import experiment_from_counts

    kept = analyze(experiment_from_counts(["a", "b"], [10_000, 10_000], [1_150, 1_000]))
    shipped = analyze(experiment_from_counts(["a", "b"], [10_000, 10_000], [1_000, 1_150]))
    assert results_dict(kept)["decision"]["words"] == "keep control"
    assert results_dict(shipped)["decision"]["words"] == "ship b"
