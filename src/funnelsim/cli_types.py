"""Option types of the command line that click lacks: a float range that refuses NaN and
infinity (click's FloatRange lets NaN through every bound, and infinity through an open
one)."""

from __future__ import annotations

import math
from typing import Any

import click


class FiniteFloatRange(click.FloatRange):
    """A :class:`click.FloatRange` whose values are finite numbers."""

    name = "float range"  # as click shows FloatRange in --help

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number
