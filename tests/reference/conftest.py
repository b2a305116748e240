"""Kernel environment and numerics check for nbval over the reference notebooks here.

Hand-written (`python tools/book.py references` only rewrites the *.ipynb files here).
nbval starts each notebook's kernel from the pytest process environment. tools/test.sh
exports MPLBACKEND=Agg for the plain Python tests, and with that ipykernel would not use its
inline backend, so no figure would be displayed and every plotting cell would differ from
its reference. Give the kernels the same environment papermill uses (tools/book.py), the
numerics pins included.

The references record the numerics mode they were computed under. Under another mode (a CPU
that is not x86-64 with AVX2, or TOYTICKET_NUMERICS=native) training takes other code paths,
and chaotic training turns last-bit differences into different digits, so exact comparison is
skipped there, said once, and tests/test_portable.py compares each chapter's intervals with
the references' instead.
"""

import importlib.util
import json
import os
from pathlib import Path

import pytest

from toyticket import numerics

_spec = importlib.util.spec_from_file_location(
    "toyticket_book_tool", Path(__file__).resolve().parents[2] / "tools" / "book.py"
)
_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_book)
_KERNEL_ENV = _book.kernel_env()


def reference_mode(path: Path) -> str | None:
    """The numerics mode a reference notebook records (None if it records none)."""
    meta = json.loads(path.read_text()).get("metadata", {})
    return meta.get("toyticket", {}).get("numerics")


_SKIPPED: set[str] = set()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not type(item).__module__.startswith("nbval"):
            continue
        path = Path(str(item.fspath))
        recorded = reference_mode(path)
        if recorded != numerics.mode():
            item.add_marker(pytest.mark.skip(reason="another numerics mode (see the note)"))
            _SKIPPED.add(
                f"exact comparison skipped: the references were computed in numerics mode "
                f"{recorded}, this machine runs {numerics.mode()} (not x86-64 with AVX2, or "
                "TOYTICKET_NUMERICS=native); tests/test_portable.py checks the chapters "
                "within their intervals instead"
            )


def pytest_terminal_summary(terminalreporter):
    for reason in sorted(_SKIPPED):  # said once, not once per cell
        terminalreporter.write_line(f"nbval: {reason}", yellow=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    # The kernel is started while the notebook's first cell item is set up.
    if type(item).__module__.startswith("nbval"):
        saved = {name: os.environ.get(name) for name in _KERNEL_ENV}
        os.environ.update(_KERNEL_ENV)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    else:
        yield
