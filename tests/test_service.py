"""Service desks: office hours, priority bands, declined leads, against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from funnelsim.engine import service, simpy_engine
from funnelsim.engine.draws import VisitorDraws, replication_seeds
from funnelsim.engine.model import compile_funnel
from funnelsim.engine.outcomes import REASON_INDEX, REPLIED
from funnelsim.engine.schedules import HOURS_PER_WEEK, profiled_times, rota
from funnelsim.queueing import erlang_a_abandonment
from funnelsim.scenario import parse_scenario
from funnelsim.scenario.schema import Schedule, TrafficProfile


def _runs(text: str, seed: int, replications: int):
    scenario = parse_scenario(text)
    funnel = compile_funnel(scenario)
    traffic = scenario.traffic
    return [
        simpy_engine.simulate(funnel, VisitorDraws(s, traffic.visitors_per_day, traffic.days))
        for s in replication_seeds(seed, replications)
    ]


def _within(values: list[float], expected: float, ses: float = 4.0) -> None:
    """The mean of replication values is within ``ses`` standard errors of ``expected``."""
    mean = float(np.mean(values))
    se = float(np.std(values, ddof=1)) / math.sqrt(len(values))
    assert abs(mean - expected) < ses * se, (mean, expected, se)


# --------------------------------------------------------------------------- schedules

OFFICE_HOURS = """\
name: office hours
traffic: {{visitors_per_day: 500, days: 28}}
resources:
  desk:
    capacity: 50
    service_min: 0.000001
    schedule:
      utc_offset_h: 1
      shifts:
        - {{days: [mon, tue, wed, thu, fri], from_h: 9, to_h: 17, capacity: 50}}
{extra}
stages:
  - name: enquiry
    rate: 1.0
    resource: desk
value:
  order_value: 10
