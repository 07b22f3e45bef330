"""Engine benchmarks: the speed and scale targets of issues 5 and 18, measured in one run.

Usage: .venv/bin/python benchmarks/engines.py [--quick] [--only PART]

Every figure is measured in this process (or in subprocesses it starts), and the
comparisons are ratios of timings taken side by side, best of a few repeats, so a
busy machine slows both sides alike. Prints one TARGET line per target (see
``benchmarks/targets.py``, which turns them into README.md's performance table) and,
at the end, that table.

Targets:
  1. vectorized engine >= 50x the SimPy engine's visitors/s on checkout.yaml;
  2. aggregate engine: 100 million visitors of checkout.yaml in under 1 s;
  3. SimPy engine >= 0.5x a plain hand-written SimPy model of lead_response.yaml;
  4. SimPy engine faster than Ciw on an M/M/c+M queue, both matching Erlang-A;
  5. `funnelsim --help` under 0.3 s; `funnelsim run scenarios/checkout.yaml` under 2 s
     end to end, under 4 s with `--report`, each beside the same command on main before
     (``baseline.RUN_BASELINE``), with where their results.json differ, and the time
     `--report` adds (reported);
  6. a 10-million-visitor run peaks under 1 GB of resident memory;
  7. Dask: speed-up of 2 workers over 1 on a LocalCluster (reported, no target);
  8. SimPy engine on lead_response.yaml >= 2x the engine before issue 18 (loaded from
     git by ``benchmarks/baseline.py``), with identical results;
  9. vectorized engine >= 25% of the machine's bound: NumPy's uniforms per second over
     the uniforms one visitor needs (counted in the engine), per CPU second, at 2 million
     visitors, beside the engine before issue 18 (identical results);
  10. aggregate engine, 100 M visitors x 4 variants with lifetime economics, under 2 s
     and 500 MB.

References:
    Garnett, O., Mandelbaum, A. & Reiman, M. (2002), "Designing a call center with
    impatient customers", Manufacturing & Service Operations Management 4(3) (Erlang-A).
    Palmer, G. I. et al. (2019), "Ciw: An open-source discrete event simulation library",
    Journal of Simulation 13(1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import pickle
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import baseline
import numpy as np
import simpy
import targets
from targets import Target

from funnelsim.engine import aggregate, simpy_engine, vectorized
from funnelsim.engine.draws import VisitorDraws, replication_seeds
from funnelsim.engine.model import VariantRuns, compile_funnel
from funnelsim.execution import Execution
from funnelsim.experiment import compile_variants, run_experiment
from funnelsim.queueing import erlang_a_abandonment
from funnelsim.scenario import Scenario, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
BIN = Path(sys.executable).parent
HEAVY_MODULES = (
    "numpy",
    "scipy",
    "pydantic",
    "yaml",
    "simpy",
    "pymc",
    "arviz",
    "pytensor",
    "dask",
    "distributed",
    "matplotlib",
    "pandas",
    "rich",
)


ROWS: list[Target] = []
CMD = "python benchmarks/engines.py --only "


def report(
    name: str,
    figure: str,
    goal: str,
    ok: bool | None,
    includes: str,
    command: str,
    before: str = "-",
    ratio: str = "-",
) -> None:
    """Print one target as its TARGET line (see benchmarks/targets.py) and keep it."""
    ROWS.append(targets.report(Target(name, figure, before, ratio, goal, ok, includes, command)))


def timed(function: Callable[[], Any]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _shares(scenario: Scenario) -> list[float]:
    return list(scenario.split_shares().values())


# --------------------------------------------------------------------------- 1. vectorized


def vectorized_vs_simpy(repeat: int) -> None:
    """Visitors/s over all variants of a replication (draws, plan, walk, split test)."""
    print("1. vectorized vs SimPy engine, checkout.yaml, all variants of a replication")
    scenario = load_scenario(SCENARIOS / "checkout.yaml")
    funnels, shares = compile_variants(scenario), _shares(scenario)
    traffic = scenario.traffic
    best = {"vectorized": 0.0, "simpy": 0.0}
    for seed in replication_seeds(2024, repeat):
        draws = VisitorDraws(seed, traffic.visitors_per_day, traffic.days)
        work = draws.n_visitors * len(funnels)
        for name, module in (("vectorized", vectorized), ("simpy", simpy_engine)):
            runs = 5 if name == "vectorized" else 1
            for _ in range(runs):
                seconds = timed(lambda m=module, d=draws: m.simulate_variants(funnels, d, shares))
                best[name] = max(best[name], work / seconds)
    ratio = best["vectorized"] / best["simpy"]
    print(
        f"   vectorized {best['vectorized']:,.0f} visitors/s, SimPy {best['simpy']:,.0f} visitors/s"
    )
    report(
        "vectorized / SimPy visitors per second (checkout.yaml)",
        f"{ratio:.0f}x",
        ">= 50x",
        ratio >= 50,
        "visitors x 4 variants per second of simulate_variants, best of runs; warm",
        f"{CMD}vectorized",
        ratio=f"{best['vectorized']:,.0f} vs {best['simpy']:,.0f} visitors/s",
    )


# --------------------------------------------------------------------------- 2. aggregate


def aggregate_run(visitors: float, repeat: int) -> None:
    print(f"2. aggregate engine, checkout.yaml, {visitors:,.0f} visitors, all variants")
    scenario = load_scenario(SCENARIOS / "checkout.yaml")
    funnels, shares = compile_variants(scenario), _shares(scenario)
    days = scenario.traffic.days
    seeds = replication_seeds(7, repeat)
    draws = [VisitorDraws(seed, visitors / days, days) for seed in seeds]
    seconds = min(timed(lambda d=d: aggregate.simulate_variants(funnels, d, shares)) for d in draws)
    runs = aggregate.simulate_variants(funnels, draws[0], shares)
    for name, funnel, outcome in zip(scenario.variant_names, funnels, runs.outcomes, strict=True):
        chance = aggregate.outcome_probabilities(funnel)[..., -1].prod(axis=0)
        exact = float(funnel.cell_probabilities @ chance)
        print(
            f"   {name:15s} conversion {outcome.conversion:.5f} (exact {exact:.5f}) "
            f"of {outcome.visitors:,} visitors"
        )
    report(
        f"aggregate engine, {visitors / 1e6:.0f}M visitors x {len(funnels)} variants, "
        "conversions only",
        f"{seconds:.2f} s",
        "< 1 s for 100M visitors",
        seconds < 1.0 if visitors >= 1e8 else None,
        "aggregate.simulate_variants: counts and order values, no lifetime economics; "
        "best of runs, warm",
        f"{CMD}aggregate",
    )


# --------------------------------------------------------------------------- 3. hand-written


def _scale_odds(p: float, k: float) -> float:
    return p * k / (1.0 - p + p * k)


def hand_written_lead_response(scenario: Scenario, seed: int) -> list[int]:
    """The simplest SimPy model of lead_response.yaml: one process per visitor, plain
    timeouts, a Resource with ``request | timeout`` for patience, Python's ``random``.
    Returns [visitors, reached the sales call, gave up waiting, signed]."""
    funnel = compile_funnel(scenario)
    assert [s.resource for s in scenario.stages] == [None, None, "sales_reps", None]
    rng = random.Random(seed)
    env = simpy.Environment()
    reps = simpy.Resource(env, scenario.resources["sales_reps"].capacity)
    channels = [c.share for c in scenario.traffic.channels.values()]
    contact = np.diff(funnel.contact_cdf[0], prepend=0.0)
    # continue probability per channel and stage, by preferred contact option
    factors = funnel.friction
    p = (
        funnel.base[:, 0, :, None]
        * (factors.page_load * factors.form_fields * factors.login_wall)[:, 0, :, 0, :]
        * factors.contact[:, 0, :, 0, :]
    )
    enquiry_dwell = scenario.stages[1].dwell_min.mean_value
    patience = scenario.stages[2].patience_min.mean_value
    delay = scenario.stages[2].response_delay_min.mean_value
    mu, sigma = scenario.resources["sales_reps"].service_min.log_params
    slope, reference = (
        scenario.coefficients.response.slope,
        scenario.coefficients.response.reference_min,
    )
    horizon = scenario.traffic.days * 1440.0
    rate = scenario.traffic.visitors_per_day / 1440.0
    counts = [0, 0, 0, 0]  # visitors, reached the sales call, gave up, signed

    def visitor(c: int, k: int) -> Any:
        if rng.random() >= p[0, c, k]:
            return
        yield env.timeout(rng.expovariate(1.0 / enquiry_dwell))
        if rng.random() >= p[1, c, k]:
            return
        counts[1] += 1
        start = env.now
        with reps.request() as request:
            result = yield request | env.timeout(rng.expovariate(1.0 / patience))
            if request not in result:
                counts[2] += 1
                return
            waited = env.now - start
            yield env.timeout(rng.lognormvariate(mu, sigma))
        answered = max(waited + rng.expovariate(1.0 / delay), reference)
        if rng.random() >= _scale_odds(p[2, c, k], (answered / reference) ** -slope):
            return
        if rng.random() < p[3, c, k]:
            counts[3] += 1

    def source() -> Any:
        while True:
            yield env.timeout(rng.expovariate(rate))
            if env.now > horizon:
                return
            counts[0] += 1
            c = rng.choices(range(len(channels)), channels)[0]
            k = rng.choices(range(len(contact)), contact)[0]
            env.process(visitor(c, k))

    env.process(source())
    env.run()
    return counts


def simpy_vs_hand_written(repeat: int) -> None:
    print("3. SimPy engine vs a hand-written SimPy model, lead_response.yaml (control)")
    scenario = load_scenario(SCENARIOS / "lead_response.yaml").variant("control")
    if scenario.value.referral.per_customer_per_month > 0:  # not in the plain model
        scenario = scenario.with_overrides({"value.referral.per_customer_per_month": 0.0})
    funnel = compile_funnel(scenario)
    traffic = scenario.traffic
    best = {"engine": 0.0, "hand": 0.0}
    shares = {"engine": [], "hand": []}
    for r, seed in enumerate(replication_seeds(11, repeat)):
        draws = VisitorDraws(seed, traffic.visitors_per_day, traffic.days)
        start = time.perf_counter()
        outcome = simpy_engine.simulate(funnel, draws).outcome
        best["engine"] = max(best["engine"], draws.n_visitors / (time.perf_counter() - start))
        shares["engine"].append(
            (outcome.reached[2].sum() / outcome.visitors, outcome.queues.abandonment[0])
        )
        start = time.perf_counter()
        visitors, called, abandoned, _ = hand_written_lead_response(scenario, r)
        best["hand"] = max(best["hand"], visitors / (time.perf_counter() - start))
        shares["hand"].append((called / visitors, abandoned / max(called, 1)))
    channels = np.diff(funnel.channel_cdf, prepend=0.0)
    contact = np.diff(funnel.contact_cdf[0], prepend=0.0)
    factors = funnel.friction
    fixed = (factors.page_load * factors.form_fields * factors.login_wall)[:2, 0, :, 0, 0]
    p = funnel.base[:2, 0] * fixed
    contact_factor = factors.contact[:2, 0, 0, 0, :]
    reach = float(
        channels
        @ ((p[0][:, None] * p[1][:, None]) * contact_factor[0] * contact_factor[1])
        @ contact
    )
    for name in ("engine", "hand"):
        values = np.array(shares[name])
        se = values[:, 0].std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.nan
        print(
            f"   {name:6s} {best[name]:,.0f} visitors/s; {values[:, 0].mean():.4f} +- {se:.4f} "
            f"reach the sales call (exact {reach:.4f}), {values[:, 1].mean():.3f} of them "
            "give up waiting"
        )
    ratio = best["engine"] / best["hand"]
    report(
        "SimPy engine / hand-written SimPy model (lead_response.yaml)",
        f"{ratio:.2f}x",
        ">= 0.5x",
        ratio >= 0.5,
        "visitors per second of one variant, best of runs; warm",
        f"{CMD}hand-written",
    )


# --------------------------------------------------------------------------- 4. Ciw


QUEUE = """\
name: M/M/2+M desk
traffic: {{visitors_per_day: {per_day}, days: {days}}}
resources:
  agents: {{capacity: 2, service_min: {{dist: exponential, mean: 5}}}}
