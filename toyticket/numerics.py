"""One numerics mode for everything the project computes on CPU.

Training here is chaotic: two BLAS code paths that differ in the last bit of a sum give final
weights that differ in the second decimal after 2000 steps, whatever the precision. So the
same parameters and seeds give the same bits on two machines only if every kernel runs the
same instructions. In the default mode, ``portable``, the package pins, on x86-64 CPUs with
AVX2 and FMA:

- ``NUMBA_CPU_NAME=haswell`` (and the features of that model): the compiled engine
  (``toyticket.engine``) is built for one AVX2 target, not for the CPU it runs on;
- ``MKL_CBWR=COMPATIBLE``: MKL's conditional numerical reproducibility branch that runs the
  same code on every vendor's CPU, so torch's matrix products and solves (evaluation,
  pruning scores, the statistics' regressions) give the same bits on Intel and AMD. The
  branches named after an instruction set (``AVX2``) hold only on Intel CPUs: elsewhere MKL
  falls back to its own dispatch (``AUTO``), and the last bits differ. ``COMPATIBLE`` is
  SSE2 and about 4x slower per product, which costs little here (the training engine does
  not use MKL);
- ``ATEN_CPU_CAPABILITY=avx2``: torch's own vectorized kernels use their AVX2 build.

The pins are defaults: a variable already in the environment is left as it is. They must be in
place before the first compilation and the first BLAS call; ``pin`` runs on ``import
toyticket`` and warns when that was too late. ``TOYTICKET_NUMERICS=native`` opts out (each
library picks its fastest path for the CPU at hand; results are then only reproducible on the
same CPU). Where the pins cannot hold (not x86-64, no AVX2), the mode is ``native`` too.

The mode (``mode()``) is part of every results-store key and of each reference notebook's
metadata, so a result computed under one mode is never read as if it were another's.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings

MODE_VARIABLE = "TOYTICKET_NUMERICS"
MODES = ("portable", "native")
PINS = {
    "NUMBA_CPU_NAME": "haswell",
    "NUMBA_CPU_FEATURES": "",  # empty: the features of the CPU model above, not of the host
    "MKL_CBWR": "COMPATIBLE",
    "ATEN_CPU_CAPABILITY": "avx2",
}
_REQUIRED_FLAGS = ("avx2", "fma")
_state: dict[str, object] = {}


def requested() -> str:
    """The mode asked for: ``TOYTICKET_NUMERICS`` ("portable" by default)."""
    value = os.environ.get(MODE_VARIABLE, "portable").strip().lower() or "portable"
    if value not in MODES:
        raise ValueError(f"{MODE_VARIABLE}={value!r} is not allowed: choose one of {MODES}")
    return value


def portable_possible() -> bool:
    """Whether this machine can run the pinned kernels: x86-64 with AVX2 and FMA."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    return all(_cpu_flags().get(flag, False) for flag in _REQUIRED_FLAGS)


def pin() -> str:
    """Put the pins of the requested mode in place (idempotent) and return the mode in force.

    Warns (once) when a pin could not take effect because a library had already chosen its
    code path, and falls back to ``native`` where the machine cannot run the pinned build."""
    if "mode" in _state:
        return _state["mode"]  # type: ignore[return-value]
    mode = requested()
    if mode == "portable" and not portable_possible():
        warnings.warn(
            f"toyticket: this CPU ({platform.machine()}, {_cpu_name()}) lacks x86-64 AVX2/FMA, "
            "so results cannot match the book's bit for bit; running in native numerics "
            f"(set {MODE_VARIABLE}=native to silence this)",
            RuntimeWarning,
            stacklevel=2,
        )
        mode = "native"
    if mode == "portable":
        late = "torch" in sys.modules and "MKL_CBWR" not in os.environ
        for name, value in PINS.items():
            os.environ.setdefault(name, value)
        _pin_numba()
        import torch  # noqa: F401  (after the pins: torch reads them when it first needs them)

        problems = _check_libraries(late)
        if problems:
            warnings.warn(
                "toyticket: numerics not pinned (" + "; ".join(problems) + "). Import "
                "toyticket before torch, or export "
                + " ".join(f"{k}={v!r}" for k, v in PINS.items())
                + ", so that results match other machines bit for bit",
                RuntimeWarning,
                stacklevel=2,
            )
    _state["mode"] = mode
    return mode


def mode() -> str:
    """The numerics mode with the architecture family, as recorded in store keys and
    reference metadata: ``portable-x86_64-avx2-mkl_compatible``, or
    ``native-<machine>-<cpu>``."""
    if pin() == "portable":
        return "portable-x86_64-avx2-mkl_compatible"
    return f"native-{platform.machine().lower()}-{_cpu_name()}"


def exact() -> bool:
    """Whether outputs are expected to equal the committed references bit for bit (they were
    made in the portable mode)."""
    return pin() == "portable"


def environment() -> dict[str, str]:
    """The variables a child process (notebook kernel, Dask worker) needs for the same mode."""
    pin()
    names = (MODE_VARIABLE, *PINS)
    return {name: os.environ[name] for name in names if name in os.environ}


def describe() -> dict[str, str]:
    """The mode and what it pinned, for the reproducibility appendix and notebook metadata."""
    info = {"mode": mode(), "machine": platform.machine(), "cpu": _cpu_name()}
    info.update({name: os.environ.get(name, "(unset)") for name in PINS})
    return info


def _pin_numba() -> None:
    """numba reads its target at import; if it was imported already, set its config, which
    the CPU code generator reads when it is created (at the first compilation)."""
    numba = sys.modules.get("numba")
    if numba is None:
        return
    config = sys.modules["numba.core.config"]
    if config.CPU_NAME is None:
        config.CPU_NAME = os.environ["NUMBA_CPU_NAME"]
        config.CPU_FEATURES = os.environ["NUMBA_CPU_FEATURES"]


def _check_libraries(late: bool) -> list[str]:
    """What did not take: torch's kernels chosen already, MKL possibly initialized before
    ``MKL_CBWR`` was set (torch imported first; MKL offers no way to ask), numba's target."""
    import torch

    problems = []
    capability = torch.backends.cpu.get_cpu_capability()
    wanted = os.environ["ATEN_CPU_CAPABILITY"].upper()
    if capability.upper() != wanted:
        problems.append(f"torch already uses its {capability} kernels, not {wanted}")
    if late:
        problems.append("torch was imported before MKL_CBWR was set")
    numba = sys.modules.get("numba")
    if numba is not None:
        config = sys.modules["numba.core.config"]
        if config.CPU_NAME != os.environ["NUMBA_CPU_NAME"]:
            problems.append(f"numba targets {config.CPU_NAME}, not {os.environ['NUMBA_CPU_NAME']}")
    return problems


def _cpu_flags() -> dict[str, bool]:
    if "flags" not in _state:
        try:
            from llvmlite import binding

            _state["flags"] = {k: bool(v) for k, v in binding.get_host_cpu_features().items()}
        except Exception:  # no llvmlite, or a platform it cannot read: assume nothing
            _state["flags"] = {}
    return _state["flags"]  # type: ignore[return-value]


def _cpu_name() -> str:
    try:
        from llvmlite import binding

        return binding.get_host_cpu_name()
    except Exception:
        return platform.processor() or "unknown"
