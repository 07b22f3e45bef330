"""Simulation engines: SimPy where visitors share resources, NumPy where they do not.

Both engines read the same compiled funnel (:mod:`funnelsim.engine.model`) and
the same common random numbers (:mod:`funnelsim.engine.draws`), and return the
same columnar :class:`~funnelsim.engine.outcomes.Outcome`.
"""