stages:
  - name: desk
    rate: 1.0
    resource: agents
    patience_min: {{dist: exponential, mean: 10}}
value:
  order_value: 10
"""


def simpy_vs_ciw(repeat: int, days: int) -> None:
    print(f"4. M/M/2+M queue (lambda 0.5/min, mu 0.2/min, theta 0.1/min), {days} days")
    try:
        import ciw
    except ImportError:
        print("   ciw is not installed: pip install 'funnelsim[bench]'")
        report(
            "SimPy engine / Ciw customers per second",
            "not measured",
            "> 1x",
            False,
            "ciw is not installed",
            f"{CMD}ciw",
        )
        return
    lam, mu, theta = 0.5, 0.2, 0.1
    exact = erlang_a_abandonment(lam, mu, theta, 2)
    funnel = compile_funnel(parse_scenario(QUEUE.format(per_day=lam * 1440, days=days)))
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=lam)],
        service_distributions=[ciw.dists.Exponential(rate=mu)],
        number_of_servers=[2],
        reneging_time_distributions=[ciw.dists.Exponential(rate=theta)],
    )
    best = {"SimPy engine": 0.0, "Ciw": 0.0}
    shares: dict[str, list[float]] = {"SimPy engine": [], "Ciw": []}
    for r, seed in enumerate(replication_seeds(3, repeat)):
        start = time.perf_counter()
        queues = simpy_engine.simulate(funnel, VisitorDraws(seed, lam * 1440, days)).outcome.queues
        best["SimPy engine"] = max(
            best["SimPy engine"], queues.arrivals[0] / (time.perf_counter() - start)
        )
        shares["SimPy engine"].append(queues.abandoned[0] / queues.arrivals[0])
        start = time.perf_counter()
        ciw.seed(r)
        simulation = ciw.Simulation(network)
        simulation.simulate_until_max_time(days * 1440.0)
        kinds = [record.record_type for record in simulation.get_all_records()]
        done = kinds.count("service") + kinds.count("renege")
        best["Ciw"] = max(best["Ciw"], done / (time.perf_counter() - start))
        shares["Ciw"].append(kinds.count("renege") / done)
    from scipy import stats

    limit = float(stats.t.ppf(0.9995, repeat - 1))  # two-sided 0.1%, as tests/test_engine.py
    for name, values in shares.items():
        mean, se = np.mean(values), np.std(values, ddof=1) / math.sqrt(len(values))
        t = (mean - exact) / se
        print(
            f"   {name:12s} {best[name]:,.0f} customers/s; abandonment {mean:.4f} "
            f"+- {se:.4f} (Erlang-A {exact:.4f}, t = {t:+.1f})"
        )
        report(
            f"{name} abandonment vs Erlang-A {exact:.4f}",
            f"{mean:.4f}, t = {t:+.1f}",
            f"/t/ < {limit:.1f}",
            abs(t) < limit,
            f"{repeat} runs of {days} days, M/M/2+M",
            f"{CMD}ciw",
        )
    ratio = best["SimPy engine"] / best["Ciw"]
    report(
        "SimPy engine / Ciw customers per second",
        f"{ratio:.2f}x",
        "> 1x",
        ratio > 1,
        "customers served or reneged per second, best of runs",
        f"{CMD}ciw",
    )


# --------------------------------------------------------------------------- 5. command line


def _funnelsim(*args: str) -> list[str]:
    script = BIN / "funnelsim"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from funnelsim.cli import main; main()", *args]


def run_command(args: list[str], source: Path | None = None) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the command and its children) of a command;
    with ``source``, of the package in that folder (first on ``PYTHONPATH``)."""
    env = None if source is None else dict(os.environ, PYTHONPATH=str(source))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(args, capture_output=True, check=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def command_line(repeat: int, run_replications: int | None) -> None:
    print(
        "5. command line start-up and end-to-end run (wall time; CPU time for reference, "
        f"as other work on the machine slows the wall clock; load average "
        f"{os.getloadavg()[0]:.1f})"
    )
    heavy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, funnelsim.cli; "
            f"print(' '.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    print(f"   heavy modules imported by the CLI: {', '.join(heavy) or 'none'}")
    wall, cpu = np.min([run_command(_funnelsim("--help")) for _ in range(repeat)], axis=0)
    report(
        "funnelsim --help",
        f"{wall:.2f} s (CPU {cpu:.2f} s)",
        "< 0.3 s",
        wall < 0.3,
        "a new process, best of runs",
        f"{CMD}command-line",
    )
    run_import(repeat)
    args = ["run", str(SCENARIOS / "checkout.yaml")]
    if run_replications is not None:
        args += ["--replications", str(run_replications)]
    label = " ".join(["funnelsim", *args[:1], "scenarios/checkout.yaml", *args[2:]])
    with baseline.source_tree(baseline.RUN_BASELINE) as source:
        _compare_results(args, source)
        run = run_against_before(label, args, [], repeat, source)
        page = run_against_before(
            f"{label} --report report.html", args, ["--report"], repeat, source
        )
    report_added(label, run, page)


def _python_funnelsim(*args: str) -> list[str]:
    """``funnelsim ARGS`` run by this Python (so ``PYTHONPATH`` picks the package)."""
    return [sys.executable, "-c", "from funnelsim.cli import main; main()", *args]


def _best_of(args: list[str], extra: list[str], repeat: int, source: Path) -> list[np.ndarray]:
    """Best wall and CPU time of ``funnelsim ARGS EXTRA`` today and at ``source``, runs
    alternating so that load on the machine falls on both alike (``--report`` gets a new
    file each time)."""
    runs: list[list[tuple[float, float]]] = [[], []]
    with tempfile.TemporaryDirectory() as folder:
        for r in range(repeat):
            for side, tree in enumerate((None, source)):
                page = [str(Path(folder) / f"{r}-{side}.html")] if extra else []
                runs[side].append(run_command(_python_funnelsim(*args, *extra, *page), tree))
    return [np.min(side, axis=0) for side in runs]


def run_against_before(
    label: str, args: list[str], extra: list[str], repeat: int, source: Path
) -> list[np.ndarray]:
    """``label`` (``funnelsim run``, with ``--report`` when ``extra`` says so) timed beside
    the same command on the code of :data:`baseline.RUN_BASELINE`; returns both best
    (wall, CPU) pairs, today's first."""
    timings = _best_of(args, extra, repeat, source)
    (wall, cpu), (before, before_cpu) = timings
    goal = 4.0 if extra else 2.0
    what = "plus the HTML report with its figures" if extra else "readout, table"
    report(
        label,
        f"{wall:.1f} s (CPU {cpu:.1f} s)",
        f"< {goal:.0f} s",
        wall < goal,
        f"end to end in a new process: imports, 200 replications x 4 variants with "
        f"lifetime economics, worlds of the assumptions, {what}; on {os.cpu_count()} "
        f"cores, best of {repeat} runs alternating with before: {baseline.RUN_BASELINE}; "
        "Python's bytecode cache on, as on a user's second run",
        label,
        before=f"{before:.1f} s (CPU {before_cpu:.1f} s)",
        ratio=f"{before_cpu / cpu:.1f}x less CPU, {before / wall:.1f}x faster",
    )
    return timings


def report_added(label: str, run: list[np.ndarray], page: list[np.ndarray]) -> None:
    """What ``--report`` adds to ``label``: the best ``run --report`` less the best ``run``
    (wall, CPU), today and at :data:`baseline.RUN_BASELINE`."""
    (wall, cpu), (before, before_cpu) = (page[side] - run[side] for side in (0, 1))
    print(f"   load average while measuring: {os.getloadavg()[0]:.1f}")
    report(
        f"time --report adds to {label}",
        f"{wall:.1f} s (CPU {cpu:.1f} s)",
        "-",
        None,
        "best run --report less best run (both above): importing matplotlib, building "
        "the figures, encoding them, writing the page",
        f"{CMD}command-line",
        before=f"{before:.1f} s (CPU {before_cpu:.1f} s)",
        ratio=f"{before_cpu / cpu:.1f}x less CPU, {before / wall:.1f}x faster",
    )


def _differences(now: Any, before: Any, path: str = "") -> list[tuple[str, float]]:
    """Where two JSON documents differ: (path, absolute difference, NaN if not numbers); a
    key only one of them has is a difference at its path."""
    if isinstance(now, dict) and isinstance(before, dict):
        return [
            d
            for key in {**before, **now}
            for d in (
                _differences(now[key], before[key], f"{path}.{key}")
                if key in now and key in before
                else [(f"{path}.{key}", math.nan)]
            )
        ]
    if isinstance(now, list) and isinstance(before, list) and len(now) == len(before):
        return [
            d
            for i, (a, b) in enumerate(zip(now, before, strict=True))
            for d in _differences(a, b, f"{path}[{i}]")
        ]
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (now, before))
    if now == before:
        return []
    return [(path, abs(now - before) if numbers else math.nan)]


