"""Closed forms for queues, beside the simulated ones.

A call centre with n agents, callers arriving at random (rate lambda), calls of
random length (rate mu each) and callers who hang up when they have waited too
long (patience rate theta) is the M/M/n+M or *Erlang A* queue. Its long-run
behaviour has a closed form, which checks the SimPy engine and tells
``funnelsim explain`` how many visitors a queue will lose before simulating.

References:
    Garnett, O., Mandelbaum, A. & Reiman, M. (2002), "Designing a call center with
    impatient customers", Manufacturing & Service Operations Management 4(3).
"""

from __future__ import annotations

import math

import numpy as np


def erlang_a_abandonment(
    arrival_rate: float,
    service_rate: float,
    patience_rate: float,
    servers: int,
    states: int = 2000,
) -> float:
    """Share of arrivals who abandon an M/M/n+M queue in the long run.

    The number in the system is a birth-death chain (births ``arrival_rate``, deaths
    ``min(k, n) mu + max(k - n, 0) theta`` in state k); with its stationary law,
    P(abandon) = theta E[queue length] / lambda. The chain is truncated at ``states``.

    >>> round(erlang_a_abandonment(0.5, 0.2, 0.1, 2), 4)
    0.3085
    """
    log_p = np.zeros(states)
    for k in range(1, states):
        death = min(k, servers) * service_rate + max(k - servers, 0) * patience_rate
        log_p[k] = log_p[k - 1] + math.log(arrival_rate / death)
    p = np.exp(log_p - log_p.max())
    p /= p.sum()
    queue = np.maximum(np.arange(states) - servers, 0)
    return patience_rate * float((queue * p).sum()) / arrival_rate