"""


def test_rota_places_shifts_on_the_clock_with_time_zone_and_holidays():
    schedule = Schedule.model_validate(
        {
            "utc_offset_h": 2,
            "holidays": [1],
            "shifts": [
                {"days": ["mon", "tue"], "from_h": 9, "to_h": 17, "capacity": 3},
                {"days": ["mon"], "from_h": 17, "to_h": 22, "capacity": 1, "on_call": True},
            ],
        }
    )
    week = rota(schedule, 3)
    assert [week.capacity_at(h) for h in (6, 7, 14, 15, 19, 20)] == [0, 3, 3, 1, 1, 0]
    assert week.in_office_hours(7) and not week.in_office_hours(15)
    assert week.capacity_at(24 + 7) == 0  # Tuesday is a holiday (local day 1)
    assert week.capacity_at(HOURS_PER_WEEK + 24 + 7) == 3  # the next Tuesday is not
    assert week.next_change(7) == 15


def test_wait_of_a_lead_arriving_uniformly_over_the_week_matches_closed_form():
    """Infinite capacity in office hours and none outside: a lead waits until the next
    opening. Closed gaps of L hours give E[W] = sum(L^2 / 2) / 168 and
    E[W^2] = sum(L^3 / 3) / 168 (hours); weekday nights are 16 h, the weekend 64 h."""
    gaps = np.array([16.0] * 4 + [64.0])
    mean_h = (gaps**2 / 2).sum() / HOURS_PER_WEEK
    var_h = (gaps**3 / 3).sum() / HOURS_PER_WEEK - mean_h**2
    (run,) = _runs(OFFICE_HOURS.format(extra=""), seed=11, replications=1)
    desk = run.outcome.service["desk"]
    se_min = math.sqrt(var_h / desk["leads"]) * 60
    assert desk["answered"] == desk["leads"] > 10_000
    assert abs(desk["wait_min"]["mean"] - mean_h * 60) < 4 * se_min
    share_open = 40 / HOURS_PER_WEEK  # answered within 5 minutes: arrived while open
    se_share = math.sqrt(share_open * (1 - share_open) / desk["leads"])
    assert abs(desk["answered_within"]["5min"] - share_open) < 4 * se_share
    assert desk["answered_out_of_hours"] == 0.0


def test_wait_quantiles_pool_the_replications_and_match_the_closed_form():
    """Same desk: P(W <= w) = (40 + sum(min(w, L))) / 168 over the closed gaps L (hours),
    so the median is 8.8 h (all five gaps still open: 40 + 5w = 84) and the 90th
    percentile 47.2 h (only the weekend: 40 + 64 + w = 151.2). The quantiles of the waits
    pooled over replications estimate them with standard error sqrt(q(1-q)/n) / f(w_q)
    (the normal limit of a sample quantile; f = 5/168 and 1/168 per hour there)."""
    text = OFFICE_HOURS.format(extra="").replace("visitors_per_day: 500", "visitors_per_day: 25")
    runs = [r.outcome.service for r in _runs(text, seed=5, replications=30)]
    waits = service.summarise_runs(runs)["desk"]["wait_min"]
    n = sum(run["desk"]["answered"] for run in runs)
    for key, q, hours, density in (("p50", 0.5, 8.8, 5 / 168), ("p90", 0.9, 47.2, 1 / 168)):
        se_min = math.sqrt(q * (1 - q) / n) / density * 60
        assert abs(waits[key] - hours * 60) < 4 * se_min, (key, waits[key], se_min)
    pooled = np.concatenate([run["desk"]["wait_sample"].waits for run in runs])
    assert waits["p90"] == np.quantile(pooled, 0.9)
    assert waits["mean"] == pytest.approx(pooled.mean())


def test_holiday_delays_the_leads_of_that_day():
    text = OFFICE_HOURS.format(extra="      holidays: [2, 9, 16, 23]")  # every Wednesday
    plain, holidays = (
        _runs(t, seed=4, replications=1)[0].outcome.service["desk"]
        for t in (OFFICE_HOURS.format(extra=""), text)
    )
    assert holidays["wait_min"]["mean"] > plain["wait_min"]["mean"]
    assert holidays["leads"] == plain["leads"]


ERLANG_A = """\
name: desk
traffic: {{visitors_per_day: 720, days: 2}}
resources:
  agents:
    capacity: 2
    service_min: {{dist: exponential, mean: 5}}
{schedule}
stages:
  - name: desk
    rate: 1.0
    resource: agents
    patience_min: {{dist: exponential, mean: 10}}
value:
  order_value: 10
"""
ALWAYS_OPEN = """\
    schedule:
      utc_offset_h: 3
      shifts:
        - {days: [mon, tue, wed, thu, fri, sat, sun], from_h: 0, to_h: 24, capacity: 2}"""


def test_always_open_schedule_keeps_erlang_a_and_every_visitor_outcome():
    always_open = _runs(ERLANG_A.format(schedule=ALWAYS_OPEN), seed=2024, replications=20)
    around_the_clock = _runs(ERLANG_A.format(schedule=""), seed=2024, replications=20)
    for a, b in zip(always_open, around_the_clock, strict=True):
        np.testing.assert_array_equal(a.converted, b.converted)
        np.testing.assert_array_equal(a.outcome.lost, b.outcome.lost)
    shares = [r.outcome.queues.abandoned[0] / r.outcome.queues.arrivals[0] for r in always_open]
    expected = erlang_a_abandonment(0.5, 0.2, 0.1, servers=2)
    t = stats.t.ppf(0.9995, len(shares) - 1)
    _within(shares, expected, ses=t)


def test_traffic_profile_follows_its_weights_and_keeps_arrival_order():
    profile = TrafficProfile(hour_weights=[0.0] * 12 + [1.0] * 12, day_weights=[1.0] * 7)
    uniform = np.sort(np.random.default_rng(3).uniform(0, 7 * 1440, 20_000))
    times = profiled_times(uniform, profile, days=7)
    assert np.all(np.diff(times) >= 0)
    assert np.all((times % 1440) >= 720)  # nobody before noon
    afternoon = (times % 1440) // 60 - 12  # each afternoon hour equally likely
    counts = np.bincount(afternoon.astype(int), minlength=12)
    assert stats.chisquare(counts).pvalue > 1e-4


# --------------------------------------------------------------------------- priorities

PRIORITY_MM1 = """\
name: priority desk
traffic:
  visitors_per_day: 1008   # 0.7 a minute
  days: 5
  channels:
    hot: {{share: 0.3, intent: 3.0}}    # score 0.75
    cold: {{share: 0.7, intent: 1.0}}   # score 0.5
