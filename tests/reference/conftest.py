"""Kernel environment for nbval over the reference notebooks in this folder.

Hand-written (`python tools/book.py references` only rewrites the *.ipynb files here).
nbval starts each notebook's kernel from the pytest process environment. tools/test.sh
exports MPLBACKEND=Agg for the plain Python tests, and with that ipykernel would not use its
inline backend, so no figure would be displayed and every plotting cell would differ from
its reference. Give the kernels the same environment papermill uses (tools/book.py).
"""

import importlib.util
import os
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "toyticket_book_tool", Path(__file__).resolve().parents[2] / "tools" / "book.py"
)
_book = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_book)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    # The kernel is started while the notebook's first cell item is set up.
    if type(item).__module__.startswith("nbval"):
        saved = {name: os.environ.get(name) for name in _book.KERNEL_ENV}
        os.environ.update(_book.KERNEL_ENV)
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
