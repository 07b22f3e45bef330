"""Response times from event logs: the business's replies to leads calibrate the stage's
rate, the response slope and the response delay; the formulas are the engine's."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import funnelsim
from conftest import with_calibrated_values
from funnelsim import friction
from funnelsim.analysis.data import DataError, read_experiment
from funnelsim.calibration.model import (
    CalibrationError,
    continue_probabilities,
    control_of,
    delay_quantiles,
    funnel_terms,
    lead_continue,
    mean_cell_continue,
    response_continue,
    timed_leads,
)
from funnelsim.calibration.readers import read_event_log
from funnelsim.cli import main
from funnelsim.engine import aggregate
from funnelsim.engine.draws import SharedDraws, VisitorDraws, replication_seeds
from funnelsim.engine.model import CompiledFunnel, compile_funnel, stage_values
from funnelsim.scenario import Scenario, parse_scenario

FUNNEL = """name: leads
seed: 11
traffic: {{visitors_per_day: {visitors}, days: 1}}
stages:
  - name: enquiry
    rate: 0.5
  - name: call
    rate: {rate}
    response_delay_min: {{dist: exponential, mean: {delay}}}
    friction: {{response_decay: true}}
  - name: contract
    rate: 0.5
value: {{order_value: 1000}}
coefficients:
  response: {{slope: {slope}}}
"""
TRUTH = {
    "stages.call.rate": 0.6,
    "coefficients.response.slope": 1.5,
    "stages.call.response_delay_min.mean": 30.0,
}
PRIORS = FUNNEL.format(
    visitors=4000,
    rate="{uncertain: beta, mean: 0.5, sd: 0.2}",
    delay="{uncertain: uniform, low: 10, high: 90}",
    slope="{uncertain: uniform, low: 0.5, high: 3.0}",
)
STAGE_MAP = "visit=enquiry,enquire=call,reply=replied,meeting=contract,signed=converted"
RUN_EVENTS_MAP = "enquiry=enquiry,call=call,call:replied=replied,contract=contract,"
RUN_EVENTS_MAP += "contract:continued=converted"
"""The stage map of a ``run --events`` log of the funnel (docs/modelling.md, 4c)."""

MIXED = """name: mixed leads
traffic:
  visitors_per_day: 1000
  days: 1
  channels:
    search: {share: 0.7}
    referral: {share: 0.3, intent: 1.6}
segments:
  busy: {share: 0.4, intent: 0.7}
  keen: {share: 0.6}
stages:
  - name: enquiry
    rate: 0.4
    friction: {form_fields: 11, payment_methods: [card]}
  - name: call
    rate: 0.5
    response_delay_min: {dist: lognormal, mean: 90, sd: 120}
    friction: {response_decay: true, contact_options: [phone], payment_methods: [card]}
  - name: nurture
    rate: 0.8
    nurture: {interval_days: 7, ready_per_message: 0.2, max_messages: 4}
  - name: contract
    rate: 0.5
value: {order_value: 1000}
coefficients:
  response: {model: MODEL}