resources:
  rep:
    capacity: 1
    service_min: {{dist: exponential, mean: 1}}
    priority: {priority}
stages:
  - name: call
    rate: 0.5
    resource: rep
value:
  order_value: 10
"""
LAMBDA, SHARE_HOT, MU = 0.7, 0.3, 1.0


def _class_waits(priority: str, seed: int = 8, replications: int = 20):
    runs = _runs(PRIORITY_MM1.format(priority=priority), seed, replications)
    return [r.outcome.service["rep"] for r in runs]


def test_two_non_preemptive_classes_match_cobham():
    """Cobham (1954): W_k = W0 / ((1 - s_(k-1)) (1 - s_k)), W0 = sum(lambda_i E[S^2]) / 2,
    s_k the load of classes 1..k (Kleinrock, Queueing Systems vol. 2, 1976, chapter 3)."""
    runs = _class_waits("{by: score, bands: [0.6]}")
    rho_hot, rho = LAMBDA * SHARE_HOT / MU, LAMBDA / MU
    w0 = LAMBDA * 2 / MU**2 / 2
    expected = {"0": w0 / (1 - rho_hot), "1": w0 / ((1 - rho_hot) * (1 - rho))}
    for band, wait in expected.items():
        _within([r["wait_min"]["by_band"][band]["mean"] for r in runs], wait)


def test_deal_size_bands_serve_the_larger_deals_first():
    text = PRIORITY_MM1.format(priority="{by: deal_size, bands: [10]}").replace(
        "  order_value: 10", "  order_value: {dist: uniform, low: 0, high: 20}"
    )
    desks = [r.outcome.service["rep"] for r in _runs(text, seed=3, replications=5)]
    for desk in desks:
        large, small = (desk["wait_min"]["by_band"][b]["mean"] for b in ("0", "1"))
        assert large < small


def test_one_class_reduces_to_mm1():
    runs = _class_waits("{by: fifo}")
    rho = LAMBDA / MU
    _within([r["wait_min"]["mean"] for r in runs], rho / (MU - LAMBDA))
    assert all(set(r["wait_min"]["by_band"]) == {"0"} for r in runs)


def test_preemptive_priority_hides_the_low_class_from_the_high_one():
    """Preemptive-resume: the high class waits as in an M/M/1 queue of its own."""
    runs = _class_waits("{by: score, bands: [0.6], preemptive: true}")
    lam_hot = LAMBDA * SHARE_HOT
    _within([r["wait_min"]["by_band"]["0"]["mean"] for r in runs], lam_hot / (MU * (MU - lam_hot)))


def test_declining_low_scores_saves_the_queue_and_loses_those_leads():
    runs = _runs(
        PRIORITY_MM1.format(priority="{by: score, decline_below: 0.6}"), seed=8, replications=20
    )
    lam_hot = LAMBDA * SHARE_HOT
    desks = [r.outcome.service["rep"] for r in runs]
    _within([d["wait_min"]["mean"] for d in desks], lam_hot / (MU * (MU - lam_hot)))
    for run, desk in zip(runs, desks, strict=True):
        declined = run.outcome.lost_by_reason()[0, REASON_INDEX["declined"]]
        assert declined == desk["declined"] > 0
        assert desk["answered"] + declined == desk["leads"]


@pytest.mark.parametrize(
    ("priority", "message"),
    [
        ("{by: fifo, bands: [0.5]}", "bands and decline_below need by: score or deal_size"),
        ("{by: score, bands: [0.2, 0.5]}", "bands must be strictly descending"),
        ("{by: urgency}", "priority.by"),
    ],
)
def test_priority_mistakes_are_located(priority, message):
    from funnelsim.scenario import ScenarioError

    with pytest.raises(ScenarioError, match=message) as error:
        parse_scenario(PRIORITY_MM1.format(priority=priority), "desk.yaml")
    assert error.value.line == 12


# --------------------------------------------------------------------------- results


TEAM = """\
name: team
seed: 3
traffic:
  visitors_per_day: 400
  days: 14
  profile: {}
  channels:
    ads: {share: 0.5, cost_per_visit: 1.0, intent: 3.0}
    organic: {share: 0.5}
