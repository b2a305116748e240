"""Checks at the door: every public entry point validates its parameters before any work and
raises ``ValueError`` (or ``TypeError``) in one line that names the parameter, shows its value
and says what is allowed: ``name=<value> is ...: allowed ...``.

The checks are small and reusable: numbers (``check_int``, ``check_float``), names
(``check_choice``, ``check_choices``), seeds (``check_seed``, ``check_seeds``), objects
(``check_config``, ``check_task``, ``check_store``, ``check_tensor``), ensembles and masks
(``check_params``, ``check_masks``), devices and YAML files. They return the value, normalized
where users naturally pass several forms (seeds as numpy or torch integers, a ``range``).
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

T = TypeVar("T")

# The layout of an ensemble (see ``toyticket.model``): the parameters with their axes, and the
# weights that masks may prune (biases never are).
PARAM_NAMES = ("W1", "b1", "W2", "b2")
PRUNABLE = ("W1", "W2")
PARAM_AXES = {
    "W1": ("lanes", "width", "n_vars"),
    "b1": ("lanes", "width"),
    "W2": ("lanes", "n_outputs", "width"),
    "b2": ("lanes", "n_outputs"),
}
SEED_MAX = 2**32 - 1  # seeds are 32-bit unsigned integers, as numpy's


def show(value: object, limit: int = 60) -> str:
    """A short, one-line rendering of ``value`` for messages: tensors and arrays by shape and
    dtype (their repr spans lines), long reprs cut."""
    if isinstance(value, torch.Tensor) and value.ndim > 0:
        return f"<tensor of shape {tuple(value.shape)}, {str(value.dtype).removeprefix('torch.')}>"
    if type(value).__name__ == "ndarray":
        return f"<numpy array of shape {value.shape}, {value.dtype}>"  # type: ignore[attr-defined]
    if isinstance(value, Mapping) and any(isinstance(v, torch.Tensor) for v in value.values()):
        text = "{" + ", ".join(f"{k!r}: {show(v)}" for k, v in value.items()) + "}"
    else:
        text = re.sub(r"\s+", " ", repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def wrong_type(name: str, value: object, allowed: str) -> TypeError:
    """The error for a value of the wrong type: ``name=<value> is a <type>: allowed ...``."""
    if value is None:
        return TypeError(f"{name}=None is missing: allowed {allowed}")
    kind = type(value).__name__
    article = "an" if kind[0].lower() in "aeiou" else "a"
    return TypeError(f"{name}={show(value)} is {article} {kind}: allowed {allowed}")


# --------------------------------------------------------------------------- numbers


def check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """``value`` must be an int (not a bool) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise wrong_type(name, value, "an integer")
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
        raise wrong_type(name, value, "a real number")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        lo = "(" if low_open or low is None else "["  # infinities are never allowed
        hi = ")" if high_open or high is None else "]"
        allowed = f"{lo}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi}"
        raise ValueError(f"{name}={value} is out of range: allowed {allowed}")
    return value


def check_open_unit(name: str, value: object) -> float:
    """``value`` must lie strictly between 0 and 1."""
    return check_float(name, value, 0.0, 1.0, low_open=True, high_open=True)


def check_bool(name: str, value: object) -> bool:
    """``value`` must be True or False."""
    if not isinstance(value, bool):
        raise wrong_type(name, value, "True or False")
    return value


def _interval(low: int | None, high: int | None) -> str:
    if high is None:
        return f">= {low}"
    if low is None:
        return f"<= {high}"
    return f"[{low}, {high}]"


# --------------------------------------------------------------------------- names


