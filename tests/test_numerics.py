"""The numerics mode (toyticket.numerics): what it pins, how it is recorded, and that a result
computed under another mode is never read as this one's."""

import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest
import torch

import toyticket as tt
from toyticket import numerics
from toyticket import store as st

ROOT = Path(__file__).resolve().parent.parent
PORTABLE = numerics.portable_possible()


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter, with the pins and mode variables removed from the
    environment unless given."""
    clean = {
        k: v for k, v in os.environ.items() if k not in (*numerics.PINS, numerics.MODE_VARIABLE)
    }
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean, cwd=ROOT
    )


@pytest.mark.skipif(not PORTABLE, reason="this CPU cannot run the portable (AVX2) build")
def test_portable_mode_pins_every_library():
    assert numerics.mode() == "portable-x86_64-avx2-mkl_compatible"
    assert numerics.exact()
    for name, value in numerics.PINS.items():
        assert os.environ[name] == value
    assert numba.config.CPU_NAME == "haswell"
    assert torch.backends.cpu.get_cpu_capability() == "AVX2"
    env = numerics.environment()
    assert {k: env[k] for k in numerics.PINS} == numerics.PINS


def test_native_mode_is_recorded_as_such():
    out = _python(
        "import toyticket as tt; print(tt.numerics.mode(), tt.numerics.exact())",
        TOYTICKET_NUMERICS="native",
    )
    assert out.returncode == 0, out.stderr
    mode, exact = out.stdout.split()
    assert mode.startswith("native-") and exact == "False"
    assert out.stderr == ""


def test_a_bad_mode_is_refused_naming_the_variable():
    out = _python("import toyticket", TOYTICKET_NUMERICS="fast")
    assert out.returncode != 0
    assert "TOYTICKET_NUMERICS='fast' is not allowed" in out.stderr


@pytest.mark.skipif(not PORTABLE, reason="this CPU cannot run the portable (AVX2) build")
def test_importing_torch_first_warns_that_the_pins_may_be_too_late():
    out = _python("import torch; torch.ones(3) @ torch.ones(3); import toyticket")
    assert out.returncode == 0, out.stderr
    assert "numerics not pinned" in out.stderr and "MKL_CBWR" in out.stderr
    # imported first (the documented way), or with the pins exported: silent
    assert _python("import toyticket; import torch").stderr == ""
    assert _python("import torch; import toyticket", **numerics.PINS).stderr == ""


@pytest.mark.skipif(not PORTABLE, reason="this CPU cannot run the portable (AVX2) build")
def test_training_gives_the_same_bits_in_a_fresh_process():
    """The compiled engine (loaded from numba's cache or compiled anew) and the pinned torch
    kernels: a fresh interpreter reproduces this one's run bit for bit."""
    code = (
        "import toyticket as tt, torch, sys;"
        "r = tt.train(tt.make_task(), tt.ModelConfig(16), tt.TrainConfig(steps=200), [3, 4]);"
        "torch.save(r.final, sys.argv[1] if len(sys.argv) > 1 else '/dev/null')"
    )
    path = ROOT / "_build" / "numerics-check.pt"
    path.parent.mkdir(exist_ok=True)
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    theirs = torch.load(path)
    ours = tt.train(tt.make_task(), tt.ModelConfig(16), tt.TrainConfig(steps=200), [3, 4]).final
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
    path.unlink()


def test_an_entry_made_under_another_mode_is_not_read(tmp_path, monkeypatch):
    store = st.Store(tmp_path)
    calls = []

    def compute():
        calls.append(numerics.mode())
        return torch.tensor([float(len(calls))])

    first = store.cached("demo", {"a": 1}, compute)
    assert store.cached("demo", {"a": 1}, compute).item() == first.item()  # same mode: read
    monkeypatch.setattr(numerics, "mode", lambda: "native-aarch64-apple-m2")
    other = store.cached("demo", {"a": 1}, compute)
    assert len(calls) == 2 and other.item() == 2.0  # another mode: recomputed, not read
    entry = st.Entry.of("demo", {"a": 1}, "")
    assert entry.document["numerics"] == "native-aarch64-apple-m2"


def test_describe_names_the_mode_and_its_pins():
    info = numerics.describe()
    assert info["mode"] == numerics.mode()
    assert set(numerics.PINS) <= set(info)
    assert tt.numerics is numerics


@pytest.mark.skipif(not PORTABLE, reason="this CPU cannot run the portable (AVX2) build")
def test_mkl_gives_the_same_bits_on_every_vendors_cpu():
    """Products, solves and inverses through MKL (the statistics' regressions, pruning
    scores) on fixed inputs, against the bits they had on an AMD EPYC under MKL_CBWR=COMPATIBLE.
    The AVX2 branch gave other bits there (MKL honours it on Intel CPUs only): if this fails
    on some CPU, the pinned branch does not hold on it."""
    import hashlib

    N, p = 1024, 85
    X = ((torch.arange(N * p, dtype=torch.float64) * 7919 % 1009) / 1009 - 0.5).reshape(N, p)
    w = (torch.arange(N, dtype=torch.float64) % 13 + 1) / 13
    info = X.T @ (X * w[:, None])
    results = {
        "gemm64": info,
        "solve": torch.linalg.solve(info, X.T @ w),
        "inv": torch.linalg.inv(info),
        "gemm32": X.float().T @ X.float(),
    }
    digests = {
        name: hashlib.sha256(value.contiguous().numpy().tobytes()).hexdigest()[:16]
        for name, value in results.items()
    }
    assert digests == {
        "gemm64": "0c2408ab5a38d612",
        "solve": "c2ad44e2acc10cd0",
        "inv": "1d31c727286f4e91",
        "gemm32": "215b549e3b2cacef",
    }