resources:
  reps:
    capacity: 2
    cost_per_hour: 30
    service_min: {dist: exponential, mean: 20}
    schedule:
      shifts:
        - {days: [mon, tue, wed, thu, fri], from_h: 9, to_h: 17, capacity: 2}
    priority: {by: score, bands: [0.6]}
stages:
  - name: enquiry
    rate: 0.1
  - name: call
    rate: 0.5
    resource: reps
    friction: {response_decay: true}
value:
  order_value: 100
variants:
  control: {}
  on_call:
    resources.reps.schedule.shifts:
      - {days: [mon, tue, wed, thu, fri], from_h: 9, to_h: 17, capacity: 2}
      - {days: [mon, tue, wed, thu, fri, sat, sun], from_h: 17, to_h: 23, capacity: 1,
         on_call: true}
experiment:
  replications: 4
"""


def test_results_json_carries_service_figures_per_variant_and_resource():
    from funnelsim.experiment import run_experiment
    from funnelsim.results import results_dict

    result = run_experiment(parse_scenario(TEAM))
    data = results_dict(result)["variants"]
    control, on_call = (data[v]["service"]["reps"] for v in ("control", "on_call"))
    assert control["staff_cost"] == 2 * 8 * 10 * 30  # two reps, 8 h, 10 weekdays
    assert on_call["staff_cost"] == control["staff_cost"] + 6 * 14 * 30
    assert control["answered_out_of_hours"] == 0.0 < on_call["answered_out_of_hours"]
    assert on_call["wait_min"]["mean"] < control["wait_min"]["mean"]
    assert on_call["answered_within"]["1h"] > control["answered_within"]["1h"]
    assert set(control["wait_min"]["by_band"]) == {"0", "1"}
    assert control["wait_min"]["by_band"]["0"]["mean"] < control["wait_min"]["by_band"]["1"]["mean"]
    band = control["lead_to_customer_by_band"]
    assert band["0"] > band["1"]  # the score is the lead's chance to buy
    hours = control["utilisation_by_hour_of_week"]
    assert len(hours) == HOURS_PER_WEEK and hours[3] is None and 0 < hours[10] <= 1
    assert (
        control["cost_per_customer"] > control["cost_per_lead"] > control["service_cost_per_lead"]
    )
    assert control["leads"] == control["answered"] + control["lost_waiting"]
    assert "wait_sample" not in control
    samples = [r.service[0]["reps"]["wait_sample"] for r in result.replications]
    pooled = np.concatenate([sample.waits for sample in samples])
    assert control["wait_min"]["p90"] == np.quantile(pooled, 0.9)  # not a mean of p90s


def test_service_table_and_utilisation_heatmap_render():
    from rich.console import Console

    from funnelsim.experiment import run_experiment
    from funnelsim.plots import utilisation_heatmap
    from funnelsim.service_report import service_tables
    from funnelsim.tables import print_table

    result = run_experiment(parse_scenario(TEAM), replications=1)
    console = Console(width=200, record=True)
    for table in service_tables((s.name, s.service) for s in result.variants):
        print_table(table, console)
    text = console.export_text()
    assert "on_call" in text and "reps" in text and "≤ 1 h" in text
    hours = result.variants[0].service["reps"]["utilisation_by_hour_of_week"]
    figure = utilisation_heatmap(hours, "control: reps")
    image = figure.axes[0].images[0].get_array()
    assert image.shape == (7, 24) and np.ma.is_masked(image[0, 3])
    from funnelsim.html_report import experiment_report

    sections = {s.title: s for s in experiment_report(result).sections}
    assert len(sections["Service desk"].figures) == 2  # control and on_call, one resource


def test_engines_without_simpy_refuse_schedules_at_the_field(write_scenario):
    from click.testing import CliRunner

    from funnelsim.cli import main

    path = write_scenario(TEAM)
    for engine in ("vectorized", "aggregate"):
        result = CliRunner().invoke(main, ["run", str(path), "--engine", engine, "-q"])
        assert result.exit_code == 2
        assert result.output.strip() == (
            f"error: {path}:24: stages[1].resource: the {engine} engine cannot simulate shared "
            "resources (queues, office hours, priorities) or referred visitors "
            "(value.referral); use --engine simpy or auto"
        )
    from funnelsim.experiment import choose_engine, compile_variants

    assert choose_engine(compile_variants(parse_scenario(TEAM))) == "simpy"


def test_traffic_profile_alone_keeps_the_engines_equal():
    """Without a queue, when a visitor comes changes nothing: both engines agree."""
    from conftest import MINIMAL

    scenario = parse_scenario(MINIMAL.replace("  days: 2\n", "  days: 2\n  profile: {}\n"))
    funnel = compile_funnel(scenario)
    draws = VisitorDraws(replication_seeds(1, 1)[0], 1000, 2)
    from funnelsim.engine import vectorized

    a, b = vectorized.simulate(funnel, draws), simpy_engine.simulate(funnel, draws)
    np.testing.assert_array_equal(a.converted, b.converted)


# --------------------------------------------------------------------------- replies, paths

DESK = """\
name: desk
seed: 5
traffic: {visitors_per_day: 300, days: 14}
resources:
  reps:
    capacity: 2
    service_min: {dist: exponential, mean: 20}
    schedule:
      shifts: [{days: [mon, tue, wed, thu, fri], from_h: 9, to_h: 17, capacity: 2}]
