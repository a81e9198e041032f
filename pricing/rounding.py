"""Rounding a price to the currency's minor unit without ever leaving its interval."""

from __future__ import annotations

import math
from collections.abc import Callable

# Beyond 2**52 units a float can no longer tell neighbouring multiples apart.
_MAX_UNITS = 2.0**52


def _multiple_of(unit: float) -> Callable[[int], float]:
    """Return k -> k * unit, computed so that e.g. 1999 cents prints as 19.99.

    For units like 0.01 (1/100), ``k / 100`` is the double nearest the decimal
    price, whereas ``k * 0.01`` can carry the error of 0.01 (19.990000000000002).
    """
    per_one = round(1 / unit)
    if per_one >= 1 and math.isclose(1 / unit, per_one, rel_tol=1e-12):
        return lambda k: k / per_one
    return lambda k: k * unit


def round_within(price: float, low: float, high: float, unit: float) -> float:
    """Round `price` (inside [low, high]) to the nearest multiple of `unit` inside [low, high].

    Rounds half up to the nearest multiple; a multiple outside the interval is
    replaced by the nearest one inside it (rounding inward). If no multiple of
    `unit` lies inside the interval, or the scale is too large to represent
    multiples exactly, `price` is returned unrounded: staying inside the bounds
    wins over a tidy price. The map is monotone in `price`, so it keeps the
    policy monotone in interest.
    """
    scaled_low, scaled_high = low / unit, high / unit
    if not all(math.isfinite(v) and abs(v) < _MAX_UNITS for v in (scaled_low, scaled_high)):
        return price
    multiple = _multiple_of(unit)
    k_low, k_high = math.ceil(scaled_low), math.floor(scaled_high)
    # Division and multiples carry float error: 10.2 / 0.01 is 1019.999..., and a
    # multiple may land a hair outside. Settle each end on the true edge multiple.
    if multiple(k_low - 1) >= low:
        k_low -= 1
    elif multiple(k_low) < low:
        k_low += 1
    if multiple(k_high + 1) <= high:
        k_high += 1
    elif multiple(k_high) > high:
        k_high -= 1
    if k_low > k_high:
        return price
    return multiple(min(max(math.floor(price / unit + 0.5), k_low), k_high))


def round_to_unit(value: float, unit: float) -> float:
    """Round `value` half up to the nearest multiple of `unit`, as `round_within` does.

    The map is monotone, so a floor, a price and a ceiling rounded alike stay in
    order. A value too large for floats to represent the multiples around it
    exactly is returned as it is.
    """
    scaled = value / unit
    if not (math.isfinite(scaled) and abs(scaled) < _MAX_UNITS):
        return value
    return _multiple_of(unit)(math.floor(scaled + 0.5))
