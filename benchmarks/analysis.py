"""Analysis benchmarks: PyMC funnel model cold and warm, nutpie vs PyMC NUTS, exact P(best).

Usage: .venv/bin/python benchmarks/analysis.py [--draws N] [--only PART]

1. The funnel model of 3 variants x 5 stages (20,000 visitors each, default 4 chains x
   1,000 draws), fitted by ``analyze(..., model="funnel")`` in fresh subprocesses that
   share a new, empty PyTensor cache (``PYTENSOR_FLAGS=base_compiledir=...``, which holds
   both the C and the Numba caches):
   - cold: the first fit in a process with the empty cache (everything compiles);
   - warm: the first fit in a second process once the cache is filled (a second
     ``funnelsim analyze``), and a second fit in the same process (a notebook);
   for each sampler (nutpie when installed, PyMC's NUTS). Importing PyMC is timed
   apart. Target: a warm fit under 10 s. A warm fit loads PyTensor's Numba function
   from the cache and hands it to nutpie as a Python callable
   (``funnelsim.analysis.nutpie_model``), so nothing is compiled again.
2. nutpie vs PyMC NUTS on the public marketing funnel test (skipped without
   ../shared/data), whose 100%-continue steps make the posterior hard to sample.
3. The BG/NBD model of ``analyze --transactions`` (2 variants x 2,000 customers drawn
   from the published CDNOW parameters, 39 weeks): nutpie vs PyMC NUTS, warm fit in the
   same process; and, with nutpie, the shipped parametrization (log r, log alpha/r,
   log a, log b/a) against the baseline that samples log r, log alpha, log a, log b
   directly (same posterior), in gradient evaluations per draw and seconds.
4. Exact P(best) and expected loss for 10 variants (quadrature) against a
   100,000-draw Monte Carlo estimate, median of 20 runs.
5. Issue 18's targets, as TARGET lines (``benchmarks/targets.py``): ``funnelsim analyze
   --model funnel`` on the marketing funnel, end to end in a new process with an empty
   compile cache (cold) and again with it filled (warm); its gradient evaluations per
   draw against the model before (``benchmarks/baseline.py``); ``--model revenue`` and
   ``--transactions`` warm. Each warm fit is timed beside the same command on the code of
   ``baseline.CALLBACK_BASELINE`` (its ``src`` from git, first on ``PYTHONPATH``), with
   CPU time and the load average, since a busy machine stretches wall times (a fit's
   chains run in parallel, so on an idle machine its wall time is below its CPU time).

Each figure is printed with its ratio to the baseline measured in the same run, so a
busy machine slows both sides alike. Wall times on a shared machine vary; compare the
ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import baseline
import numpy as np
import targets
from targets import Target

if TYPE_CHECKING:
    from funnelsim.analysis.data import ExperimentData
    from funnelsim.analysis.order_log import CustomerSummary

STAGES = ("landing", "product", "cart", "checkout")
TRUE_RATES = np.array(
    [
        [0.60, 0.50, 0.40, 0.70, 0.80],
        [0.60, 0.55, 0.40, 0.70, 0.80],
        [0.60, 0.50, 0.40, 0.72, 0.80],
    ]
)
VISITORS = 20_000
WARM_TARGET_S = 10.0
MARKETING = Path(__file__).resolve().parents[2] / "shared" / "data" / "marketing_ab_funnel.csv"


def _simulated() -> ExperimentData:
    """3 variants x 5 stages with known rates (``TRUE_RATES``), 20,000 visitors each."""
    from funnelsim.analysis.data import experiment_from_rates

    return experiment_from_rates(
        ["a", "b", "c"], TRUE_RATES, VISITORS, STAGES, np.random.default_rng(1)
    )


def _marketing() -> ExperimentData:
    """The public marketing funnel test (two arms, five steps) of ../shared/data."""
    from funnelsim.analysis.data import ColumnMap, read_experiment

    stages = tuple(f"step{i}" for i in range(1, 6))
    return read_experiment(MARKETING, ColumnMap(variant="test group", stages=stages))


def _customers(per_variant: int = 2000, weeks: float = 39.0) -> CustomerSummary:
    """Order histories of two variants drawn from the BG/NBD model with the CDNOW
    parameters (r 0.243, alpha 4.414, a 0.793, b 2.426), the second buying 50% more often."""
    from funnelsim.analysis.order_log import CustomerSummary

    rng = np.random.default_rng(7)
    rows = []
    for variant, alpha in (("a", 4.414), ("b", 4.414 / 1.5)):
        rates = rng.gamma(0.243, 1.0 / alpha, per_variant)
        dropouts = rng.beta(0.793, 2.426, per_variant)
        for rate, dropout in zip(rates, dropouts, strict=True):
            age = rng.uniform(0.0, weeks)
            t, last, repeats = 0.0, 0.0, 0
            while True:
                t += rng.exponential(1.0 / rate)
                if t > age:
                    break
                last, repeats = t, repeats + 1
                if rng.random() < dropout:
                    break
            rows.append((variant, repeats, last, age))
    variant, frequency, recency, age = (np.array(column) for column in zip(*rows, strict=True))
    return CustomerSummary(
        customer=np.arange(len(rows)).astype(str),
        variant=variant,
        frequency=frequency.astype(float),
        recency=recency,
        T=age,
        spend=np.full(len(rows), 30.0),
        unit_days=7.0,
    )


def _natural_bgnbd(summary: CustomerSummary) -> object:
    """Baseline: the same BG/NBD posterior, sampled on log r, log alpha, log a, log b."""
    import pymc as pm
    import pytensor.tensor as pt

    from funnelsim.analysis.bgnbd import PRIOR_SCALES, _distinct_histories, bgnbd_loglike

    (index, x, t_x, age), counts = _distinct_histories(summary)
    variant = index.astype(np.int64)
    with pm.Model(coords={"variant": summary.variants}) as model:
        r, alpha, a, b = (
            pm.HalfNormal(name, sigma=scale, dims="variant")[variant]
            for name, scale in PRIOR_SCALES.items()
        )
        loglike = bgnbd_loglike(
            r, alpha, a, b, pt.as_tensor(x), pt.as_tensor(t_x), pt.as_tensor(age), backend=pt
        )
        pm.Potential("loglike", (pt.as_tensor(counts) * loglike).sum())
    return model


def _fit(sampler: str, draws: int, dataset: str) -> tuple[float, int, float]:
    """One fit of ``dataset``: seconds, divergences and gradient evaluations per draw."""
    from funnelsim.analysis.api import analyze
    from funnelsim.analysis.bgnbd import bgnbd_model
    from funnelsim.analysis.models import SamplerSettings, sample

    start = time.perf_counter()
    if dataset == "marketing-before":
        old = baseline.load("src/funnelsim/analysis/models.py")
        fit = sample(old.funnel_model(_marketing(), "a"), SamplerSettings(sampler, draws, seed=1))  # type: ignore
        idata, found = fit.idata, fit.diagnostics
    elif dataset in ("orders", "orders-natural"):
        build = bgnbd_model if dataset == "orders" else _natural_bgnbd
        fit = sample(build(_customers()), SamplerSettings(sampler, draws=draws, seed=1))  # type: ignore
        idata, found = fit.idata, fit.diagnostics
    else:
        data = _marketing() if dataset == "marketing" else _simulated()
        result = analyze(data, "a", "funnel", sampler=sampler, draws=draws, seed=1)  # type: ignore
        assert result.diagnostics is not None
        idata, found = result.posterior, result.diagnostics
    steps = float(idata.sample_stats["n_steps"].mean()) if idata is not None else math.nan
    return time.perf_counter() - start, found.divergences, steps


def _worker(sampler: str, draws: int, dataset: str) -> None:
    """Subprocess: time importing PyMC, a first and a second fit; print one JSON line."""
    start = time.perf_counter()
    from funnelsim.analysis import models  # noqa: F401  (PyMC, ArviZ, PyTensor)

    import_s = time.perf_counter() - start
    (first, _, _), (second, divergences, steps) = (_fit(sampler, draws, dataset) for _ in range(2))
    print(
        json.dumps(
            {
                "import": import_s,
                "first": first,
                "second": second,
                "reliable": divergences == 0,
                "divergences": divergences,
                "steps_per_draw": steps,
            }
        )
    )


def _run_worker(
    sampler: str, draws: int, cache: Path, dataset: str = "simulated"
) -> dict[str, float]:
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={cache}")
    done = subprocess.run(
        [sys.executable, __file__, "--worker", sampler, "--draws", str(draws), "--data", dataset],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def funnel_model(draws: int) -> None:
    samplers = ["pymc"] + (["nutpie"] if importlib.util.find_spec("nutpie") else [])
    warm: dict[str, float] = {}
    print(f"Funnel model, 3 variants x 5 stages, 4 chains x {draws:,} draws (seconds):")
    for sampler in samplers:
        with tempfile.TemporaryDirectory(prefix="pytensor-bench-") as cache:
            cold = _run_worker(sampler, draws, Path(cache))
            second = _run_worker(sampler, draws, Path(cache))
        warm[sampler] = second["second"]
        print(
            f"  {sampler:>6}: import PyMC {cold['import']:.1f} (cold cache) / "
            f"{second['import']:.1f} (warm); fit: cold {cold['first']:.1f}, warm in a new "
            f"process {second['first']:.1f} ({cold['first'] / second['first']:.1f}x faster), "
            f"warm in the same process {second['second']:.1f} "
            f"({cold['first'] / second['second']:.1f}x faster); reliable "
            f"{second['reliable']}, divergences {second['divergences']}, "
            f"{second['steps_per_draw']:.1f} gradient evaluations per draw"
        )
        verdict = "meets" if second["second"] < WARM_TARGET_S else "MISSES"
        print(f"          warm (same process) under {WARM_TARGET_S:.0f} s: {verdict}")
    if len(warm) == 2:
        print(
            f"  nutpie vs PyMC NUTS, warm fit in the same process: "
            f"{warm['pymc'] / warm['nutpie']:.2f}x (above 1: nutpie faster)"
        )


def marketing_funnel(draws: int) -> None:
    """nutpie vs PyMC NUTS on real data whose funnel geometry is hard (100% steps)."""
    if not MARKETING.is_file() or importlib.util.find_spec("nutpie") is None:
        print("Marketing funnel: skipped (needs ../shared/data and nutpie)")
        return
    runs = {}
    with tempfile.TemporaryDirectory(prefix="pytensor-bench-") as cache:
        for sampler in ("nutpie", "pymc"):
            runs[sampler] = _run_worker(sampler, draws, Path(cache), "marketing")
    nutpie, pymc = runs["nutpie"], runs["pymc"]
    print(
        f"Marketing funnel (2 arms x 5 steps), warm fit in the same process: nutpie "
        f"{nutpie['second']:.1f} s, PyMC NUTS {pymc['second']:.1f} s; nutpie "
        f"{pymc['second'] / nutpie['second']:.1f}x faster; gradient evaluations per draw: "
        f"nutpie {nutpie['steps_per_draw']:.1f}, PyMC {pymc['steps_per_draw']:.1f}"
    )


def order_log_model(draws: int) -> None:
    """The BG/NBD model of ``analyze --transactions``: nutpie vs PyMC NUTS, and the shipped
    parametrization vs sampling log r, log alpha, log a, log b directly."""
    if importlib.util.find_spec("nutpie") is None:
        print("BG/NBD order-log model: skipped (needs nutpie)")
        return
    found = {}
    with tempfile.TemporaryDirectory(prefix="pytensor-bench-") as cache:
        for sampler, dataset in (
            ("nutpie", "orders"),
            ("pymc", "orders"),
            ("nutpie", "orders-natural"),
        ):
            found[sampler, dataset] = run = _run_worker(sampler, draws, Path(cache), dataset)
            print(
                f"  BG/NBD {dataset:>14} {sampler:>6}: first fit {run['first']:.1f} s, warm in "
                f"the same process {run['second']:.1f} s, {run['steps_per_draw']:.1f} "
                f"gradient evaluations per draw, divergences {run['divergences']}"
            )
    nutpie, pymc = found["nutpie", "orders"], found["pymc", "orders"]
    natural = found["nutpie", "orders-natural"]
    print(
        f"BG/NBD (2 variants x 2,000 customers), warm fit in the same process: nutpie "
        f"{nutpie['second']:.1f} s, PyMC NUTS {pymc['second']:.1f} s; nutpie "
        f"{pymc['second'] / nutpie['second']:.1f}x faster. Shipped parametrization vs log r, "
        f"log alpha, log a, log b: {natural['steps_per_draw'] / nutpie['steps_per_draw']:.1f}x "
        f"fewer gradient evaluations per draw, {natural['second'] / nutpie['second']:.1f}x "
        "faster"
    )


def _median_seconds(task: Callable[[], object], runs: int = 20) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        task()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def exact_prob_best() -> None:
    from funnelsim.analysis.conjugate import (
        beta_posteriors,
        expected_loss,
        expected_loss_draws,
        prob_best,
        prob_best_draws,
    )

    visitors = np.array([8000, 12000, 30000, 50000, 70000, 9000, 11000, 40000, 25000, 60000])
    conversions = np.array([400, 610, 1530, 2480, 3550, 440, 560, 2040, 1260, 3010])
    post = beta_posteriors(visitors, conversions)
    rng = np.random.default_rng(0)

    def monte_carlo() -> None:
        draws = rng.beta(post.alpha, post.beta, size=(100_000, post.alpha.size))
        prob_best_draws(draws)
        expected_loss_draws(draws)

    exact = _median_seconds(lambda: (prob_best(post), expected_loss(post)))
    sampled = _median_seconds(monte_carlo)
    print("Exact P(best) + expected loss, 10 variants (median of 20):")
    print(
        f"  quadrature {exact * 1e3:.1f} ms; Monte Carlo 100,000 draws "
        f"{sampled * 1e3:.1f} ms; quadrature is {sampled / exact:.1f}x faster"
    )


# --------------------------------------------------------------------------- issue 18

ANALYZE = "funnelsim analyze"
MARKETING_ARGS = (
    "--variant-column",
    "test group",
    "--stage-columns",
    "step1,step2,step3,step4,step5",
    "--model",
    "funnel",
)


def _analyze_seconds(
    args: list[str], cache: Path, source: Path | None = None
) -> tuple[float, float]:
    """Wall and CPU time (user + system) of ``funnelsim analyze ARGS -q`` in a new process
    on compile cache ``cache``; with ``source``, of the package in that folder."""
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={cache}")
    if source is not None:
        env["PYTHONPATH"] = str(source)
    command = [sys.executable, "-c", "from funnelsim.cli import main; main()", "analyze"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([*command, *args, "-q"], env=env, capture_output=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def _load() -> str:
    """The 1-minute load average, to read wall times by (2 cores here)."""
    return f"load {os.getloadavg()[0]:.1f}"


def _warm_seconds(args: list[str], cache: Path, source: Path | None = None) -> tuple[float, float]:
    """Wall and CPU time of a second ``funnelsim analyze ARGS`` on ``cache`` (the first
    fills it, if nothing did before)."""
    _analyze_seconds(args, cache, source)
    return _analyze_seconds(args, cache, source)


def _revenue_csv(path: Path) -> Path:
    """Per-visitor rows of a two-arm test with LogNormal order values (10,000 visitors)."""
    rng = np.random.default_rng(3)
    with path.open("w", encoding="utf-8") as stream:
        stream.write("variant,converted,revenue\n")
        for variant, rate, mean in (("a", 0.05, 60.0), ("b", 0.055, 62.0)):
            for _ in range(5000):
                bought = rng.random() < rate
                value = rng.lognormal(math.log(mean) - 0.125, 0.5) if bought else 0.0
                stream.write(f"{variant},{int(bought)},{value:.2f}\n")
    return path


def _order_log_csv(path: Path, per_variant: int = 2000, weeks: int = 39) -> Path:
    """An order log of two variants x ``per_variant`` customers drawn from the BG/NBD
    model with the CDNOW parameters (the second buying 50% more often), over ``weeks``."""
    rng = np.random.default_rng(7)
    start = np.datetime64("2024-01-01")
    with path.open("w", encoding="utf-8") as stream:
        stream.write("customer,variant,date,amount\n")
        for variant, alpha in (("a", 4.414), ("b", 4.414 / 1.5)):
            rates = rng.gamma(0.243, 1.0 / alpha, per_variant) / 7.0  # per day
            dropouts = rng.beta(0.793, 2.426, per_variant)
            for c, (rate, dropout) in enumerate(zip(rates, dropouts, strict=True)):
                first = rng.uniform(0.0, weeks * 7.0)
                t, day = first, [first]
                while True:
                    t += rng.exponential(1.0 / rate)
                    if t > weeks * 7.0:
                        break
                    day.append(t)
                    if rng.random() < dropout:
                        break
                for d in day:
                    date = start + np.timedelta64(int(d), "D")
                    stream.write(f"{variant}{c},{variant},{date},{rng.gamma(4.0, 7.5):.2f}\n")
    return path


def issue_targets(draws: int) -> None:
    """The analysis targets of issue 18, each as a TARGET line."""
    command = f"{ANALYZE} ../shared/data/marketing_ab_funnel.csv " + (
        '--variant-column "test group" --stage-columns step1,step2,step3,step4,step5 --model funnel'
    )
    if MARKETING.is_file():
        marketing = [str(MARKETING), *MARKETING_ARGS]
        with tempfile.TemporaryDirectory(prefix="pytensor-bench-") as cache:
            cold, cold_cpu = _analyze_seconds(marketing, Path(cache))
            warm, warm_cpu = _analyze_seconds(marketing, Path(cache))
            load = _load()
            with baseline.source_tree(baseline.CALLBACK_BASELINE) as source:
                before, before_cpu = _warm_seconds(marketing, Path(cache), source)
        whole = "end to end in a new process: imports, compile, 4 chains x 1,000 draws, readout"
        targets.report(
            Target(
                "analyze --model funnel, marketing funnel data: first fit, fresh install",
                f"{cold:.1f} s (CPU {cold_cpu:.1f} s, {_load()})",
                "-",
                "-",
                "< 60 s",
                cold < 60,
                f"cold: an empty compile cache; {whole}",
                command,
            )
        )
        targets.report(
            Target(
                "analyze --model funnel, marketing funnel data: later fit, new process",
                f"{warm:.1f} s (CPU {warm_cpu:.1f} s, {load})",
                f"{before:.1f} s (CPU {before_cpu:.1f} s, {_load()})",
                f"{before_cpu / warm_cpu:.1f}x less CPU; {cold / warm:.1f}x faster than cold",
                "< 10 s",
                warm < 10,
                f"warm: the compile cache filled by the first fit; {whole}; before: "
                f"{baseline.CALLBACK_BASELINE}, nutpie calling the model through Python",
                command,
            )
        )
        with tempfile.TemporaryDirectory(prefix="pytensor-bench-") as cache:
            before = _run_worker("nutpie", draws, Path(cache), "marketing-before")
            after = _run_worker("nutpie", draws, Path(cache), "marketing")
        ratio = before["steps_per_draw"] / after["steps_per_draw"]
        targets.report(
            Target(
                "funnel model, marketing funnel data: gradient evaluations per draw",
                f"{after['steps_per_draw']:.1f}",
                f"{before['steps_per_draw']:.1f}",
                f"{ratio:.1f}x fewer",
                "<= 20",
                after["steps_per_draw"] <= 20,
                f"mean NUTS leapfrog steps per draw (nutpie, 4 x {draws:,} draws), against the "
                f"model before issue 18 ({baseline.BASELINE}: pooling scale sampled)",
                "python benchmarks/analysis.py --only issue",
            )
        )
    warm_fits_against_before()


def warm_fits_against_before() -> None:
    """``analyze --model revenue`` and ``--transactions`` warm, today's code against
    :data:`baseline.CALLBACK_BASELINE`'s, each on its own compile cache."""
    with (
        tempfile.TemporaryDirectory(prefix="pytensor-bench-") as folder,
        baseline.source_tree(baseline.CALLBACK_BASELINE) as source,
    ):
        revenue = [str(_revenue_csv(Path(folder) / "revenue.csv")), "--model", "revenue"]
        orders = [str(_order_log_csv(Path(folder) / "orders.csv")), "--transactions"]
        for name, args, what in (
            ("analyze --model revenue", revenue, "2 variants x 5,000 visitors, per-visitor rows"),
            ("analyze --transactions", orders, "2 variants x 2,000 customers, BG/NBD"),
        ):
            warm, cpu = _warm_seconds(args, Path(folder) / "cache")
            load = _load()
            before, before_cpu = _warm_seconds(args, Path(folder) / "cache-before", source)
            targets.report(
                Target(
                    f"{name}: later fit, new process",
                    f"{warm:.1f} s (CPU {cpu:.1f} s, {load})",
                    f"{before:.1f} s (CPU {before_cpu:.1f} s, {_load()})",
                    f"{before_cpu / cpu:.1f}x less CPU",
                    "< 10 s",
                    warm < 10,
                    f"warm compile cache; {what}; end to end in a new process; before: "
                    f"{baseline.CALLBACK_BASELINE}, nutpie calling the model through Python",
                    "python benchmarks/analysis.py --only warm-fits",
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--worker", choices=["pymc", "nutpie"], help=argparse.SUPPRESS)
    parser.add_argument("--data", default="simulated", help=argparse.SUPPRESS)
    parser.add_argument(
        "--only",
        choices=["exact", "funnel", "marketing", "orders", "issue", "warm-fits"],
        help="Run one part only.",
    )
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.draws, args.data)
        return
    if args.only == "warm-fits":  # a part of "issue"
        warm_fits_against_before()
        return
    parts = {
        "exact": lambda: exact_prob_best(),
        "funnel": lambda: funnel_model(args.draws),
        "marketing": lambda: marketing_funnel(args.draws),
        "orders": lambda: order_log_model(args.draws),
        "issue": lambda: issue_targets(args.draws),
    }
    for name, part in parts.items():
        if args.only in (None, name):
            part()


if __name__ == "__main__":
    main()