def _compare_results(args: list[str], source: Path) -> None:
    """Print where today's results.json differs from the one of :data:`baseline.RUN_BASELINE`
    for the same scenario and seed."""
    documents = [
        json.loads(
            subprocess.run(
                _python_funnelsim(*args, "--json"),
                capture_output=True,
                check=True,
                text=True,
                env=None if tree is None else dict(os.environ, PYTHONPATH=str(tree)),
            ).stdout
        )
        for tree in (None, source)
    ]
    found = _differences(*documents)
    if not found:
        print(f"   results.json: identical to {baseline.RUN_BASELINE}'s for the same seed")
        return
    largest = max(found, key=lambda d: -1.0 if math.isnan(d[1]) else d[1])
    print(
        f"   results.json: {len(found)} values differ from {baseline.RUN_BASELINE}'s for the "
        f"same seed; largest difference {largest[1]:.2g} at {largest[0]}; differing: "
        + ", ".join(sorted({re.sub(r"\[\d+\]", "[]", path) for path, _ in found}))
    )


def _import_seconds(modules: str, repeat: int) -> float:
    code = f"import time; t = time.perf_counter(); import {modules}; print(time.perf_counter() - t)"
    return min(
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(repeat)
    )


def run_import(repeat: int) -> None:
    """What `funnelsim run` imports, against the same plus scipy.stats (imported by the
    run path before issue 18: the conjugate readout and the t-interval)."""
    probe = (
        "import sys; from funnelsim.cli import main; "
        "sys.argv = ['funnelsim', 'run', 'scenarios/checkout.yaml', '-q', '--replications', "
        "'2', '--workers', '1']\ntry: main()\nexcept SystemExit: pass\n"
        "print(int('scipy.stats' in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    modules = "funnelsim.cli, funnelsim.report, funnelsim.experiment, scipy.special"
    now = _import_seconds(modules, repeat)
    before = _import_seconds(modules + ", scipy.stats", repeat)
    report(
        "imports of funnelsim run",
        f"{now:.2f} s; scipy.stats {'loaded' if loaded == '1' else 'not loaded'}",
        "scipy.stats not loaded",
        loaded == "0",
        "import of the CLI, report, experiment and scipy.special in a new process, "
        "against the same plus scipy.stats (before); best of runs",
        f"{CMD}command-line",
        before=f"{before:.2f} s",
        ratio=f"{before / now:.1f}x faster",
    )


# --------------------------------------------------------------------------- 6. memory


def peak_memory(visitors: int) -> None:
    print(f"6. peak memory of a {visitors:,}-visitor run (checkout.yaml, 1 replication)")
    days = load_scenario(SCENARIOS / "checkout.yaml").traffic.days
    command = _funnelsim(
        "run",
        str(SCENARIOS / "checkout.yaml"),
        "--replications",
        "1",
        "--visitors-per-day",
        f"{visitors / days:.0f}",
        "--workers",
        "1",
        "--allow-large",
        "-q",
    )
    if Path("/usr/bin/time").exists():
        done = subprocess.run(
            ["/usr/bin/time", "-v", *command], capture_output=True, text=True, check=True
        )
        found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
        assert found is not None, done.stderr
        kilobytes, how = int(found.group(1)), "/usr/bin/time -v"
    else:
        probe = (
            "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
            "capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN)"
            ".ru_maxrss)"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe, *command], capture_output=True, text=True, check=True
        )
        kilobytes, how = int(done.stdout.split()[-1]), "resource.getrusage (no /usr/bin/time)"
    print(f"   measured with {how}")
    megabytes = kilobytes / 1024
    report(
        f"peak RSS, {visitors / 1e6:.0f}M-visitor run",
        f"{megabytes:,.0f} MB",
        "< 1 GB",
        megabytes < 1024,
        f"funnelsim run checkout.yaml, 1 replication, vectorized engine; {how}",
        f"{CMD}memory",
    )