"""


def _aggregate_mean(funnel: CompiledFunnel) -> np.ndarray:
    """(S, G, C): the aggregate engine's continue probabilities (late answers averaged
    over the delay by friction.mean_response_continue), averaged over the preferences."""
    n_g, n_c, n_p, n_k = funnel.cell_shape
    cells = aggregate.continue_probabilities(funnel).reshape(-1, n_g, n_c, n_p, n_k)
    payment = np.diff(funnel.payment_cdf, axis=1, prepend=0.0)
    contact = np.diff(funnel.contact_cdf, axis=1, prepend=0.0)
    return np.einsum("sgcpk,gp,gk->sgc", cells, payment, contact)


@pytest.mark.parametrize("model", ["log_odds", "half_life"])
def test_aggregate_path_is_the_engines_delay_average(model: str) -> None:
    """Random rates and coefficients: the model's continue probabilities (NumPy and
    PyTensor) equal the aggregate engine's, whose late answers are
    friction.mean_response_continue over the lognormal delay; nurture included."""
    import pytensor.tensor as pt

    control = control_of(parse_scenario(MIXED.replace("MODEL", model)))
    terms = funnel_terms(control)
    slot = terms.slots[
        "coefficients.response.slope"
        if model == "log_odds"
        else "coefficients.response.half_life_min"
    ]
    assert terms.uses(slot)
    rng = np.random.default_rng(17)
    for _ in range(4):
        values = rng.uniform(0.05, 1.0, len(terms.values))
        values[terms.slots["coefficients.response.slope"]] *= 3.0
        values[terms.slots["coefficients.response.half_life_min"]] *= 200.0
        engine = _aggregate_mean(compile_funnel(with_calibrated_values(control, values)))
        np.testing.assert_allclose(continue_probabilities(values, terms), engine, rtol=1e-12)
        tensor = pt.as_tensor_variable(values)
        pytensor_side = continue_probabilities(tensor, terms, pt).eval()
        np.testing.assert_allclose(pytensor_side, engine, rtol=1e-12)
    # the stages without late answers are the engine's own continue probabilities
    funnel = compile_funnel(with_calibrated_values(control, values))
    np.testing.assert_allclose(
        continue_probabilities(values, terms)[[0, 2, 3]], mean_cell_continue(funnel)[[0, 2, 3]]
    )


@pytest.mark.parametrize("model", ["log_odds", "half_life"])
def test_response_curve_in_pytensor_is_the_engines(model: str) -> None:
    """friction.response_continue on random probabilities, minutes and coefficients."""
    import pytensor.tensor as pt

    terms = funnel_terms(control_of(parse_scenario(MIXED.replace("MODEL", model))))
    rng = np.random.default_rng(3)
    p, minutes = rng.uniform(0, 1, 200), rng.exponential(60.0, 200)
    for _ in range(5):
        values = terms.values.copy()
        slope, half_life = rng.uniform(0.1, 3.0), rng.uniform(1.0, 300.0)
        values[terms.slots["coefficients.response.slope"]] = slope
        values[terms.slots["coefficients.response.half_life_min"]] = half_life
        coef = friction.ResponseCoefficients(model=model, slope=slope, half_life_min=half_life)
        engine = friction.response_continue(p, minutes, coef)
        np.testing.assert_allclose(response_continue(p, minutes, values, terms), engine, rtol=1e-13)
        tensor = response_continue(
            pt.as_tensor_variable(p), minutes, pt.as_tensor_variable(values), terms, pt
        )
        np.testing.assert_allclose(tensor.eval(), engine, rtol=1e-13)


def test_lead_continue_averages_the_engines_curve_over_cells_and_options() -> None:
    """One lead answered after t minutes: the mix over cells and preferred options of
    friction.response_continue of each full cell probability of the compiled funnel."""
    control = control_of(parse_scenario(MIXED.replace("MODEL", "log_odds")))
    terms, funnel = funnel_terms(control), compile_funnel(control)
    n_g, n_c, n_p, n_k = funnel.cell_shape
    cells = funnel.cell_continue.reshape(-1, n_g, n_c, n_p, n_k)[1]
    payment = np.diff(funnel.payment_cdf, axis=1, prepend=0.0)
    contact = np.diff(funnel.contact_cdf, axis=1, prepend=0.0)
    mix = np.random.default_rng(5).dirichlet(np.ones(n_g * n_c), size=3)
    minutes = np.array([2.0, 45.0, 600.0])
    for lead in range(3):
        curve = friction.response_continue(cells, minutes[lead], control.coefficients.response)
        by_cell = np.einsum("gcpk,gp,gk->gc", curve, payment, contact).reshape(-1)
        got = lead_continue(terms.values, terms, 1, mix[lead : lead + 1], minutes[lead : lead + 1])
        np.testing.assert_allclose(got, [by_cell @ mix[lead]], rtol=1e-12)


@pytest.mark.parametrize("family", ["exponential", "lognormal"])
def test_delay_quantiles_are_the_scenarios(family: str) -> None:
    spec = (
        "{dist: exponential, mean: 40}"
        if family == "exponential"
        else ("{dist: lognormal, mean: 40, sd: 70}")
    )
    scenario = parse_scenario(
        FUNNEL.format(visitors=10, rate=0.5, delay=40, slope=1.5).replace(
            "{dist: exponential, mean: 40}", spec
        )
    )
    dist = scenario.stages[1].response_delay_min
    nodes, _ = friction.quadrature()
    got = delay_quantiles(family, 40.0, 70.0, nodes).eval()
    np.testing.assert_allclose(got, dist.ppf(nodes), rtol=1e-10)


def truth_scenario(seed: int, visitors: int) -> str:
    """The ``TRUTH`` funnel's scenario text, seeded."""
    text = FUNNEL.format(
        visitors=visitors,
        rate=TRUTH["stages.call.rate"],
        delay=TRUTH["stages.call.response_delay_min.mean"],
        slope=TRUTH["coefficients.response.slope"],
    )
    return text.replace("seed: 11", f"seed: {seed}")