def check_choice(name: str, value: object, allowed: Iterable[str]) -> str:
    """``value`` must be one of ``allowed``."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}={show(value)} is not allowed: choose one of {allowed}")
    return value


def check_choices(name: str, values: object, allowed: Iterable[str]) -> tuple[str, ...]:
    """A non-empty sequence of names, each one of ``allowed`` (a lone string is refused: it
    would be read letter by letter)."""
    allowed = tuple(allowed)
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise wrong_type(name, values, f"a list of names from {allowed}")
    values = tuple(values)
    if not values:
        raise ValueError(f"{name}=[] is empty: allowed a list of names from {allowed}")
    for value in values:
        check_choice(f"{name} entry", value, allowed)
    return values


# --------------------------------------------------------------------------- seeds and steps


def _as_int(value: object) -> int | None:
    """``value`` as an int when it is an integer of Python, numpy or torch (a 0-d integer
    tensor), else None. Bools are not integers here."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):  # int and the numpy integers
        return int(value)
    if (
        isinstance(value, torch.Tensor)
        and value.ndim == 0
        and not value.is_floating_point()
        and not value.is_complex()
        and value.dtype != torch.bool
    ):
        return int(value)
    return None


def check_seed(name: str, value: object, high: int = SEED_MAX) -> int:
    """A seed: an integer (Python, numpy or a 0-d torch tensor) in ``[0, high]``, as an int."""
    seed = _as_int(value)
    if seed is None:
        raise wrong_type(name, value, "an integer seed")
    if not 0 <= seed <= high:
        raise ValueError(f"{name}={seed} is out of range: allowed [0, {high}]")
    return seed


def check_seeds(
    name: str, seeds: object, *, distinct: bool = True, high: int = SEED_MAX
) -> tuple[int, ...]:
    """A non-empty sequence of seeds (a list, tuple, ``range``, or a 1-d integer array or
    tensor) as a tuple of ints. ``distinct``: a repeated seed is refused, since it would train
    the same network twice and count it twice in every interval over seeds."""
    if _as_int(seeds) is not None:
        raise TypeError(
            f"{name}={show(seeds)} is one seed: allowed a sequence of integer seeds, "
            f"e.g. [{show(seeds)}] or range({show(seeds)})"
        )
    if (
        isinstance(seeds, str | bytes | Mapping | set | frozenset)
        or not isinstance(seeds, Iterable)
        or getattr(seeds, "ndim", 1) != 1  # arrays and tensors: one axis of seeds
    ):
        raise wrong_type(name, seeds, "a sequence of integer seeds (a list, tuple or range)")
    out = tuple(check_seed(f"{name}[{i}]", s, high) for i, s in enumerate(seeds))
    if not out:
        raise ValueError(f"{name}={show(seeds)} is empty: allowed at least one seed")
    if distinct and len(set(out)) < len(out):
        repeated = sorted({s for s in out if out.count(s) > 1})
        raise ValueError(
            f"{name}={show(list(out))} repeats {show(repeated)}: allowed distinct seeds "
            "(a repeated seed is the same network counted twice)"
        )
    return out


def check_lanes(name: str, lanes: object, n_lanes: int) -> slice | list[int]:
    """A slice, or a sequence of lane indices (integers of Python, numpy or torch) in
    ``[0, n_lanes - 1]``, as a list of ints."""
    if isinstance(lanes, slice):
        return lanes
    if (
        isinstance(lanes, str | bytes | Mapping | set | frozenset)
        or not isinstance(lanes, Iterable)
        or getattr(lanes, "ndim", 1) != 1
    ):
        raise wrong_type(name, lanes, "a list of lane indices or a slice")
    out = []
    for i, lane in enumerate(lanes):
        index = _as_int(lane)
        if index is None:
            raise wrong_type(f"{name}[{i}]", lane, "an integer")
        if not 0 <= index < n_lanes:
            raise ValueError(f"{name}[{i}]={index} is out of range: allowed [0, {n_lanes - 1}]")
        out.append(index)
    return out


def check_steps(name: str, steps: object, last: int) -> tuple[int, ...]:
    """A sorted tuple of distinct integer steps in ``[0, last]``."""
    if isinstance(steps, str | bytes) or not isinstance(steps, Iterable):
        raise wrong_type(name, steps, "a sequence of integer steps")
    return tuple(sorted({check_int(f"{name} entry", s, 0, last) for s in steps}))


# --------------------------------------------------------------------------- objects