stages:
  - name: enquiry
    rate: 0.3
  - name: call
    rate: 0.6
    resource: reps
    friction: {response_decay: true}
value:
  order_value: 100
variants:
  control: {}
  auto_reply: {stages.call.auto_reply: {decay_factor: 0.5, cost_per_lead: 0.1}}
  templates: {stages.call.auto_reply: {decay_factor: 1.0, answers_share: 0.3}}
  decline: {resources.reps.priority: {by: score, decline_below: 0.7}}
"""


def _variant_runs(text: str, seed: int = 2, replications: int = 5):
    scenario = parse_scenario(text)
    traffic = scenario.traffic
    seeds = replication_seeds(seed, replications)
    return {
        name: [
            simpy_engine.simulate(
                compile_funnel(scenario.variant(name)),
                VisitorDraws(s, traffic.visitors_per_day, traffic.days),
            ).outcome
            for s in seeds
        ]
        for name in scenario.variant_names
    }


def test_auto_reply_and_templates_lose_fewer_leads_to_slow_answers():
    """Documented direction: an acknowledgement slows the decay, so on the same visitors
    (same queue) nobody who bought without it is lost with it; templates answer a share
    at once and shorten the queue for the rest."""
    runs = _variant_runs(DESK)
    late = REASON_INDEX["response"]
    for control, auto, templates in zip(
        runs["control"], runs["auto_reply"], runs["templates"], strict=True
    ):
        assert auto.lost_by_reason()[1, late] < control.lost_by_reason()[1, late]
        assert auto.buyers > control.buyers
        assert auto.service["reps"]["wait_min"] == control.service["reps"]["wait_min"]
        leads = auto.service["reps"]["leads"]
        assert auto.service["reps"]["automation_cost"] == pytest.approx(0.1 * leads)
        assert templates.service["reps"]["answered_automatically"] > 0.2 * leads
        assert (
            templates.service["reps"]["wait_min"]["mean"]
            < control.service["reps"]["wait_min"]["mean"]
        )
        assert templates.buyers > control.buyers


def test_declining_leads_saves_staff_time_and_loses_their_value():
    runs = _variant_runs(DESK)
    for control, decline in zip(runs["control"], runs["decline"], strict=True):
        declined = decline.lost_by_reason()[1, REASON_INDEX["declined"]]
        assert declined == decline.service["reps"]["declined"] == decline.service["reps"]["leads"]
        assert decline.queues.busy_min[0] == 0.0 < control.queues.busy_min[0]
        assert decline.buyers == 0
    assert sum(control.buyers for control in runs["control"]) > 0


PATHS = """\
name: paths
seed: 5
traffic: {visitors_per_day: 300, days: 14}
coefficients:
  contact:
    abandon_if_missing: 0.75
    preferences: {phone: 0.4, email: 0.35, chat: 0.25}