# --------------------------------------------------------------------------- 7. Dask


def dask_speedup(replications: int) -> None:
    print(f"7. Dask LocalCluster, checkout.yaml, {replications} replications")
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        print("   Dask is not installed: pip install 'funnelsim[dask]'")
        return
    scenario = load_scenario(SCENARIOS / "checkout.yaml")
    seconds, results = {}, {}
    for workers in (1, 2):
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,
        ):
            run_experiment(scenario, workers * 2, Execution(workers=workers, dask=client))
            start = time.perf_counter()
            results[workers] = run_experiment(
                scenario, replications, Execution(workers=workers, dask=client)
            )
            seconds[workers] = time.perf_counter() - start
        print(f"   {workers} worker(s): {seconds[workers]:.1f} s")
    same = [r.conversion.tolist() for r in results[1].replications] == [
        r.conversion.tolist() for r in results[2].replications
    ]
    print(f"   identical results with 1 and 2 workers: {same}")
    speedup = seconds[1] / seconds[2]
    report(
        "Dask LocalCluster, 2 workers over 1",
        f"{speedup:.2f}x",
        "reported",
        None,
        f"{replications} replications of checkout.yaml; identical results: {same}",
        f"{CMD}dask",
    )


# --------------------------------------------------------------------------- 8. issue 18


