"""Bayesian readout of A/B tests, simulated or real.

``conjugate`` holds the exact Beta-Binomial posterior computations (probability
to be best, probability to beat a reference, expected loss, credible and uplift
intervals) plus Monte Carlo helpers for revenue per visitor; ``decision`` turns
them into a per-variant readout, a ship / stop / keep-testing decision and a
sample ratio mismatch check; ``models`` holds the PyMC funnel and revenue
models; ``data`` reads experiment CSV files; ``api`` is what ``funnelsim
analyze`` calls; ``lifetime`` fits repeat purchase and churn (BG/NBD) to order
logs.
"""

from funnelsim.compile_cache import use_compile_cache

use_compile_cache()  # before any model module imports PyTensor
