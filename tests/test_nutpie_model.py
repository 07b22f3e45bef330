"""funnelsim's nutpie model (C callbacks of PyTensor's cached Numba function, or Python
callables for models with data containers) draws the same numbers as nutpie's own compiled
model, and a second process compiles nothing."""

import subprocess
import sys

import numpy as np
import pymc as pm
import pytest

from funnelsim.analysis import models
from funnelsim.analysis.data import experiment_from_counts
from funnelsim.analysis.nutpie_model import compile_model

nutpie = pytest.importorskip("nutpie")
CompiledPyMCModel = pytest.importorskip("nutpie.compile_pymc").CompiledPyMCModel


def _draws(compiled: object) -> object:
    return nutpie.sample(compiled, draws=60, tune=60, chains=2, seed=5, progress_bar=False)


def test_the_draws_are_nutpies_own_for_the_same_seed() -> None:
    data = experiment_from_counts(["A", "B"], [1000, 1000], [100, 120])
    model = models.funnel_model(data, "A")
    compiled = compile_model(model)
    assert isinstance(compiled, CompiledPyMCModel)  # C callbacks: chains without the GIL
    ours, theirs = _draws(compiled), _draws(nutpie.compile_pymc_model(model))
    for group in ("posterior", "sample_stats", "warmup_posterior"):
        assert ours[group].equals(theirs[group]), group  # type: ignore[index]
    assert set(ours.posterior) == {  # type: ignore[attr-defined]
        "stage_logit_z",
        "stage_rate",
        "conversion",
        "stage_difference",
    }


def test_data_containers_reach_the_log_density() -> None:
    # Normal mean with known sd 1 and a flat-ish prior: the posterior mean is the data mean
    # shrunk by n / (n + 1/100), the posterior sd 1 / sqrt(n + 1/100).
    observed = np.random.default_rng(2).normal(3.0, 1.0, 50)
    with pm.Model() as model:
        values = pm.Data("values", observed)
        mean = pm.Normal("mean", 0.0, 10.0)
        pm.Normal("y", mean, 1.0, observed=values)
        pm.Deterministic("twice", 2 * mean)
    compiled = compile_model(model)
    assert not isinstance(compiled, CompiledPyMCModel)  # data read through Python
    idata = nutpie.sample(compiled, draws=500, tune=300, chains=2, seed=1, progress_bar=False)
    n = observed.size
    exact_mean, exact_sd = observed.sum() / (n + 0.01), 1 / np.sqrt(n + 0.01)
    draws = idata.posterior["mean"].values.ravel()
    # 1,000 draws of a near-independent chain: Monte Carlo sd of the mean below
    # exact_sd / sqrt(250) even at an effective sample size of a quarter.
    assert abs(draws.mean() - exact_mean) < 4 * exact_sd / np.sqrt(250)
    np.testing.assert_array_equal(idata.posterior["twice"].values, 2 * idata.posterior["mean"])


FUNNEL = (
    "from funnelsim.analysis.data import experiment_from_counts\n"
    "data = experiment_from_counts(['A', 'B'], [1000, 1000], [100, 120])\n"
    "model = models.funnel_model(data, 'A')\n"
)
BGNBD = (  # its gradient once held the digamma function, which PyTensor cannot cache
    "import numpy as np\n"
    "from funnelsim.analysis.bgnbd import bgnbd_model\n"
    "from funnelsim.analysis.order_log import CustomerSummary\n"
    "n = np.array([0.0, 2.0, 5.0, 1.0])\n"
    "model = bgnbd_model(CustomerSummary(np.array(['c1', 'c2', 'c3', 'c4']),\n"
    "    np.array(['a', 'b', 'a', 'b']), n, 3 * n, np.full(4, 30.0), np.ones(4), 7.0))\n"
)


@pytest.mark.parametrize("build", [FUNNEL, BGNBD], ids=["funnel", "bgnbd"])
def test_a_second_process_loads_the_compiled_model(build: str) -> None:
    # Numba reports each function it compiles (not those it loads from its cache); the
    # probe's own new function shows that the count sees a compile.
    probe = (
        "import numba, numba.core.event as ev\n"
        "from funnelsim.analysis import models\n"
        "from funnelsim.analysis.nutpie_model import compile_model\n"
        f"{build}"
        "with ev.install_recorder('numba:compile') as model_compiles:\n"
        "    compile_model(model)\n"
        "with ev.install_recorder('numba:compile') as probe_compiles:\n"
        "    numba.njit(lambda x: x + 1)(1)\n"
        "print(len(model_compiles.buffer), len(probe_compiles.buffer))\n"
    )

    def compiles() -> list[int]:
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        )
        return [int(count) for count in done.stdout.split()[-2:]]

    compiles()  # fills the compile cache if this model was never compiled here
    model, probe_function = compiles()
    assert probe_function > 0
    assert model == 0
