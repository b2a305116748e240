"""Checks at the door: every public entry point validates its parameters before any work and
raises ``ValueError`` (or ``TypeError``) naming the parameter, its value and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """``value`` must be an int (not a bool) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}={value} is out of range: allowed {_interval(low, high)}")
    return value


def check_float(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` must be a finite real number in the given interval."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        allowed = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
        raise ValueError(f"{name}={value} is out of range: allowed {allowed}")
    return value


def check_open_unit(name: str, value: object) -> float:
    """``value`` must lie strictly between 0 and 1."""
    return check_float(name, value, 0.0, 1.0, low_open=True, high_open=True)


def check_choice(name: str, value: object, allowed: Iterable[str]) -> str:
    """``value`` must be one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed: choose one of {allowed}")
    return value  # type: ignore[return-value]


def check_steps(name: str, steps: object, last: int) -> tuple[int, ...]:
    """A sorted tuple of distinct integer steps in ``[0, last]``."""
    if isinstance(steps, str | bytes) or not isinstance(steps, Iterable):
        raise TypeError(f"{name} must be a sequence of integer steps, got {steps!r}")
    return tuple(sorted({check_int(f"{name} entry", s, 0, last) for s in steps}))


def check_seeds(name: str, seeds: object) -> tuple[int, ...]:
    """A non-empty sequence of non-negative integer seeds, as a tuple."""
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Iterable):
        raise TypeError(f"{name} must be a sequence of integer seeds, got {seeds!r}")
    out = tuple(check_int(f"{name} entry", s, 0) for s in seeds)
    if not out:
        raise ValueError(f"{name} must hold at least one seed")
    return out


def _interval(low: int | None, high: int | None) -> str:
    if high is None:
        return f">= {low}"
    if low is None:
        return f"<= {high}"
    return f"[{low}, {high}]"


DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device(name: str, value: object) -> str:
    """``value`` must name an available torch device ("cpu", "cuda", "cuda:1", "mps")."""
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be a device name such as 'cpu' or 'cuda', got {value!r} "
            f"({type(value).__name__})"
        )
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        raise ValueError(f"{name}={value!r} is not a device: choose one of {_available()}")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ValueError(
                f"{name}={value!r} is not available here: choose one of {_available()}"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={value!r} is not available here: choose one of {_available()}")
    return value


def _available() -> tuple[str, ...]:
    """The devices this machine offers."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return tuple(names)