def _counts_only(runs: VariantRuns) -> bytes:
    """The runs without the service-desk metrics, which the engine before issue 18 did
    not record (issue 17 added them): what both engines must agree on."""
    outcomes = [dataclasses.replace(outcome, service={}) for outcome in runs.outcomes]
    return pickle.dumps(runs._replace(outcomes=outcomes))


def simpy_speedup(repeat: int) -> None:
    """Today's SimPy engine against the one before issue 18 (benchmarks/baseline.py), on
    the same draws in this process; their results must be identical."""
    print(f"8. SimPy engine now vs before ({baseline.BASELINE}), lead_response.yaml")
    old = baseline.load("src/funnelsim/engine/simpy_engine.py")
    scenario = load_scenario(SCENARIOS / "lead_response.yaml")
    funnels, shares = compile_variants(scenario), _shares(scenario)
    traffic = scenario.traffic
    best = {"now": 0.0, "before": 0.0}
    identical = True
    for seed in replication_seeds(5, repeat):
        draws = VisitorDraws(seed, traffic.visitors_per_day, traffic.days)
        work = draws.n_visitors * len(funnels)
        runs = {}
        for name, module in (("before", old), ("now", simpy_engine)):
            start = time.perf_counter()
            runs[name] = module.simulate_variants(funnels, draws, shares)
            best[name] = max(best[name], work / (time.perf_counter() - start))
        identical &= _counts_only(runs["now"]) == _counts_only(runs["before"])
    ratio = best["now"] / best["before"]
    report(
        "SimPy engine, lead_response.yaml (3 variants)",
        f"{best['now']:,.0f} visitors/s",
        ">= 2x before",
        ratio >= 2.0,
        f"visitors x variants per second of simulate_variants, best of {repeat}; "
        f"identical results to before (the service metrics it did not record aside): "
        f"{identical}",
        f"{CMD}simpy",
        before=f"{best['before']:,.0f} visitors/s",
        ratio=f"{ratio:.2f}x",
    )


