"""Checks of numeric settings, run before any work: one line naming the flag and the valid range."""

from __future__ import annotations

import math

from hlora_cli.errors import HloraError


def check_number(
    flag: str,
    value: float | None,
    low: float,
    high: float = math.inf,
    *,
    open_low: bool = False,
    open_high: bool = False,
    optional: bool = False,
) -> None:
    """`value` must be a finite number in [low, high] (open at an end when asked); None passes
    when `optional`."""
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low) and (value < high if open_high else value <= high)
    if not ok:
        lo, hi = ("(" if open_low else "[") + f"{low:g}", f"{high:g}" + (")" if open_high else "]")
        raise HloraError(f"{flag} {value}: must be a finite number in {lo}, {hi}")
