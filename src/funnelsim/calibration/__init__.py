"""Calibrating a scenario to a team's own data: readers of analytics exports and event
logs, and the Bayesian model that narrows the scenario's uncertain assumptions."""