class CountingDraws(VisitorDraws):
    """Visitor draws that count the uniforms an engine asks for."""

    drawn = 0

    def uniforms(
        self, stream: str, start: int = 0, stop: int | None = None, width: int | None = None
    ) -> np.ndarray:
        values = super().uniforms(stream, start, stop, width)
        self.drawn += values.size
        return values


def _cpu() -> float:
    """CPU seconds (user + sys) of this process."""
    return time.process_time()


def _rates(work: float, function: Callable[[], Any]) -> tuple[tuple[float, float], Any]:
    """((work per wall second, work per CPU second), what ``function`` returned)."""
    start, start_cpu = time.perf_counter(), _cpu()
    result = function()
    return (work / (time.perf_counter() - start), work / (_cpu() - start_cpu)), result


def vectorized_bound(visitors: float, repeat: int) -> None:
    """Visitors per second of the vectorized engine against the machine's bound: the rate
    at which NumPy draws the uniforms one visitor needs, timed in this run.

    The uniforms one visitor needs are counted, not assumed: the engine's draws are
    tallied over a replication (on checkout.yaml: segment, channel, payment method, one
    per stage, order value, test arm; the contact option is not drawn because no stage
    of any variant offers contact options). The bound draws as many uniforms with
    NumPy's PCG64 into one reused 1 MiB-visitor buffer: generation alone, no allocation.
    """
    scenario = load_scenario(SCENARIOS / "checkout.yaml")
    days = scenario.traffic.days
    scenario = scenario.with_overrides({"traffic.visitors_per_day": visitors / days})
    funnels, shares = compile_variants(scenario), _shares(scenario)
    print(f"9. vectorized engine vs NumPy's uniform throughput, checkout.yaml, {visitors:,.0f}")
    counted = CountingDraws(replication_seeds(9, 1)[0], visitors / days, days)
    vectorized.simulate_variants(funnels, counted, shares)
    n = counted.n_visitors
    per_visitor = counted.drawn / n
    old = baseline.load("src/funnelsim/engine/vectorized.py")
    buffer = np.empty(1 << 20)
    rng = np.random.Generator(np.random.PCG64(9))
    chunks = max(1, round(n * per_visitor / buffer.size))
    best = {"engine": (0.0, 0.0), "before": (0.0, 0.0), "uniforms": (0.0, 0.0)}
    identical = True
    for seed in replication_seeds(9, repeat):
        draws = VisitorDraws(seed, visitors / days, days)
        runs = {}
        for _ in range(3):  # alternating, so a busy moment slows all three alike
            for name, module in (("engine", vectorized), ("before", old)):
                rates, runs[name] = _rates(
                    draws.n_visitors,
                    lambda m=module, d=draws: m.simulate_variants(funnels, d, shares),
                )
                best[name] = (max(best[name][0], rates[0]), max(best[name][1], rates[1]))
            rates, _ = _rates(
                chunks * buffer.size, lambda: [rng.random(out=buffer) for _ in range(chunks)]
            )
            best["uniforms"] = (
                max(best["uniforms"][0], rates[0]),
                max(best["uniforms"][1], rates[1]),
            )
        identical &= pickle.dumps(runs["engine"]) == pickle.dumps(runs["before"])
    (engine_wall, engine_cpu), (before_wall, before_cpu) = best["engine"], best["before"]
    bound_wall, bound_cpu = (rate / per_visitor for rate in best["uniforms"])
    share = engine_cpu / bound_cpu
    load = os.getloadavg()[0]
    print(
        f"   engine {engine_cpu:,.0f} visitors/s per CPU second ({engine_wall:,.0f} per wall "
        f"second); before ({baseline.BASELINE}) {before_cpu:,.0f} ({before_wall:,.0f} wall); "
        f"identical results: {identical}\n"
        f"   bound {bound_cpu:,.0f} visitors/s per CPU second ({bound_wall:,.0f} wall) = "
        f"NumPy PCG64 {bound_cpu * per_visitor:,.0f} uniforms/s / {per_visitor:g} uniforms "
        f"per visitor\n"
        f"   {share:.0%} of the bound by CPU time, {engine_wall / bound_wall:.0%} by wall time "
        f"(before: {before_cpu / bound_cpu:.0%}, {before_wall / bound_wall:.0%}); load average "
        f"{load:.1f} on {os.cpu_count()} cores"
    )
    report(
        "vectorized engine / NumPy uniform bound (checkout.yaml, 4 variants)",
        f"{share:.0%}",
        ">= 25%",
        share >= 0.25,
        f"{engine_cpu:,.0f} visitors/s (each through all 4 variants, {n:,} visitors) against "
        f"{bound_cpu:,.0f}/s = NumPy PCG64 uniforms/s / {per_visitor:g} uniforms per visitor "
        f"(counted in the engine); per CPU second (user+sys), best of runs, warm; by wall "
        f"time {engine_wall / bound_wall:.0%}; identical results to before: {identical}; "
        f"load {load:.1f}",
        f"{CMD}bound",
        before=f"{before_cpu / bound_cpu:.0%}",
        ratio=f"{engine_cpu / before_cpu:.1f}x less CPU",
    )