def engine_event_log(folder: Path, seed: int, visitors: int, unlogged: float = 0.0) -> Path:
    """``funnelsim run --events`` of the ``TRUTH`` funnel (the engine's own log, its
    replies at the engine's response delays), the reply rows of a random share
    ``unlogged`` of the leads then left out."""
    (folder / "truth.yaml").write_text(truth_scenario(seed, visitors), encoding="utf-8")
    log = folder / "log.csv"
    args = ["run", str(folder / "truth.yaml"), "-q", "--events", str(log)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    if unlogged:
        lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
        drop = np.random.default_rng(seed).random(len(lines)) < unlogged
        kept = [
            row for row, out in zip(lines, drop, strict=True) if not out or "replied" not in row
        ]
        log.write_text("".join(kept), encoding="utf-8")
    return log


def engine_delays(seed: int, visitors: int) -> np.ndarray:
    """Every visitor's response delay at ``call`` as the engine draws it for the first
    replication of the seeded ``TRUTH`` funnel."""
    truth = parse_scenario(truth_scenario(seed, visitors))
    draws = VisitorDraws(replication_seeds(seed, 1)[0], visitors, 1)
    delay = stage_values(SharedDraws(draws), "delay", truth.stages[1].response_delay_min, 1, 3)
    assert delay is not None
    return delay


def test_run_events_logs_the_engines_replies(tmp_path: Path) -> None:
    """One reply row per lead reaching ``call``, from the enquiry to the answer after
    exactly the engine's drawn delay; the reader times it so; analyze does not count it
    as a stage entered, and results.json is the same with or without the log."""
    log = engine_event_log(tmp_path, seed=3, visitors=300)
    with log.open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    replies = {int(r["visitor"]): r for r in rows if r["outcome"] == "replied"}
    calls = {
        int(r["visitor"]): r for r in rows if r["stage"] == "call" and r not in replies.values()
    }
    assert len(calls) > 100 and replies.keys() == calls.keys()
    delay = engine_delays(seed=3, visitors=300)
    for i, reply in replies.items():
        assert reply["stage"] == "call" and reply["entered_min"] == calls[i]["entered_min"]
        assert float(reply["waited_min"]) == round(delay[i], 3)
        assert float(reply["left_min"]) == pytest.approx(
            float(reply["entered_min"]) + delay[i], abs=1e-3
        )
    stage_map = dict(pair.split("=") for pair in RUN_EVENTS_MAP.split(","))
    counts = read_event_log(log, stage_map, delayed=["call"])
    (leads,) = counts.replies
    assert leads.answered == len(replies) == counts.reached[0, 1]
    visitors = sorted(replies)
    np.testing.assert_allclose(np.sort(leads.minutes), np.sort(delay[visitors]), atol=2e-3)
    reached = read_experiment(log).stage_counts[0]
    assert reached.tolist() == [len(calls), counts.reached[0, 2]]
    for name, extra in (("with", ["--events", str(tmp_path / "again.csv")]), ("without", [])):
        args = ["run", str(tmp_path / "truth.yaml"), "-q", "--out", str(tmp_path / name)]
        assert CliRunner().invoke(main, [*args, *extra]).exit_code == 0
    assert (tmp_path / "with" / "results.json").read_bytes() == (
        tmp_path / "without" / "results.json"
    ).read_bytes()


def test_a_run_events_log_of_several_variants_needs_an_arm(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    header = "variant,visitor,segment,channel,stage,entered_min,left_min,waited_min,outcome,revenue"
    path.write_text(
        header + "\n"
        "control,0,all,direct,enquiry,1.0,1.0,0.0,continued,0.0\n"
        "control,0,all,direct,call,1.0,1.0,0.0,lost:rate,0.0\n"
        "fast,0,all,direct,enquiry,1.0,1.0,0.0,continued,0.0\n"
        "fast,0,all,direct,call,1.0,2.5,1.5,replied,0.0\n"
        "fast,0,all,direct,call,1.0,1.0,0.0,continued,0.0\n"
        "fast,0,all,direct,contract,1.0,1.0,0.0,continued,1000.0\n",
        encoding="utf-8",
    )
    stage_map = dict(pair.split("=") for pair in RUN_EVENTS_MAP.split(","))
    with pytest.raises(DataError, match=r"log.csv:4: column 'variant': a second variant 'fast'"):
        read_event_log(path, stage_map, delayed=["call"])
    counts = read_event_log(path, stage_map, delayed=["call"], arm=("variant", "fast"))
    assert counts.reached.tolist() == [[1, 1, 1, 1]]
    np.testing.assert_array_equal(counts.replies[0].minutes, [1.5])
    with pytest.raises(DataError, match="column 'variant' has no value 'slow'"):
        read_event_log(path, stage_map, delayed=["call"], arm=("variant", "slow"))


def test_reader_times_replies_and_what_followed(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "visitor_id,timestamp,event,segment\n"
        "a,2026-11-02T10:00:00,enquire,busy\n"
        "a,2026-11-02T10:45:00,reply,busy\n"
        "a,2026-11-02T10:30:00,reply,busy\n"  # rows in any order: the first reply counts
        "a,2026-11-03T09:00:00,meeting,busy\n"
        "b,2026-11-02T11:00:00,enquire,keen\n"  # never answered
        "c,2026-11-02T12:00:00,enquire,busy\n"
        "c,2026-11-02T12:05:00,reply,busy\n",
        encoding="utf-8",
    )
    stage_map = {"enquire": "call", "reply": "replied", "meeting": "converted"}
    counts = read_event_log(path, stage_map, delayed=["call"])
    (replies,) = counts.replies
    assert replies.stage == "call" and counts.cells == (("busy",), ("keen",))
    assert replies.cell.tolist() == [0, 1, 0]
    np.testing.assert_array_equal(replies.minutes, [30.0, np.nan, 5.0])
    assert replies.continued.tolist() == [True, False, False]
    assert replies.answered == 2
    assert counts.reached.tolist() == [[2, 1], [1, 0]]  # the replies are not a stage


@pytest.mark.parametrize(
    ("rows", "stage_map", "delayed", "message"),
    [
        (
            "v1,2026-11-02T10:00:00,enquire\nv1,2026-11-02T09:00:00,reply\n",
            "enquire=call,reply=replied,meeting=converted",
            ["call"],
            r"log.csv:3: column 'timestamp': visitor 'v1' was answered before reaching "
            r"'call' \(line 2\)",
        ),
        (
            "v1,2026-11-02T10:00:00,enquire\nv1,2026-11-02T11:00:00,reply\n",
            "enquire=call,reply=replied,meeting=converted",
            [],
            r"log.csv:3: column 'event': 'reply' is a reply \(replied\), but no stage of "
            "the scenario has a response delay",
        ),
        (
            "v1,2026-11-02T10:00:00,visit\nv1,2026-11-02T11:00:00,reply\n",
            "visit=landing,enquire=call,reply=replied:landing,meeting=converted",
            ["call"],
            r"log.csv:3: column 'event': 'reply' is a reply \(replied:landing\), but stage "
            "'landing' has a response delay",
        ),
        (
            "v1,2026-11-02T10:00:00,visit\nv2,2026-11-02T11:00:00,reply\n",
            "visit=landing,enquire=call,reply=replied,meeting=converted",
            ["call"],
            r"log.csv:3: column 'event': a reply to visitor 'v2', who never reached 'call'",
        ),
        (
            "v1,2026-11-02T10:00:00,visit\n",
            "visit=landing,enquire=call,reply=replied,meeting=converted",
            ["landing", "call"],
            r"--stage-map: reply=replied: several stages have a response delay",
        ),
        (
            "v1,2026-11-02T10:00:00,visit\n",
            "visit=landing,reply=replied,meeting=converted",
            ["call"],
            r"--stage-map: reply=replied: it answers 'call', which no event of the map reaches",
        ),
    ],
)
def test_reader_errors_name_file_line_and_column(
    tmp_path: Path, rows: str, stage_map: str, delayed: list[str], message: str
) -> None:
    path = tmp_path / "log.csv"
    path.write_text("visitor_id,timestamp,event\n" + rows, encoding="utf-8")
    mapping = dict(pair.split("=") for pair in stage_map.split(","))
    with pytest.raises(DataError, match=message):
        read_event_log(path, mapping, delayed=delayed)


def test_cli_names_a_reply_on_a_stage_without_delay(tmp_path: Path) -> None:
    """Exit 2, one line naming file, line and column, nothing written."""
    (tmp_path / "leads.yaml").write_text(
        PRIORS.replace(
            "    response_delay_min: {dist: exponential, mean: "
            "{uncertain: uniform, low: 10, high: 90}}\n",
            "",
        ).replace("    friction: {response_decay: true}\n", ""),
        encoding="utf-8",
    )
    (tmp_path / "log.csv").write_text(
        "visitor_id,timestamp,event\nv1,10,enquire\nv1,70,reply\n", encoding="utf-8"
    )
    args = ["calibrate", str(tmp_path / "leads.yaml"), "--data", str(tmp_path / "log.csv")]
    result = CliRunner().invoke(
        main, [*args, "--stage-map", STAGE_MAP, "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2, result.output
    assert "log.csv:3: column 'event'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_rate_at_is_refused_by_name() -> None:
    text = FUNNEL.format(visitors=10, rate=0.5, delay=30, slope=1.5).replace(
        "    rate: 0.5\n    response_delay_min",
        "    rate_at: {rate: 0.2, response_min: 60}\n    response_delay_min",
    )
    with pytest.raises(CalibrationError, match="stage 'call' gives rate_at"):
        funnel_terms(control_of(parse_scenario(text)))


def test_answered_leads_are_grouped_by_cell_and_minutes(tmp_path: Path) -> None:
    """A fifth of the replies left out: the answered leads are grouped, the others are
    the stage's leads without a reply time."""
    path = engine_event_log(tmp_path, seed=2, visitors=300, unlogged=0.2)
    stage_map = dict(pair.split("=") for pair in RUN_EVENTS_MAP.split(","))
    counts = read_event_log(path, stage_map, delayed=["call"])
    (replies,) = counts.replies
    assert 0 < replies.answered < 0.9 * counts.reached[0, 1]
    control = control_of(parse_scenario(PRIORS))
    (leads,) = timed_leads(control, counts, funnel_terms(control))
    assert leads.leads.sum() == replies.answered
    assert leads.continued.sum() == replies.continued[np.isfinite(replies.minutes)].sum()


def calibrate_priors(folder: Path, log: Path) -> tuple[dict[str, Any], str]:
    """``funnelsim calibrate`` of the priors to ``log``: calibration.json and the output."""
    (folder / "leads.yaml").write_text(PRIORS, encoding="utf-8")
    args = ["calibrate", str(folder / "leads.yaml"), "--data", str(log)]
    args += ["--stage-map", RUN_EVENTS_MAP, "--out", str(folder / "out")]
    result = CliRunner().invoke(main, [*args, "--draws", "400", "--chains", "2", "--seed", "5"])
    assert result.exit_code == 0, result.output
    return json.loads((folder / "out" / "calibration.json").read_text()), result.output


@pytest.mark.slow
@pytest.mark.parametrize("unlogged", [0.0, 0.2])
def test_replies_calibrate_rate_slope_and_delay(tmp_path: Path, unlogged: float) -> None:
    """``run --events`` of the true funnel, then ``calibrate`` of the priors to that log
    (all of it, or a fifth of its replies left out: those leads continue with the delay
    average): the 90% posterior intervals cover the engine's true values and are
    narrower than the priors'; the reply times are the engine's delays, their mean
    within its standard error of the true mean."""
    log = engine_event_log(tmp_path, seed=1, visitors=4000, unlogged=unlogged)
    stage_map = dict(pair.split("=") for pair in RUN_EVENTS_MAP.split(","))
    (replies,) = read_event_log(log, stage_map, delayed=["call"]).replies
    minutes = replies.minutes[np.isfinite(replies.minutes)]
    mean = TRUTH["stages.call.response_delay_min.mean"]  # exponential: sd = mean
    assert abs(minutes.mean() - mean) < 3.0 * mean / np.sqrt(len(minutes))
    report, printed = calibrate_priors(tmp_path, log)
    assert report["diagnostics"]["divergences"] == 0, report["diagnostics"]
    assert report["diagnostics"]["r_hat_max"] < 1.05, report["diagnostics"]
    for key, truth in TRUTH.items():
        update = report["assumptions"][key]
        low, high = update["posterior_interval"]
        assert low <= truth <= high, (key, update)
        prior_low, prior_high = update["prior_interval"]
        assert high - low < 0.5 * (prior_high - prior_low), (key, update)
        assert key in printed


@pytest.mark.slow
def test_aggregate_counts_of_a_lead_funnel_calibrate_through_the_delay_average(
    tmp_path: Path,
) -> None:
    """The same engine-simulated funnel as aggregate counts only (no reply times): the
    rate is fitted through the delay average (delay known, slope within its documented
    range), its 90% interval covers the truth and the counts are reproduced."""
    log = engine_event_log(tmp_path, seed=1, visitors=4000)
    stage_map = dict(pair.split("=") for pair in RUN_EVENTS_MAP.split(","))
    reached = read_event_log(log, stage_map, delayed=["call"]).reached[0]
    counts = tmp_path / "counts.csv"
    counts.write_text(
        "enquiry,call,contract,converted\n" + ",".join(f"{n:.0f}" for n in reached) + "\n",
        encoding="utf-8",
    )
    scenario = tmp_path / "leads.yaml"
    prior = "{uncertain: beta, mean: 0.5, sd: 0.2}"
    text = FUNNEL.format(visitors=4000, rate=prior, delay=30, slope=1.5)
    scenario.write_text(text.replace("coefficients:\n  response: {slope: 1.5}\n", ""))
    result = funnelsim.calibrate(scenario, counts, draws=300, chains=2, seed=2)
    updates = {u.key: u for u in result.updates}
    assert set(updates) == {"stages.call.rate", "coefficients.response.slope"}
    low, high = updates["stages.call.rate"].posterior_interval
    assert low <= TRUTH["stages.call.rate"] <= high, updates["stages.call.rate"]
    assert not result.predictive.outside.any()


SPEED = """name: reply speed
traffic: {{visitors_per_day: 3000, days: 1}}
stages:
  - name: enquiry
    rate: 0.5
  - name: call
    rate: {rate}
    response_delay_min: {{dist: exponential, mean: 60}}
    friction: {{response_decay: true}}
value: {{order_value: 1000}}
coefficients:
  response: {{slope: {slope}}}
"""
SPEED_TEST = """data: speed_test.csv
arm_column: arm
arms:
  slow: control                                 # answered after an hour on average
  fast: {stages.call.response_delay_min: 2}     # answered within two minutes
"""


@pytest.mark.slow
def test_a_past_reply_speed_test_informs_the_slope(tmp_path: Path) -> None:
    """A past "answer within 2 minutes" test, counts only: its fast arm pins the rate,
    the slow arm's delay average (the aggregate engine's) then pins the slope."""
    truth = parse_scenario(SPEED.format(rate=0.6, slope=1.5))
    rng = np.random.default_rng(8)

    def reached(scenario: Scenario, top: int) -> list[int]:
        p = aggregate.continue_probabilities(compile_funnel(control_of(scenario)))[:, 0]
        counts = [top]
        for rate in p:
            counts.append(int(rng.binomial(counts[-1], rate)))
        return counts

    fast = truth.with_overrides({"stages.call.response_delay_min": 2})
    (tmp_path / "counts.csv").write_text(
        "enquiry,call,converted\n" + ",".join(map(str, reached(truth, 6000))) + "\n"
    )
    rows = ["arm,enquiry,call,converted"]
    rows += [
        f"{arm}," + ",".join(map(str, reached(s, 3000)))
        for arm, s in (("slow", truth), ("fast", fast))
    ]
    (tmp_path / "speed_test.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "speed_test.yaml").write_text(SPEED_TEST)
    prior = SPEED.format(
        rate="{uncertain: beta, mean: 0.5, sd: 0.2}",
        slope="{uncertain: uniform, low: 0.5, high: 3.0}",
    )
    (tmp_path / "speed.yaml").write_text(prior)
    result = funnelsim.calibrate(
        tmp_path / "speed.yaml",
        tmp_path / "counts.csv",
        experiments=[tmp_path / "speed_test.yaml"],
        draws=300,
        chains=2,
        seed=4,
    )
    updates = {u.key: u for u in result.updates}
    for key, value in (("stages.call.rate", 0.6), ("coefficients.response.slope", 1.5)):
        low, high = updates[key].posterior_interval
        assert low <= value <= high, updates[key]
        prior_low, prior_high = updates[key].prior_interval
        assert high - low < 0.5 * (prior_high - prior_low), updates[key]


def test_answered_leads_past_other_friction_go_on_with_the_curve_over_the_share_kept(
    tmp_path: Path,
) -> None:
    """Where a form loses leads before the answer, the engine answers only those it kept:
    the answered leads go on with the response curve divided by the share kept (not the
    curve itself), so calibrate leaves their reply times out of the rate and slope."""
    form = "friction: {response_decay: true, form_fields: 14}"
    text = truth_scenario(seed=4, visitors=20_000).replace("friction: {response_decay: true}", form)
    (tmp_path / "form.yaml").write_text(text, encoding="utf-8")
    log = tmp_path / "log.csv"
    args = ["run", str(tmp_path / "form.yaml"), "-q", "--events", str(log)]
    assert CliRunner().invoke(main, args).exit_code == 0
    stage_map = dict(pair.split("=") for pair in RUN_EVENTS_MAP.split(","))
    (replies,) = read_event_log(log, stage_map, delayed=["call"]).replies
    answered = np.isfinite(replies.minutes)
    went_on = replies.continued[answered].astype(float)
    scenario = parse_scenario(text)
    funnel = compile_funnel(scenario)
    p, kept = funnel.cell_continue[1, 0], funnel.cell_thresholds[1, 0, -1]
    curve = friction.response_continue(p, replies.minutes[answered], scenario.coefficients.response)
    se = went_on.std() / np.sqrt(went_on.size)
    assert 0.7 < kept < 0.95 and went_on.size > 5_000
    assert abs(went_on.mean() - curve.mean() / kept) < 3 * se
    assert abs(went_on.mean() - curve.mean()) > 6 * se
    counts = read_event_log(log, stage_map, delayed=["call"])
    control = control_of(parse_scenario(PRIORS))
    assert timed_leads(control, counts, funnel_terms(control))  # without the form
    priors = parse_scenario(PRIORS.replace("friction: {response_decay: true}", form))
    with_form = control_of(priors)
    assert timed_leads(with_form, counts, funnel_terms(with_form)) == ()
