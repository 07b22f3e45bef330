"""Calibration benchmark: the speed target of issue 14.

Usage: .venv/bin/python benchmarks/calibration.py [--visitors 1000000]

Target, printed as a TARGET line (``benchmarks/targets.py``): ``funnelsim calibrate``
of a 5-stage, 2-segment funnel (every stage rate uncertain, page-load friction on the
landing page so ``page_load.max_extra`` is fitted too) from aggregated counts per
segment, end to end in a new process with a warm compile cache, in under 30 s. The
counts are drawn at ``--visitors`` per segment: the model sees one Binomial per stage
and cell, so the time does not grow with the visitors. The first run, on an empty
compile cache, is reported beside it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import targets
from targets import Target

from funnelsim.calibration.model import continue_probabilities, control_of, funnel_terms
from funnelsim.scenario import parse_scenario

STAGES = ("landing", "product", "cart", "checkout", "payment")
SCENARIO = (
    """name: five stages, two segments
traffic: {visitors_per_day: 5000, days: 1}
segments:
  mobile: {share: 0.6, page_load_s: 3.5}
  desktop: {share: 0.4, page_load_s: 1.2}
stages:
"""
    + "".join(
        f"  - name: {name}\n    rate: {{uncertain: beta, mean: 0.6, sd: 0.2}}\n"
        + ("    friction: {page_load: true}\n" if name == "landing" else "")
        for name in STAGES
    )
    + "value: {order_value: 50}\n"
)
COMMAND = "python benchmarks/calibration.py"


def write_counts(path: Path, visitors: int) -> None:
    """Counts per segment drawn at the priors' means (Binomial stage by stage)."""
    terms = funnel_terms(control_of(parse_scenario(SCENARIO)))
    p = continue_probabilities(terms.values, terms)
    rng = np.random.default_rng(1)
    rows = ["segment," + ",".join(STAGES) + ",purchase"]
    for g, segment in enumerate(terms.segments):
        reached = [visitors]
        for s in range(len(STAGES)):
            reached.append(int(rng.binomial(reached[-1], p[s, g, 0])))
        rows.append(",".join([segment, *map(str, reached)]))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def calibrate_seconds(folder: Path, cache: Path) -> float:
    """Wall time of ``funnelsim calibrate`` in a new process on compile cache ``cache``."""
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={cache}")
    command = [str(Path(sys.executable).parent / "funnelsim"), "calibrate"]
    command += [str(folder / "five.yaml"), "--data", str(folder / "counts.csv")]
    command += ["--out", str(folder / "out"), "--force"]
    start = time.perf_counter()
    subprocess.run(command, env=env, capture_output=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="calibrate-bench-") as name:
        folder = Path(name)
        (folder / "five.yaml").write_text(SCENARIO, encoding="utf-8")
        write_counts(folder / "counts.csv", args.visitors)
        cold = calibrate_seconds(folder, folder / "cache")
        warm = calibrate_seconds(folder, folder / "cache")
    what = (
        f"end to end in a new process: imports, reading the counts ({args.visitors:,} "
        "visitors per segment), 4 chains x 1,000 draws, predictive check, three files"
    )
    targets.report(
        Target(
            "calibrate, 5 stages x 2 segments, aggregated counts: later fit, new process",
            f"{warm:.1f} s",
            f"{cold:.1f} s (empty compile cache)",
            f"{cold / warm:.1f}x faster than cold",
            "< 30 s",
            warm < 30,
            f"warm compile cache; {what}",
            COMMAND,
        )
    )


if __name__ == "__main__":
    main()