AGGREGATE_MEMORY = """\
import resource, sys, time
from funnelsim.execution import Execution
from funnelsim.experiment import run_experiment
from funnelsim.scenario import load_scenario
scenario = load_scenario(sys.argv[1])
days = scenario.traffic.days
scenario = scenario.with_overrides({"traffic.visitors_per_day": float(sys.argv[2]) / days})
cpu = lambda u: u.ru_utime + u.ru_stime
start, start_cpu = time.perf_counter(), cpu(resource.getrusage(resource.RUSAGE_SELF))
run_experiment(scenario, 1, Execution(engine="aggregate"))
seconds = time.perf_counter() - start
used = resource.getrusage(resource.RUSAGE_SELF)
print(seconds, cpu(used) - start_cpu, used.ru_maxrss)
"""


def _aggregate_child(visitors: float, source: Path | None) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one aggregate replication in a new
    process; with ``source``, of the package in that folder."""
    done = subprocess.run(
        [sys.executable, "-c", AGGREGATE_MEMORY, str(SCENARIOS / "checkout.yaml"), str(visitors)],
        capture_output=True,
        text=True,
        check=True,
        env=None if source is None else dict(os.environ, PYTHONPATH=str(source)),
    )
    seconds, cpu, kilobytes = (float(v) for v in done.stdout.split()[-3:])
    return seconds, cpu, kilobytes / 1024  # ru_maxrss is in kilobytes on Linux


def aggregate_economics(visitors: float) -> None:
    """The aggregate engine with everything a run computes (lifetime economics, readout),
    one replication in a new process: its time and its peak memory, beside the code of
    :data:`baseline.AGGREGATE_BASELINE` (customers' lives drawn one by one)."""
    print(f"10. aggregate engine with lifetime economics, {visitors:,.0f} visitors")
    with baseline.source_tree(baseline.AGGREGATE_BASELINE) as source:
        before = _aggregate_child(visitors, source)
    seconds, cpu, megabytes = _aggregate_child(visitors, None)
    load = os.getloadavg()[0]
    big = visitors >= 1e8
    report(
        f"aggregate engine, {visitors / 1e6:.0f}M visitors x 4 variants, with lifetime economics",
        f"{seconds:.2f} s (CPU {cpu:.2f} s), peak {megabytes:,.0f} MB",
        "< 2 s and < 500 MB",
        (seconds < 2.0 and megabytes < 500) if big else None,
        "run_experiment(Execution(engine='aggregate')), 1 replication of checkout.yaml: counts, "
        "order values, customers' lifetimes by cohort, economics, readout and the worlds of "
        "the assumptions; peak RSS of the whole process (imports included); first run in a "
        f"new process; load average {load:.1f}; before: {baseline.AGGREGATE_BASELINE}",
        f"{CMD}aggregate-economics",
        before=f"{before[0]:.2f} s (CPU {before[1]:.2f} s), peak {before[2]:,.0f} MB",
        ratio=f"{before[1] / cpu:.1f}x less CPU, {before[2] / megabytes:.1f}x less memory",
    )


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Fewer repeats and smaller runs (a smoke test, not the figures).",
    )
    parts = (
        "vectorized",
        "aggregate",
        "hand-written",
        "ciw",
        "command-line",
        "memory",
        "dask",
        "simpy",
        "bound",
        "aggregate-economics",
    )
    parser.add_argument("--only", choices=parts, help="Run one part only.")
    args = parser.parse_args()
    quick = args.quick
    # Commands are timed as a user's second run finds them, with Python's bytecode cache:
    # where the environment turns it off, every run would recompile every module.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"funnelsim engine benchmarks: {os.cpu_count()} cores, load average {load:.1f}\n")
    runs: dict[str, Callable[[], None]] = {
        "vectorized": lambda: vectorized_vs_simpy(repeat=1 if quick else 3),
        "aggregate": lambda: aggregate_run(1e7 if quick else 1e8, repeat=1 if quick else 3),
        "hand-written": lambda: simpy_vs_hand_written(repeat=1 if quick else 3),
        "ciw": lambda: simpy_vs_ciw(repeat=3 if quick else 16, days=2 if quick else 10),
        "command-line": lambda: command_line(
            repeat=2 if quick else 3, run_replications=10 if quick else None
        ),
        "memory": lambda: peak_memory(1_000_000 if quick else 10_000_000),
        "dask": lambda: dask_speedup(8 if quick else 48),
        "simpy": lambda: simpy_speedup(repeat=1 if quick else 3),
        "bound": lambda: vectorized_bound(2e5 if quick else 2e6, repeat=1 if quick else 3),
        "aggregate-economics": lambda: aggregate_economics(1e7 if quick else 1e8),
    }
    for name in parts:
        if args.only in (None, name):
            runs[name]()
    print("\n" + targets.markdown(ROWS))
    print(f"\n(load average at the end: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
