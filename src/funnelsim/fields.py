"""Field types shared by the scenario schema and the friction coefficients.

Every number a scenario accepts is validated by one of these: a probability, a
positive or non-negative finite number, a name usable in a dotted path. Models
built on :class:`StrictModel` refuse unknown keys and never change after loading.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SHARE_TOLERANCE = 1e-6


def _probability(value: float) -> float:
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ValueError(f"must be between 0 and 1, got {value:g}")
    return value


def shares_sum_to_one(shares: Mapping[str, float], what: str) -> None:
    """Raise ValueError unless ``shares`` sum to 1 (within :data:`SHARE_TOLERANCE`)."""
    total = math.fsum(shares.values())
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise ValueError(f"{what} shares must sum to 1, got {total:g}")


Probability = Annotated[float, AfterValidator(_probability)]


MAX_AMOUNT = 1e9
"""The largest number a scenario field takes (minutes, money, messages, multipliers;
traffic has its own bound): beyond it a value is a typo, and the engine's arithmetic
(a lognormal's tail reaches ~1e13 times its mean) stays finite."""

Amount = Annotated[float, Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False)]
NonNegativeAmount = Annotated[float, Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False)]


PositiveFloat = Amount
"""Every positive number of a scenario (beside the traffic) is at most MAX_AMOUNT."""


NonNegativeFloat = NonNegativeAmount


Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]


class StrictModel(BaseModel):
    """Base of every scenario model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
