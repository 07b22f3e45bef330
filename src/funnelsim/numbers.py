"""Numbers fit for JSON: results files never hold NaN or infinity, only null."""

from __future__ import annotations

import math


def finite_or_none(value: float) -> float | None:
    """``value`` as a float, or None (JSON null) when it is NaN or infinite.

    >>> finite_or_none(0.5), finite_or_none(float("inf"))
    (0.5, None)
    """
    return float(value) if math.isfinite(value) else None