resources:
  reps:
    capacity: 1
    service_min: {dist: exponential, mean: 10}
    schedule:
      shifts: [{days: [mon, tue, wed, thu, fri], from_h: 9, to_h: 17, capacity: 1}]
stages:
  - name: enquiry
    rate: 0.3
  - name: contact
    rate: 0.6
    resource: reps
    contact: {phone: {answer: at_once}}
    friction: {response_decay: true}
value:
  order_value: 100
variants:
  control: {}
  every_path:
    stages.contact.contact:
      phone: {answer: at_once}
      email: {answer: queued}
      chat: {answer: at_once, bot: {quality: 0.5}}
"""


def test_phone_only_loses_callers_out_of_hours_and_more_paths_win_them_back():
    runs = _variant_runs(PATHS)
    unanswered, missing = REASON_INDEX["unanswered"], REASON_INDEX["contact"]
    for phone, every in zip(runs["control"], runs["every_path"], strict=True):
        desk = phone.service["reps"]
        assert desk["wait_min"]["p90"] == 0.0  # a call is answered at once or not at all
        assert desk["answered_out_of_hours"] == 0.0
        lost = phone.lost_by_reason()[1]
        assert lost[unanswered] > desk["leads"] / 2  # 128 of 168 hours nobody is there
        assert lost[missing] > 0  # e-mail and chat people who leave: not offered
        every_lost = every.lost_by_reason()[1]
        assert every_lost[missing] == 0
        assert every_lost[unanswered] < lost[unanswered]
        assert every.service["reps"]["answered_out_of_hours"] > 0  # the bot
        assert every.buyers > phone.buyers


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        ("    contact: {phone: {answer: at_once}}\n", 15, "contact needs a resource"),
        ("    auto_reply: {decay_factor: 0}\n", 16, "greater than 0"),
        ("    contact: {phone: {answer: ring}}\n", 16, "'queued' or 'at_once'"),
    ],
)
def test_reply_and_path_mistakes_are_located(change, line, message):
    from funnelsim.scenario import ScenarioError

    text = DESK.replace("    resource: reps\n", "") if "needs" in message else DESK
    text = text.replace("    friction: {response_decay: true}\n", change + "    friction: {}\n")
    with pytest.raises(ScenarioError, match=message) as error:
        parse_scenario(text, "desk.yaml")
    assert error.value.line == line


def test_service_desks_give_the_same_outcomes_with_and_without_the_clock_walk():
    """Without an event log visitors walk to their first queue before the clock starts;
    with one every visitor arrives on the clock: office hours, priorities and automatic
    replies give the same outcomes either way, visitor by visitor."""
    from funnelsim import scaffold

    scenario = parse_scenario(scaffold.template_text("lead_funnel"))
    draws = VisitorDraws(replication_seeds(6, 1)[0], 400, 7)
    for name in scenario.variant_names:
        funnel = compile_funnel(scenario.variant(name))
        fast = simpy_engine.simulate(funnel, draws)
        logged = simpy_engine.simulate(funnel, draws, simpy_engine.EventLog(name))
        np.testing.assert_array_equal(fast.converted, logged.converted)
        np.testing.assert_array_equal(fast.outcome.lost, logged.outcome.lost)
        assert repr(fast.outcome.service) == repr(logged.outcome.service)  # NaN-safe


def test_event_log_has_a_reply_row_per_lead_the_desk_answered():
    """At a stage served by a resource, one ``replied`` row per lead answered (by a rep
    after the queue, or at once by a template), its ``waited_min`` the response minutes
    the service figures count: as many rows as ``answered``, as many within 5 minutes and
    1 hour as ``answered_within`` says."""
    from funnelsim import scaffold

    scenario = parse_scenario(scaffold.template_text("lead_funnel"))
    draws = VisitorDraws(replication_seeds(6, 1)[0], 400, 7)
    templates = {"stages.sales_dialogue.auto_reply.answers_share": 0.3}
    for name in ("control", "auto_reply"):
        log = simpy_engine.EventLog(name)
        variant = scenario.variant(name)
        funnel = compile_funnel(variant if name == "control" else variant.with_overrides(templates))
        figures = simpy_engine.simulate(funnel, draws, log).outcome.service["sales_reps"]
        minutes = np.array([row[6] for row in log.rows if row[7] == REPLIED])
        assert {row[3] for row in log.rows if row[7] == REPLIED} == {"sales_dialogue"}
        assert len(minutes) == figures["answered"] > 50
        for label, limit in service.ANSWERED_WITHIN_MIN.items():
            within = figures["answered_within"][label] * figures["leads"]
            assert (minutes <= limit).sum() == round(within), (name, label)
    assert figures["answered_automatically"] > 0  # auto_reply: templates answered too


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        (
            "from_h: 9, to_h: 17, capacity: 2}",
            "from_h: 9, to_h: 9, capacity: 2}",
            17,
            "after from_h",
        ),
        ("from_h: 9, to_h: 17, capacity: 2}", "from_h: 9, to_h: 17, capacity: 3}", 11, "more than"),
        ("days: [mon, tue,", "days: [monday, tue,", 17, "must be 'mon'"),
        ("  profile: {}\n", "  profile: {day_weights: [1, 1]}\n", 6, "at least 7"),
        ("  profile: {}\n", "  profile: {hour_weights: [" + "0, " * 23 + "0]}\n", 6, "positive"),
        ("      shifts:\n", "      utc_offset_h: 15\n      shifts:\n", 16, "less than or equal"),
    ],
)
def test_schedule_and_profile_mistakes_are_located(old, new, line, message):
    from funnelsim.scenario import ScenarioError

    with pytest.raises(ScenarioError, match=message) as error:
        parse_scenario(TEAM.replace(old, new, 1), "team.yaml")
    assert error.value.line == line


def test_contact_paths_and_contact_options_are_not_both_given():
    from funnelsim.scenario import ScenarioError

    text = PATHS.replace(
        "    friction: {response_decay: true}\n", "    friction: {contact_options: [phone]}\n"
    )
    with pytest.raises(ScenarioError, match="give the contact options once") as error:
        parse_scenario(text, "paths.yaml")
    assert error.value.line == 21


def test_explain_divides_the_load_by_the_servers_on_duty_over_the_week():
    from funnelsim import scaffold

    load = scaffold.expected_funnel(parse_scenario(TEAM)).resources[0]
    on_duty = 2 * 8 * 5 / HOURS_PER_WEEK
    assert load.utilisation == pytest.approx(load.arrivals_per_hour / 60 * 20 / on_duty)


def test_a_shift_is_overridden_by_its_position():
    from funnelsim.scenario import ScenarioError

    scenario = parse_scenario(TEAM).with_overrides({"resources.reps.schedule.shifts.0.capacity": 1})
    assert scenario.resources["reps"].schedule.shifts[0].capacity == 1
    with pytest.raises(ScenarioError, match=r"unknown name '1' \(known: 0\)"):
        parse_scenario(TEAM).with_overrides({"resources.reps.schedule.shifts.1.capacity": 1})


STAFFED = """\
name: staffed desk
seed: 9
traffic:
  visitors_per_day: 60
  days: 28
  channels:
    ads: {share: 0.5, cost_per_visit: 0.5}
    organic: {share: 0.5}
