"""attrs validators and converters with readable messages ("steps must be >= 1, got 0")."""

from __future__ import annotations

import math
from typing import Any, Callable

__all__ = ["positive_int", "non_negative_int", "positive_float", "non_negative_float",
           "finite_float", "one_of", "unit_interval"]


def _name(attribute: Any) -> str:
    return getattr(attribute, "name", str(attribute))


def positive_int(instance: Any, attribute: Any, value: Any) -> None:
    """Require an ``int`` (not ``bool``) that is >= 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{_name(attribute)} must be an int >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{_name(attribute)} must be >= 1, got {value}")


def non_negative_int(instance: Any, attribute: Any, value: Any) -> None:
    """Require an ``int`` that is >= 0."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{_name(attribute)} must be an int >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{_name(attribute)} must be >= 0, got {value}")


def finite_float(instance: Any, attribute: Any, value: Any) -> None:
    """Require a finite float."""
    if not math.isfinite(value):
        raise ValueError(f"{_name(attribute)} must be finite, got {value}")


def positive_float(instance: Any, attribute: Any, value: Any) -> None:
    """Require a finite float > 0."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{_name(attribute)} must be a finite number > 0, got {value}")


def non_negative_float(instance: Any, attribute: Any, value: Any) -> None:
    """Require a finite float >= 0."""
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{_name(attribute)} must be a finite number >= 0, got {value}")


def unit_interval(instance: Any, attribute: Any, value: Any) -> None:
    """Require a float in [0, 1]."""
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{_name(attribute)} must lie in [0, 1], got {value}")


def one_of(*choices: Any) -> Callable[[Any, Any, Any], None]:
    """Require the value to be one of ``choices``."""

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value not in choices:
            raise ValueError(f"{_name(attribute)} must be one of {list(choices)}, got {value!r}")

    return check