def check_config(name: str, value: object, cls: type[T]) -> T:
    """``value`` must be an instance of ``cls`` (a config dataclass); the usual mix-ups (a dict
    of its fields, an object holding one as ``.config``) get a hint."""
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        hint = f" (build one from the dict: {cls.__name__}(**{name}))"
    elif isinstance(getattr(value, "config", None), cls):
        hint = f" (pass {name}.config)"
    else:
        hint = ""
    raise wrong_type(name, value, f"a {cls.__name__}{hint}")


def check_instance(name: str, value: object, cls: type[T], hint: str = "") -> T:
    """``value`` must be an instance of ``cls``; ``hint`` says how to get one."""
    if not isinstance(value, cls):
        raise wrong_type(name, value, f"a {cls.__name__}{hint}")
    return value


def check_task(name: str, value: object) -> Any:
    """``value`` must be a drawn ``Task``; a ``TaskConfig`` gets the hint to draw it."""
    from toyticket.tasks import Task, TaskConfig  # here: tasks imports this module

    if isinstance(value, TaskConfig):
        hint = f" (draw it from the config: tt.build_task({name}))"
    else:
        hint = " (tt.make_task(...) or tt.build_task(config))"
    return check_instance(name, value, Task, hint)


def check_store(name: str, value: object) -> Any:
    """``value`` must be a ``Store`` or None (the store ``TOYTICKET_STORE`` selects)."""
    from toyticket.store import Store  # here: store imports this module

    if value is None:
        return None
    if isinstance(value, str | os.PathLike):
        hint = f" (open the folder: tt.Store({show(str(value))}))"
    else:
        hint = " or None (the store that TOYTICKET_STORE selects)"
    return check_instance(name, value, Store, hint)


def check_tensor(name: str, value: object, ndim: int | None = None) -> torch.Tensor:
    """``value`` must be a torch tensor (with ``ndim`` dimensions, if given)."""
    if not isinstance(value, torch.Tensor):
        hint = " (convert it: torch.as_tensor(...))" if type(value).__name__ == "ndarray" else ""
        raise wrong_type(name, value, f"a torch tensor{hint}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(
            f"{name} has shape {tuple(value.shape)}: allowed a tensor of {ndim} dimensions"
        )
    return value


# --------------------------------------------------------------------------- ensembles


def check_params(
    name: str,
    params: object,
    task: Any = None,
    *,
    lanes: int | None = None,
    width: int | None = None,
    n_vars: int | None = None,
    n_outputs: int | None = None,
) -> dict[str, torch.Tensor]:
    """An ensemble: a dict of exactly W1 [S, h, n], b1 [S, h], W2 [S, out, h], b2 [S, out],
    floating-point tensors with consistent shapes: ``n`` and ``out`` those of ``task`` and
    every size given by keyword (``lanes`` S, ``width`` h, ``n_vars``, ``n_outputs``)."""
    if not isinstance(params, Mapping):
        hint = " (pass run.final or a checkpoint)" if hasattr(params, "checkpoints") else ""
        raise wrong_type(
            name,
            params,
            f"a dict of tensors {', '.join(PARAM_NAMES)} with a leading lane axis{hint}",
        )
    if set(params) != set(PARAM_NAMES):
        raise ValueError(
            f"{name} has the keys {sorted(map(str, params))}: allowed exactly the keys "
            f"{sorted(PARAM_NAMES)}"
        )
    for key in PARAM_NAMES:
        value = params[key]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise wrong_type(f"{name}[{key!r}]", value, "a floating-point tensor")
        if value.ndim != len(PARAM_AXES[key]):
            raise ValueError(
                f"{name}[{key!r}] has shape {tuple(value.shape)}: allowed "
                f"{len(PARAM_AXES[key])} dimensions ({', '.join(PARAM_AXES[key])})"
            )
    if task is not None:
        n_vars, n_outputs = task.n_vars, task.n_outputs
    given = {"lanes": lanes, "width": width, "n_vars": n_vars, "n_outputs": n_outputs}
    found = {
        "lanes": params["W1"].shape[0],
        "width": params["W1"].shape[1],
        "n_vars": params["W1"].shape[2],
        "n_outputs": params["W2"].shape[1],
    }
    sizes = {axis: found[axis] if size is None else size for axis, size in given.items()}
    for key in PARAM_NAMES:
        expected = tuple(sizes[axis] for axis in PARAM_AXES[key])
        if tuple(params[key].shape) != expected:
            axes = ", ".join(f"{axis}={sizes[axis]}" for axis in PARAM_AXES[key])
            raise ValueError(
                f"{name}[{key!r}] has shape {tuple(params[key].shape)}: allowed {expected} ({axes})"
            )
    return dict(params)