resources:
  desk:
    capacity: 2
    cost_per_hour: 30
    service_min: 0.000001
    schedule:
      shifts: [{days: [mon, tue, wed, thu, fri], from_h: 9, to_h: 17, capacity: 2}]
stages:
  - name: enquiry
    rate: 1.0
    resource: desk
value:
  order_value: 10
experiment:
  replications: 2
"""
STAFF_COST = 2 * 8 * 20 * 30  # two reps, 8 hours, the 20 weekdays of 28 days, 30 an hour


def test_cac_and_ltv_to_cac_count_the_staff_on_duty():
    """Every visitor is a lead and buys (rate 1, nobody gives up): the acquisition cost is
    0.5 per paid visit plus the reps' time, shared by the channels' leads, so per
    replication CAC = (0.5 v_ads + STAFF_COST) / v; a channel's share of the staff cost is
    STAFF_COST v_channel / v, and its CAC the mean of its cost over the mean of its
    customers (its visitors)."""
    from funnelsim.experiment import run_experiment
    from funnelsim.html_report import channel_ltv_cac
    from funnelsim.results import results_dict

    result = run_experiment(parse_scenario(STAFFED))
    ads = [r.economics.channel_visitors[0, 0] for r in result.replications]
    visitors = [r.visitors[0] for r in result.replications]
    hand = [(0.5 * a + STAFF_COST) / v for a, v in zip(ads, visitors, strict=True)]
    for rep, cac in zip(result.replications, hand, strict=True):
        assert rep.economics.channel_customers[0].sum() == rep.visitors[0]  # all bought
        assert rep.economics.cac[0] == pytest.approx(cac)
        assert rep.economics.ltv_to_cac[0] == pytest.approx(rep.economics.clv_per_customer[0] / cac)
        assert rep.service[0]["desk"]["cost_per_customer"] == pytest.approx(cac)
    data = results_dict(result)["variants"]["control"]
    assert data["cac"]["mean"] == pytest.approx(np.mean(hand))
    organic = [v - a for a, v in zip(ads, visitors, strict=True)]
    staff = {
        name: np.mean([STAFF_COST * c / v for c, v in zip(counts, visitors, strict=True)])
        for name, counts in (("ads", ads), ("organic", organic))
    }
    channels = data["channels"]
    assert channels["ads"]["cac"] == pytest.approx(
        (0.5 * np.mean(ads) + staff["ads"]) / np.mean(ads)
    )
    assert channels["organic"]["cac"] == pytest.approx(staff["organic"] / np.mean(organic))
    assert channels["organic"]["service_cost"] == pytest.approx(staff["organic"])
    assert channels["ads"]["spend"] == pytest.approx(0.5 * np.mean(ads))
    value = result.variants[0].channels["organic"].clv_per_customer
    assert channel_ltv_cac(result)["organic"]["control"] == pytest.approx(
        value / (staff["organic"] / np.mean(organic))
    )