def weight_shapes(params: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """The shapes of the prunable weights of an ensemble: what its masks must match."""
    return {key: tuple(params[key].shape) for key in PRUNABLE if key in params}


def check_mask(
    name: str, mask: object, shape: Sequence[int] | None = None, *, values: bool = True
) -> torch.Tensor:
    """One mask: a bool or 0/1 tensor (of ``shape``, if given). ``values=False`` skips the pass
    over the entries."""
    if not isinstance(mask, torch.Tensor):
        raise wrong_type(name, mask, "a 0/1 or bool tensor")
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {tuple(mask.shape)}: allowed {tuple(shape)}")
    if values and mask.dtype != torch.bool:
        bad = mask[(mask != 0) & (mask != 1)]
        if bad.numel():
            raise ValueError(
                f"{name} holds values other than 0 and 1 (e.g. {bad[0].item():g}): allowed 0/1 "
                "or bool masks"
            )
    return mask


def check_masks(
    name: str,
    masks: object,
    shapes: Mapping[str, Sequence[int]],
    *,
    values: bool = True,
) -> dict[str, torch.Tensor] | None:
    """Masks: None, or a dict of 0/1 (or bool) tensors for some of the weights in ``shapes``,
    each of exactly its weight's shape. ``values=False`` skips the pass over the entries
    (for per-step callers; the entry points check them)."""
    if masks is None:
        return None
    allowed = " and ".join(repr(k) for k in shapes) or "no weights"
    if isinstance(masks, torch.Tensor):
        raise TypeError(
            f"{name}={show(masks)} is a bare tensor: allowed a dict of masks by weight name, "
            f"e.g. {{'W1': mask}} (keys {allowed})"
        )
    if not isinstance(masks, Mapping):
        raise wrong_type(name, masks, f"a dict of 0/1 tensors (keys {allowed})")
    for key, mask in masks.items():
        if key not in shapes:
            raise ValueError(
                f"{name} has the key {show(key)}: allowed {allowed} (biases are never pruned)"
            )
        check_mask(f"{name}[{key!r}]", mask, shapes[key], values=values)
    return dict(masks)


def check_ensemble(params: object, task: object, masks: object = None) -> None:
    """The door of every function that reads an ensemble on a task: ``task`` a drawn Task,
    ``params`` an ensemble of its shape, ``masks`` 0/1 masks of its weights' shapes."""
    task = check_task("task", task)
    params = check_params("params", params, task)
    check_masks("masks", masks, weight_shapes(params))


# --------------------------------------------------------------------------- devices


DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device(name: str, value: object) -> str:
    """``value`` must name an available torch device ("cpu", "cuda", "cuda:1", "mps")."""
    if not isinstance(value, str):
        raise wrong_type(name, value, "a device name such as 'cpu' or 'cuda'")
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


# --------------------------------------------------------------------------- files


def read_yaml(name: str, path: str | os.PathLike) -> Any:
    """The content of the YAML file ``path`` (given as parameter ``name``); a missing file or
    malformed YAML is a one-line ``ValueError`` with the line and column of the problem."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{name}={str(path)!r} is not a file: allowed a YAML file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ValueError(
            f"{name}={str(path)!r} is not valid YAML ({problem}{where}): allowed a YAML file"
        ) from None
